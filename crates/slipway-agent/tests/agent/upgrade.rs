//! Agent upgrades: a successor started with `--take-over` gets the listening
//! sockets, routes and ledger of the serving agent; traffic never stops;
//! whoever is left owns everything; a failed take-over leaves the old agent
//! serving.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

fn terminate(agent: &Agent) {
    let status = Command::new("kill")
        .args(["-TERM", &agent.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn exit_code(agent: &mut Agent) -> i32 {
    eventually("agent exited", Duration::from_secs(15), || {
        let status = agent.child.try_wait().expect("try_wait");
        async move { status.map(|s| s.code().unwrap_or(-1)) }
    })
    .await
}

async fn role(agent: &Agent, expected: &str) {
    eventually(
        &format!("role {expected}"),
        Duration::from_secs(10),
        || async {
            let (_, v) = agent.ctl(&["version"]);
            (v["result"]["role"] == expected).then_some(())
        },
    )
    .await;
}

/// Routes and the app's ledger, without what legitimately differs between
/// two agents (in-flight counts).
fn snapshot(agent: &Agent) -> (Value, Value) {
    let (code, mut routes) = agent.ctl(&["routes"]);
    assert_eq!(code, 0, "{routes}");
    if let Some(list) = routes["result"]["routes"].as_array_mut() {
        for r in list {
            if let Some(active) = r.get_mut("active").and_then(Value::as_object_mut) {
                active.remove("in_flight");
            }
        }
    }
    let (code, state) = agent.ctl(&["state", "web"]);
    assert_eq!(code, 0, "{state}");
    (routes, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_under_load_lose_nothing_and_keep_the_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let mut serving = Agent::start(dir.path(), &[]).await;
    assert_eq!(deploy(&serving, "web", a.addr, "r1", &[]).0, 0);
    let (code, lock) = serving.ctl(&[
        "lock",
        "acquire",
        "web",
        "--locked-by",
        "ops@example.org",
        "--hostname",
        "laptop",
        "--pid",
        "1",
        "--deployment-id",
        "dep_1",
    ]);
    assert_eq!(code, 0, "{lock}");
    let before = snapshot(&serving);

    // Keep-alive connections, as browsers and load balancers use.
    let load = Load::start(serving.url("/"), 4, 50_000, |status, release, body| {
        status == 200 && release == "r1" && body == "a"
    });
    load.served_more("load started", 50).await;

    for round in 0..4 {
        let successor = take_over(&serving, dir.path(), &format!("agent-{round}"), &[]).await;
        role(&serving, "handing_over").await;
        // Both serve; neither may change the ledger.
        for agent in [&serving, &successor] {
            let (code, refused) = agent.ctl(&["resume", "web"]);
            assert_eq!(code, 8, "{refused}");
            assert_eq!(refused["error"]["kind"], "handing_over");
        }
        load.served_more("requests while both serve", 50).await;
        terminate(&serving);
        assert_eq!(exit_code(&mut serving).await, 0);
        role(&successor, "serving").await;
        assert_eq!(snapshot(&successor), before, "round {round}");
        serving = successor;
        load.served_more("requests after the upgrade", 50).await;
    }
    let (ok, errors) = load.finish().await;
    eprintln!("4 upgrades under load: {ok} ok, {errors} failed");
    assert_eq!(errors, 0, "{errors} of {} requests failed", ok + errors);
    // The last agent owns the ledger: it can change it.
    let lock_id = lock["result"]["lock"]["lock_id"]
        .as_str()
        .expect("lock id")
        .to_owned();
    let (code, released) = serving.ctl(&["lock", "release", "web", "--lock-id", &lock_id]);
    assert_eq!(code, 0, "{released}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_take_over_leaves_the_old_agent_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let serving = Agent::start(dir.path(), &[]).await;
    assert_eq!(deploy(&serving, "web", a.addr, "r1", &[]).0, 0);
    let client = client();

    // A second agent without --take-over refuses to start beside it.
    let socket = dir.path().join("plain.sock");
    let out = Agent::command(dir.path(), serving.listen, serving.metrics, &socket, &[])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another agent is serving") && stderr.contains("--take-over"),
        "{stderr}"
    );

    // A successor that dies beside it: the old agent owns everything again.
    let mut successor = take_over(&serving, dir.path(), "doomed", &[]).await;
    role(&serving, "handing_over").await;
    successor.kill();
    role(&serving, "serving").await;
    assert_eq!(deploy(&serving, "web", a.addr, "r2", &[]).0, 0);
    assert_eq!(
        get(&client, &serving.url("/"), None).await,
        Ok((200, "r2".into(), "a".into()))
    );

    // A successor whose predecessor is never stopped gives up and exits 1.
    let mut patient = take_over(
        &serving,
        dir.path(),
        "patient",
        &["--take-over-timeout-ms", "500"],
    )
    .await;
    assert_eq!(exit_code(&mut patient).await, 1);
    role(&serving, "serving").await;
    assert_eq!(deploy(&serving, "web", a.addr, "r3", &[]).0, 0);

    // A successor that cannot read the ledger (written in a newer format)
    // refuses it, exits 6, and leaves the old agent serving.
    let ledger = dir.path().join("state").join("ledger.json");
    let mut file: Value =
        serde_json::from_str(&std::fs::read_to_string(&ledger).expect("read")).expect("json");
    file["format_version"] = 99.into();
    std::fs::write(&ledger, file.to_string()).expect("write");
    let socket = dir.path().join("old.sock");
    let out = Agent::command(
        dir.path(),
        serving.listen,
        serving.metrics,
        &socket,
        &["--take-over".into()],
    )
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(6));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("99"), "{stderr}");
    role(&serving, "serving").await;
    assert_eq!(
        get(&client, &serving.url("/"), None).await,
        Ok((200, "r3".into(), "a".into()))
    );
    assert_eq!(deploy(&serving, "web", a.addr, "r4", &[]).0, 0);
}
