//! Hooks through the real binary: `pre_deploy` and `post_deploy` scripts
//! in the app's repository record the environment they were given (the
//! deploy's facts, the operator's own variables, never a secret of
//! `.env.<env>`); `pre_switch` runs events-server's `selftest` inside the
//! new container. Then a hook failing at each point: `pre_deploy` refuses
//! before anything is built, `pre_switch` leaves traffic on the old release
//! and removes the new container, `post_deploy` only warns.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{App, SECRET};

const PRE_DEPLOY: &str = r#"#!/bin/sh
env > "$HOOK_OUT/pre-deploy.env"
if [ -e "$HOOK_OUT/hang" ]; then
  sleep 600 &
  echo $! > "$HOOK_OUT/child.pid"
  echo "waiting for the release manager"
  wait
fi
if [ -e "$HOOK_OUT/refuse" ]; then
  echo "refusing: releases are frozen today" >&2
  exit 3
fi
echo "pre-deploy checks passed for $SLIPWAY_RELEASE"
"#;

const POST_DEPLOY: &str = r#"#!/bin/sh
env > "$HOOK_OUT/post-deploy.env"
if [ -e "$HOOK_OUT/post-fail" ]; then
  echo "the chat server is down" >&2
  exit 5
fi
echo "told the chat: $SLIPWAY_APP $SLIPWAY_RELEASE $SLIPWAY_DEPLOY_STATUS"
"#;

const HOOKS: &str = "
hooks:
  pre_deploy: [deploy/hooks/pre-deploy]
  pre_switch: [events-server, selftest]
  post_deploy: deploy/hooks/post-deploy
  timeout: 60s
";

fn script(app: &App, name: &str, body: &str) {
    let path = app.root().join("deploy/hooks").join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, body).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The `NAME=value` lines a hook recorded; the file must hold no secret.
fn recorded(path: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        !text.contains(SECRET),
        "a secret of .env reached a hook's environment ({})",
        path.display()
    );
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Whether a process still runs (a zombie waiting for init does not).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .ok()
        .and_then(|s| s.rsplit(") ").next().map(|r| !r.starts_with('Z')))
        .unwrap_or(false)
}

/// Polls until `pid` no longer runs, at most `within`.
fn gone_within(pid: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn containers(app: &App) -> String {
    app.docker(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("label=slipway.app={}", app.name),
        "--filter",
        "label=slipway.role=app",
    ])
    .trim()
    .to_string()
}

#[test]
fn hooks_run_at_each_point_and_a_failing_one_stops_the_deploy_before_the_switch() {
    let app = App::new("hooks");
    script(&app, "pre-deploy", PRE_DEPLOY);
    script(&app, "post-deploy", POST_DEPLOY);
    let config = app.root().join("deploy/config/deployment.yml");
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str(HOOKS);
    fs::write(&config, text).unwrap();
    app.commit_all("hooks");
    let out = tempfile::tempdir().unwrap();
    let hook_out = out.path().display().to_string();
    let deploy = |extra: &[&str]| {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["deploy", app.env.as_str()]);
        app.slipway_env(&args, &[("HOOK_OUT", &hook_out)])
    };

    // The plan names them.
    let plan = app.slipway(&["deploy", &app.env, "--dry-run"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.stdout
            .contains("hook        pre_deploy: deploy/hooks/pre-deploy"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("hook        pre_switch: events-server selftest (in the new slot"),
        "{}",
        plan.stdout
    );

    // 1. A deploy with all three: each a step with its duration.
    let first = deploy(&["--json"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let release_a = app.head();
    assert_eq!(app.serving().as_deref(), Some(release_a.as_str()));
    let report: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    let at = |name: &str| {
        steps
            .iter()
            .position(|s| *s == name)
            .unwrap_or_else(|| panic!("no step {name}: {steps:?}"))
    };
    assert!(at("lock") < at("pre-deploy hook"), "{steps:?}");
    assert!(at("pre-deploy hook") < at("build"), "{steps:?}");
    assert!(at("start") < at("pre-switch hook"), "{steps:?}");
    assert!(at("pre-switch hook") < at("switch"), "{steps:?}");
    assert_eq!(steps.last(), Some(&"post-deploy hook"), "{steps:?}");
    for step in report["steps"].as_array().unwrap() {
        assert_eq!(step["ok"], true, "{step}");
        assert!(step["duration_ms"].is_u64(), "{step}");
    }
    // Live output, prefixed: the selftest ran inside the new container.
    assert!(
        first
            .stderr
            .contains("pre-switch │ selftest: GET /health → 200"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains(&format!(
            "pre-deploy │ pre-deploy checks passed for {release_a}"
        )),
        "{}",
        first.stderr
    );
    let pre = recorded(&out.path().join("pre-deploy.env"));
    assert_eq!(pre["SLIPWAY_HOOK"], "pre_deploy");
    assert_eq!(pre["SLIPWAY_ENVIRONMENT"], app.env);
    assert_eq!(pre["SLIPWAY_APP"], app.name);
    assert_eq!(pre["SLIPWAY_RELEASE"], release_a);
    assert!(pre["SLIPWAY_COMMIT"].starts_with(&release_a), "{pre:?}");
    assert_eq!(pre["SLIPWAY_PREVIOUS_RELEASE"], "");
    assert_eq!(
        pre["SLIPWAY_DEPLOYMENT_ID"],
        report["deployment_id"].as_str().unwrap()
    );
    assert_eq!(pre["SLIPWAY_URL"], app.url("/"));
    assert_eq!(pre["HOOK_OUT"], hook_out, "the operator's own environment");
    assert!(!pre.contains_key("SLIPWAY_DEPLOY_STATUS"), "{pre:?}");
    let post = recorded(&out.path().join("post-deploy.env"));
    assert_eq!(post["SLIPWAY_HOOK"], "post_deploy");
    assert_eq!(post["SLIPWAY_DEPLOY_STATUS"], "succeeded");
    assert_eq!(post["SLIPWAY_SLOT"], "blue");
    assert!(post["SLIPWAY_RUNTIME_MS"].parse::<u64>().unwrap() > 0);
    assert!(!post.contains_key("SLIPWAY_ERROR"), "{post:?}");

    // 2. pre_deploy refuses: exit 1 with its output, nothing built or
    // started, traffic where it was; post_deploy is told.
    app.commit_file("NOTES", "b\n", "release b");
    let release_b = app.head();
    fs::write(out.path().join("refuse"), "").unwrap();
    let refused = deploy(&[]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("deploy failed at step `pre-deploy hook`"),
        "{}",
        refused.all()
    );
    assert!(
        refused.stderr.contains("exited with code 3"),
        "{}",
        refused.all()
    );
    assert!(
        refused
            .stderr
            .contains("refusing: releases are frozen today"),
        "{}",
        refused.all()
    );
    assert!(!refused.stderr.contains("✓ build"), "{}", refused.all());
    let image = format!("{}:{release_b}", app.name);
    assert!(
        app.docker(&["images", "-q", &image]).trim().is_empty(),
        "{image} was built"
    );
    assert_eq!(containers(&app), format!("{}-{}-blue", app.name, app.env));
    assert_eq!(app.serving().as_deref(), Some(release_a.as_str()));
    let post = recorded(&out.path().join("post-deploy.env"));
    assert_eq!(post["SLIPWAY_DEPLOY_STATUS"], "failed");
    assert_eq!(post["SLIPWAY_FAILED_STEP"], "pre-deploy hook");
    assert_eq!(post["SLIPWAY_RELEASE"], release_b);
    assert_eq!(post["SLIPWAY_PREVIOUS_RELEASE"], release_a);
    assert!(
        post["SLIPWAY_ERROR"].contains("exited with code 3"),
        "{post:?}"
    );
    fs::remove_file(out.path().join("refuse")).unwrap();

    // 3. pre_switch fails inside the new container: exit 1 with its
    // output, traffic never moved, the new container is gone.
    let smoke = deploy(&[
        "--set",
        "hooks.pre_switch=[events-server, selftest, /no-such-page]",
    ]);
    assert_eq!(smoke.code, 1, "{}", smoke.all());
    assert!(
        smoke
            .stderr
            .contains("deploy failed at step `pre-switch hook`"),
        "{}",
        smoke.all()
    );
    assert!(
        smoke.stderr.contains("GET /no-such-page answered 404"),
        "{}",
        smoke.all()
    );
    assert!(
        smoke.stderr.contains("exited with code 1"),
        "{}",
        smoke.all()
    );
    assert!(!smoke.stderr.contains("✓ switch"), "{}", smoke.all());
    assert_eq!(app.serving().as_deref(), Some(release_a.as_str()));
    assert_eq!(containers(&app), format!("{}-{}-blue", app.name, app.env));
    let post = recorded(&out.path().join("post-deploy.env"));
    assert_eq!(post["SLIPWAY_DEPLOY_STATUS"], "failed");
    assert_eq!(post["SLIPWAY_FAILED_STEP"], "pre-switch hook");
    assert_eq!(post["SLIPWAY_SLOT"], "green");

    // A hook past hooks.timeout is killed with its children; the deploy
    // fails at its step.
    fs::write(out.path().join("hang"), "").unwrap();
    let slow = deploy(&["--set", "hooks.timeout=2s"]);
    assert_eq!(slow.code, 1, "{}", slow.all());
    assert!(
        slow.stderr
            .contains("did not finish within hooks.timeout (2s) and was killed"),
        "{}",
        slow.all()
    );
    assert!(
        slow.stderr.contains("waiting for the release manager"),
        "{}",
        slow.all()
    );
    let child = fs::read_to_string(out.path().join("child.pid")).unwrap();
    assert!(
        gone_within(&child, Duration::from_secs(10)),
        "the hook's child {child} outlived it"
    );
    fs::remove_file(out.path().join("child.pid")).unwrap();

    // Ctrl-C (SIGINT) to slipway while a hook runs in its own process group:
    // the hook and its children go with it.
    let mut interrupted = app
        .command(&["deploy", &app.env], &[("HOOK_OUT", &hook_out)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = out.path().join("child.pid");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pid_file.exists() || fs::read_to_string(&pid_file).unwrap().trim().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the pre-deploy hook never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let child = fs::read_to_string(&pid_file).unwrap();
    let signalled = std::process::Command::new("kill")
        .args(["-INT", &interrupted.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    assert_eq!(interrupted.wait().unwrap().code(), Some(130));
    assert!(
        gone_within(&child, Duration::from_secs(10)),
        "the hook's child {child} outlived slipway"
    );
    fs::remove_file(out.path().join("hang")).unwrap();
    assert_eq!(app.serving().as_deref(), Some(release_a.as_str()));

    // 4. post_deploy fails: a warning, the deploy still succeeds (and
    // repairs what the interrupted one left: its lock).
    fs::write(out.path().join("post-fail"), "").unwrap();
    let warned = deploy(&[]);
    assert_eq!(warned.code, 0, "{}", warned.all());
    assert_eq!(app.serving().as_deref(), Some(release_b.as_str()));
    assert!(
        warned.stderr.contains("✗ post-deploy hook"),
        "{}",
        warned.all()
    );
    assert!(
        warned.stderr.contains("warning: the post-deploy hook"),
        "{}",
        warned.all()
    );
    assert!(
        warned.stderr.contains("the chat server is down"),
        "{}",
        warned.all()
    );
    assert!(
        warned.stderr.contains(
            "the deploy's result is unchanged (succeeded): a post-deploy hook never changes it"
        ),
        "{}",
        warned.all()
    );
    let post = recorded(&out.path().join("post-deploy.env"));
    assert_eq!(post["SLIPWAY_DEPLOY_STATUS"], "succeeded");
    assert_eq!(post["SLIPWAY_SLOT"], "green");
}
