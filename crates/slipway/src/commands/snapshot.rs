//! `slipway snapshot create|list|restore|prune <env>`.
//!
//! Snapshots are taken next to the database (see [`crate::tasks`]) and
//! written to `database.snapshots.dir` on the machine running this command;
//! for a remote engine the dump streams back here. `list` and `prune` only
//! read that directory and need no engine. `restore` asks for confirmation on
//! a terminal (otherwise it needs `--yes`) and reports the schema version the
//! database is at afterwards.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use slipway_core::config::ResolvedConfig;
use slipway_core::snapshot::{self, SnapshotEntry};

use super::migrate::{confirm, error_json};
use super::{block_on, connect, load_config};
use crate::cli::{GlobalArgs, SnapshotCommand};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::tasks::{self, TaskContext};

pub fn run(cmd: &SnapshotCommand, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let result = match cmd {
        SnapshotCommand::Create(args) => create(&args.env, &args.reason, global, printer),
        SnapshotCommand::List(args) => list(&args.env, global, printer),
        SnapshotCommand::Restore(args) => {
            restore(&args.env, &args.snapshot, args.yes, global, printer)
        }
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
        let t = connect(global, env, printer).await?;
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

fn list(env: &str, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let config = load_config(global, env, printer)?;
    let dir = snapshot_dir(&config);
    let entries = snapshot::list(&dir).map_err(|e| {
        CliError::new(
            Exit::Failed,
            format!("listing snapshots in {} failed: {e}", dir.display()),
        )
    })?;
    if printer.json() {
        printer.json_value(&json!({"dir": dir, "snapshots": entries}));
        return Ok(());
    }
    if entries.is_empty() {
        printer.line(format!("no snapshots in {}", dir.display()));
        return Ok(());
    }
    printer.line(format!(
        "# {} snapshot(s) in {}, newest first",
        entries.len(),
        dir.display()
    ));
    for e in &entries {
        printer.line(describe(e));
    }
    Ok(())
}

fn restore(
    env_arg: &str,
    snapshot_arg: &str,
    yes: bool,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<(), CliError> {
    // `restore <env> <snapshot>` and `restore <snapshot> <env>` both work:
    // the snapshot is the argument that looks like one.
    let (env, wanted) = if looks_like_snapshot(env_arg) && !looks_like_snapshot(snapshot_arg) {
        (snapshot_arg, env_arg)
    } else {
        (env_arg, snapshot_arg)
    };
    block_on(async {
        let t = connect(global, env, printer).await?;
        let dir = snapshot_dir(&t.config);
        let path = resolve_snapshot(&dir, wanted)?;
        confirm(
            &format!(
                "replace the contents of the `{env}` database ({}) with snapshot {}",
                t.config.settings.database.name,
                path.display()
            ),
            yes,
            printer,
        )?;
        let ctx = TaskContext {
            engine: &t.engine,
            names: &t.names,
            config: &t.config,
        };
        let note = |line: &str| printer.note(line);
        let report = tasks::with_progress(&note, tasks::snapshot_restore(&ctx, &path)).await?;
        if printer.json() {
            printer.json_value(&report);
        } else {
            printer.success(&format!(
                "restored {} into `{}`; the schema is now at version {}{} ({} ms{})",
                path.display(),
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

fn prune(env: &str, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let config = load_config(global, env, printer)?;
    let dir = snapshot_dir(&config);
    let days = u64::from(config.settings.database.snapshots.retention_days.max(1));
    let retention = Duration::from_secs(days * 24 * 60 * 60);
    let report =
        snapshot::prune(&dir, time::OffsetDateTime::now_utc(), retention).map_err(|e| {
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
        "deleted {} snapshot(s) older than {days} day(s), kept {}",
        report.deleted.len(),
        report.kept.len()
    ));
    for file in report.deleted.iter().chain(&report.partial_removed) {
        printer.line(format!("  deleted {file}"));
    }
    Ok(())
}

fn snapshot_dir(config: &ResolvedConfig) -> PathBuf {
    config.path(&config.settings.database.snapshots.dir)
}

fn looks_like_snapshot(arg: &str) -> bool {
    arg.ends_with(".dump") || arg.contains('/') || arg == "latest"
}

/// A file name from `list`, a path, or `latest`.
fn resolve_snapshot(dir: &Path, wanted: &str) -> Result<PathBuf, CliError> {
    if wanted == "latest" {
        let entries = snapshot::list(dir).map_err(|e| {
            CliError::new(
                Exit::Failed,
                format!("listing snapshots in {} failed: {e}", dir.display()),
            )
        })?;
        return entries.into_iter().next().map(|e| e.path).ok_or_else(|| {
            CliError::bad_input(format!("there are no snapshots in {}", dir.display()))
                .hint("take one with `slipway snapshot create <env>`")
        });
    }
    let path = if wanted.contains('/') {
        PathBuf::from(wanted)
    } else {
        dir.join(wanted)
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(
            CliError::bad_input(format!("snapshot {} does not exist", path.display()))
                .hint("`slipway snapshot list <env>` shows the available snapshots"),
        )
    }
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
