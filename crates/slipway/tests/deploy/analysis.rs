//! The host watches every release: the agent's post-deploy analysis, its
//! automatic switch-back, and its notifications, end to end: the real CLI,
//! the real engine and database, releases with planted faults (every Nth
//! request answers 500; every request is slower), continuous real load, and
//! real receivers for the webhook and ntfy on this machine.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};

use super::harness::{App, Run};
use super::load::Load;

#[path = "../common/receiver.rs"]
mod receiver;
use receiver::{Received, Receiver};

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NTFY_TOKEN: &str = "tk_e2e-ntfy-canary-token";

/// Points the app's notifications at the receivers (values in `.env`, as
/// an operator keeps them) and commits the configuration.
fn notify_to(app: &App, webhook: Option<&Receiver>, ntfy: Option<&Receiver>) {
    let path = app.root().join("deploy/config/deployment.yml");
    let mut section = String::from("notifications:\n");
    let mut env = String::new();
    if let Some(w) = webhook {
        section.push_str("  webhook:\n    url: ${WEBHOOK_URL}\n    secret: ${WEBHOOK_SECRET}\n");
        env.push_str(&format!(
            "WEBHOOK_URL={}\nWEBHOOK_SECRET={WEBHOOK_SECRET}\n",
            w.url("/hooks/T000/canary-path-token")
        ));
    }
    if let Some(n) = ntfy {
        section.push_str(&format!(
            "  ntfy:\n    server: ${{NTFY_SERVER}}\n    topic: e2e-{}\n    token: ${{NTFY_TOKEN}}\n    tags: [e2e]\n",
            app.name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        ));
        env.push_str(&format!(
            "NTFY_SERVER={}\nNTFY_TOKEN={NTFY_TOKEN}\n",
            n.url("")
        ));
    }
    let config = std::fs::read_to_string(&path).unwrap();
    assert!(config.contains("notifications: {}\n"), "{config}");
    std::fs::write(&path, config.replace("notifications: {}\n", &section)).unwrap();
    let env_file = app
        .root()
        .join(format!("deploy/config/environments/.env.{}", app.env));
    let mut text = std::fs::read_to_string(&env_file).unwrap();
    text.push_str(&env);
    std::fs::write(&env_file, text).unwrap();
    app.commit_all("notifications");
}

/// The Standard Webhooks signature, checked with RustCrypto's HMAC (the
/// agent signs with ring).
fn assert_signed(r: &Received) {
    let id = r.header("webhook-id").expect("webhook-id");
    let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
    let sig = r.header("webhook-signature").expect("webhook-signature");
    let key = base64::engine::general_purpose::STANDARD
        .decode(WEBHOOK_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2_next::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{}", r.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert!(
        sig.split(' ').any(|s| s == expected),
        "bad signature {sig} (expected {expected}) on {}",
        r.body
    );
    assert_eq!(r.json()["data"]["id"], id, "webhook-id is the event's id");
}

fn event_is(r: &Received, kind: &str, release: &str) -> bool {
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    v["type"] == kind && v["data"]["release"] == release
}

/// Seconds from the first failing observation to the switch-back, as the
/// CLI prints it: "... switched back to <release> 1.3 s after the problem started".
fn detection_seconds(stderr: &str) -> f64 {
    let at = stderr
        .find("switched back to ")
        .unwrap_or_else(|| panic!("no switch-back in:\n{stderr}"));
    let rest = &stderr[at + "switched back to ".len()..];
    let mut words = rest.split_whitespace();
    words.next();
    words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no seconds in: {}", &rest[..rest.len().min(120)]))
}

fn wait_serving(app: &App, release: &str, within: Duration) -> Duration {
    let started = Instant::now();
    while app.serving().as_deref() != Some(release) {
        assert!(
            started.elapsed() < within,
            "{release} not served again within {within:?} (serving {:?})",
            app.serving()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

/// Continuous load on the serving release, long enough to be its baseline.
fn warm_load(app: &App, max_requests: u64, at_least: Duration) -> Load {
    let load = Load::start(
        &app.url("/version"),
        4,
        max_requests,
        Duration::from_millis(2),
    );
    let warm = Instant::now();
    while load.ok_so_far() < 300 || warm.elapsed() < at_least {
        assert!(warm.elapsed() < Duration::from_secs(60), "no load");
        std::thread::sleep(Duration::from_millis(100));
    }
    load
}

/// `slipway deploy` of the next commit with one planted fault and the CLI
/// staying until the verdict.
fn deploy_with(app: &App, fault: &str) -> Run {
    app.slipway(&[
        "--set",
        fault,
        "--set",
        "deployment.watch_window=60s",
        "deploy",
        &app.env,
    ])
}

/// Stops the load; every failure it saw must have been an answer of the
/// faulty releases (their planted 500s), not a connection error or a
/// timeout. Returns (ok, failed).
fn finish_only_answered_failures(mut load: Load) -> (u64, u64) {
    load.stop();
    let answered = load.answered_failures();
    let (ok, failed, errors) = load.finish();
    assert_eq!(
        failed - answered,
        0,
        "connection errors or timeouts among the failures; first errors: {errors:?}"
    );
    let other: Vec<&String> = errors
        .iter()
        .filter(|e| !e.starts_with("HTTP 500"))
        .collect();
    assert!(
        other.is_empty(),
        "answers other than the planted 500: {other:?}"
    );
    (ok, failed)
}

#[test]
fn the_host_switches_back_a_release_whose_errors_rise_with_or_without_the_cli() {
    let app = App::new("anl");
    let hooks = Receiver::start();
    notify_to(&app, Some(&hooks), None);
    for s in [
        "deployment.analysis.window=30s",
        "deployment.analysis.interval=5s",
        "deployment.analysis.min_requests=10",
        "deployment.analysis.health_interval=500ms",
    ] {
        app.set(s);
    }
    let first = app.slipway(&["--set", "deployment.watch_window=1s", "deploy", &app.env]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(
        first.stderr.contains("notifications: webhook"),
        "{}",
        first.all()
    );
    let release_a = app.head();
    let started = hooks.wait_for("deploy.started", Duration::from_secs(30), |r| {
        event_is(r, "deploy.started", &release_a)
    });
    assert_signed(&started);

    let load = warm_load(&app, 400_000, Duration::from_secs(3));

    // A release that answers every 4th request with 500 (its /health stays
    // fine): the CLI is there, sees the verdict and says so.
    app.commit_file("NOTES", "b\n", "release b");
    let release_b = app.head();
    let b = deploy_with(&app, "app.env.EVENTS_SERVER_ERROR_EVERY=4");
    assert_eq!(b.code, 1, "{}", b.all());
    assert!(b.stderr.contains("failed at step `watch`"), "{}", b.all());
    assert!(b.stderr.contains("5xx"), "{}", b.all());
    let detection = detection_seconds(&b.stderr);
    eprintln!("with the CLI: first failing request to switch-back {detection:.1} s");
    assert!(detection < 30.0, "SC-008: {detection} s");
    assert_eq!(app.serving().as_deref(), Some(release_a.as_str()));
    let history = app.slipway(&["--json", "history", &app.env]).json();
    assert_eq!(history[0]["version"], release_b.as_str(), "{history:#}");
    assert_eq!(history[0]["status"], "rolled_back", "{history:#}");
    assert_eq!(history[0]["analysis"]["state"], "failed", "{history:#}");
    let failed = hooks.wait_for("analysis.failed for b", Duration::from_secs(30), |r| {
        event_is(r, "analysis.failed", &release_b)
    });
    assert_signed(&failed);
    assert!(
        failed.json()["data"]["message"]
            .as_str()
            .unwrap()
            .contains("5xx"),
        "{}",
        failed.body
    );
    let back = hooks.wait_for("deploy.rolled_back for b", Duration::from_secs(30), |r| {
        event_is(r, "deploy.rolled_back", &release_b)
    });
    assert_signed(&back);

    // Every channel can be tried by hand.
    let test = app.slipway(&["notify", "test", &app.env]);
    assert_eq!(test.code, 0, "{}", test.all());
    assert!(test.stdout.contains("delivered"), "{}", test.all());
    let probe = hooks.wait_for("notify.test", Duration::from_secs(10), |r| {
        r.json()["type"] == "notify.test"
    });
    assert_signed(&probe);
    let status = app.slipway(&["notify", "status", &app.env]);
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(
        status.stdout.contains("channel  webhook"),
        "{}",
        status.all()
    );
    assert!(
        !status.all().contains("canary-path-token"),
        "{}",
        status.all()
    );

    // The same release, and the CLI killed with SIGKILL right after the
    // switch: the agent finishes the analysis, switches back and notifies.
    app.commit_file("NOTES", "c\n", "release c");
    let release_c = app.head();
    let mut child = app.spawn(&[
        "--set",
        "app.env.EVENTS_SERVER_ERROR_EVERY=4",
        "--set",
        "deployment.watch_window=60s",
        "deploy",
        &app.env,
    ]);
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let hit = line.contains("✓ switch");
        seen.push(line);
        if hit {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("✓ switch")),
        "never switched: {seen:#?}"
    );
    let _ = std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let killed = Instant::now();
    let took = wait_serving(&app, &release_a, Duration::from_secs(60));
    eprintln!("without the CLI: traffic back on {release_a} {took:?} after the kill");
    let back = hooks.wait_for("deploy.rolled_back for c", Duration::from_secs(60), |r| {
        event_is(r, "deploy.rolled_back", &release_c)
    });
    assert_signed(&back);
    assert!(
        back.at >= killed,
        "notified by the host after the CLI was gone"
    );
    let status = app.slipway(&["status", &app.env]);
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(
        status.stderr.contains("analysis switched back"),
        "the repair names the analysis: {}",
        status.all()
    );
    assert!(status.stdout.contains("FAILED"), "{}", status.all());
    let history = app.slipway(&["--json", "history", &app.env]).json();
    let c = history
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["version"] == release_c.as_str())
        .expect("c in history");
    assert_eq!(c["status"], "rolled_back", "{history:#}");

    let (ok, failed) = finish_only_answered_failures(load);
    eprintln!("load: {ok} ok, {failed} planted 500s of the faulty releases, 0 connection errors");
    assert!(ok > 1000, "{ok}");
    for r in hooks.received() {
        assert!(!r.body.contains(WEBHOOK_SECRET), "{}", r.body);
        assert!(!r.body.contains("canary-path-token"), "{}", r.body);
    }
    for run in [&first, &b] {
        assert!(!run.all().contains("canary-path-token"), "{}", run.all());
        assert!(!run.all().contains(WEBHOOK_SECRET), "{}", run.all());
    }
    let agent_log = app.docker(&["logs", &format!("{}-{}-agent", app.name, app.env)]);
    assert!(!agent_log.contains("canary-path-token"));
    assert!(!agent_log.contains(WEBHOOK_SECRET));
}

#[test]
fn a_slower_release_raises_a_latency_alert_with_the_comparison() {
    let app = App::new("lat");
    let ntfy = Receiver::start();
    notify_to(&app, None, Some(&ntfy));
    for s in [
        "deployment.analysis.window=15s",
        "deployment.analysis.interval=5s",
        "deployment.analysis.min_requests=10",
        "deployment.analysis.on_failure=alert",
        "deployment.analysis.p95_floor=10ms",
    ] {
        app.set(s);
    }
    let first = app.slipway(&[
        "--set",
        "app.env.EVENTS_SERVER_DELAY_MS=20",
        "--set",
        "deployment.watch_window=1s",
        "deploy",
        &app.env,
    ]);
    assert_eq!(first.code, 0, "{}", first.all());
    let load = warm_load(&app, 200_000, Duration::from_secs(5));
    app.commit_file("NOTES", "slow\n", "slower release");
    let slow = app.head();
    let b = deploy_with(&app, "app.env.EVENTS_SERVER_DELAY_MS=250");
    // on_failure: alert: the deploy stands, and says what it saw. (20 ms
    // against 250 ms: on a machine loaded by parallel tests the baseline's
    // p95 is several times its planted delay.)
    assert_eq!(b.code, 0, "{}", b.all());
    assert!(b.stderr.contains("on_failure is `alert`"), "{}", b.all());
    let finding = b
        .stderr
        .lines()
        .find(|l| l.contains("p95") && l.contains("before") && l.contains('%'))
        .unwrap_or_else(|| panic!("no latency comparison: {}", b.all()));
    eprintln!("latency finding: {}", finding.trim());
    assert_eq!(app.serving().as_deref(), Some(slow.as_str()));
    let alert = ntfy.wait_for("a latency alert on ntfy", Duration::from_secs(30), |r| {
        r.json()["title"]
            .as_str()
            .is_some_and(|t| t.contains("is slower"))
    });
    let v = alert.json();
    assert_eq!(
        v["topic"],
        format!(
            "e2e-{}",
            app.name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        )
    );
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("p95 now") && message.contains("before") && message.contains('%'),
        "{v}"
    );
    assert!(v["priority"].as_u64().unwrap() >= 4, "{v}");
    assert_eq!(
        alert.header("authorization"),
        Some(format!("Bearer {NTFY_TOKEN}").as_str())
    );
    let status = app.slipway(&["status", &app.env]);
    assert!(status.stdout.contains("analysis"), "{}", status.all());
    assert!(status.stdout.contains("alert only"), "{}", status.all());
    // `watch` on a finished analysis: its report, and exit 1 for a failure.
    let watch = app.slipway(&["watch", &app.env]);
    assert_eq!(watch.code, 1, "{}", watch.all());
    assert!(watch.stdout.contains("FAILED of"), "{}", watch.all());
    assert!(watch.stderr.contains("slipway rollback"), "{}", watch.all());
    let (ok, failed, errors) = load.finish();
    eprintln!("load: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "{errors:?}");
}
