//! The host's ledger: lock contention, expiry and takeover; state and routes
//! surviving a `kill -9`; an older agent refusing a newer ledger.

use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

fn acquire(agent: &Agent, who: &str, dep: &str) -> (i32, serde_json::Value) {
    agent.ctl(&[
        "lock",
        "acquire",
        "web",
        "--locked-by",
        who,
        "--hostname",
        "laptop",
        "--pid",
        "4242",
        "--deployment-id",
        dep,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_contention_expiry_and_takeover() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A 1.5 s expiry stands in for the 30 min default.
    let agent = Agent::start(dir.path(), &["--lock-expiry-ms", "1500"]).await;
    let (code, alice) = acquire(&agent, "alice@example.com", "dep_a");
    assert_eq!(code, 0, "{alice}");
    let alice_lock = alice["result"]["lock"]["lock_id"]
        .as_str()
        .expect("lock id")
        .to_owned();

    let (code, refused) = acquire(&agent, "bob@example.com", "dep_b");
    assert_eq!(code, 5, "{refused}");
    assert_eq!(refused["error"]["kind"], "lock_held");
    assert_eq!(refused["error"]["holder"]["locked_by"], "alice@example.com");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("alice@example.com on laptop (pid 4242)")
    );

    // The heartbeat keeps it alive; status shows the holder.
    assert_eq!(
        agent
            .ctl(&["lock", "renew", "web", "--lock-id", &alice_lock])
            .0,
        0
    );
    let (_, status) = agent.ctl(&["lock", "status", "web"]);
    assert_eq!(status["result"]["lock"]["deployment_id"], "dep_a");

    // Without heartbeats it goes stale...
    eventually("lock stale", Duration::from_secs(10), || async {
        let (_, s) = agent.ctl(&["lock", "status", "web"]);
        s["result"]["warning"].as_str().map(|_| ())
    })
    .await;
    // ...and the next acquire takes it over, with a warning naming alice.
    let (code, bob) = acquire(&agent, "bob@example.com", "dep_b");
    assert_eq!(code, 0, "{bob}");
    assert_eq!(bob["result"]["took_over"]["locked_by"], "alice@example.com");
    assert!(
        bob["result"]["warning"]
            .as_str()
            .unwrap_or("")
            .contains("stale")
    );
    let bob_lock = bob["result"]["lock"]["lock_id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Alice's heartbeat now fails: she lost the lock.
    let (code, lost) = agent.ctl(&["lock", "renew", "web", "--lock-id", &alice_lock]);
    assert_eq!(code, 5);
    assert_eq!(lost["error"]["kind"], "lock_not_held");
    assert_eq!(
        agent
            .ctl(&["lock", "release", "web", "--lock-id", &bob_lock])
            .0,
        0
    );
    let (_, state) = agent.ctl(&["state", "web"]);
    assert_eq!(state["result"]["state"]["lock"]["locked"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_and_routes_survive_a_kill_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let mut agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(
        deploy(
            &agent,
            "web",
            a.addr,
            "v1",
            &["--slot", "blue", "--host", "web.example"]
        )
        .0,
        0
    );
    assert_eq!(
        deploy(&agent, "web", b.addr, "v2", &["--slot", "green"]).0,
        0
    );
    assert_eq!(acquire(&agent, "alice", "dep_2").0, 0);
    let record = r#"{"id":"dep_2","version":"v2","deployed_at":"2026-01-28T10:30:00Z",
        "deployed_by":"alice","active_slot":"green","health_status":"healthy","status":"active"}"#;
    assert_eq!(agent.ctl(&["history", "record", "web", record]).0, 0);
    let (_, before) = agent.ctl(&["state", "web"]);

    // kill -9: no chance to save anything on the way out.
    let (listen, metrics) = (agent.listen, agent.metrics);
    agent.kill();
    let agent = Agent::start_at(dir.path(), listen, metrics, Vec::new()).await;
    let (_, after) = agent.ctl(&["state", "web"]);
    assert_eq!(before, after, "ledger identical after restart");
    assert_eq!(
        after["result"]["state"]["current_deployment"]["id"],
        "dep_2"
    );
    assert_eq!(after["result"]["state"]["lock"]["locked_by"], "alice");
    let (status, release, body) = get(&client(), &agent.url("/"), Some("web.example"))
        .await
        .expect("get");
    assert_eq!(
        (status, release.as_str(), body.as_str()),
        (200, "v2", "b"),
        "route restored"
    );
    // The previous target is restored too: rollback works after restart.
    let (code, json) = agent.ctl(&["rollback", "web"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["result"]["release"], "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_agent_refuses_a_newer_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    let text =
        r#"{"format_version": 99, "written_by": "9.0.0", "apps": {"web": {"new_shape": true}}}"#;
    std::fs::write(state.join("ledger.json"), text).expect("write");
    let listen = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let metrics = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let out = Agent::command(
        dir.path(),
        listen,
        metrics,
        &dir.path().join("admin.sock"),
        &[],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(6));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("format_version 99"), "{stderr}");
    assert!(stderr.contains("9.0.0"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(state.join("ledger.json")).expect("read"),
        text,
        "left untouched"
    );
}
