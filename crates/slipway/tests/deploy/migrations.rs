//! Issue 19: a deploy with nothing to migrate takes no snapshot unless told
//! (`database.snapshots.when`) and decides "nothing pending" fast; a deploy
//! killed while its migration runs leaves a migrate container that `status`
//! reports and the next deploy waits for, then removes.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use super::db_psql;
use super::harness::App;

/// The migrate containers of `app`: all of them, or the running ones.
fn migrate_containers_in(app: &App, all: bool) -> Vec<String> {
    app.docker(&[
        "ps",
        if all { "-a" } else { "--filter=status=running" },
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("label=slipway.app={}", app.name),
        "--filter",
        "label=slipway.task=migrate",
    ])
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

fn migrate_containers(app: &App) -> Vec<String> {
    migrate_containers_in(app, true)
}

/// Files under the snapshot directory, at any depth.
fn snapshot_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.map(|e| e.unwrap().path())
            .map(|p| if p.is_dir() { snapshot_files(&p) } else { 1 })
            .sum()
    })
}

fn step<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step `{name}` in {report}"))
}

#[test]
fn nothing_pending_skips_the_snapshot_and_a_killed_migration_is_settled_by_the_next_deploy() {
    let app = App::new("mig");
    let first = app.deploy();
    assert_eq!(first.code, 0, "{}", first.all());

    // Nothing pending: no snapshot, no migrate container, decided fast.
    app.commit_file("NOTES", "a\n", "no migration");
    let quiet = app.slipway(&["--json", "deploy", &app.env]);
    assert_eq!(quiet.code, 0, "{}", quiet.all());
    let report = quiet.json();
    assert!(report["snapshot"].is_null(), "{report}");
    assert_eq!(
        report["snapshot_skipped"],
        "no pending migration (database.snapshots.when: when_migrating)"
    );
    let pending = step(&report, "pending");
    assert!(
        pending["detail"].as_str().unwrap().starts_with("none:"),
        "{pending}"
    );
    let decided_ms = pending["duration_ms"].as_u64().unwrap();
    eprintln!("nothing-pending decided in {decided_ms} ms");
    assert!(decided_ms < 1000, "{pending}");
    assert_eq!(report["migrations"]["applied"], serde_json::json!([]));
    assert_eq!(snapshot_files(&app.snapshots), 0);

    // A slow migration, and the deploy killed while it runs.
    app.commit_file(
        "migrations/0005_slow.up.sql",
        "SELECT pg_sleep(10);\nALTER TABLE events ADD COLUMN capacity integer;\n",
        "slow migration",
    );
    let mut child = app.spawn(&["deploy", &app.env]);
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let snapshotted = lines.any(|l| l.unwrap().contains("✓ snapshot"));
    assert!(snapshotted, "the deploy never reached its snapshot");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Killed once its container runs (the migration then runs on its own).
    while migrate_containers_in(&app, false).is_empty() {
        assert!(Instant::now() < deadline, "no migrate container started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let leftover = migrate_containers(&app);
    assert_eq!(leftover.len(), 1, "{leftover:?}");

    // `status` says it runs and holds the lock, and leaves it to finish.
    let status = app.slipway(&["status", &app.env]);
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(
        status.stderr.contains(&format!(
            "is still running in {}; it holds the migration lock",
            leftover[0]
        )),
        "{}",
        status.all()
    );
    assert_eq!(migrate_containers(&app), leftover);

    // The next deploy waits for it, reports its outcome, removes it; with
    // `always` it snapshots although nothing is left to apply.
    let next = app.slipway(&[
        "--set",
        "database.snapshots.when=always",
        "--json",
        "deploy",
        &app.env,
    ]);
    assert_eq!(next.code, 0, "{}", next.all());
    assert!(
        next.stderr.contains("waiting up to 60s for it to end"),
        "{}",
        next.all()
    );
    assert!(
        next.stderr.contains(&format!(
            "removed the migrate container {} of an interrupted command",
            leftover[0]
        )),
        "{}",
        next.all()
    );
    assert!(
        next.stderr
            .contains("its migration finished (1 applied, database at version 5)"),
        "{}",
        next.all()
    );
    assert_eq!(migrate_containers(&app), Vec::<String>::new());
    let report = next.json();
    assert_eq!(report["migrations"]["applied"], serde_json::json!([]));
    let taken = report["snapshot"]
        .as_str()
        .expect("a snapshot with `always`");
    assert!(std::path::Path::new(taken).is_file(), "{taken}");
    assert_eq!(
        db_psql(
            &app,
            "select count(*) from slipway_migrations where version = 5"
        ),
        "1"
    );
    assert_eq!(app.serving().as_deref(), Some(app.head().as_str()));
}
