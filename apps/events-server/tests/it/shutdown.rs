//! Shutdown: `/health` turns 503 `shutting_down` at once, new connections
//! are refused once the drain delay is over, an in-flight request still gets
//! its answer, and the whole drain is bounded even if a request never ends.
//!
//! A request is held in flight by a real lock: the test locks the `events`
//! table, so the server's `SELECT` waits in PostgreSQL until it commits.

use std::time::Duration;

use events_server::Drain;
use serde_json::json;

use crate::support::{self, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_shutting_down_then_stops_within_its_bound() {
    // No database needed: shutting_down outranks every check.
    let drain = Drain {
        delay: Duration::from_secs(3),
        timeout: Duration::from_secs(2),
    };
    let mut server = TestServer::start("postgres://app:pw@127.0.0.1:1/events", &[], drain).await;
    let health = server.url("/health");
    assert_eq!(support::get(&health).await.json()["status"], "unhealthy");

    server.signal_shutdown();
    let draining = support::poll_until(
        Duration::from_secs(3),
        "health says shutting_down",
        || async {
            let reply = support::try_request("GET", &health, None).await?;
            let status = reply.json()["status"].clone();
            if status == "shutting_down" {
                Ok(reply)
            } else {
                Err(format!("{} {status}", reply.status))
            }
        },
    )
    .await;
    assert_eq!(draining.status, 503);
    assert_eq!(support::get(&server.url("/readyz")).await.status, 503);
    assert_eq!(support::get(&server.url("/healthz")).await.status, 200);

    // Bounded: delay + timeout, plus slack for a loaded machine.
    server
        .finished_within(drain.delay + drain.timeout + Duration::from_secs(5))
        .await
        .expect("clean exit");
    assert!(
        support::try_request("GET", &health, None).await.is_err(),
        "still accepting"
    );
}

/// Blocks `GET /events/{id}` behind an exclusive table lock and returns once
/// PostgreSQL shows the server's query waiting for it.
async fn hold_request_in_flight<'db>(
    server: &TestServer,
    db: &'db mut tokio_postgres::Client,
) -> (
    tokio_postgres::Transaction<'db>,
    tokio::task::JoinHandle<Result<support::Reply, String>>,
) {
    let created = support::post_json(
        &server.url("/events"),
        &json!({
            "title": "In flight",
            "starts_at": "2026-06-01T19:00:00Z",
            "location": { "lon": 1.0, "lat": 2.0 }
        }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let url = server.url(&format!("/events/{}", created.json()["id"]));

    let lock = db.transaction().await.expect("begin");
    lock.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE", &[])
        .await
        .expect("lock");
    let request = tokio::spawn(async move { support::try_request("GET", &url, None).await });
    support::poll_until(
        Duration::from_secs(10),
        "the server's query waits for the lock",
        || async {
            let waiting: i64 = lock
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = 'events-server' AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            if waiting > 0 {
                Ok(())
            } else {
                Err("no waiting query yet".to_owned())
            }
        },
    )
    .await;
    (lock, request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_request_finishes_after_accepting_stops() {
    let pg = support::start_postgres().await;
    let url = support::migrated_database(&pg, "events").await;
    let drain = Drain {
        delay: Duration::ZERO,
        timeout: Duration::from_secs(30),
    };
    let mut server = TestServer::start(&url, &[], drain).await;
    let mut db = support::sql_client(&url).await;
    let (lock, request) = hold_request_in_flight(&server, &mut db).await;

    server.signal_shutdown();
    let healthz = server.url("/healthz");
    support::poll_until(
        Duration::from_secs(5),
        "new connections refused",
        || async {
            match support::try_request("GET", &healthz, None).await {
                Err(_) => Ok(()),
                Ok(reply) => Err(format!("still answered {}", reply.status)),
            }
        },
    )
    .await;
    assert!(!request.is_finished(), "the in-flight request was cut off");
    // Still draining: serve waits for the request rather than returning.
    assert!(
        server.is_running(),
        "serve returned with a request in flight"
    );

    lock.commit().await.expect("release the lock");
    let reply = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("in-flight request answered")
        .expect("request task")
        .expect("in-flight request got a response");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["title"], "In flight");
    server
        .finished_within(Duration::from_secs(10))
        .await
        .expect("clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_gives_up_on_a_stuck_request_at_its_timeout() {
    let pg = support::start_postgres().await;
    let url = support::migrated_database(&pg, "events").await;
    let drain = Drain {
        delay: Duration::ZERO,
        timeout: Duration::from_secs(1),
    };
    let mut server = TestServer::start(&url, &[], drain).await;
    let mut db = support::sql_client(&url).await;
    let (lock, request) = hold_request_in_flight(&server, &mut db).await;

    server.signal_shutdown();
    let started = std::time::Instant::now();
    server
        .finished_within(Duration::from_secs(10))
        .await
        .expect("exit after the timeout");
    let took = started.elapsed();
    assert!(
        took >= drain.timeout,
        "returned before the timeout: {took:?}"
    );
    assert!(!request.is_finished(), "the stuck request was not stuck");
    lock.rollback().await.expect("release the lock");
}
