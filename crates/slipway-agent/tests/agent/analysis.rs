//! The post-deploy analysis against the real agent: real upstreams whose
//! error rate and latency the test sets, continuous real load from the
//! test, verdicts read back through `analysis_status` and the ledger.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::util::*;

/// An upstream answering its name after `delay_ms`, with a 500 for every
/// `fail_every`-th request (0: never); `/health` answers `health_status`.
struct Scripted {
    addr: SocketAddr,
    health_status: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    async fn start(name: &'static str, delay_ms: u64, fail_every: u64) -> Scripted {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = Arc::new(AtomicU64::new(0));
        let health_status = Arc::new(AtomicU16::new(200));
        let health = Arc::clone(&health_status);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (served, health) = (Arc::clone(&served), Arc::clone(&health));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (served, health) = (Arc::clone(&served), Arc::clone(&health));
                        async move {
                            if req.uri().path() == "/health" {
                                let mut resp = Response::new(Full::new(Bytes::from("health")));
                                *resp.status_mut() =
                                    StatusCode::from_u16(health.load(Ordering::SeqCst))
                                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                                return Ok::<_, hyper::Error>(resp);
                            }
                            let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                            if delay_ms > 0 {
                                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                            }
                            let mut resp = Response::new(Full::new(Bytes::from(name)));
                            if fail_every > 0 && n.is_multiple_of(fail_every) {
                                *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                            }
                            Ok(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Scripted {
            addr,
            health_status,
            task,
        }
    }
}

fn raw(agent: &Agent, request: Value) -> (i32, Value) {
    agent.ctl(&["raw", &request.to_string()])
}

fn health() -> Value {
    json!({"path": "/health", "passes": 1, "interval_ms": 50, "timeout_ms": 1000, "deadline_ms": 3000})
}

/// `deploy` with an analysis; `overrides` replace the defaults below.
fn deploy_analysed(agent: &Agent, target: SocketAddr, release: &str, dep: &str, overrides: Value) {
    let mut spec = json!({
        "deployment_id": dep,
        "environment": "production",
        "window_ms": 20_000,
        "interval_ms": 2_000,
        "on_failure": "rollback",
        "health_failures": 3,
        "health_interval_ms": 500,
        "max_error_ratio": 0.05,
        "min_requests": 20,
        "p95_factor": 2.0,
        "p95_floor_ms": 50.0,
    });
    if let (Some(spec), Some(over)) = (spec.as_object_mut(), overrides.as_object()) {
        for (k, v) in over {
            spec.insert(k.clone(), v.clone());
        }
    }
    let (code, out) = raw(
        agent,
        json!({"verb": "deploy", "app": "web", "target": target.to_string(), "release": release,
               "health": health(), "analysis": spec}),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["result"]["release"], release, "{out}");
}

fn record(agent: &Agent, id: &str, version: &str, status: &str) {
    let (code, out) = raw(
        agent,
        json!({"verb": "history_record", "app": "web", "deployment": {
            "id": id, "version": version, "deployed_at": "2026-12-03T06:00:00Z",
            "deployed_by": "test", "status": status}}),
    );
    assert_eq!(code, 0, "{out}");
}

fn report(agent: &Agent) -> Value {
    let (code, out) = raw(agent, json!({"verb": "analysis_status", "app": "web"}));
    assert_eq!(code, 0, "{out}");
    out["result"]["report"].clone()
}

/// Wait for a final verdict (bounded), returning the report.
async fn verdict(agent: &Agent, within: Duration) -> Value {
    eventually("the analysis' verdict", within, || async {
        let r = report(agent);
        (r["state"].is_string() && r["state"] != "running").then_some(r)
    })
    .await
}

fn active_release(agent: &Agent) -> String {
    let (_, routes) = agent.ctl(&["routes"]);
    routes["result"]["routes"][0]["active"]["release"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn history_entry(agent: &Agent, id: &str) -> Value {
    let (_, state) = agent.ctl(&["state", "web"]);
    state["result"]["state"]["deployment_history"]
        .as_array()
        .and_then(|h| h.iter().find(|d| d["id"] == id).cloned())
        .unwrap_or(Value::Null)
}

fn ok_or_500(status: u16, _release: &str, _body: &str) -> bool {
    status == 200 || status == 500
}

fn ok(status: u16, _release: &str, _body: &str) -> bool {
    status == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rising_5xx_switches_back_within_30s_and_records_rolled_back() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(dir.path(), &[]).await;
    let good = Scripted::start("r1", 0, 0).await;
    let bad = Scripted::start("r2", 0, 2).await;
    assert_eq!(deploy(&agent, "web", good.addr, "r1", &[]).0, 0);
    record(&agent, "dep_a", "r1", "active");
    let load = Load::start(agent.url("/"), 4, 20_000, ok_or_500);
    load.served_more("baseline traffic", 200).await;

    record(&agent, "dep_b", "r2", "in_progress");
    deploy_analysed(&agent, bad.addr, "r2", "dep_b", json!({}));
    let r = verdict(&agent, Duration::from_secs(40)).await;
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["action"]["type"], "switched_back", "{r}");
    assert_eq!(r["action"]["to_release"], "r1", "{r}");
    let detection = r["action"]["detection_to_switch_ms"]
        .as_u64()
        .expect("detection time");
    eprintln!(
        "5xx: detection_to_switch_ms = {detection}, switched back {} ms after the switch",
        r["action"]["at_ms"]
    );
    assert!(detection < 30_000, "SC-008: {detection} ms");
    let reason = r["reason"].as_str().unwrap_or("");
    assert!(reason.contains("5xx ratio"), "{reason}");
    assert_eq!(active_release(&agent), "r1");
    // Traffic keeps flowing to the old release.
    load.served_more("traffic after the switch back", 100).await;

    // The CLI's end-of-deploy record cannot resurrect the deployment.
    record(&agent, "dep_b", "r2", "active");
    let b = history_entry(&agent, "dep_b");
    assert_eq!(b["status"], "rolled_back", "{b}");
    assert!(
        b["error"].as_str().unwrap_or("").contains("5xx ratio"),
        "{b}"
    );
    assert_eq!(b["health_status"], "unhealthy", "{b}");
    assert_eq!(b["analysis"]["state"], "failed", "{b}");
    let (_, state) = agent.ctl(&["state", "web"]);
    assert_eq!(
        state["result"]["state"]["current_deployment"]["id"], "dep_a",
        "{state}"
    );
    let (served, errors) = load.finish().await;
    assert_eq!(errors, 0, "connection errors of the load's clients");
    eprintln!("rising_5xx: {served} requests, {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doubled_latency_with_alert_reports_a_regression_and_keeps_traffic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(dir.path(), &[]).await;
    let fast = Scripted::start("r1", 20, 0).await;
    let slow = Scripted::start("r2", 60, 0).await;
    assert_eq!(deploy(&agent, "web", fast.addr, "r1", &[]).0, 0);
    let load = Load::start(agent.url("/"), 4, 5_000, ok);
    load.served_more("baseline traffic", 150).await;

    deploy_analysed(
        &agent,
        slow.addr,
        "r2",
        "dep_b",
        json!({"on_failure": "alert", "p95_floor_ms": 10.0}),
    );
    let r = verdict(&agent, Duration::from_secs(30)).await;
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["action"]["type"], "alerted", "{r}");
    let finding = r["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["kind"] == "latency_regression"))
        .cloned()
        .expect("a latency finding");
    let message = finding["message"].as_str().unwrap_or("");
    eprintln!("latency: {message}");
    assert!(message.starts_with("p95 now "), "{message}");
    assert!(
        message.contains(" ms vs ") && message.contains(" ms before, +"),
        "{message}"
    );
    assert!(message.contains('%'), "{message}");
    assert_eq!(finding["failing"], true);
    assert_eq!(active_release(&agent), "r2", "alert only: traffic stays");
    load.served_more("traffic on the new release", 50).await;
    let (_, errors) = load.finish().await;
    assert_eq!(errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_traffic_is_inconclusive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(dir.path(), &[]).await;
    let a = Scripted::start("r1", 0, 0).await;
    let b = Scripted::start("r2", 0, 0).await;
    assert_eq!(deploy(&agent, "web", a.addr, "r1", &[]).0, 0);
    deploy_analysed(
        &agent,
        b.addr,
        "r2",
        "dep_b",
        json!({"window_ms": 3_000, "min_requests": 50}),
    );
    let client = client();
    for _ in 0..5 {
        let (status, _, _) = get(&client, &agent.url("/"), None).await.expect("get");
        assert_eq!(status, 200);
    }
    let r = verdict(&agent, Duration::from_secs(20)).await;
    assert_eq!(r["state"], "inconclusive", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap_or("")
            .contains("only 5 requests"),
        "{r}"
    );
    assert!(
        r["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["kind"] == "low_traffic")),
        "{r}"
    );
    assert_eq!(active_release(&agent), "r2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_release_with_traffic_passes_and_the_verdict_is_in_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(dir.path(), &[]).await;
    let a = Scripted::start("r1", 0, 0).await;
    let b = Scripted::start("r2", 0, 0).await;
    assert_eq!(deploy(&agent, "web", a.addr, "r1", &[]).0, 0);
    let load = Load::start(agent.url("/"), 2, 20_000, ok);
    load.served_more("baseline traffic", 100).await;
    record(&agent, "dep_b", "r2", "in_progress");
    deploy_analysed(&agent, b.addr, "r2", "dep_b", json!({"window_ms": 4_000}));
    let r = verdict(&agent, Duration::from_secs(20)).await;
    assert_eq!(r["state"], "passed", "{r}");
    assert!(r["baseline"]["requests"].as_u64().unwrap_or(0) >= 20, "{r}");
    assert!(r["total"]["requests"].as_u64().unwrap_or(0) >= 20, "{r}");
    assert!(r["health"]["probes"].as_u64().unwrap_or(0) >= 1, "{r}");
    assert_eq!(active_release(&agent), "r2");
    // The CLI records the outcome afterwards: the verdict stays in the entry.
    record(&agent, "dep_b", "r2", "active");
    let entry = history_entry(&agent, "dep_b");
    assert_eq!(entry["status"], "active", "{entry}");
    assert_eq!(entry["health_status"], "healthy", "{entry}");
    assert_eq!(entry["analysis"]["state"], "passed", "{entry}");
    let (_, errors) = load.finish().await;
    assert_eq!(errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restarted_mid_analysis_resumes_it_to_a_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = Agent::start(dir.path(), &[]).await;
    let a = Scripted::start("r1", 0, 0).await;
    let b = Scripted::start("r2", 0, 0).await;
    assert_eq!(deploy(&agent, "web", a.addr, "r1", &[]).0, 0);
    deploy_analysed(&agent, b.addr, "r2", "dep_b", json!({"window_ms": 8_000}));
    // Wait until the running report is in the ledger, then kill -9.
    eventually(
        "the running analysis persisted",
        Duration::from_secs(10),
        || async {
            let (_, state) = agent.ctl(&["state", "web"]);
            let analysis = &state["result"]["state"]["analysis"];
            (analysis["state"] == "running" && analysis["elapsed_ms"].as_u64().unwrap_or(0) > 0)
                .then_some(())
        },
    )
    .await;
    agent.kill();
    drop(agent);

    let agent = Agent::start(dir.path(), &[]).await;
    let load = Load::start(agent.url("/"), 2, 20_000, ok);
    let r = verdict(&agent, Duration::from_secs(30)).await;
    assert_eq!(r["state"], "passed", "{r}");
    assert!(
        r["resumed_at_ms"].as_array().is_some_and(|a| a.len() == 1),
        "{r}"
    );
    assert_eq!(active_release(&agent), "r2");
    let (_, errors) = load.finish().await;
    assert_eq!(errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_previous_release_is_reported_as_a_failed_switch_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(dir.path(), &[]).await;
    let good = Scripted::start("r1", 0, 0).await;
    let bad = Scripted::start("r2", 0, 2).await;
    assert_eq!(deploy(&agent, "web", good.addr, "r1", &[]).0, 0);
    // The previous release's container is gone before the analysis fails.
    drop(good);
    deploy_analysed(&agent, bad.addr, "r2", "dep_b", json!({}));
    let load = Load::start(agent.url("/"), 2, 20_000, ok_or_500);
    let r = verdict(&agent, Duration::from_secs(30)).await;
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["action"]["type"], "switch_back_failed", "{r}");
    let why = r["action"]["reason"].as_str().unwrap_or("");
    assert!(why.contains("did not pass its health check"), "{why}");
    assert_eq!(
        active_release(&agent),
        "r2",
        "nothing healthy to go back to"
    );
    let (_, errors) = load.finish().await;
    assert_eq!(errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_an_upgrade_neither_agent_acts_and_the_successor_switches_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serving = Agent::start(dir.path(), &[]).await;
    let good = Scripted::start("r1", 0, 0).await;
    let bad = Scripted::start("r2", 0, 0).await;
    assert_eq!(deploy(&serving, "web", good.addr, "r1", &[]).0, 0);
    record(&serving, "dep_a", "r1", "active");
    record(&serving, "dep_b", "r2", "in_progress");
    deploy_analysed(
        &serving,
        bad.addr,
        "r2",
        "dep_b",
        json!({"window_ms": 60_000}),
    );

    // The successor starts beside it: both gates shut until one is left.
    let successor = take_over(&serving, dir.path(), "successor", &[]).await;

    // Now the new release fails its health check: both agents probe it and
    // see it (traffic may reach either), neither may act.
    let load = Load::start(serving.url("/"), 2, 20_000, ok);
    bad.health_status.store(503, Ordering::SeqCst);
    for agent in [&serving, &successor] {
        // Failing for two probes past the 3 that fail it, and still running:
        // an agent free to act would have switched back at the third.
        eventually("failing, not acted on", Duration::from_secs(20), || async {
            let r = report(agent);
            let failing = r["findings"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["failing"] == true));
            let in_a_row = r["health"]["failing_in_a_row"].as_u64().unwrap_or(0);
            (failing && in_a_row >= 5 && r["state"] == "running").then_some(())
        })
        .await;
    }
    assert_eq!(active_release(&serving), "r2");

    // The predecessor goes; the successor owns the ledger and acts.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &serving.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    eventually("the predecessor exited", Duration::from_secs(15), || {
        let exited = serving.child.try_wait().ok().flatten().is_some();
        async move { exited.then_some(()) }
    })
    .await;
    let r = verdict(&successor, Duration::from_secs(30)).await;
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["action"]["type"], "switched_back", "{r}");
    assert!(
        r["resumed_at_ms"].as_array().is_some_and(|a| a.len() == 1),
        "{r}"
    );
    assert_eq!(active_release(&successor), "r1");
    let reason = r["reason"].as_str().unwrap_or("");
    assert!(reason.contains("health check"), "{reason}");
    let b = history_entry(&successor, "dep_b");
    assert_eq!(b["analysis"]["state"], "failed", "{b}");
    assert_eq!(b["status"], "rolled_back", "{b}");
    let (_, errors) = load.finish().await;
    assert_eq!(errors, 0, "connection errors of the load's clients");
}
