//! `slipway agent upgrade` under load: the agent is replaced by another
//! build and back, ten times each way, while requests flow through the
//! public port. Zero failed requests; routes and ledger unchanged.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{App, workspace_root};
use crate::load::Load;

/// Build label of the second agent build (compiled in, shown by `version`).
const BUILD_B: &str = "upgrade-test-b";

/// A second, genuinely different build of slipway-agent: the same source
/// compiled with another `SLIPWAY_AGENT_BUILD`, in its own target dir so the
/// workspace's own binary is left alone (cached between runs). That dir is
/// seeded with a copy of the workspace's compiled dependencies, so only the
/// agent's own crates are compiled again (minutes less on a cold CI run).
fn agent_build_b() -> PathBuf {
    // The harness's own build first: it rewrites some of target/debug's
    // dependencies (other features than the workspace build), and a copy
    // taken meanwhile from another test's thread would miss files.
    super::harness::prepare();
    let target = workspace_root().join("target/agent-build-b");
    let debug = workspace_root().join("target/debug");
    if !target.join("debug").exists() && debug.join("deps").exists() {
        std::fs::create_dir_all(target.join("debug")).expect("target dir");
        for dir in ["deps", "build", ".fingerprint"] {
            // A plain copy, not hard links: cargo may rewrite files in place.
            let status = Command::new("cp")
                .arg("-a")
                .arg(debug.join(dir))
                .arg(target.join("debug"))
                .status()
                .expect("cp");
            assert!(status.success(), "seeding {} failed", target.display());
        }
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "slipway-agent", "--bin", "slipway-agent"])
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", &target)
        .env("SLIPWAY_AGENT_BUILD", BUILD_B)
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the second agent build failed");
    target.join("debug/slipway-agent")
}

/// The agent's own view, read straight from it: its routes (without the
/// live in-flight counts) and the app's ledger.
fn agent_view(app: &App) -> (Value, Value) {
    let agent = format!("{}-{}-agent", app.name, app.env);
    let route = format!("{}-{}", app.name, app.env);
    let read = |args: &[&str]| -> Value {
        let mut cmd = vec!["exec", agent.as_str(), "slipway-agent", "ctl"];
        cmd.extend_from_slice(args);
        let out = app.docker(&cmd);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let mut routes = read(&["routes"]);
    for r in routes["result"]["routes"].as_array_mut().expect("routes") {
        for key in ["active", "previous"] {
            if let Some(t) = r.get_mut(key).and_then(Value::as_object_mut) {
                t.remove("in_flight");
            }
        }
        r.as_object_mut().expect("route").remove("draining");
    }
    (routes, read(&["state", &route]))
}

#[test]
fn agent_upgrades_and_downgrades_ten_times_under_load_with_zero_failed_requests() {
    let build_b = agent_build_b();
    let app = App::new("agt");
    // No post-deploy analysis: its report changes the ledger by the second
    // (and at its verdict), and this test wants a ledger that must not
    // change. Analyses across upgrades are tested in the agent's suite.
    app.set("deployment.analysis.window=0s");
    let first = app.deploy();
    assert_eq!(first.code, 0, "{}", first.all());
    let release = app.head();
    let before = agent_view(&app);
    assert_eq!(
        before.0["result"]["routes"][0]["active"]["release"],
        release.as_str()
    );

    let load = Load::start(&app.url("/version"), 4, 400_000, Duration::from_millis(2));
    let b = build_b.to_str().expect("utf-8 path");
    let mut steps = Vec::new();
    for round in 1..=10 {
        for (direction, env, build) in [
            ("up", vec![("SLIPWAY_AGENT_BIN", b)], BUILD_B),
            ("down", vec![], "dev"),
        ] {
            let run = app.slipway_env(&["--json", "agent", "upgrade", &app.env], &env);
            assert_eq!(run.code, 0, "round {round} {direction}: {}", run.all());
            let report: Value = serde_json::from_str(&run.stdout).expect("json report");
            assert_eq!(report["upgraded"], true, "{report}");
            assert_eq!(report["gap"], false, "{report}");
            assert!(
                report["to_version"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(build),
                "round {round} {direction}: {report}"
            );
            assert_eq!(
                agent_view(&app),
                before,
                "routes or ledger changed in round {round} {direction}"
            );
            steps.push((
                report["total_ms"].as_u64().unwrap_or(0),
                report["beside_ms"].as_u64().unwrap_or(0),
            ));
        }
    }
    // A new agent that cannot start (an image without slipway-agent) is
    // removed and the old one serves on, unchanged.
    let failed_upgrade = app.slipway(&[
        "agent",
        "upgrade",
        &app.env,
        "--image",
        "debian:bookworm-slim",
    ]);
    assert_eq!(failed_upgrade.code, 1, "{}", failed_upgrade.all());
    assert!(
        failed_upgrade
            .stderr
            .contains("the old agent still serves, unchanged"),
        "{}",
        failed_upgrade.all()
    );
    assert_eq!(agent_view(&app), before);

    // `agent status` tells this Slipway's build from another.
    let status = |env: &[(&str, &str)]| -> Value {
        let run = app.slipway_env(&["--json", "agent", "status", &app.env], env);
        assert_eq!(run.code, 0, "{}", run.all());
        serde_json::from_str(&run.stdout).expect("status json")
    };
    let own = status(&[]);
    assert_eq!(own["version"]["build"], "dev");
    assert_eq!(own["version"]["role"], "serving");
    assert_eq!(own["up_to_date"], true, "{own}");
    assert_eq!(status(&[("SLIPWAY_AGENT_BIN", b)])["up_to_date"], false);

    // A deploy by the other build upgrades the agent before its own switch.
    app.commit_file("NOTES.md", "agent upgrade test\n", "a change to deploy");
    let deploy = app.slipway_env(&["deploy", &app.env], &[("SLIPWAY_AGENT_BIN", b)]);
    assert_eq!(deploy.code, 0, "{}", deploy.all());
    assert!(deploy.all().contains("agent upgrade"), "{}", deploy.all());
    assert_eq!(status(&[])["version"]["build"], BUILD_B);
    let release = app.head();
    assert_eq!(app.serving().as_deref(), Some(release.as_str()));

    // Requests kept flowing after the last step, and none failed throughout.
    let served_before = load.ok_so_far();
    std::thread::sleep(Duration::from_millis(500));
    assert!(load.ok_so_far() > served_before);
    let (ok, failed, errors) = load.finish();
    let mut totals: Vec<u64> = steps.iter().map(|s| s.0).collect();
    totals.sort_unstable();
    let beside: u64 = steps.iter().map(|s| s.1).sum::<u64>() / steps.len() as u64;
    eprintln!(
        "agent upgrade figures: 20 steps, {ok} requests ok, {failed} failed; step time median {} ms, \
         max {} ms; both agents served together {beside} ms on average",
        totals[totals.len() / 2],
        totals[totals.len() - 1]
    );
    assert_eq!(
        failed, 0,
        "failed requests during agent upgrades: {errors:?}"
    );
    assert!(ok > 1000, "too little load went through: {ok}");

    // Nothing left over: one edge, one agent.
    let label = format!("label=slipway.app={}", app.name);
    let names = app.docker(&["ps", "-a", "--format", "{{.Names}}", "--filter", &label]);
    let mut agents: Vec<&str> = names
        .lines()
        .filter(|n| n.contains("-agent") || n.contains("-edge"))
        .collect();
    agents.sort_unstable();
    assert_eq!(
        agents,
        vec![
            format!("{}-{}-agent", app.name, app.env),
            format!("{}-{}-edge", app.name, app.env)
        ]
    );
}
