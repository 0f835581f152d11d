//! `slipway migrate status|up|down|force`, in two forms:
//!
//! - `slipway migrate up production`: the environment's database, with the
//!   migrations of this checkout, run next to the database in a one-off
//!   container of the tools image ([`crate::tasks::migrate`]);
//! - `slipway migrate up --dir <dir> --database-url <url>` (or `DATABASE_URL`
//!   in the environment): any database this machine reaches, no deploy/
//!   configuration needed, as golang-migrate users know it. The tools
//!   container runs exactly this form.
//!
//! With `--json` the result is the runner's report on stdout, or on failure
//! `{"error": {"message", "hint", "exit"}}` (so the task can relay it).
//! Progress (lock waiting, each file and its duration) goes to stderr. The
//! database password never appears: URLs are shown redacted.

use slipway_core::config::SecretsNeed;
use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use serde_json::{Value, json};
use slipway_core::config::schema::parse_duration;
use slipway_core::migrate::{MigrateError, MigrationSet, Runner, RunnerOptions};
use slipway_core::secret::{Secret, redact_url};

use super::{block_on, connect};
use crate::cli::{GlobalArgs, MigrateCommand, MigrateTarget};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::tasks::{self, MigrateAction, TaskContext};

pub fn run(cmd: &MigrateCommand, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let (action, target, yes) = match cmd {
        MigrateCommand::Status(t) => (MigrateAction::Status, t, false),
        MigrateCommand::Up(a) => (MigrateAction::Up { limit: a.limit }, &a.target, false),
        MigrateCommand::Down(a) => (MigrateAction::Down { n: a.n }, &a.target, a.yes),
        MigrateCommand::Force(a) => (
            MigrateAction::Force { version: a.version },
            &a.target,
            a.yes,
        ),
    };
    match block_on(execute(action, target, yes, global, printer)) {
        Ok(report) => {
            if printer.json() {
                printer.json_value(&report);
            } else {
                render(action, &report, printer);
            }
            Ok(())
        }
        Err(e) => {
            if printer.json() {
                printer.json_value(&error_json(&e));
            }
            Err(e)
        }
    }
}

/// The JSON document printed for a failure with `--json`.
pub fn error_json(e: &CliError) -> Value {
    json!({"error": {"message": e.message, "hint": e.hint, "exit": e.exit as i32}})
}

async fn execute(
    action: MigrateAction,
    target: &MigrateTarget,
    yes: bool,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<Value, CliError> {
    // In a task container, progress lines are marked for the CLI that
    // relays them (see `tasks::migrate`).
    let marker = if std::env::var_os(tasks::PROGRESS_ENV).is_some() {
        tasks::PROGRESS_MARKER
    } else {
        ""
    };
    let note = |line: &str| printer.note(&format!("{marker}{line}"));
    match &target.env {
        None => {
            let dir = target.dir.clone().ok_or_else(|| {
                CliError::bad_input("no database to migrate: give an environment or --dir and --database-url")
                    .hint("`slipway migrate up production`, or `slipway migrate up --dir migrations --database-url postgres://...` (DATABASE_URL works too)")
            })?;
            let url = target
                .database_url
                .as_deref()
                .filter(|u| !u.trim().is_empty())
                .map(Secret::new)
                .ok_or_else(|| {
                    CliError::bad_input("--dir was given but no database URL")
                        .hint("pass --database-url postgres://USER:PASSWORD@HOST:PORT/DB, or set DATABASE_URL (keeps the password off the command line)")
                })?;
            confirm_action(action, &redact_url(url.expose()), yes, printer)?;
            let options = runner_options(target)?;
            tasks::with_progress(&note, adhoc(action, &dir, &url, options)).await
        }
        Some(env) => {
            for (flag, given) in [
                ("--lock-wait", &target.lock_wait),
                ("--statement-timeout", &target.statement_timeout),
                ("--lock-timeout", &target.lock_timeout),
            ] {
                if given.is_some() {
                    return Err(CliError::bad_input(format!(
                        "{flag} applies to the --dir/--database-url form; an environment takes it from deployment.yml"
                    ))
                    .hint("override it for one run with --set database.migration.lock_wait=2m (or statement_timeout, lock_timeout)"));
                }
            }
            let t = connect(global, env, SecretsNeed::Required, printer).await?;
            if target.database_url.is_some() {
                printer.note(&format!(
                    "note: ignoring --database-url/DATABASE_URL: `{env}`'s configuration names its database"
                ));
            }
            let dir = match &target.dir {
                Some(dir) => dir.clone(),
                None => t.config.path(&t.config.settings.database.migrations),
            };
            confirm_action(action, &format!("the `{env}` database"), yes, printer)?;
            let ctx = TaskContext {
                engine: &t.engine,
                names: &t.names,
                config: &t.config,
            };
            // Before building the tools image: a missing database is found in
            // a second instead of after a build.
            tasks::require_database(&ctx).await?;
            let tools = tasks::ensure_tools_image(&t.engine, &note).await?;
            let report = tasks::with_progress(
                &note,
                tasks::migrate(&ctx, &tools, &dir, action, target.release.as_deref()),
            )
            .await?;
            Ok(report)
        }
    }
}

/// The ad-hoc form: this process connects to the database itself.
async fn adhoc(
    action: MigrateAction,
    dir: &std::path::Path,
    url: &Secret,
    options: RunnerOptions,
) -> Result<Value, CliError> {
    let set = MigrationSet::load(dir).map_err(migrate_error)?;
    let mut runner = Runner::connect(url, options).await.map_err(migrate_error)?;
    match action {
        MigrateAction::Status => to_json(&runner.status(&set).await.map_err(migrate_error)?),
        MigrateAction::Up { limit } => {
            to_json(&runner.up(&set, limit).await.map_err(migrate_error)?)
        }
        MigrateAction::Down { n } => to_json(&runner.down(&set, n).await.map_err(migrate_error)?),
        MigrateAction::Force { version } => {
            let version = match version {
                -1 => None,
                v => Some(u64::try_from(v).map_err(|_| {
                    CliError::bad_input(format!("`{v}` is not a migration version")).hint(
                        "give a version from `slipway migrate status`, or -1 for \"no version\"",
                    )
                })?),
            };
            to_json(&runner.force(version).await.map_err(migrate_error)?)
        }
    }
}

fn to_json(report: &impl serde::Serialize) -> Result<Value, CliError> {
    serde_json::to_value(report).map_err(|e| {
        CliError::new(
            Exit::Failed,
            format!("internal: cannot encode the report: {e}"),
        )
    })
}

fn runner_options(target: &MigrateTarget) -> Result<RunnerOptions, CliError> {
    let duration = |flag: &str, text: &Option<String>| -> Result<Option<Duration>, CliError> {
        text.as_deref()
            .map(|t| parse_duration(t).map_err(|e| CliError::bad_input(format!("{flag}: {e}"))))
            .transpose()
    };
    let mut options = RunnerOptions::default();
    if let Some(wait) = duration("--lock-wait", &target.lock_wait)? {
        options.lock_timeout_wait = wait;
    }
    options.statement_timeout = duration("--statement-timeout", &target.statement_timeout)?;
    options.lock_timeout = duration("--lock-timeout", &target.lock_timeout)?;
    options.release = target.release.clone();
    Ok(options)
}

/// The runner's errors with the exit code the table gives them. Their
/// messages already say why and what to do (a dirty database: the exact
/// recovery steps); URLs in them are redacted by the runner.
fn migrate_error(e: MigrateError) -> CliError {
    let (exit, hint) = if e.is_source_error() {
        (Exit::BadInput, None)
    } else {
        match &e {
            MigrateError::Connect { .. } => (Exit::Unavailable, None),
            MigrateError::LockTimeout { .. } => (Exit::Conflict, None),
            MigrateError::Dirty { .. } | MigrateError::FailedDirty { .. } => (
                Exit::Failed,
                Some("after recovering, `slipway migrate status` shows where the database stands"),
            ),
            _ => (Exit::Failed, None),
        }
    };
    let mut err = CliError::new(exit, e.to_string());
    err.hint = hint.map(str::to_string);
    err
}

fn confirm_action(
    action: MigrateAction,
    database: &str,
    yes: bool,
    printer: &Printer,
) -> Result<(), CliError> {
    let question = match action {
        MigrateAction::Down { n } => format!(
            "revert the {n} most recent migration(s) of {database} with their down files (data they added may be lost)"
        ),
        MigrateAction::Force { version } => format!(
            "set {database} to version {version} and clear its dirty flag without running any migration"
        ),
        _ => return Ok(()),
    };
    confirm(&question, yes, printer)
}

/// Asks on a terminal; without one, refuses unless `--yes` (exit code 3).
pub fn confirm(question: &str, yes: bool, printer: &Printer) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::new(
            Exit::Conflict,
            format!("not confirmed: about to {question}, but stdin is not a terminal to ask on; nothing was changed"),
        )
        .hint("pass --yes to confirm"));
    }
    printer.note(&format!("About to {question}.\nContinue? [y/N]"));
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::new(Exit::Conflict, format!("cannot read the answer: {e}")))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(
            CliError::new(Exit::Conflict, "not confirmed; nothing was changed")
                .hint("answer `y` to go ahead, or pass --yes"),
        ),
    }
}

/// Human output, from the JSON report (the same for both forms).
fn render(action: MigrateAction, r: &Value, printer: &Printer) {
    let version = |v: &Value| match v.as_u64() {
        Some(n) => n.to_string(),
        None => "none".to_string(),
    };
    let steps = |key: &str| -> Vec<String> {
        r.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|s| {
                        format!(
                            "  {}  {} ms",
                            s.get("file").and_then(Value::as_str).unwrap_or("?"),
                            s.get("duration_ms").and_then(Value::as_u64).unwrap_or(0)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    match action {
        MigrateAction::Status => render_status(r, printer),
        MigrateAction::Up { .. } => {
            let applied = steps("applied");
            if applied.is_empty() {
                printer.success(&format!(
                    "nothing to apply; the database is at version {}",
                    version(&r["to"])
                ));
            } else {
                printer.success(&format!(
                    "applied {} migration(s): version {} → {}",
                    applied.len(),
                    version(&r["from"]),
                    version(&r["to"])
                ));
                applied.iter().for_each(|l| printer.line(l));
            }
        }
        MigrateAction::Down { .. } => {
            let reverted = steps("reverted");
            printer.success(&format!(
                "reverted {} migration(s): version {} → {}",
                reverted.len(),
                version(&r["from"]),
                version(&r["to"])
            ));
            reverted.iter().for_each(|l| printer.line(l));
        }
        MigrateAction::Force { .. } => printer.success(&format!(
            "forced version {} → {}{}",
            version(&r["from"]),
            version(&r["to"]),
            if r["was_dirty"].as_bool() == Some(true) {
                " (dirty flag cleared)"
            } else {
                ""
            }
        )),
    }
}

fn render_status(r: &Value, printer: &Printer) {
    let current = r["current"]
        .as_u64()
        .map_or("none".to_string(), |v| v.to_string());
    let latest = r["latest"]
        .as_u64()
        .map_or("none".to_string(), |v| v.to_string());
    let dirty = if r["dirty"].as_bool() == Some(true) {
        " DIRTY (a migration failed part-way; `slipway migrate up` prints the recovery steps)"
    } else {
        ""
    };
    printer.line(format!("version: {current}{dirty}"));
    printer.line(format!("latest file: {latest}"));
    let list = |key: &str| r[key].as_array().cloned().unwrap_or_default();
    let applied = list("applied");
    if !applied.is_empty() {
        printer.line(format!("applied ({}):", applied.len()));
        for a in &applied {
            let mut line = format!(
                "  {:>6}  {}",
                a["version"].as_u64().unwrap_or(0),
                a["name"].as_str().unwrap_or("")
            );
            if let Some(at) = a["applied_at"].as_str() {
                line.push_str(&format!("  applied {at}"));
            }
            if let Some(ms) = a["duration_ms"].as_u64() {
                line.push_str(&format!(" in {ms} ms"));
            }
            if let Some(release) = a["release"].as_str() {
                line.push_str(&format!(" (release {release})"));
            }
            if a["file_present"].as_bool() == Some(false) {
                line.push_str("  [file missing]");
            }
            printer.line(line);
        }
    }
    let pending = list("pending");
    if pending.is_empty() {
        printer.line("pending: none");
    } else {
        printer.line(format!("pending ({}):", pending.len()));
        for p in &pending {
            printer.line(format!(
                "  {:>6}  {}",
                p["version"].as_u64().unwrap_or(0),
                p["file"].as_str().unwrap_or("")
            ));
        }
    }
    for m in list("modified") {
        printer.line(format!(
            "  EDITED after it was applied: {} (version {})",
            m["file"].as_str().unwrap_or(""),
            m["version"].as_u64().unwrap_or(0)
        ));
    }
    if r["current_file_missing"].as_bool() == Some(true) {
        printer.line(
            "note: the database is at a version with no file here (ahead of these migrations)",
        );
    }
}
