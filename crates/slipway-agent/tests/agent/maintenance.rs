//! Maintenance mode against the real agent: the page (HTML for browsers,
//! JSON for the rest) with `Retry-After` while the upstream sees nothing;
//! a switch under maintenance keeps it; it survives `kill -9` and an agent
//! upgrade (the ledger); `hold` holds then answers, or releases on lift;
//! the metrics count it and the analysis never blames the release for it.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use serde_json::{Value, json};

use crate::util::*;

struct Answer {
    status: u16,
    header: hyper::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.header
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn get_accepting(client: &HttpClient, url: &str, accept: Option<&str>) -> Answer {
    let mut req = Request::get(url);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("answer");
    let status = resp.status().as_u16();
    let header = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        header,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn metrics(agent: &Agent) -> String {
    let url = format!("http://{}/metrics", agent.metrics);
    get(&client(), &url, None).await.expect("metrics").2
}

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_answers_for_the_app_keeps_through_switch_restart_and_upgrade_until_lifted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let mut agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(
        deploy(&agent, "web", a.addr, "v1", &["--slot", "blue"]).0,
        0
    );
    let c = client();
    assert_eq!(get(&c, &agent.url("/"), None).await.expect("get").2, "a");
    let hits_before = a.hits.load(Ordering::SeqCst);

    let (code, on) = agent.ctl(&[
        "maintenance",
        "on",
        "web",
        "--retry-after-secs",
        "120",
        "--message",
        "Database upgrade <until 10:00>",
        "--by",
        "alice@laptop",
    ]);
    assert_eq!(code, 0, "{on}");
    assert_eq!(on["result"]["maintenance"]["by"], "alice@laptop");
    assert!(on["result"]["before"].is_null(), "{on}");

    let page = get_accepting(&c, &agent.url("/events?x=1"), Some(BROWSER)).await;
    assert_eq!(page.status, 503);
    assert_eq!(page.header("retry-after"), "120");
    assert_eq!(page.header("cache-control"), "no-store");
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(
        page.body.contains("Database upgrade &lt;until 10:00&gt;"),
        "{}",
        page.body
    );
    let api = get_accepting(&c, &agent.url("/api/v1/events"), Some("application/json")).await;
    assert_eq!((api.status, api.header("retry-after")), (503, "120"));
    assert_eq!(api.header("content-type"), "application/json");
    let json: Value = serde_json::from_str(&api.body).expect("json body");
    assert_eq!(json["error"], "maintenance");
    assert_eq!(json["message"], "Database upgrade <until 10:00>");
    assert_eq!(json["retry_after_secs"], 120);
    let bare = get_accepting(&c, &agent.url("/"), None).await;
    assert_eq!(bare.status, 503);
    assert_eq!(
        a.hits.load(Ordering::SeqCst),
        hits_before,
        "upstream saw nothing"
    );

    // The ledger and the routes say so, with who and since when.
    let (_, state) = agent.ctl(&["state", "web"]);
    let m = &state["result"]["state"]["route"]["maintenance"];
    assert_eq!(m["by"], "alice@laptop", "{state}");
    assert_eq!(m["mode"], "page");
    let since = m["since"].as_str().expect("since").to_owned();
    let (_, routes) = agent.ctl(&["routes"]);
    assert_eq!(routes["result"]["routes"][0]["maintenance"]["since"], since);

    // Counted as maintenance, not as the app's 5xx.
    let text = metrics(&agent).await;
    assert!(
        text.contains("slipway_maintenance_responses_total{app=\"web\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("slipway_maintenance{app=\"web\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("status=\"5xx\""),
        "maintenance counted as 5xx: {text}"
    );

    // The switch gate still health-checks the slot; the switch keeps maintenance.
    let (code, switched) = deploy(&agent, "web", b.addr, "v2", &["--slot", "green"]);
    assert_eq!(code, 0, "{switched}");
    assert_eq!(get_accepting(&c, &agent.url("/"), None).await.status, 503);

    // kill -9, restart: still on, since unchanged.
    let (listen, metrics_addr) = (agent.listen, agent.metrics);
    agent.kill();
    let agent = Agent::start_at(dir.path(), listen, metrics_addr, Vec::new()).await;
    let after = get_accepting(&client(), &agent.url("/"), Some(BROWSER)).await;
    assert_eq!((after.status, after.header("retry-after")), (503, "120"));
    let (_, state) = agent.ctl(&["state", "web"]);
    assert_eq!(
        state["result"]["state"]["route"]["maintenance"]["since"],
        since
    );

    // An upgrade hands it on: the successor answers the page too.
    let mut successor = take_over(&agent, dir.path(), "next", &[]).await;
    let (_, routes) = successor.ctl(&["routes"]);
    assert_eq!(
        routes["result"]["routes"][0]["maintenance"]["by"],
        "alice@laptop"
    );
    let status = Command::new("kill")
        .args(["-TERM", &agent.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    eventually("the successor alone", Duration::from_secs(15), || async {
        let (_, v) = successor.ctl(&["version"]);
        (v["result"]["role"] == "serving").then_some(())
    })
    .await;
    assert_eq!(
        get_accepting(&client(), &successor.url("/"), None)
            .await
            .status,
        503
    );

    // Lifted: the new release answers; lifting again says it was off.
    let (code, off) = successor.ctl(&["maintenance", "off", "web", "--by", "alice@laptop"]);
    assert_eq!(code, 0, "{off}");
    assert_eq!(off["result"]["before"]["since"], since);
    assert!(off["result"]["maintenance"].is_null(), "{off}");
    let served = get(&client(), &successor.url("/"), None)
        .await
        .expect("get");
    assert_eq!(
        (served.0, served.1.as_str(), served.2.as_str()),
        (200, "v2", "b")
    );
    let (code, again) = successor.ctl(&["maintenance", "off", "web"]);
    assert_eq!(code, 0, "{again}");
    assert!(again["result"]["before"].is_null(), "{again}");
    let (_, state) = successor.ctl(&["state", "web"]);
    assert!(state["result"]["state"]["route"]["maintenance"].is_null());
    assert!(
        metrics(&successor)
            .await
            .contains("slipway_maintenance{app=\"web\"} 0")
    );
    successor.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_mode_holds_to_its_bound_then_answers_and_lifting_releases_held_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(deploy(&agent, "web", a.addr, "v1", &[]).0, 0);

    // Unknown app, bad values: refused with the reason.
    let (code, missing) = agent.ctl(&["maintenance", "on", "api"]);
    assert_eq!(code, 3, "{missing}");
    let (code, bad) = agent.ctl(&["maintenance", "on", "web", "--retry-after-secs", "0"]);
    assert_eq!(code, 2, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("retry_after_secs 0"),
        "{bad}"
    );

    let (code, on) = agent.ctl(&[
        "maintenance",
        "on",
        "web",
        "--hold",
        "--hold-max-wait-ms",
        "400",
        "--retry-after-secs",
        "5",
    ]);
    assert_eq!(code, 0, "{on}");
    let c = client();
    let started = Instant::now();
    let held = get_accepting(&c, &agent.url("/"), None).await;
    let waited = started.elapsed();
    assert_eq!((held.status, held.header("retry-after")), (503, "5"));
    assert!(held.body.contains("\"maintenance\""), "{}", held.body);
    assert!(waited >= Duration::from_millis(350), "held only {waited:?}");

    // A long hold, lifted while a request waits: it reaches the app.
    let (code, on) = agent.ctl(&[
        "maintenance",
        "on",
        "web",
        "--hold",
        "--hold-max-wait-ms",
        "20000",
    ]);
    assert_eq!(code, 0, "{on}");
    assert_eq!(on["result"]["before"]["mode"], "hold", "{on}");
    let url = agent.url("/");
    let waiting = tokio::spawn(async move { get(&client(), &url, None).await });
    eventually("a held request", Duration::from_secs(5), || async {
        let (_, routes) = agent.ctl(&["routes"]);
        (routes["result"]["routes"][0]["held"] == 1).then_some(())
    })
    .await;
    let (code, off) = agent.ctl(&["maintenance", "off", "web"]);
    assert_eq!(code, 0, "{off}");
    let released = waiting.await.expect("task").expect("get");
    assert_eq!((released.0, released.2.as_str()), (200, "a"));
    let (_, routes) = agent.ctl(&["routes"]);
    assert_eq!(routes["result"]["routes"][0]["paused"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analysis_does_not_count_maintenance_answers_against_the_release() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(deploy(&agent, "web", a.addr, "r1", &[]).0, 0);
    assert_eq!(agent.ctl(&["maintenance", "on", "web"]).0, 0);
    let health = json!({"path": "/health", "passes": 1, "interval_ms": 50,
        "timeout_ms": 1000, "deadline_ms": 3000});
    let analysis = json!({"deployment_id": "dep_b", "environment": "production",
        "window_ms": 3000, "interval_ms": 1000, "on_failure": "rollback",
        "health_failures": 3, "health_interval_ms": 200, "max_error_ratio": 0.05,
        "min_requests": 1, "p95_factor": 2.0, "p95_floor_ms": 50.0});
    let request = json!({"verb": "deploy", "app": "web", "target": b.addr.to_string(),
        "release": "r2", "health": health, "analysis": analysis});
    let (code, out) = agent.ctl(&["raw", &request.to_string()]);
    assert_eq!(code, 0, "{out}");
    // Every request of the window gets the maintenance page.
    let load = Load::start(agent.url("/"), 2, 100_000, |status, _, _| status == 503);
    let report = eventually("the verdict", Duration::from_secs(20), || async {
        let (_, out) = agent.ctl(&["raw", r#"{"verb":"analysis_status","app":"web"}"#]);
        let r = out["result"]["report"].clone();
        (r["state"].is_string() && r["state"] != "running").then_some(r)
    })
    .await;
    let (answered, errors) = load.finish().await;
    assert!(answered > 20, "only {answered} maintenance answers");
    assert_eq!(errors, 0);
    // No request reached the release: too few to judge, never a failure.
    assert_eq!(report["state"], "inconclusive", "{report}");
    assert!(report["action"].is_null(), "{report}");
    let (_, routes) = agent.ctl(&["routes"]);
    assert_eq!(routes["result"]["routes"][0]["active"]["release"], "r2");
    assert_eq!(b.hits.load(Ordering::SeqCst), 0);
}
