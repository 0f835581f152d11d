//! `slipway snapshot create|list|restore|prune <env>`.
//!
//! Snapshots are taken next to the database (see [`crate::tasks`]) and
//! written to `<database.snapshots.dir>/<app>/<environment>/` on the machine
//! running this command; for a remote engine the dump streams back here.
//! `list` and `prune` only read that directory and need no engine, and see
//! only this environment's snapshots. `restore` refuses a snapshot of
//! another app or environment unless `--from-environment`/`--from-app` says
//! that is meant, asks for confirmation on a terminal (otherwise it needs
//! `--yes`) naming whose data replaces whose, and reports the schema version
//! the database is at afterwards.

use slipway_core::config::SecretsNeed;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use slipway_core::config::ResolvedConfig;
use slipway_core::snapshot::{self, Owner, SnapshotEntry};

use super::migrate::{confirm, error_json};
use super::{block_on, connect, load_config};
use crate::cli::{GlobalArgs, SnapshotCommand, SnapshotRestoreArgs};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::tasks::{self, TaskContext};

pub fn run(cmd: &SnapshotCommand, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let result = match cmd {
        SnapshotCommand::Create(args) => create(&args.env, &args.reason, global, printer),
        SnapshotCommand::List(args) => list(&args.env, args.all, global, printer),
        SnapshotCommand::Restore(args) => restore(args, global, printer),
        SnapshotCommand::Prune(args) => prune(&args.env, global, printer),
    };
    if let Err(e) = &result
        && printer.json()
    {
        printer.json_value(&error_json(e));
    }
    result
}

fn create(env: &str, reason: &str, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    block_on(async {
        let t = connect(global, env, SecretsNeed::Required, printer).await?;
        let ctx = TaskContext {
            engine: &t.engine,
            names: &t.names,
            config: &t.config,
        };
        let commit = git_commit(&t.config.root).unwrap_or_else(|| "manual".to_string());
        let note = |line: &str| printer.note(line);
        let snap =
            tasks::with_progress(&note, tasks::snapshot_create(&ctx, reason, "", &commit)).await?;
        if printer.json() {
            printer.json_value(&snap);
        } else {
            printer.success(&format!(
                "snapshot {} ({}, schema version {}, {} archive entries verified, {} ms)",
                snap.path.display(),
                human_size(snap.sidecar.size_bytes),
                version_text(snap.sidecar.schema_version),
                snap.toc_entries,
                snap.duration.as_millis()
            ));
        }
        Ok(())
    })
}

fn list(env: &str, all: bool, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let config = load_config(global, env, SecretsNeed::NotNeeded, printer)?;
    let (root, owner) = tasks::snapshot_owner(&config)?;
    let listing_failed = |e: snapshot::SnapshotError| {
        CliError::new(
            Exit::Failed,
            format!("listing snapshots in {} failed: {e}", root.display()),
        )
    };
    if all {
        let entries = snapshot::list_all(&root).map_err(listing_failed)?;
        if printer.json() {
            printer.json_value(&json!({"root": root, "snapshots": entries}));
            return Ok(());
        }
        printer.line(format!(
            "# {} snapshot(s) of every app and environment in {}, newest first",
            entries.len(),
            root.display()
        ));
        for e in &entries {
            let whose = e
                .owner
                .as_ref()
                .map_or_else(|| "(no owner)".to_string(), Owner::to_string);
            printer.line(format!("{whose}  {}", describe(e)));
        }
        return Ok(());
    }
    let listing = snapshot::list(&root, &owner).map_err(listing_failed)?;
    if printer.json() {
        printer.json_value(&json!({
            "root": root,
            "dir": listing.dir,
            "owner": listing.owner,
            "snapshots": listing.own,
            "unowned": listing.unowned,
            "misplaced": listing.misplaced,
        }));
        return Ok(());
    }
    if listing.own.is_empty() {
        printer.line(format!(
            "no snapshots of {owner} in {}",
            listing.dir.display()
        ));
    } else {
        printer.line(format!(
            "# {} snapshot(s) of {owner} in {}, newest first",
            listing.own.len(),
            listing.dir.display()
        ));
        for e in &listing.own {
            printer.line(describe(e));
        }
    }
    if !listing.misplaced.is_empty() {
        printer.line(format!(
            "# {} file(s) in {owner}'s directory that are not {owner}'s (never listed as its own, picked as `latest` or pruned):",
            listing.misplaced.len()
        ));
        for e in &listing.misplaced {
            let why = match (&e.owner_conflict, &e.owner) {
                (Some(conflict), _) => conflict.clone(),
                (None, Some(o)) => format!("it belongs to {o}"),
                (None, None) => "it has no recorded owner".to_string(),
            };
            printer.line(format!("{}  [{why}]", describe(e)));
        }
    }
    if !listing.unowned.is_empty() {
        printer.line(format!(
            "# {} snapshot(s) without an owner in {} (taken before snapshots recorded their app and environment; \
             any environment's data; never picked as `latest` or pruned; restore one only by name, after checking whose it is):",
            listing.unowned.len(),
            root.display()
        ));
        for e in &listing.unowned {
            printer.line(describe(e));
        }
    }
    Ok(())
}

fn restore(
    args: &SnapshotRestoreArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<(), CliError> {
    // `restore <env> <snapshot>` and `restore <snapshot> <env>` both work:
    // the snapshot is the argument that looks like one.
    let (env, wanted) = if looks_like_snapshot(&args.env) && !looks_like_snapshot(&args.snapshot) {
        (args.snapshot.as_str(), args.env.as_str())
    } else {
        (args.env.as_str(), args.snapshot.as_str())
    };
    let config = load_config(global, env, SecretsNeed::Required, printer)?;
    let (root, target) = tasks::snapshot_owner(&config)?;
    let source = Owner::new(
        args.from_app.as_deref().unwrap_or(&target.app),
        args.from_environment
            .as_deref()
            .unwrap_or(&target.environment),
    )
    .map_err(|e| CliError::bad_input(format!("--from-app/--from-environment: {e}")))?;
    let entry = resolve_snapshot(&root, &source, wanted)?;
    let question = restore_question(&entry, &target, &source, env, &config)?;
    block_on(async {
        let t = crate::pipeline::context::Target::connect(config)
            .await
            .map_err(|e| super::step_error(Exit::Unavailable, e))?;
        confirm(&question, args.yes, printer)?;
        if entry.owner.as_ref() != Some(&target) {
            printer.note(&format!("restoring: {question}"));
        }
        let ctx = TaskContext {
            engine: &t.engine,
            names: &t.names,
            config: &t.config,
        };
        let note = |line: &str| printer.note(line);
        let report =
            tasks::with_progress(&note, tasks::snapshot_restore(&ctx, &entry.path)).await?;
        if printer.json() {
            let mut value = serde_json::to_value(&report).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("snapshot".into(), json!(entry.path));
                map.insert("snapshot_owner".into(), json!(entry.owner));
            }
            printer.json_value(&value);
        } else {
            printer.success(&format!(
                "restored {} into `{}`; the schema is now at version {}{} ({} ms{})",
                entry.path.display(),
                report.database,
                version_text(report.schema_version),
                if report.schema_dirty { " (DIRTY)" } else { "" },
                report.duration.as_millis(),
                if report.checksum_verified {
                    ", checksum verified"
                } else {
                    ""
                }
            ));
        }
        Ok(())
    })
}

/// What the operator confirms: whose data replaces whose. Refuses a
/// snapshot of another owner than `target` unless it is the `source` asked
/// for, and one whose ownership is in doubt.
fn restore_question(
    entry: &SnapshotEntry,
    target: &Owner,
    source: &Owner,
    env: &str,
    config: &ResolvedConfig,
) -> Result<String, CliError> {
    let file = entry.path.display();
    let database = &config.settings.database.name;
    if let Some(conflict) = &entry.owner_conflict {
        return Err(CliError::bad_input(format!(
            "refusing to restore {file}: whose data it holds is in doubt ({conflict})"
        ))
        .hint("check the file and its .json sidecar by hand; nothing was changed"));
    }
    match &entry.owner {
        Some(owner) if owner == target => Ok(format!(
            "replace the contents of the `{env}` database ({database}) with its snapshot {file}"
        )),
        Some(owner) if owner == source => Ok(format!(
            "replace the contents of {target}'s database ({database}) with a snapshot of {owner}: \
             {owner}'s data goes into {target} ({file})"
        )),
        Some(owner) => {
            let mut flags = format!("--from-environment {}", owner.environment);
            if owner.app != target.app {
                flags.push_str(&format!(" --from-app {}", owner.app));
            }
            Err(CliError::bad_input(format!(
                "refusing to restore {file} into {target}: it is a snapshot of {owner}"
            ))
            .hint(format!(
                "to put {owner}'s data into {target}'s database, say so: slipway snapshot restore {env} {} {flags}",
                entry.file
            )))
        }
        None => Ok(format!(
            "replace the contents of the `{env}` database ({database}) with {file}, which has NO recorded owner \
             (taken before snapshots recorded their app and environment, from a database named `{}`): \
             make sure it is {target}'s",
            entry.name.database
        )),
    }
}

fn prune(env: &str, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let config = load_config(global, env, SecretsNeed::Required, printer)?;
    let (root, owner) = tasks::snapshot_owner(&config)?;
    let dir = owner.dir(&root);
    let days = u64::from(config.settings.database.snapshots.retention_days.max(1));
    let retention = Duration::from_secs(days * 24 * 60 * 60);
    let report = snapshot::prune(&root, &owner, time::OffsetDateTime::now_utc(), retention)
        .map_err(|e| {
            CliError::new(
                Exit::Failed,
                format!("pruning snapshots in {} failed: {e}", dir.display()),
            )
            .hint("check that the directory is writable")
        })?;
    if printer.json() {
        printer.json_value(&report);
        return Ok(());
    }
    printer.success(&format!(
        "deleted {} snapshot(s) of {owner} older than {days} day(s), kept {}",
        report.deleted.len(),
        report.kept.len()
    ));
    for file in report.deleted.iter().chain(&report.partial_removed) {
        printer.line(format!("  deleted {file}"));
    }
    if report.unowned_left > 0 {
        printer.note(&format!(
            "{} snapshot(s) without an owner in {} are never pruned by any environment; \
             `slipway snapshot list {env}` shows them, delete them by hand when they are no longer needed",
            report.unowned_left,
            root.display()
        ));
    }
    Ok(())
}

fn looks_like_snapshot(arg: &str) -> bool {
    arg.ends_with(".dump") || arg.contains('/') || arg == "latest"
}

/// A file name from `list`, a path, or `latest` (the newest of `source`,
/// never an unowned one). A bare file name is looked for in `source`'s
/// directory, then in the root (unowned snapshots), then in the directory
/// of the owner its name gives.
fn resolve_snapshot(root: &Path, source: &Owner, wanted: &str) -> Result<SnapshotEntry, CliError> {
    let listing_failed = |e: snapshot::SnapshotError| {
        CliError::new(
            Exit::Failed,
            format!("listing snapshots in {} failed: {e}", root.display()),
        )
    };
    if wanted == "latest" {
        let listing = snapshot::list(root, source).map_err(listing_failed)?;
        let unowned = listing.unowned.len();
        return listing.own.into_iter().next().ok_or_else(|| {
            let mut err = CliError::bad_input(format!(
                "there are no snapshots of {source} in {}",
                listing.dir.display()
            ));
            err = if unowned > 0 {
                err.hint(format!(
                    "{unowned} snapshot(s) without an owner in {} are never picked as `latest`: \
                     `slipway snapshot list <env>` shows them; name one to restore it",
                    root.display()
                ))
            } else {
                err.hint("take one with `slipway snapshot create <env>`")
            };
            err
        });
    }
    let path = if wanted.contains('/') {
        PathBuf::from(wanted)
    } else {
        let mut candidates = vec![source.dir(root).join(wanted), root.join(wanted)];
        if let Ok(named) = snapshot::SnapshotName::parse_owned(wanted)
            && let Some(owner) = named.owner
        {
            candidates.push(owner.dir(root).join(wanted));
        }
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .unwrap_or_else(|| source.dir(root).join(wanted))
    };
    snapshot::identify(root, &path).map_err(|e| match e {
        snapshot::SnapshotError::NotFound { .. } => {
            CliError::bad_input(format!("snapshot {} does not exist", path.display()))
                .hint("`slipway snapshot list <env>` shows the available snapshots")
        }
        other => CliError::bad_input(format!("{} is not a snapshot: {other}", path.display())),
    })
}

fn describe(e: &SnapshotEntry) -> String {
    let mut line = format!("{}  {}", e.file, human_size(e.size_bytes));
    match &e.sidecar {
        Some(s) => {
            line.push_str(&format!(
                "  schema {}  reason {}",
                version_text(s.schema_version),
                s.reason
            ));
            if let Some(release) = &s.release {
                line.push_str(&format!("  release {release}"));
            }
            if let Ok(expires) = s
                .expires_at
                .format(&time::format_description::well_known::Rfc3339)
            {
                line.push_str(&format!("  expires {expires}"));
            }
        }
        None => match &e.sidecar_error {
            Some(err) => line.push_str(&format!("  [sidecar unreadable: {err}]")),
            None => line.push_str("  [no sidecar]"),
        },
    }
    line
}

fn version_text(v: Option<u64>) -> String {
    v.map_or_else(|| "none".to_string(), |v| v.to_string())
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

/// The checked-out commit (12 hex), for the snapshot's name; `None` outside git.
fn git_commit(root: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "--short=12", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_argument_order_finds_the_snapshot() {
        assert!(looks_like_snapshot("app_20250101T000000Z_abc.dump"));
        assert!(looks_like_snapshot("latest"));
        assert!(looks_like_snapshot("/tmp/x"));
        assert!(!looks_like_snapshot("production"));
    }

    #[test]
    fn sizes_read_like_humans_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024), "5.0 MiB");
    }
}
