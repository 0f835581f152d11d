//! The migrations create everything the service needs, and the migrations
//! health check judges the schema version as documented: equal passes,
//! behind fails (503), ahead warns (degraded, 200).

use std::time::Duration;

use events_server::version;

use crate::support::{self, QUICK_DRAIN, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_create_extensions_tables_and_indexes() {
    let pg = support::start_postgres().await;
    pg.create_database("events");
    let url = pg.url_for_db("events");

    let report = support::migrate(&url, None).await;
    assert_eq!(report.to, Some(version::latest_migration()));
    assert_eq!(report.applied.len() as u64, version::latest_migration());

    let db = support::sql_client(&url).await;
    let extensions: Vec<String> = db
        .query("SELECT extname::text FROM pg_extension ORDER BY 1", &[])
        .await
        .expect("list extensions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for ext in ["pg_trgm", "postgis", "vector"] {
        assert!(
            extensions.iter().any(|e| e == ext),
            "{ext} missing: {extensions:?}"
        );
    }

    let columns: Vec<(String, String)> = db
        .query(
            "SELECT column_name::text, udt_name::text FROM information_schema.columns
             WHERE table_name = 'events' ORDER BY ordinal_position",
            &[],
        )
        .await
        .expect("list columns")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (name, udt) in [
        ("id", "int8"),
        ("title", "text"),
        ("starts_at", "timestamptz"),
        ("location", "geography"),
        ("embedding", "vector"),
    ] {
        assert!(
            columns.iter().any(|(n, u)| n == name && u == udt),
            "column {name} {udt} missing: {columns:?}"
        );
    }

    // indisvalid: a CONCURRENTLY build that failed half-way leaves an invalid index.
    let indexes: Vec<(String, bool)> = db
        .query(
            "SELECT c.relname::text, i.indisvalid FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_class t ON t.oid = i.indrelid
             WHERE t.relname = 'events'",
            &[],
        )
        .await
        .expect("list indexes")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for name in [
        "events_location_gist_idx",
        "events_title_trgm_idx",
        "events_embedding_hnsw_idx",
    ] {
        assert!(
            indexes.iter().any(|(n, valid)| n == name && *valid),
            "valid index {name} missing: {indexes:?}"
        );
    }

    let row = db
        .query_one("SELECT version, dirty FROM schema_migrations", &[])
        .await
        .expect("schema_migrations");
    assert_eq!(row.get::<_, i64>(0) as u64, version::latest_migration());
    assert!(!row.get::<_, bool>(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_judges_the_schema_version_against_the_binary() {
    let pg = support::start_postgres().await;
    let deadline = Duration::from_secs(10);

    // Equal: healthy.
    let current = support::migrated_database(&pg, "current").await;
    let server = TestServer::start(&current, &[("SLOT", "green")], QUICK_DRAIN).await;
    let reply = support::poll_status(&server.url("/health"), 200, deadline).await;
    let health = reply.json();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["slot"], "green");
    assert_eq!(health["version"], version::VERSION);
    assert_eq!(health["git_commit"], version::GIT_COMMIT);
    assert_eq!(health["checks"]["database"]["status"], "pass");
    assert!(
        health["checks"]["database"]["latency_ms"].is_u64(),
        "{health}"
    );
    assert_eq!(health["checks"]["migrations"]["status"], "pass");
    assert!(
        health["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let ready = support::get(&server.url("/readyz")).await;
    assert_eq!(ready.status, 200, "{}", ready.body);

    // Same database, fault injection: healthy until the knob's time is up
    // (an hour: not yet), unhealthy once it is (0 s: already).
    let later = TestServer::start(
        &current,
        &[("EVENTS_SERVER_FAIL_HEALTH_AFTER", "3600")],
        QUICK_DRAIN,
    )
    .await;
    assert_eq!(support::get(&later.url("/health")).await.status, 200);
    let broken = TestServer::start(
        &current,
        &[("EVENTS_SERVER_FAIL_HEALTH_AFTER", "0")],
        QUICK_DRAIN,
    )
    .await;
    let health = support::get(&broken.url("/health")).await;
    assert_eq!(health.status, 503, "{}", health.body);
    let health = health.json();
    assert_eq!(
        health["checks"]["fault_injection"]["status"], "fail",
        "{health}"
    );
    assert_eq!(health["checks"]["database"]["status"], "pass", "{health}");

    // Behind (only the first two migrations applied): unhealthy, 503.
    pg.create_database("behind");
    let behind = pg.url_for_db("behind");
    support::migrate(&behind, Some(2)).await;
    let server = TestServer::start(&behind, &[], QUICK_DRAIN).await;
    let health = support::get(&server.url("/health")).await;
    assert_eq!(health.status, 503, "{}", health.body);
    let health = health.json();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["checks"]["database"]["status"], "pass");
    assert_eq!(health["checks"]["migrations"]["status"], "fail", "{health}");
    assert_eq!(support::get(&server.url("/readyz")).await.status, 503);

    // Ahead (a newer release migrated already): degraded, still 200.
    let ahead = support::migrated_database(&pg, "ahead").await;
    let db = support::sql_client(&ahead).await;
    db.execute("UPDATE schema_migrations SET version = version + 1", &[])
        .await
        .expect("bump version");
    let server = TestServer::start(&ahead, &[], QUICK_DRAIN).await;
    let health = support::get(&server.url("/health")).await;
    assert_eq!(health.status, 200, "{}", health.body);
    let health = health.json();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["checks"]["migrations"]["status"], "warn", "{health}");

    // Never migrated at all: unhealthy.
    pg.create_database("empty");
    let server = TestServer::start(&pg.url_for_db("empty"), &[], QUICK_DRAIN).await;
    let health = support::get(&server.url("/health")).await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["checks"]["migrations"]["status"], "fail");
}
