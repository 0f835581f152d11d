//! Snapshots on a real PostgreSQL 17 with PostGIS and pgvector: create
//! (inside the database container and in a one-off container), verify the
//! sidecar against the file, drop data, restore, data back; failures leave
//! no file and no password in the message.

use std::time::Duration;

use slipway_core::migrate::{MigrationSet, Runner, RunnerOptions};
use slipway_core::secret::Secret;
use slipway_core::snapshot::{
    self, CreateOptions, DumpSite, Owner, RestoreOptions, Sidecar, SnapshotError,
};
use time::macros::datetime;

use crate::support::{TestDb, migrations, scalar_i64, test_db};

/// Extensions, an events table with geography and vector columns, and a
/// trigram index: the shape of the Togather database, small.
async fn seed(db: &TestDb) -> Runner {
    let dir = migrations(&[
        (
            "0001_extensions.up.sql",
            "CREATE EXTENSION IF NOT EXISTS postgis; CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS pg_trgm;",
        ),
        (
            "0002_events.up.sql",
            "CREATE TABLE events (id bigserial PRIMARY KEY, title text NOT NULL, location geography(Point, 4326), embedding vector(3));
             CREATE INDEX events_title_trgm ON events USING gin (title gin_trgm_ops);",
        ),
    ]);
    let set = MigrationSet::load(dir.path()).expect("load");
    let mut runner = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect");
    runner.up(&set, None).await.expect("up");
    let (client, _t) = db.client().await;
    client
        .batch_execute(
            "INSERT INTO events (title, location, embedding)
             SELECT 'event ' || g, ST_SetSRID(ST_MakePoint(g % 180, g % 90), 4326)::geography, ARRAY[g, g * 2, g * 3]::real[]::vector
               FROM generate_series(1, 1000) g;",
        )
        .await
        .expect("seed rows");
    runner
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_drop_a_table_restore_and_the_data_is_back() {
    let db = test_db("snap_roundtrip");
    let mut runner = seed(&db).await;
    let root = tempfile::tempdir().expect("tempdir");
    let owner = Owner::new("events", "staging").expect("owner");
    let (dir, _) = snapshot::prepare(root.path(), &owner).expect("prepare");
    let site = DumpSite::container(db.pg.container_name());
    let mut opts = CreateOptions::new(&dir, "abc1234", "pre-deploy");
    opts.owner = Some(owner.clone());
    opts.release = Some("v1.4.0".into());
    opts.retention = Duration::from_secs(3600);

    let snap = snapshot::create(&site, &db.url, &opts)
        .await
        .expect("create");
    assert!(snap.path.is_file());
    assert!(
        snap.name
            .file_name()
            .starts_with(&format!("events_staging_{}_", db.name))
            && snap.name.file_name().ends_with("_abc1234.dump"),
        "{}",
        snap.name.file_name()
    );
    assert!(snap.toc_entries > 0);
    let sidecar = Sidecar::read(&snap.sidecar_path).expect("sidecar");
    assert_eq!(sidecar, snap.sidecar);
    assert_eq!(sidecar.schema_version, Some(2));
    assert_eq!(sidecar.release.as_deref(), Some("v1.4.0"));
    assert_eq!(sidecar.owner(), Some(owner.clone()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&snap.path, &snap.sidecar_path] {
            let mode = fs_err::metadata(f).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is the whole database", f.display());
        }
    }
    assert_eq!(
        sidecar.expires_at - sidecar.created_at,
        time::Duration::hours(1)
    );
    let bytes = fs_err::read(&snap.path).expect("read dump");
    assert_eq!(sidecar.size_bytes, bytes.len() as u64);
    assert_eq!(
        sidecar.sha256,
        slipway_core::migrate::source::checksum(&bytes)
    );
    assert!(bytes.starts_with(b"PGDMP"), "custom-format archive");
    let listed = snapshot::list(root.path(), &owner).expect("list").own;
    assert_eq!(listed.len(), 1);
    assert!(
        snapshot::list(
            root.path(),
            &Owner::new("events", "production").expect("owner")
        )
        .expect("list")
        .own
        .is_empty(),
        "another environment sees none of staging's snapshots"
    );
    assert_eq!(
        listed[0].sidecar.as_ref().map(|s| s.sha256.clone()),
        Some(sidecar.sha256.clone())
    );

    // Disaster: the table is dropped and the version moved.
    let (client, _t) = db.client().await;
    client
        .batch_execute("DROP TABLE events;")
        .await
        .expect("drop");
    runner.force(Some(1)).await.expect("force");

    let report = snapshot::restore(&site, &db.url, &snap.path, &RestoreOptions::default())
        .await
        .expect("restore");
    assert!(report.checksum_verified);
    assert_eq!(
        report.schema_version,
        Some(2),
        "the version that is now in the database"
    );
    assert_eq!(
        scalar_i64(&client, "SELECT count(*) FROM events").await,
        1000
    );
    let row = client
        .query_one(
            "SELECT title, ST_AsText(location::geometry), embedding::text FROM events WHERE id = 7",
            &[],
        )
        .await
        .expect("row 7");
    assert_eq!(row.get::<_, String>(0), "event 7");
    assert_eq!(row.get::<_, String>(1), "POINT(7 7)");
    assert_eq!(row.get::<_, String>(2), "[7,14,21]");
    // The trigram index came back too.
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'events_title_trgm'"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_off_container_dumps_a_database_it_reaches_over_the_network() {
    let db = test_db("snap_oneoff");
    seed(&db).await;
    let root = tempfile::tempdir().expect("tempdir");
    let owner = Owner::new("events", "production").expect("owner");
    let dir = owner.dir(root.path());
    // The database as an "external" one: reached through its published port
    // from a one-off container of the database image on the host network.
    let site = DumpSite::OneOff {
        image: slipway_testkit::PG_IMAGE.to_string(),
        network: Some("host".into()),
    };
    let mut opts = CreateOptions::new(&dir, "def5678", "manual");
    opts.owner = Some(owner.clone());
    opts.now = Some(datetime!(2025-02-03 04:05:06 UTC));
    let snap = snapshot::create(&site, &db.url, &opts)
        .await
        .expect("create");
    assert_eq!(
        snap.name.file_name(),
        format!(
            "events_production_{}_20250203T040506Z_def5678.dump",
            db.name
        )
    );
    assert_eq!(snap.sidecar.schema_version, Some(2));
    assert!(
        snap.sidecar
            .pg_dump_version
            .as_deref()
            .is_some_and(|v| v.contains(" 17.")),
        "{:?}",
        snap.sidecar.pg_dump_version
    );

    // Same second, same commit: refused rather than overwritten.
    let err = snapshot::create(&site, &db.url, &opts)
        .await
        .expect_err("exists");
    assert!(matches!(err, SnapshotError::Exists { .. }), "{err}");

    // Retention with an injected clock: a second snapshot a day later, and
    // pruning eight days on removes the first but never the newest.
    opts.now = Some(datetime!(2025-02-04 04:05:06 UTC));
    let newer = snapshot::create(&site, &db.url, &opts)
        .await
        .expect("second create");
    let report = snapshot::prune(
        root.path(),
        &owner,
        datetime!(2025-02-11 05:00:00 UTC),
        snapshot::DEFAULT_RETENTION,
    )
    .expect("prune");
    assert_eq!(report.deleted, vec![snap.name.file_name()]);
    assert_eq!(report.kept, vec![newer.name.file_name()]);
    assert!(!snap.sidecar_path.exists());
    let report = snapshot::prune(
        root.path(),
        &owner,
        datetime!(2030-01-01 00:00:00 UTC),
        snapshot::DEFAULT_RETENTION,
    )
    .expect("prune again");
    assert!(
        report.deleted.is_empty(),
        "the newest snapshot is never pruned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dump_leaves_no_file_and_no_password_in_the_message() {
    let db = test_db("snap_fail");
    let dir = tempfile::tempdir().expect("tempdir");
    let site = DumpSite::container(db.pg.container_name());
    let wrong = Secret::new(db.url.expose().replace(db.password(), "canary-wrong-pw"));
    let err = snapshot::create(
        &site,
        &wrong,
        &CreateOptions::new(dir.path(), "abc", "test"),
    )
    .await
    .expect_err("wrong password");
    let msg = err.to_string();
    assert!(matches!(err, SnapshotError::ToolFailed { .. }), "{msg}");
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(!msg.contains("canary-wrong-pw"), "{msg}");

    let missing = Secret::new(db.pg.url_for_db("no_such_database"));
    let err = snapshot::create(
        &site,
        &missing,
        &CreateOptions::new(dir.path(), "abc", "test"),
    )
    .await
    .expect_err("missing database");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let left: Vec<_> = fs_err::read_dir(dir.path()).expect("list").collect();
    assert!(left.is_empty(), "no partial or sidecar left behind");

    let err = snapshot::create(
        &DumpSite::container("slipway-no-such-container"),
        &db.url,
        &CreateOptions::new(dir.path(), "abc", "test"),
    )
    .await
    .expect_err("no container");
    assert!(err.to_string().contains("docker ps"), "{err}");
}
