//! Drain: a request shorter than the drain timeout completes on the old
//! target; one that outlives it is cut at the deadline and the old target is
//! released then.

use std::time::{Duration, Instant};

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_cuts_a_slow_request_and_lets_a_short_one_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(deploy(&agent, "web", a.addr, "v1", &[]).0, 0);

    let short_url = agent.url("/slow?ms=400");
    let long_url = agent.url("/slow?ms=8000");
    let short = tokio::spawn(async move { get(&client(), &short_url, None).await });
    let long = tokio::spawn(async move {
        let started = Instant::now();
        (get(&client(), &long_url, None).await, started.elapsed())
    });
    eventually(
        "both requests in flight on a",
        Duration::from_secs(5),
        || async {
            let (_, r) = agent.ctl(&["routes"]);
            (r["result"]["routes"][0]["active"]["in_flight"] == 2).then_some(())
        },
    )
    .await;

    let switched = Instant::now();
    let (code, json) = deploy(&agent, "web", b.addr, "v2", &["--drain-timeout-ms", "1500"]);
    assert_eq!(code, 0, "{json}");
    // New requests go to b at once, while a drains.
    let (_, release, body) = get(&client(), &agent.url("/"), None).await.expect("get");
    assert_eq!((release.as_str(), body.as_str()), ("v2", "b"));
    let (_, r) = agent.ctl(&["routes"]);
    assert_eq!(r["result"]["routes"][0]["draining"][0]["release"], "v1");

    let (status, release, body) = short.await.expect("join").expect("short completes");
    assert_eq!((status, release.as_str(), body.as_str()), (200, "v1", "a"));

    let (result, took) = long.await.expect("join");
    let cut = match result {
        Ok((status, _, _)) => status == 503,
        Err(_) => true,
    };
    assert!(cut, "the slow request was cut: {result:?}");
    assert!(
        took < Duration::from_secs(5),
        "cut at the deadline, not at the upstream's 8 s: {took:?}"
    );
    assert!(switched.elapsed() >= Duration::from_millis(1400));

    // The old target is released at the deadline.
    eventually("draining list empty", Duration::from_secs(3), || async {
        let (_, r) = agent.ctl(&["routes"]);
        (r["result"]["routes"][0]["draining"]
            .as_array()
            .is_some_and(Vec::is_empty))
        .then_some(())
    })
    .await;
}
