//! Create and fetch events through the API, and the refusals of bad input.

use serde_json::json;

use crate::support::{self, QUICK_DRAIN, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_event_can_be_fetched_back() {
    let pg = support::start_postgres().await;
    let url = support::migrated_database(&pg, "events").await;
    let server = TestServer::start(&url, &[], QUICK_DRAIN).await;

    let created = support::post_json(
        &server.url("/events"),
        &json!({
            "title": "Rust meetup",
            "description": "Talks and pizza",
            "starts_at": "2026-06-01T19:00:00+02:00",
            "location": { "lon": 13.405, "lat": 52.52 },
            "embedding": [0.5, 1.0, -2.0]
        }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let created = created.json();
    let id = created["id"].as_i64().expect("numeric id");
    assert_eq!(created["title"], "Rust meetup");
    // Stored as timestamptz: comes back normalised to UTC.
    assert_eq!(created["starts_at"], "2026-06-01T17:00:00Z");
    assert_eq!(created["embedding"], json!([0.5, 1.0, -2.0]));

    let fetched = support::get(&server.url(&format!("/events/{id}"))).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert!(fetched.content_type.starts_with("application/json"));
    let fetched = fetched.json();
    assert_eq!(fetched, created);
    assert!((fetched["location"]["lon"].as_f64().unwrap_or(0.0) - 13.405).abs() < 1e-9);
    assert!((fetched["location"]["lat"].as_f64().unwrap_or(0.0) - 52.52).abs() < 1e-9);

    // Without the optional fields.
    let plain = support::post_json(
        &server.url("/events"),
        &json!({
            "title": "Picnic",
            "starts_at": "2026-07-01T12:00:00Z",
            "location": { "lon": 0.0, "lat": 0.0 }
        }),
    )
    .await;
    assert_eq!(plain.status, 201, "{}", plain.body);
    let plain = plain.json();
    assert_eq!(plain["embedding"], serde_json::Value::Null);
    assert_eq!(plain["description"], "");
    assert_ne!(plain["id"], created["id"]);

    let missing = support::get(&server.url("/events/999999")).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(missing.json()["error"].is_string());
    assert_eq!(support::get(&server.url("/events/abc")).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_refused_and_nothing_is_stored() {
    let pg = support::start_postgres().await;
    let url = support::migrated_database(&pg, "events").await;
    let server = TestServer::start(&url, &[], QUICK_DRAIN).await;

    let valid = json!({
        "title": "Ok",
        "starts_at": "2026-06-01T19:00:00Z",
        "location": { "lon": 1.0, "lat": 2.0 }
    });
    let mut cases = Vec::new();
    for (field, value) in [
        ("title", json!("")),
        ("starts_at", json!("next tuesday")),
        ("location", json!({ "lon": 181.0, "lat": 0.0 })),
        ("location", json!({ "lon": 0.0, "lat": -91.0 })),
        ("embedding", json!([1.0, 2.0])),
        ("unknown_field", json!(1)),
    ] {
        let mut body = valid.clone();
        body[field] = value;
        cases.push(body);
    }
    cases.push(json!({ "title": "no location", "starts_at": "2026-06-01T19:00:00Z" }));
    for body in &cases {
        let reply = support::post_json(&server.url("/events"), body).await;
        assert_eq!(
            reply.status, 400,
            "{body} → {} {}",
            reply.status, reply.body
        );
        assert!(reply.json()["error"].is_string());
    }

    let db = support::sql_client(&url).await;
    let count: i64 = db
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 0);
    assert_eq!(server.state.metrics.events_failed.get(), cases.len() as u64);
    assert_eq!(server.state.metrics.events_processed.get(), 0);
}
