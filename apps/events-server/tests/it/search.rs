//! Search by distance (PostGIS), by text (pg_trgm) and by embedding
//! (pgvector): each returns the right events and leaves out the wrong ones.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::support::{self, QUICK_DRAIN, TestServer};

/// (title, lon, lat, embedding)
const FIXTURES: &[(&str, f64, f64, Option<[f32; 3]>)] = &[
    // Berlin, Alexanderplatz and 1 km east of it.
    (
        "Berlin jazz brunch",
        13.4132,
        52.5219,
        Some([0.9, 0.1, 0.0]),
    ),
    ("Rust meetup", 13.4280, 52.5219, Some([0.0, 1.0, 0.0])),
    // Potsdam: about 27 km from Alexanderplatz.
    (
        "Potsdam palace tour",
        13.0383,
        52.4045,
        Some([0.0, 0.0, 1.0]),
    ),
    // Hamburg: about 255 km away.
    (
        "Jazz night at the harbour",
        9.9937,
        53.5511,
        Some([1.0, 0.0, 0.0]),
    ),
    ("Harbour cleanup", 9.9700, 53.5450, None),
];

async fn seed(server: &TestServer) -> HashMap<&'static str, i64> {
    let mut ids = HashMap::new();
    for (title, lon, lat, embedding) in FIXTURES {
        let reply = support::post_json(
            &server.url("/events"),
            &json!({
                "title": title,
                "starts_at": "2026-06-01T19:00:00Z",
                "location": { "lon": lon, "lat": lat },
                "embedding": embedding,
            }),
        )
        .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        ids.insert(*title, reply.json()["id"].as_i64().expect("id"));
    }
    ids
}

fn titles(reply: &Value) -> Vec<String> {
    reply["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array in {reply}"))
        .iter()
        .map(|e| e["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn search(server: &TestServer, query: &str) -> Value {
    let reply = support::get(&server.url(&format!("/events?{query}"))).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.body);
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_text_and_similar_return_the_right_events() {
    let pg = support::start_postgres().await;
    let url = support::migrated_database(&pg, "events").await;
    let server = TestServer::start(&url, &[], QUICK_DRAIN).await;
    let ids = seed(&server).await;

    // Near Alexanderplatz: 5 km holds both Berlin events, nearest first.
    let near = search(&server, "near=13.4132,52.5219&km=5").await;
    assert_eq!(titles(&near), ["Berlin jazz brunch", "Rust meetup"]);
    let metres = near["events"][1]["distance_m"].as_f64().expect("distance");
    assert!((900.0..1100.0).contains(&metres), "{metres}");
    // 50 km adds Potsdam, not Hamburg.
    let near = search(&server, "near=13.4132,52.5219&km=50").await;
    assert_eq!(
        titles(&near),
        ["Berlin jazz brunch", "Rust meetup", "Potsdam palace tour"]
    );
    // Half a kilometre: only the event at the point itself.
    let near = search(&server, "near=13.4132,52.5219&km=0.5").await;
    assert_eq!(titles(&near), ["Berlin jazz brunch"]);

    // Text: word similarity, case-insensitive, tolerant of a typo.
    for q in ["jazz", "JAZZ", "jaz"] {
        let mut found = titles(&search(&server, &format!("q={q}")).await);
        found.sort();
        assert_eq!(
            found,
            ["Berlin jazz brunch", "Jazz night at the harbour"],
            "q={q}"
        );
    }
    assert_eq!(titles(&search(&server, "q=harbor").await).len(), 2);
    assert!(titles(&search(&server, "q=opera").await).is_empty());
    // Both filters: jazz near Berlin.
    let both = search(&server, "q=jazz&near=13.4132,52.5219&km=50").await;
    assert_eq!(titles(&both), ["Berlin jazz brunch"]);

    // Bad parameters are refused.
    for query in ["near=13.4", "near=13.4,52.5&km=-1", "km=5", "limit=0"] {
        let reply = support::get(&server.url(&format!("/events?{query}"))).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
    }

    // Similar to the Hamburg jazz night ([1,0,0]): the Berlin jazz brunch
    // ([0.9,0.1,0]) first; never itself, never the event without embedding.
    let id = ids["Jazz night at the harbour"];
    let similar = support::get(&server.url(&format!("/events/{id}/similar"))).await;
    assert_eq!(similar.status, 200, "{}", similar.body);
    let similar = similar.json();
    let found = titles(&similar);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[0], "Berlin jazz brunch");
    assert!(
        !found
            .iter()
            .any(|t| t == "Jazz night at the harbour" || t == "Harbour cleanup")
    );
    let first = similar["events"][0]["distance"].as_f64().expect("distance");
    assert!((first - 0.02f64.sqrt()).abs() < 1e-3, "{first}");
    let limited = support::get(&server.url(&format!("/events/{id}/similar?limit=1"))).await;
    assert_eq!(titles(&limited.json()), ["Berlin jazz brunch"]);

    let no_embedding = ids["Harbour cleanup"];
    let reply = support::get(&server.url(&format!("/events/{no_embedding}/similar"))).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    let reply = support::get(&server.url("/events/999999/similar")).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
}
