//! Several apps on one agent, routed by Host; the forwarded headers; the
//! default route; the body limit.

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_routed_by_host_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prod = Upstream::start("prod").await;
    let staging = Upstream::start("staging").await;
    let agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(
        deploy(
            &agent,
            "events-production",
            prod.addr,
            "p1",
            &["--host", "events.example"]
        )
        .0,
        0
    );
    // The only app is the default route.
    let c = client();
    assert_eq!(
        get(&c, &agent.url("/"), Some("other.example"))
            .await
            .expect("get")
            .2,
        "prod"
    );
    assert_eq!(
        deploy(
            &agent,
            "events-staging",
            staging.addr,
            "s1",
            &["--host", "staging.events.example"]
        )
        .0,
        0
    );
    assert_eq!(
        get(&c, &agent.url("/"), Some("events.example"))
            .await
            .expect("get")
            .2,
        "prod"
    );
    assert_eq!(
        get(&c, &agent.url("/"), Some("Staging.Events.Example:8080"))
            .await
            .expect("get")
            .2,
        "staging"
    );
    let (status, _, _) = get(&c, &agent.url("/"), Some("other.example"))
        .await
        .expect("get");
    assert_eq!(status, 404, "two apps, no match, no default");
    // A host already claimed by another app is refused.
    let (code, _) = deploy(
        &agent,
        "events-staging",
        staging.addr,
        "s2",
        &["--host", "events.example"],
    );
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_with_413() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let agent = Agent::start(dir.path(), &["--max-body-bytes", "1000"]).await;
    assert_eq!(deploy(&agent, "web", a.addr, "v1", &[]).0, 0);
    let req = hyper::Request::post(agent.url("/"))
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![
            b'x';
            5000
        ])))
        .expect("req");
    let resp = client().request(req).await.expect("resp");
    assert_eq!(resp.status().as_u16(), 413);
}
