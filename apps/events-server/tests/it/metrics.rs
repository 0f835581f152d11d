//! `/metrics` speaks Prometheus text and labels requests by route template.

use serde_json::json;

use crate::support::{self, QUICK_DRAIN, TestServer};

/// The value of the sample whose line starts with `series` (name + labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_by_route_template() {
    let pg = support::start_postgres().await;
    let url = support::migrated_database(&pg, "events").await;
    let server = TestServer::start(&url, &[], QUICK_DRAIN).await;

    let created = support::post_json(
        &server.url("/events"),
        &json!({
            "title": "Counted",
            "starts_at": "2026-06-01T19:00:00Z",
            "location": { "lon": 1.0, "lat": 2.0 }
        }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_i64().expect("id");
    for _ in 0..2 {
        assert_eq!(
            support::get(&server.url(&format!("/events/{id}")))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        support::get(&server.url("/events/987654")).await.status,
        404
    );
    assert_eq!(
        support::get(&server.url("/no/such/route")).await.status,
        404
    );

    let reply = support::get(&server.url("/metrics")).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type.starts_with("text/plain"),
        "{}",
        reply.content_type
    );
    let text = reply.body;

    let by_template = r#"http_requests_total{method="GET",path="/events/{id}",status="#;
    assert_eq!(
        sample(&text, &format!(r#"{by_template}"200"}}"#)),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!(r#"{by_template}"404"}}"#)),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="POST",path="/events",status="201"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",path="unmatched",status="404"}"#
        ),
        Some(1.0)
    );
    // Raw paths never become labels.
    assert!(!text.contains("/events/987654") && !text.contains(&format!("/events/{id}\"")));
    assert!(!text.contains("/no/such/route"));

    assert!(
        sample(
            &text,
            r#"http_request_duration_seconds_count{method="GET",path="/events/{id}"}"#
        ) == Some(3.0),
        "{text}"
    );
    // Only the /metrics request itself is in flight while it renders.
    assert_eq!(sample(&text, "http_requests_in_flight"), Some(1.0));
    assert_eq!(sample(&text, "app_events_processed_total"), Some(1.0));
    assert_eq!(sample(&text, "app_events_failed_total"), Some(0.0));
    assert_eq!(sample(&text, "db_pool_max_connections"), Some(10.0));
    assert!(sample(&text, r#"db_pool_connections{state="idle"}"#).is_some_and(|n| n >= 1.0));
    assert!(sample(&text, "app_uptime_seconds").is_some());
    let info = format!(
        r#"app_version_info{{build_date="{}",commit="{}",version="{}"}}"#,
        events_server::version::BUILD_DATE,
        events_server::version::GIT_COMMIT,
        events_server::version::VERSION
    );
    assert_eq!(sample(&text, &info), Some(1.0), "{text}");
}
