//! Switching: zero errors under load; a failed health check changes nothing
//! and says what it saw; rollback; pause/resume.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_under_load_has_zero_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(deploy(&agent, "web", a.addr, "r0", &[]).0, 0);

    // Bounded: at most 20k requests per task even if switching hangs.
    let load = Load::start(agent.url("/"), 4, 20_000, |status, release, body| {
        status == 200 && release.starts_with('r') && (body == "a" || body == "b")
    });
    // Let load start before the first switch.
    load.served_more("load started", 50).await;
    for i in 1..=5 {
        let (up, release) = if i % 2 == 1 {
            (&b, format!("r{i}"))
        } else {
            (&a, format!("r{i}"))
        };
        let (code, json) = deploy(
            &agent,
            "web",
            up.addr,
            &release,
            &["--drain-timeout-ms", "5000"],
        );
        assert_eq!(code, 0, "{json}");
        assert_eq!(json["result"]["release"], release.as_str());
        // Some requests go through each new target before the next switch.
        load.served_more("requests after the switch", 50).await;
    }
    let (ok, errors) = load.finish().await;
    assert_eq!(errors, 0, "errors during switches");
    assert!(ok > 300);
    assert!(a.hits.load(Ordering::SeqCst) > 0 && b.hits.load(Ordering::SeqCst) > 0);
    let (_, routes) = agent.ctl(&["routes"]);
    assert_eq!(routes["result"]["routes"][0]["active"]["release"], "r5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_health_check_leaves_route_unchanged_and_names_the_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = Upstream::start("good").await;
    let bad = Upstream::start("bad").await;
    bad.health_status.store(503, Ordering::SeqCst);
    let agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(deploy(&agent, "web", good.addr, "v1", &[]).0, 0);

    let started = Instant::now();
    let bad_addr = bad.addr.to_string();
    let (code, json) = agent.ctl(&[
        "deploy",
        "web",
        "--target",
        &bad_addr,
        "--release",
        "v2",
        "--health-passes",
        "1",
        "--health-interval-ms",
        "50",
        "--health-deadline-ms",
        "500",
    ]);
    assert_eq!(code, 4, "{json}");
    let err = &json["error"];
    assert_eq!(err["kind"], "health_check_failed");
    assert!(
        err["message"].as_str().unwrap_or("").contains("503"),
        "{json}"
    );
    assert_eq!(err["health"]["seen"][0], "503");
    assert_eq!(err["health"]["last_body"], "database unreachable");
    assert!(started.elapsed() < Duration::from_secs(5));

    let c = client();
    let (status, release, body) = get(&c, &agent.url("/"), None).await.expect("get");
    assert_eq!(
        (status, release.as_str(), body.as_str()),
        (200, "v1", "good")
    );
    // A target nobody listens on: the answer names the connection error.
    let (code, json) = agent.ctl(&[
        "deploy",
        "web",
        "--target",
        &format!("127.0.0.1:{}", free_port()),
        "--release",
        "v3",
        "--health-deadline-ms",
        "300",
        "--health-interval-ms",
        "50",
    ]);
    assert_eq!(code, 4);
    assert!(
        json["error"]["health"]["seen"][0]
            .as_str()
            .unwrap_or("")
            .contains("connect"),
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_returns_to_the_previous_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(agent.ctl(&["rollback", "web"]).0, 3, "unknown app");
    assert_eq!(deploy(&agent, "web", a.addr, "v1", &[]).0, 0);
    assert_eq!(agent.ctl(&["rollback", "web"]).0, 3, "no previous");
    assert_eq!(deploy(&agent, "web", b.addr, "v2", &[]).0, 0);
    let (code, json) = agent.ctl(&["rollback", "web"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["result"]["release"], "v1");
    let (_, release, body) = get(&client(), &agent.url("/"), None).await.expect("get");
    assert_eq!((release.as_str(), body.as_str()), ("v1", "a"));
    // Rolling back again goes forward to v2: previous is now v2.
    a.health_status.store(200, Ordering::SeqCst);
    b.health_status.store(500, Ordering::SeqCst);
    let (code, _) = agent.ctl(&["rollback", "web"]);
    assert_eq!(code, 4, "previous target is unhealthy: refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_requests_until_resume_and_sheds_past_the_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(deploy(&agent, "web", a.addr, "v1", &[]).0, 0);
    assert_eq!(agent.ctl(&["pause", "web", "--max-wait-ms", "10000"]).0, 0);
    let url = agent.url("/");
    let held = tokio::spawn(async move { get(&client(), &url, None).await });
    // The held request is counted nowhere upstream until resume.
    eventually("request held", Duration::from_secs(5), || async {
        let (_, routes) = agent.ctl(&["routes"]);
        (routes["result"]["routes"][0]["held"] == 1).then_some(())
    })
    .await;
    assert_eq!(a.hits.load(Ordering::SeqCst), 0);
    assert!(!held.is_finished());
    assert_eq!(agent.ctl(&["resume", "web"]).0, 0);
    let (status, _, body) = held.await.expect("join").expect("get");
    assert_eq!((status, body.as_str()), (200, "a"));

    // Past the wait bound: 503 with Retry-After.
    assert_eq!(agent.ctl(&["pause", "web", "--max-wait-ms", "200"]).0, 0);
    let c = client();
    let req = hyper::Request::get(agent.url("/"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("req");
    let resp = c.request(req).await.expect("resp");
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(agent.ctl(&["resume", "web"]).0, 0);
}
