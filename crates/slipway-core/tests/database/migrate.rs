//! The migration runner on a real PostgreSQL 17: golang-migrate continuity,
//! one runner at a time, transactional files, no-transaction files and the
//! dirty state, edited-file detection, down, force, timeouts, redaction.

use std::time::Duration;

use slipway_core::migrate::{MigrateError, MigrationSet, Runner, RunnerOptions, TransactionMode};
use slipway_core::secret::Secret;

use crate::support::{
    advisory_locks, migrations, scalar_i64, schema_migrations_rows, test_db, wait_until,
    write_files,
};

const CREATE_EVENTS: &str = "CREATE TABLE events (id bigserial PRIMARY KEY, title text NOT NULL);";
const ADD_VENUE: &str = "ALTER TABLE events ADD COLUMN venue text;";
const ADD_TAGS: &str = "CREATE TABLE tags (id serial PRIMARY KEY, name text UNIQUE NOT NULL);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continues_a_schema_migrations_table_left_by_golang_migrate() {
    let db = test_db("mig_golang");
    let (client, _task) = db.client().await;
    // Exactly what golang-migrate leaves after applying versions 1 and 2.
    client
        .batch_execute(&format!(
            "{CREATE_EVENTS} {ADD_VENUE}
             CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null);
             TRUNCATE schema_migrations; INSERT INTO schema_migrations (version, dirty) VALUES (2, false);"
        ))
        .await
        .expect("golang-migrate state");
    let dir = migrations(&[
        ("000001_create_events.up.sql", CREATE_EVENTS),
        ("000001_create_events.down.sql", "DROP TABLE events;"),
        ("000002_add_venue.up.sql", ADD_VENUE),
        ("000003_add_tags.up.sql", ADD_TAGS),
    ]);
    let set = MigrationSet::load(dir.path()).expect("load");
    let mut runner = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect");

    let before = runner.status(&set).await.expect("status");
    assert_eq!(before.current, Some(2));
    assert_eq!(
        before.pending.iter().map(|p| p.version).collect::<Vec<_>>(),
        vec![3]
    );
    assert!(
        before.applied.iter().all(|a| a.checksum.is_none()),
        "no checksums before Slipway ran"
    );

    let report = runner.up(&set, None).await.expect("up");
    assert_eq!(report.from, Some(2));
    assert_eq!(report.to, Some(3));
    assert_eq!(
        report.applied.iter().map(|s| s.version).collect::<Vec<_>>(),
        vec![3]
    );
    assert_eq!(
        report.adopted,
        vec![1, 2],
        "earlier files recorded on first sight, not refused"
    );

    // golang-migrate's table is left as golang-migrate expects: one row.
    assert_eq!(schema_migrations_rows(&client).await, vec![(3, false)]);
    let types: Vec<(String, String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns
              WHERE table_name = 'schema_migrations' ORDER BY ordinal_position",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        types,
        vec![
            ("version".into(), "bigint".into(), "NO".into()),
            ("dirty".into(), "boolean".into(), "NO".into())
        ]
    );
    let recorded = scalar_i64(
        &client,
        "SELECT count(*) FROM slipway_migrations WHERE length(checksum) = 64",
    )
    .await;
    assert_eq!(recorded, 3);
    assert_eq!(scalar_i64(&client, "SELECT count(*) FROM tags").await, 0);

    let after = runner.status(&set).await.expect("status");
    assert!(after.pending.is_empty());
    assert!(after.applied.iter().all(|a| a.checksum.is_some()));
    assert_eq!(advisory_locks(&client).await, 0, "the lock is released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_at_once_one_applies_the_other_waits_then_finds_nothing() {
    let db = test_db("mig_two");
    let (setup, _t1) = db.client().await;
    setup
        .batch_execute("CREATE TABLE gate (id int);")
        .await
        .expect("gate table");
    // The first migration reads `gate`, which the test keeps locked: runner
    // A is then provably inside its migration, holding the runner lock.
    let dir = migrations(&[
        (
            "0001_a.up.sql",
            "CREATE TABLE a (id int); SELECT count(*) FROM gate;",
        ),
        ("0002_b.up.sql", "CREATE TABLE b (id int);"),
    ]);
    let set = MigrationSet::load(dir.path()).expect("load");
    let (mut gate_holder, _t2) = db.client().await;
    let gate_tx = gate_holder.transaction().await.expect("begin");
    gate_tx
        .batch_execute("LOCK TABLE gate IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("hold gate");

    let mut a = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect a");
    let mut b = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect b");
    let set_a = set.clone();
    let task_a = tokio::spawn(async move { a.up(&set_a, None).await });
    let name = db.name.clone();
    wait_until("runner A to block inside its migration", Duration::from_secs(30), || {
        let setup = &setup;
        let name = name.clone();
        async move {
            let n: i64 = setup
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'slipway migrate' AND wait_event_type = 'Lock'",
                    &[&name],
                )
                .await
                .expect("activity")
                .get(0);
            n == 1
        }
    })
    .await;

    let set_b = set.clone();
    let task_b = tokio::spawn(async move { b.up(&set_b, None).await });
    wait_until("runner B to be polling for the lock", Duration::from_secs(30), || {
        let setup = &setup;
        let name = name.clone();
        async move {
            let n: i64 = setup
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'slipway migrate (lock)' AND query LIKE '%pg_try_advisory_lock%'",
                    &[&name],
                )
                .await
                .expect("activity")
                .get(0);
            n == 2
        }
    })
    .await;
    assert!(!task_b.is_finished(), "B must wait while A holds the lock");
    assert_eq!(
        scalar_i64(
            &setup,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'b'"
        )
        .await,
        0
    );

    gate_tx.commit().await.expect("release gate");
    let report_a = task_a.await.expect("join a").expect("a up");
    let report_b = task_b.await.expect("join b").expect("b up");
    assert_eq!(
        report_a
            .applied
            .iter()
            .map(|s| s.version)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(
        report_b.applied.is_empty(),
        "B found nothing to do: {report_b:?}"
    );
    assert_eq!(report_b.from, Some(2));
    assert!(report_b.lock_waited > Duration::ZERO);
    assert_eq!(schema_migrations_rows(&setup).await, vec![(2, false)]);
    assert_eq!(advisory_locks(&setup).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_wait_has_a_deadline_and_a_killed_holder_leaves_no_lock() {
    let db = test_db("mig_lock");
    let dir = migrations(&[("0001_create_events.up.sql", CREATE_EVENTS)]);
    let set = MigrationSet::load(dir.path()).expect("load");
    let options = RunnerOptions {
        lock_timeout_wait: Duration::from_millis(1500),
        ..RunnerOptions::default()
    };
    let mut runner = Runner::connect(&db.url, options).await.expect("connect");

    // Another "runner" holds the lock (same key golang-migrate would use).
    let (holder, holder_task) = db.client().await;
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&runner.lock_key()])
        .await
        .expect("take lock");
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);

    let err = runner.up(&set, None).await.expect_err("must time out");
    assert!(matches!(err, MigrateError::LockTimeout { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("waiting 1s"), "{msg}");
    assert!(
        msg.contains(&format!("pg_terminate_backend({holder_pid})")),
        "{msg}"
    );
    assert!(!msg.contains(db.password()), "{msg}");

    // The holder dies (its socket closes, as with kill -9): the session lock
    // goes with it, and the next runner proceeds.
    holder_task.abort();
    drop(holder);
    let mut runner = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect");
    let report = runner
        .up(&set, None)
        .await
        .expect("up after the holder died");
    assert_eq!(report.to, Some(1));
    let (check, _t) = db.client().await;
    assert_eq!(advisory_locks(&check).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_file_rolls_the_whole_file_back() {
    let db = test_db("mig_rollback");
    let dir = migrations(&[
        ("0001_create_events.up.sql", CREATE_EVENTS),
        (
            "0002_broken.up.sql",
            "CREATE TABLE venues (id int);\nINSERT INTO events (title) VALUES ('kept?');\nSELECT * FROM no_such_table;\n",
        ),
    ]);
    let set = MigrationSet::load(dir.path()).expect("load");
    let mut runner = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect");
    let err = runner.up(&set, None).await.expect_err("file 2 fails");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            MigrateError::Failed {
                version: 2,
                current: Some(1),
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("0002_broken.up.sql"), "{msg}");
    assert!(msg.contains("no_such_table"), "{msg}");
    assert!(msg.contains("42P01"), "{msg}");
    assert!(msg.contains("line 3, column 15"), "{msg}");

    let (client, _t) = db.client().await;
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'venues'"
        )
        .await,
        0
    );
    assert_eq!(scalar_i64(&client, "SELECT count(*) FROM events").await, 0);
    assert_eq!(schema_migrations_rows(&client).await, vec![(1, false)]);
    assert_eq!(
        scalar_i64(&client, "SELECT count(*) FROM slipway_migrations").await,
        1
    );
    assert_eq!(advisory_locks(&client).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_transaction_failure_leaves_dirty_is_refused_then_force_recovers() {
    let db = test_db("mig_dirty");
    let dir = migrations(&[
        ("0001_create_events.up.sql", CREATE_EVENTS),
        (
            "0002_indexes.up.sql",
            "-- slipway:no-transaction\nCREATE INDEX CONCURRENTLY events_title_idx ON events (title);\nSELECT venue FROM events;\n",
        ),
        ("0003_add_tags.up.sql", ADD_TAGS),
    ]);
    let set = MigrationSet::load(dir.path()).expect("load");
    assert_eq!(
        set.get(2).map(|m| m.up.mode),
        Some(TransactionMode::NoTransaction)
    );
    let mut runner = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect");
    let (client, _t) = db.client().await;

    let err = runner
        .up(&set, None)
        .await
        .expect_err("venue does not exist yet");
    let msg = err.to_string();
    assert!(
        matches!(err, MigrateError::FailedDirty { version: 2, .. }),
        "{msg}"
    );
    assert!(msg.contains("statement 2"), "{msg}");
    assert!(msg.contains("line 3, column 8"), "{msg}");
    assert_eq!(schema_migrations_rows(&client).await, vec![(2, true)]);
    // The first statement ran and stays: that is why the version is dirty.
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'events_title_idx'"
        )
        .await,
        1
    );

    // A dirty database is refused, with the exact way out.
    let err = runner.up(&set, None).await.expect_err("dirty");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            MigrateError::Dirty {
                version: Some(2),
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("slipway migrate force 2 <env>"), "{msg}");
    assert!(msg.contains("slipway migrate force 1 <env>"), "{msg}");
    assert!(msg.contains("--database-url"), "{msg}");
    assert!(runner.status(&set).await.expect("status").dirty);

    // The operator undoes the partial change, fixes the file and forces back.
    client
        .batch_execute("DROP INDEX events_title_idx;")
        .await
        .expect("undo");
    write_files(
        dir.path(),
        &[(
            "0002_indexes.up.sql",
            "-- slipway:no-transaction\nCREATE INDEX CONCURRENTLY events_title_idx ON events (title);\nCREATE INDEX CONCURRENTLY events_id_title_idx ON events (id, title);\n",
        )],
    );
    let set = MigrationSet::load(dir.path()).expect("reload");
    let forced = runner.force(Some(1)).await.expect("force");
    assert!(forced.was_dirty);
    assert_eq!(schema_migrations_rows(&client).await, vec![(1, false)]);

    let report = runner.up(&set, None).await.expect("up after force");
    assert_eq!(
        report.applied.iter().map(|s| s.version).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(schema_migrations_rows(&client).await, vec![(3, false)]);
    let valid = scalar_i64(
        &client,
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE c.relname IN ('events_title_idx', 'events_id_title_idx') AND i.indisvalid",
    )
    .await;
    assert_eq!(valid, 2, "both concurrent indexes built and valid");
    assert_eq!(advisory_locks(&client).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_applied_file_is_refused() {
    let db = test_db("mig_edited");
    let dir = migrations(&[
        ("0001_create_events.up.sql", CREATE_EVENTS),
        ("0002_add_venue.up.sql", ADD_VENUE),
    ]);
    let set = MigrationSet::load(dir.path()).expect("load");
    let mut runner = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect");
    runner.up(&set, None).await.expect("up");

    write_files(
        dir.path(),
        &[
            (
                "0001_create_events.up.sql",
                "CREATE TABLE events (id bigserial PRIMARY KEY, title text);",
            ),
            ("0003_add_tags.up.sql", ADD_TAGS),
        ],
    );
    let set = MigrationSet::load(dir.path()).expect("reload");
    let status = runner.status(&set).await.expect("status");
    assert_eq!(status.modified.len(), 1);
    assert_eq!(status.modified[0].file, "0001_create_events.up.sql");

    let err = runner.up(&set, None).await.expect_err("edited file");
    let msg = err.to_string();
    assert!(matches!(err, MigrateError::Modified { .. }), "{msg}");
    assert!(msg.contains("0001_create_events.up.sql"), "{msg}");
    assert!(msg.contains("new migration file"), "{msg}");
    let (client, _t) = db.client().await;
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'tags'"
        )
        .await,
        0
    );
    assert_eq!(schema_migrations_rows(&client).await, vec![(2, false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_reverts_in_order_and_forgets_bookkeeping() {
    let db = test_db("mig_down");
    let dir = migrations(&[
        ("0001_create_events.up.sql", CREATE_EVENTS),
        ("0001_create_events.down.sql", "DROP TABLE events;"),
        ("0005_add_venue.up.sql", ADD_VENUE),
        (
            "0005_add_venue.down.sql",
            "ALTER TABLE events DROP COLUMN venue;",
        ),
        ("0009_add_tags.up.sql", ADD_TAGS),
        ("0009_add_tags.down.sql", "DROP TABLE tags;"),
    ]);
    let set = MigrationSet::load(dir.path()).expect("load");
    let mut runner = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect");
    let up = runner.up(&set, Some(2)).await.expect("up limited to 2");
    assert_eq!(up.to, Some(5));
    runner.up(&set, None).await.expect("up the rest");

    let down = runner.down(&set, 2).await.expect("down 2");
    assert_eq!(down.from, Some(9));
    assert_eq!(down.to, Some(1));
    assert_eq!(
        down.reverted.iter().map(|s| s.version).collect::<Vec<_>>(),
        vec![9, 5]
    );
    let (client, _t) = db.client().await;
    assert_eq!(schema_migrations_rows(&client).await, vec![(1, false)]);
    assert_eq!(
        scalar_i64(&client, "SELECT count(*) FROM slipway_migrations").await,
        1
    );
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'venue'"
        )
        .await,
        0
    );
    let down = runner.down(&set, 5).await.expect("down past the first");
    assert_eq!(down.to, None);
    assert!(
        schema_migrations_rows(&client).await.is_empty(),
        "no version is no row, as golang-migrate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_with_their_own_transaction_run_like_golang_migrate() {
    let db = test_db("mig_owntx");
    let dir = migrations(&[(
        "0001_create_events.up.sql",
        "BEGIN;\nCREATE TABLE events (id int);\nCREATE FUNCTION one() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;\nCOMMIT;\n",
    )]);
    let set = MigrationSet::load(dir.path()).expect("load");
    assert_eq!(
        set.get(1).map(|m| m.up.mode),
        Some(TransactionMode::FileManaged)
    );
    let mut runner = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect");
    runner.up(&set, None).await.expect("up");
    let (client, _t) = db.client().await;
    assert_eq!(scalar_i64(&client, "SELECT one()::bigint").await, 1);
    assert_eq!(schema_migrations_rows(&client).await, vec![(1, false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_apply_only_when_configured() {
    let db = test_db("mig_timeouts");
    let (client, _t) = db.client().await;
    // A database default that would kill a long migration...
    client
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET statement_timeout = '100ms'",
            db.name
        ))
        .await
        .expect("db default");
    let dir = migrations(&[("0001_slow.up.sql", "SELECT pg_sleep(0.5);")]);
    let set = MigrationSet::load(dir.path()).expect("load");
    // ...does not apply to the runner by default,
    let mut runner = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect");
    runner.up(&set, None).await.expect("no timeout by default");
    runner.down(&set, 0).await.expect("down 0 is a no-op");

    // but a configured one does.
    let dir = migrations(&[
        ("0001_slow.up.sql", "SELECT pg_sleep(0.5);"),
        ("0002_slow.up.sql", "SELECT pg_sleep(5);"),
    ]);
    let set = MigrationSet::load(dir.path()).expect("load");
    let options = RunnerOptions {
        statement_timeout: Some(Duration::from_millis(300)),
        ..RunnerOptions::default()
    };
    let mut runner = Runner::connect(&db.url, options).await.expect("connect");
    let err = runner.up(&set, None).await.expect_err("statement timeout");
    assert!(err.to_string().contains("57014"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_appears_in_errors() {
    let db = test_db("mig_secret");
    let wrong = db.url.expose().replace(db.password(), "canary-wrong-pw");
    let err = match Runner::connect(&Secret::new(wrong), RunnerOptions::default()).await {
        Ok(_) => panic!("a wrong password must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("canary-wrong-pw"), "{err}");
    assert!(err.contains("redacted"), "{err}");
}
