//! `/health` follows the database: unhealthy within seconds of it stopping,
//! healthy again when it returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{self, QUICK_DRAIN, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_database_down_and_back_up() {
    let pg = Arc::new(support::start_postgres().await);
    let url = support::migrated_database(&pg, "events").await;
    let server = TestServer::start(&url, &[], QUICK_DRAIN).await;
    let health = server.url("/health");

    let up = support::poll_status(&health, 200, Duration::from_secs(10)).await;
    assert_eq!(up.json()["status"], "healthy", "{}", up.body);

    let stopping = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .expect("stop panicked");
    let stopped_at = Instant::now();
    let down = support::poll_status(&health, 503, Duration::from_secs(10)).await;
    let down_after = stopped_at.elapsed();
    let body = down.json();
    assert_eq!(body["status"], "unhealthy", "{}", down.body);
    assert_eq!(
        body["checks"]["database"]["status"], "fail",
        "{}",
        down.body
    );
    // The URL's password never appears in the report.
    assert!(
        !down.body.contains(pg.password()),
        "password leaked into /health"
    );
    // Liveness does not depend on the database.
    assert_eq!(support::get(&server.url("/healthz")).await.status, 200);
    assert_eq!(support::get(&server.url("/readyz")).await.status, 503);
    eprintln!("unhealthy {down_after:?} after the database stopped");

    let starting = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || starting.start_again())
        .await
        .expect("start_again panicked");
    let back = support::poll_status(&health, 200, Duration::from_secs(15)).await;
    assert_eq!(back.json()["status"], "healthy", "{}", back.body);
}
