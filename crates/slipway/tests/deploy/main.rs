//! End-to-end: `slipway deploy` of events-server on the real engine, with
//! the real PostgreSQL image, real HTTP through the agent, and a continuous
//! bounded load counting failed requests. Each test has its own app name,
//! port and resources.

mod agent_upgrade;
mod analysis;
mod commands;
mod harness;
mod hooks;
mod https;
mod load;
mod maintenance;
mod migrations;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use harness::App;
use load::Load;

const MIGRATION_ADD_COLUMN: &str =
    "ALTER TABLE events ADD COLUMN IF NOT EXISTS capacity integer;\n";

fn db_psql(app: &App, sql: &str) -> String {
    let db = format!("{}-{}-db", app.name, app.env);
    app.docker(&[
        "exec", &db, "psql", "-U", "events", "-d", "events", "-tAc", sql,
    ])
    .trim()
    .to_string()
}

#[test]
fn deploys_migrates_fails_safely_and_rolls_back_with_zero_failed_requests() {
    let app = App::new("main");
    // B's analysis must still be running when the bad release is deployed
    // over it, however loaded the machine (four such tests on two cores make
    // latency and health probes noisy): a long window, no latency rule, and
    // a tolerant health rule. The analysis' own rules are proved in
    // tests/deploy/analysis.rs and the agent's suite.
    app.set("deployment.analysis.window=10m");
    app.set("deployment.analysis.p95_factor=1000");
    app.set("deployment.analysis.health_failures=10");

    // First deploy from nothing.
    let first = app.deploy();
    assert_eq!(first.code, 0, "{}", first.all());
    let release_a = app.head();
    assert_eq!(app.serving().as_deref(), Some(release_a.as_str()));
    assert!(
        first
            .stdout
            .contains(&format!("curl -s {}", app.url("/health"))),
        "{}",
        first.all()
    );
    let status = app.status_json();
    assert_eq!(status["current_deployment"]["version"], release_a.as_str());
    assert_eq!(status["current_deployment"]["active_slot"], "blue");
    assert_eq!(status["lock"]["locked"], false);
    assert_eq!(
        db_psql(
            &app,
            "select count(*) from pg_extension where extname in ('postgis','vector','pg_trgm')"
        ),
        "3"
    );

    let load = Load::start(&app.url("/version"), 4, 400_000, Duration::from_millis(2));

    // A second deploy with a new migration.
    app.commit_file(
        "migrations/0005_capacity.up.sql",
        MIGRATION_ADD_COLUMN,
        "add capacity",
    );
    std::fs::write(
        app.root().join("migrations/0005_capacity.down.sql"),
        "ALTER TABLE events DROP COLUMN capacity;\n",
    )
    .unwrap();
    app.commit_all("down");
    let second = app.deploy();
    assert_eq!(second.code, 0, "{}", second.all());
    let release_b = app.head();
    assert_eq!(app.serving().as_deref(), Some(release_b.as_str()));
    assert_eq!(
        db_psql(
            &app,
            "select count(*) from information_schema.columns where table_name='events' and column_name='capacity'"
        ),
        "1"
    );
    assert!(second.stderr.contains("snapshot"), "{}", second.all());
    // In the environment's own directory, named after it.
    let owned: Vec<String> = std::fs::read_dir(app.snapshots.join(&app.name).join(&app.env))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".dump"))
        .collect();
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert!(
        owned[0].starts_with(&format!("{}_{}_events_", app.name, app.env)),
        "{owned:?}"
    );

    // A release that never becomes healthy (a bad JWT_SECRET): refused, its
    // container removed, traffic stays.
    let bad = app.slipway_env(&["deploy", &app.env], &[("JWT_SECRET", "too-short")]);
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(bad.stderr.contains("exited"), "{}", bad.all());
    assert!(bad.stderr.contains("JWT_SECRET"), "{}", bad.all());
    assert_eq!(app.serving().as_deref(), Some(release_b.as_str()));
    // B's analysis was still running (A's slot kept warm for it): the next
    // deploy superseded it before building (its load would skew the
    // figures, and it takes that slot).
    assert!(
        bad.stderr.contains("ended the analysis of"),
        "{}",
        bad.all()
    );
    let analysis = &app.status_json()["analysis"];
    assert_eq!(analysis["release"], release_b.as_str(), "{analysis:#}");
    assert_eq!(analysis["state"], "cancelled", "{analysis:#}");
    let reason = analysis["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("superseded by deployment"), "{analysis:#}");
    let slots = app.docker(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("label=slipway.app={}", app.name),
        "--filter",
        "label=slipway.role=app",
    ]);
    // The failed release's container is gone; only the serving slot is left
    // (the previous release stays as its image, which rollback starts).
    assert_eq!(
        slots.trim(),
        format!("{}-{}-green", app.name, app.env),
        "the failed slot must have been removed"
    );

    // A release that breaks after the switch: the watch sees it and traffic
    // goes back by itself.
    app.commit_file("NOTES", "c\n", "release c");
    // It turns unhealthy 8 s after it starts, after the switch; ten failed
    // probes later the agent switches back, while the CLI still watches.
    let watch = app.slipway(&[
        "--set",
        "app.env.EVENTS_SERVER_FAIL_HEALTH_AFTER=8",
        "--set",
        "deployment.watch_window=60s",
        "deploy",
        &app.env,
    ]);
    assert_eq!(watch.code, 1, "{}", watch.all());
    assert!(
        watch.stderr.contains("failed at step `watch`"),
        "{}",
        watch.all()
    );
    assert!(watch.stderr.contains("switched back"), "{}", watch.all());
    assert_eq!(app.serving().as_deref(), Some(release_b.as_str()));

    // A migration that fails: traffic stays, the snapshot and the restore
    // command are printed, the deploy is recorded as failed.
    app.commit_file(
        "migrations/0006_broken.up.sql",
        "ALTER TABLE no_such_table ADD COLUMN x int;\n",
        "broken migration",
    );
    // Skipping the CI gate (none is configured here) still records why.
    let broken = app.slipway(&[
        "deploy",
        &app.env,
        "--skip-ci-check",
        "--reason",
        "hotfix while GitHub is down",
    ]);
    assert_eq!(broken.code, 1, "{}", broken.all());
    assert!(
        broken.stderr.contains("failed at step `migrate`"),
        "{}",
        broken.all()
    );
    assert!(broken.stderr.contains("no_such_table"), "{}", broken.all());
    assert!(
        broken
            .stderr
            .contains(&format!("slipway snapshot restore {}", app.env)),
        "{}",
        broken.all()
    );
    assert!(
        broken.stderr.contains(&app.snapshots.display().to_string()),
        "{}",
        broken.all()
    );
    assert_eq!(app.serving().as_deref(), Some(release_b.as_str()));
    let history = app.slipway(&["--json", "history", &app.env]);
    let history: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(history[0]["status"], "failed", "{history}");
    assert!(history[0]["error"].as_str().unwrap().contains("migrate"));
    assert_eq!(history[0]["ci"]["state"], "skipped", "{history}");
    assert_eq!(
        history[0]["ci"]["reason"], "hotfix while GitHub is down",
        "{history}"
    );
    let listed = app.slipway(&["history", &app.env]);
    assert!(
        listed
            .stdout
            .contains("ci: skipped: hotfix while GitHub is down"),
        "{}",
        listed.all()
    );
    std::fs::remove_file(app.root().join("migrations/0006_broken.up.sql")).unwrap();
    app.commit_all("drop broken");

    // A build that fails changes nothing.
    let build = app.slipway(&[
        "--set",
        "app.build.command=echo cannot compile >&2; exit 3",
        "deploy",
        &app.env,
    ]);
    assert_eq!(build.code, 1, "{}", build.all());
    assert!(
        build.stderr.contains("failed at step `build`"),
        "{}",
        build.all()
    );
    assert_eq!(app.serving().as_deref(), Some(release_b.as_str()));

    // Rollback to A: the database holds a newer migration, so it asks first.
    let refused = app.slipway(&["rollback", &app.env]);
    assert_eq!(refused.code, 3, "{}", refused.all());
    assert!(
        refused.stderr.contains("schema version 5"),
        "{}",
        refused.all()
    );
    let started = Instant::now();
    let back = app.slipway(&["rollback", &app.env, "--yes"]);
    assert_eq!(back.code, 0, "{}", back.all());
    eprintln!("rollback took {:?}", started.elapsed());
    assert_eq!(app.serving().as_deref(), Some(release_a.as_str()));
    let status = app.status_json();
    assert_eq!(status["current_deployment"]["version"], release_a.as_str());
    assert_eq!(status["previous_deployment"]["version"], release_b.as_str());

    let (ok, failed, errors) = load.finish();
    eprintln!("load: {ok} ok, {failed} failed");
    assert!(ok > 1000, "the load must have run ({ok} requests)");
    assert_eq!(
        failed, 0,
        "failed requests during deploys and rollbacks: {errors:?}"
    );
}

#[test]
fn a_second_deploy_while_one_runs_is_refused_naming_the_holder() {
    let app = App::new("lock");
    assert_eq!(app.deploy().code, 0);
    app.commit_file("NOTES", "x\n", "next");
    // A long watch window keeps the first deploy holding the lock.
    let mut first = app
        .command(
            &["--set", "deployment.watch_window=20s", "deploy", &app.env],
            &[],
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let lock = app.slipway(&["--json", "lock", "status", &app.env]);
        if lock.stdout.contains("\"locked\": true") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first deploy never took the lock"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let second = app.deploy();
    assert_eq!(second.code, 3, "{}", second.all());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "refused at once, not after waiting"
    );
    assert!(
        second.stderr.contains("another deploy holds the lock"),
        "{}",
        second.all()
    );
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "names the holder's pid: {}",
        second.all()
    );
    assert!(second.stderr.contains("since"), "{}", second.all());
    assert_eq!(first.wait().unwrap().code(), Some(0));
}

#[test]
fn kill_9_at_each_step_keeps_traffic_and_the_next_command_repairs() {
    let app = App::new("kill");
    assert_eq!(app.deploy().code, 0);
    let load = Load::start(&app.url("/version"), 2, 200_000, Duration::from_millis(5));
    for (i, after) in ["lock", "build", "migrate", "start", "switch"]
        .iter()
        .enumerate()
    {
        app.commit_file("NOTES", &format!("{i}\n"), &format!("kill after {after}"));
        let mut child = app.spawn(&["--set", "deployment.watch_window=10s", "deploy", &app.env]);
        let stderr = child.stderr.take().unwrap();
        let marker = format!("✓ {after}");
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let hit = line.contains(&marker);
            seen.push(line);
            if hit {
                break;
            }
        }
        assert!(
            seen.iter().any(|l| l.contains(&marker)),
            "never reached {after}: {seen:?}"
        );
        // SIGKILL: no cleanup code of ours runs.
        let _ = std::process::Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status();
        let _ = child.wait();
        assert!(
            app.serving().is_some(),
            "traffic must keep being served after kill -9 after {after}"
        );

        let status = app.slipway(&["status", &app.env]);
        assert_eq!(status.code, 0, "{}", status.all());
        assert!(
            status.stderr.contains("interrupted deploy"),
            "status must detect the interrupted deploy after {after}: {}",
            status.all()
        );
        assert!(status.stdout.contains("lock      free"), "{}", status.all());
        let next = app.deploy();
        assert_eq!(
            next.code,
            0,
            "deploy after kill -9 after {after}: {}",
            next.all()
        );
        assert_eq!(app.serving().as_deref(), Some(app.head().as_str()));
    }
    let (ok, failed, errors) = load.finish();
    eprintln!("load during kill -9 runs: {ok} ok, {failed} failed");
    assert!(ok > 100);
    assert_eq!(failed, 0, "{errors:?}");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let app = App::new("dry");
    let run = app.slipway(&["deploy", &app.env, "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("dry run: nothing changes"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains(&format!("{}:{}", app.name, app.head())),
        "{}",
        run.all()
    );
    let created = app.docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=slipway.app={}", app.name),
    ]);
    assert!(
        created.trim().is_empty(),
        "dry run created containers: {created}"
    );
    let json = app.slipway(&["--json", "deploy", &app.env, "--dry-run"]);
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(plan["new_slot"], "blue");
}
