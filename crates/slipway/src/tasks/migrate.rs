//! `migrate` next to the database: a one-off container of the tools image on
//! the environment's network, holding a copy of the migrations directory,
//! runs `slipway migrate <action> --dir /migrations --json` with
//! `DATABASE_URL` in its environment (never on its command line). Its stdout
//! is the runner's JSON report, or `{"error": ...}` when it failed.

use std::path::Path;

use serde_json::Value;
use slipway_core::config::schema::format_duration;

use super::tools_image::MIGRATIONS_MOUNT;
use super::{TaskContext, TaskError, database_url, require_database};
use crate::exit::Exit;
use crate::providers::docker::ContainerSpec;
use crate::providers::docker::names::{LABEL_OWNER_HOST, LABEL_OWNER_PID, LABEL_TASK, Names};

/// `slipway.task` of a one-off migrate container.
pub const MIGRATE_TASK: &str = "migrate";

/// A migrate container's labels: the environment's, what it runs, and who
/// started it (see `migrate_leftover`).
fn migrate_labels(names: &Names) -> std::collections::HashMap<String, String> {
    let mut labels = names.labels("task");
    labels.insert(LABEL_TASK.into(), MIGRATE_TASK.into());
    labels.insert(LABEL_OWNER_HOST.into(), crate::owner::hostname());
    labels.insert(LABEL_OWNER_PID.into(), std::process::id().to_string());
    labels
}

/// What to do with the migrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateAction {
    Status,
    Up {
        limit: Option<usize>,
    },
    Down {
        n: usize,
    },
    /// golang-migrate's `force`; `-1` means "no version".
    Force {
        version: i64,
    },
}

impl MigrateAction {
    /// The verb and its arguments on the `slipway migrate` command line.
    /// Down and force carry `--yes`: the operator confirmed before the task ran.
    pub fn args(&self) -> Vec<String> {
        match self {
            MigrateAction::Status => vec!["status".into()],
            MigrateAction::Up { limit: None } => vec!["up".into()],
            MigrateAction::Up { limit: Some(n) } => {
                vec!["up".into(), "--limit".into(), n.to_string()]
            }
            MigrateAction::Down { n } => vec!["down".into(), n.to_string(), "--yes".into()],
            MigrateAction::Force { version } => {
                vec!["force".into(), version.to_string(), "--yes".into()]
            }
        }
    }

    pub fn verb(&self) -> &'static str {
        match self {
            MigrateAction::Status => "status",
            MigrateAction::Up { .. } => "up",
            MigrateAction::Down { .. } => "down",
            MigrateAction::Force { .. } => "force",
        }
    }
}

/// Runs `action` with the migrations in `migrations_dir` against the
/// environment's database, from a one-off container of `tools_image`, and
/// returns the runner's report as JSON. `release` is recorded with each
/// applied file.
pub async fn migrate(
    ctx: &TaskContext<'_>,
    tools_image: &str,
    migrations_dir: &Path,
    action: MigrateAction,
    release: Option<&str>,
) -> Result<Value, TaskError> {
    if !migrations_dir.is_dir() {
        return Err(TaskError::new(
            Exit::BadInput,
            format!(
                "the migrations directory {} does not exist",
                migrations_dir.display()
            ),
        )
        .hint("check database.migrations in deployment.yml (relative to the repository root)"));
    }
    let url = database_url(ctx.config, ctx.names)?;
    require_database(ctx).await?;

    let mut cmd: Vec<String> = vec!["slipway".into(), "migrate".into()];
    cmd.extend(action.args());
    cmd.extend(["--dir".into(), MIGRATIONS_MOUNT.into(), "--json".into()]);
    let settings = &ctx.config.settings.database.migration;
    cmd.extend(["--lock-wait".into(), format_duration(settings.lock_wait.0)]);
    if let Some(t) = &settings.statement_timeout {
        cmd.extend(["--statement-timeout".into(), format_duration(t.0)]);
    }
    if let Some(t) = &settings.lock_timeout {
        cmd.extend(["--lock-timeout".into(), format_duration(t.0)]);
    }
    if let Some(release) = release {
        cmd.extend(["--release".into(), release.to_string()]);
    }

    // A unique name: two operators migrating at once must not replace each
    // other's container (the advisory lock decides who runs first).
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let name = ctx
        .names
        .task(&format!("migrate-{}", &suffix[suffix.len() - 8..]));
    let spec = ContainerSpec {
        name: name.clone(),
        image: tools_image.to_string(),
        // The one place the URL leaves for its consumer.
        env: vec![
            format!("DATABASE_URL={}", url.expose()),
            "NO_COLOR=1".into(),
            format!("{PROGRESS_ENV}=1"),
        ],
        cmd: Some(cmd),
        labels: migrate_labels(ctx.names),
        network: Some(ctx.names.network()),
        ..Default::default()
    };
    tracing::info!(target: "slipway::tasks", "running `slipway migrate {}` in {name} ({tools_image})", action.verb());
    let result = run(ctx, &spec, migrations_dir).await;
    if let Err(e) = ctx.engine.remove(&name).await {
        tracing::warn!(target: "slipway::tasks", "could not remove the task container {name}: {e}");
    }
    let (code, stdout, stderr) = result?;
    interpret(action, code, &stdout, &stderr, &name)
}

async fn run(
    ctx: &TaskContext<'_>,
    spec: &ContainerSpec,
    dir: &Path,
) -> Result<(i64, String, String), TaskError> {
    ctx.engine.create(spec).await.map_err(|e| {
        TaskError::from(e).hint(format!(
            "the environment's network {} and the tools image must exist; `slipway deploy {}` provisions them",
            ctx.names.network(),
            ctx.config.environment
        ))
    })?;
    ctx.engine
        .upload_dir(&spec.name, dir, MIGRATIONS_MOUNT)
        .await?;
    ctx.engine.start(&spec.name).await?;
    // Relay progress while it runs (a long migration, a wait for another
    // runner's lock). The stream ends when the container stops; it merges
    // stdout and stderr, so only marked lines count. Losing it is not fatal:
    // the exit code and the final logs decide the outcome.
    let mut pending = String::new();
    let streamed = ctx
        .engine
        .stream_logs(&spec.name, true, "all", |chunk| {
            pending.push_str(chunk);
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                if let Some(progress) = progress_line(&line) {
                    tracing::info!(target: "slipway::tasks", "{progress}");
                }
            }
        })
        .await;
    if let Err(e) = streamed {
        tracing::debug!(target: "slipway::tasks", "progress of {} not relayed: {e}", spec.name);
    }
    let code = ctx.engine.wait(&spec.name).await?;
    let (stdout, stderr) = ctx.engine.logs(&spec.name, None).await?;
    Ok((code, stdout, stderr))
}

/// Set in a task container: `slipway migrate` then marks its progress lines
/// on stderr with [`PROGRESS_MARKER`], so the CLI can relay them live from
/// the engine's merged log stream without mistaking the JSON report for one.
pub const PROGRESS_ENV: &str = "SLIPWAY_TASK_PROGRESS";
pub const PROGRESS_MARKER: &str = "slipway-progress: ";

/// The progress text of a marked log line.
pub(super) fn progress_line(line: &str) -> Option<&str> {
    line.trim_end_matches(['\r', '\n'])
        .strip_prefix(PROGRESS_MARKER)
}

/// The container's outcome as a report or an error. Its stdout is one JSON
/// document; its stderr is progress (already relayed) and error text.
pub(super) fn interpret(
    action: MigrateAction,
    code: i64,
    stdout: &str,
    stderr: &str,
    name: &str,
) -> Result<Value, TaskError> {
    let parsed: Option<Value> = serde_json::from_str(stdout.trim()).ok();
    if code == 0 {
        return parsed.ok_or_else(|| {
            TaskError::failed(format!(
                "`slipway migrate {}` in {name} succeeded but printed no JSON report",
                action.verb()
            ))
            .hint("the tools image may hold an older slipway; remove the slipway-tools images and retry")
        });
    }
    if let Some(error) = parsed.as_ref().and_then(|v| v.get("error")) {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the migration failed")
            .to_string();
        let exit = match error.get("exit").and_then(Value::as_i64) {
            Some(2) => Exit::BadInput,
            Some(3) => Exit::Conflict,
            Some(4) => Exit::Unavailable,
            _ => Exit::Failed,
        };
        let mut err = TaskError::new(exit, message);
        err.hint = error
            .get("hint")
            .and_then(Value::as_str)
            .map(str::to_string);
        return Err(err);
    }
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| progress_line(l).unwrap_or(l))
        .collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    Err(TaskError::failed(format!(
        "`slipway migrate {}` in {name} exited with code {code}: {}",
        action.verb(),
        tail.join("\n")
    ))
    .hint("the message above is the migration runner's; fix the cause and run the command again"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_become_cli_arguments() {
        assert_eq!(MigrateAction::Status.args(), vec!["status"]);
        assert_eq!(
            MigrateAction::Up { limit: Some(2) }.args(),
            vec!["up", "--limit", "2"]
        );
        assert_eq!(
            MigrateAction::Down { n: 1 }.args(),
            vec!["down", "1", "--yes"]
        );
        assert_eq!(
            MigrateAction::Force { version: -1 }.args(),
            vec!["force", "-1", "--yes"]
        );
    }

    #[test]
    fn a_json_error_keeps_its_message_hint_and_exit_code() {
        let out = r#"{"error": {"message": "database `x` is dirty at version 3: recovery", "hint": "force", "exit": 1}}"#;
        let err = interpret(MigrateAction::Up { limit: None }, 1, out, "", "t").expect_err("fails");
        assert!(err.message.contains("dirty at version 3"));
        assert_eq!(err.hint.as_deref(), Some("force"));
        assert_eq!(err.exit, Exit::Failed);
        let err = interpret(MigrateAction::Status, 4, "", "boom", "t").expect_err("fails");
        assert!(err.message.contains("boom"), "{err}");
        let err = interpret(
            MigrateAction::Up { limit: None },
            1,
            "",
            "slipway-progress: applying 0001_a.up.sql\nboom",
            "t",
        )
        .expect_err("fails");
        assert!(
            err.message.contains(": applying 0001_a.up.sql\nboom"),
            "{err}"
        );
        assert_eq!(
            progress_line("slipway-progress: applied x in 3ms\n"),
            Some("applied x in 3ms")
        );
        assert_eq!(progress_line("{"), None);
        let ok = interpret(MigrateAction::Status, 0, r#"{"current": 2}"#, "", "t").expect("ok");
        assert_eq!(ok["current"], 2);
    }
}
