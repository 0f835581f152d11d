//! End-to-end: the remote-engine path. A real sshd on 127.0.0.1 (started by
//! scripts/sshd-for-tests.sh on a free port, keys in a temp dir) fronts this
//! machine's engine, and the real `slipway` binary deploys events-server to
//! it through `ssh://`, twice, reading status over SSH too. The engine is the
//! local one, so the public port is checked from here with curl.
//!
//! Nothing global is touched: ssh finds the alias, port and key through a
//! config file given with `-F` by an `ssh` wrapper first on this test's
//! `PATH` (bollard's connector and the docker CLI both run `ssh` from
//! `PATH`). An operator gets the same with a `Host` alias in ~/.ssh/config.

// The same throwaway repository as the local-engine deploy tests.
#[path = "../deploy/harness.rs"]
mod harness;
#[path = "../deploy/load.rs"]
mod load;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{App, Run, workspace_root};

/// The alias in the generated ssh config.
const ALIAS: &str = "slipway-test";

/// A running test sshd; stopped (with its sessions) on drop.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    path: String,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().expect("temp dir");
        // A port the kernel just handed out and released: free unless another
        // process grabs it in between, which the script's check would report.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let out = Command::new(workspace_root().join("scripts/sshd-for-tests.sh"))
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .expect("run scripts/sshd-for-tests.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "scripts/sshd-for-tests.sh failed:\n{stdout}\n{stderr}"
        );
        let config = dir.path().join("ssh_config");
        assert!(
            stdout.contains(&format!("SLIPWAY_TEST_SSH_CONFIG={}", config.display())),
            "the script must print the exports callers use:\n{stdout}"
        );
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let wrapper = bin.join("ssh");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F '{}' \"$@\"\n",
                config.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Sshd { dir, port, path }
    }

    fn url(&self) -> String {
        format!("ssh://{ALIAS}")
    }

    /// What every remote command needs: the wrapper first on PATH, and the
    /// docker CLI (snapshots run pg_dump through it) on the same engine.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("PATH", self.path.clone()), ("DOCKER_HOST", self.url())]
    }

    fn pid(&self) -> Option<String> {
        fs::read_to_string(self.dir.path().join("sshd.pid"))
            .ok()
            .map(|p| p.trim().to_string())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let Some(pid) = self.pid() else { return };
        // The listener first, then the per-connection sshd children it forked
        // (ssh control masters left by the clients end with them).
        let children = Command::new("ps")
            .args(["-o", "pid=", "--ppid", &pid])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let _ = Command::new("kill").arg(&pid).status();
        for child in children.split_whitespace() {
            let _ = Command::new("kill").arg(child).status();
        }
    }
}

/// Runs slipway against the SSH engine.
fn remote(app: &App, sshd: &Sshd, args: &[&str]) -> Run {
    let host = format!("providers.docker.host={}", sshd.url());
    let mut all = vec!["--set", host.as_str()];
    all.extend_from_slice(args);
    let env = sshd.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.slipway_env(&all, &env)
}

fn remote_status(app: &App, sshd: &Sshd) -> serde_json::Value {
    let run = remote(app, sshd, &["--json", "status", &app.env]);
    assert_eq!(run.code, 0, "status over ssh: {}", run.all());
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.all()))
}

/// Polls the public port until it serves `release` (the switch is done when
/// deploy returns, but over SSH the CLI does not probe the port itself).
fn wait_serving(app: &App, release: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let serving = app.serving();
        if serving.as_deref() == Some(release) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} still serves {serving:?}, expected {release}",
            app.url("/version")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/version` answers 200 with JSON through the public port; which release
/// answered is the agent's `x-slipway-release` header ([`wait_serving`]),
/// since the body names the events-server build, not the app's commit.
fn curl_version(app: &App) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-sf", "-m", "5", &app.url("/version")])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {} failed: {}",
        app.url("/version"),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "/version is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn deploys_twice_over_ssh_and_switches_slots() {
    let started = Instant::now();
    let sshd = Sshd::start();
    let app = App::new("ssh");
    eprintln!("sshd and app ready in {:?}", started.elapsed());

    // A port in the URL cannot reach ssh through bollard; the CLI says so
    // and how to fix it, instead of "client error (Connect)".
    let with_port = format!("providers.docker.host=ssh://root@127.0.0.1:{}", sshd.port);
    let env = sshd.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = app.slipway_env(&["--set", &with_port, "status", &app.env], &env);
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(
        refused.all().contains(&format!("Port {}", sshd.port)),
        "the error must point at a Host alias with the port:\n{}",
        refused.all()
    );

    // An unknown key is named before ssh is run.
    let missing: PathBuf = sshd.dir.path().join("no-such-key");
    let mut bad_key = env.clone();
    let missing_text = missing.display().to_string();
    bad_key.push(("SLIPWAY_SSH_IDENTITY", &missing_text));
    let host = format!("providers.docker.host={}", sshd.url());
    let refused = app.slipway_env(&["--set", &host, "status", &app.env], &bad_key);
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(
        refused.all().contains("SLIPWAY_SSH_IDENTITY"),
        "{}",
        refused.all()
    );

    // First deploy from nothing, over ssh.
    let t = Instant::now();
    let first = remote(&app, &sshd, &["deploy", &app.env]);
    assert_eq!(first.code, 0, "first deploy over ssh: {}", first.all());
    eprintln!("first deploy over ssh: {:?}\n{}", t.elapsed(), first.stderr);
    let release_a = app.head();
    let status = remote_status(&app, &sshd);
    assert_eq!(status["current_deployment"]["version"], release_a.as_str());
    let slot_a = status["current_deployment"]["active_slot"]
        .as_str()
        .expect("active_slot")
        .to_string();
    wait_serving(&app, &release_a, Duration::from_secs(10));
    assert!(curl_version(&app).is_object());

    // A second deploy of a new commit goes to the other slot.
    app.commit_file("NOTES.md", "second release over ssh\n", "second");
    let release_b = app.head();
    assert_ne!(release_a, release_b);
    let t = Instant::now();
    let second = remote(&app, &sshd, &["deploy", &app.env]);
    assert_eq!(second.code, 0, "second deploy over ssh: {}", second.all());
    eprintln!(
        "second deploy over ssh: {:?}\n{}",
        t.elapsed(),
        second.stderr
    );
    let status = remote_status(&app, &sshd);
    assert_eq!(status["current_deployment"]["version"], release_b.as_str());
    assert_eq!(status["previous_deployment"]["version"], release_a.as_str());
    let slot_b = status["current_deployment"]["active_slot"]
        .as_str()
        .expect("active_slot");
    assert_ne!(slot_a, slot_b, "the second deploy must use the other slot");
    assert_eq!(status["lock"]["locked"], false);
    wait_serving(&app, &release_b, Duration::from_secs(10));
    assert!(curl_version(&app).is_object());

    // A release whose 5xx ratio rises after the switch, under load: the
    // analysis runs in the agent on the host, not in the CLI (which cannot
    // reach the public port over SSH), and switches back by itself.
    let load = load::Load::start(&app.url("/version"), 2, 100_000, Duration::from_millis(2));
    app.commit_file(
        "NOTES.md",
        "a release that fails after its switch\n",
        "third",
    );
    let t = Instant::now();
    let third = remote(
        &app,
        &sshd,
        &[
            "--set",
            "app.env.EVENTS_SERVER_ERROR_EVERY=4",
            "--set",
            "deployment.analysis.window=30s",
            "--set",
            "deployment.analysis.interval=5s",
            "--set",
            "deployment.analysis.min_requests=10",
            "--set",
            "deployment.watch_window=60s",
            "deploy",
            &app.env,
        ],
    );
    eprintln!("third deploy over ssh: {:?}\n{}", t.elapsed(), third.stderr);
    assert_eq!(third.code, 1, "{}", third.all());
    assert!(
        third.stderr.contains("failed at step `watch`"),
        "{}",
        third.all()
    );
    assert!(third.stderr.contains("switched back to"), "{}", third.all());
    wait_serving(&app, &release_b, Duration::from_secs(10));
    let status = remote_status(&app, &sshd);
    assert_eq!(status["current_deployment"]["version"], release_b.as_str());
    assert_eq!(status["analysis"]["state"], "failed", "{status:#}");
    let mut load = load;
    load.stop();
    let answered = load.answered_failures();
    let (ok, failed, errors) = load.finish();
    assert_eq!(
        failed, answered,
        "connection errors or timeouts: {errors:?}"
    );
    eprintln!("load: {ok} ok, {failed} planted 500s, 0 connection errors");
    assert!(ok > 100, "{ok}");
    eprintln!("total {:?}", started.elapsed());
}
