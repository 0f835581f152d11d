//! The built `events-server` binary: configuration is checked before the port
//! is bound (exit 2, the variable named, its value never printed), a valid
//! configuration serves, and SIGTERM ends it cleanly with exit 0.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, JWT_SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_events-server");
const URL_WITH_CANARY: &str = "postgres://app:pw-canary-7f3a@127.0.0.1:1/events";

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn spawn(env: &[(&str, &str)], args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        // Nothing inherited: the test's own environment must not change the result.
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn events-server")
}

/// Waits for `child` to exit, at most `deadline` (killed and failed after).
fn finish(mut child: Child, deadline: Duration) -> Finished {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("events-server still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).expect("read stdout");
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr).expect("read stderr");
    }
    Finished {
        status,
        stdout,
        stderr,
    }
}

fn run(env: &[(&str, &str)]) -> Finished {
    finish(spawn(env, &[]), Duration::from_secs(20))
}

/// A port held open on 0.0.0.0 for the test's duration: if the binary tried
/// to bind it, it would fail with "could not listen" and exit 1.
fn held_port() -> (TcpListener, String) {
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    (listener, port)
}

#[test]
fn short_jwt_secret_exits_2_before_binding_and_never_prints_it() {
    let (_held, port) = held_port();
    let out = run(&[
        ("DATABASE_URL", URL_WITH_CANARY),
        ("JWT_SECRET", "jwt-canary-too-short"),
        ("PORT", &port),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("JWT_SECRET"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("jwt-canary"),
        "secret leaked: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("pw-canary"),
        "password leaked: {}",
        out.stderr
    );
    // Refused by validation, not by the (held) port.
    assert!(!out.stderr.contains("could not listen"), "{}", out.stderr);
}

#[test]
fn the_held_port_would_be_noticed_with_a_valid_configuration() {
    // The control for the test above: with valid configuration the binary
    // does reach the bind, fails on the held port, and says so.
    let (_held, port) = held_port();
    let out = run(&[
        ("DATABASE_URL", URL_WITH_CANARY),
        ("JWT_SECRET", JWT_SECRET),
        ("PORT", &port),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("could not listen"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("pw-canary"),
        "password leaked: {}",
        out.stderr
    );
}

#[test]
fn missing_or_malformed_database_url_exits_2_naming_it() {
    let out = run(&[("JWT_SECRET", JWT_SECRET)]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("DATABASE_URL"), "{}", out.stderr);

    let out = run(&[
        (
            "DATABASE_URL",
            "postgres://app:pw-canary-7f3a@db:notaport/x",
        ),
        ("JWT_SECRET", JWT_SECRET),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("DATABASE_URL"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("pw-canary"),
        "password leaked: {}",
        out.stderr
    );
}

#[test]
fn version_flag_prints_the_embedded_metadata() {
    let out = finish(spawn(&[], &["--version"]), Duration::from_secs(10));
    assert!(out.status.success());
    assert!(out.stdout.starts_with("events-server "), "{}", out.stdout);
    assert!(
        out.stdout.contains(events_server::version::GIT_COMMIT),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_configuration_serves_until_sigterm_then_exits_0() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port().to_string()
    };
    let child = spawn(
        &[
            ("DATABASE_URL", URL_WITH_CANARY),
            ("JWT_SECRET", JWT_SECRET),
            ("PORT", &port),
            ("SLOT", "blue"),
        ],
        &[],
    );
    let base = format!("http://127.0.0.1:{port}");
    support::poll_status(&format!("{base}/healthz"), 200, Duration::from_secs(15)).await;
    let version = support::get(&format!("{base}/version")).await.json();
    assert_eq!(version["git_commit"], events_server::version::GIT_COMMIT);
    let health = support::get(&format!("{base}/health")).await;
    assert_eq!(health.status, 503, "the database at port 1 is unreachable");
    assert_eq!(health.json()["slot"], "blue");

    // `selftest`, the smoke test a deploy runs inside the container: it
    // passes on paths that answer 2xx (and a /version of this binary), and
    // fails with what it saw on the unhealthy /health.
    let passes = finish(
        spawn(&[("PORT", &port)], &["selftest", "/healthz", "/version"]),
        Duration::from_secs(20),
    );
    assert_eq!(passes.status.code(), Some(0), "{}", passes.stderr);
    assert!(
        passes.stdout.contains("GET /version → 200"),
        "{}",
        passes.stdout
    );
    let fails = finish(
        spawn(&[("PORT", &port)], &["selftest"]),
        Duration::from_secs(20),
    );
    assert_eq!(fails.status.code(), Some(1), "{}", fails.stdout);
    assert!(
        fails.stderr.contains("GET /health answered 503"),
        "{}",
        fails.stderr
    );
    assert!(!fails.stderr.contains("pw-canary"), "{}", fails.stderr);

    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(15)))
        .await
        .expect("finish panicked");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("shutdown requested"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("pw-canary"),
        "password leaked: {}",
        out.stderr
    );
}
