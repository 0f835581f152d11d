//! HTTPS at the host's entry point (issue 11): custom certificates, h1/h2
//! over ALPN, unknown names refused, port 80's challenge-then-redirect,
//! certificates from a real ACME server (pebble) over HTTP-01 and
//! TLS-ALPN-01, the CA's reason on failure, renewal under load, restarts
//! and upgrades without a failed HTTPS request.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::pebble::*;
use crate::util::*;

struct Gateway {
    agent: Agent,
    tls: SocketAddr,
}

/// An agent with `--tls-listen` on low ports (pebble dials them).
async fn gateway(dir: &std::path::Path, http: u16, tls: u16, extra: Vec<String>) -> Gateway {
    let listen: SocketAddr = format!("127.0.0.1:{http}").parse().expect("addr");
    let tls: SocketAddr = format!("127.0.0.1:{tls}").parse().expect("addr");
    let metrics: SocketAddr = format!("127.0.0.1:{}", low_port()).parse().expect("addr");
    let mut args = vec![
        "--tls-listen".to_string(),
        tls.to_string(),
        "--workers".into(),
        "2".into(),
    ];
    args.extend(extra);
    Gateway {
        agent: Agent::start_at(dir, listen, metrics, args).await,
        tls,
    }
}

fn serial_of(certs: &Value, host: &str) -> Option<String> {
    certs["result"]["certs"]
        .as_array()?
        .iter()
        .find(|c| c["host"] == host)?["serial"]
        .as_str()
        .map(str::to_owned)
}

fn write_pem(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write pem");
    path.display().to_string()
}

/// A gateway serving `app.test` (an echo upstream) with a certificate of a
/// fresh test CA, installed with `cert ensure` and `extra` flags. Returns
/// the CA, the certificate and key files, and the upstream's task.
async fn gateway_serving_app(
    dir: &std::path::Path,
    extra: &[&str],
) -> (Gateway, TestCa, [String; 2], tokio::task::JoinHandle<()>) {
    let gw = gateway(dir, low_port(), low_port(), vec![]).await;
    let (up, task) = echo_upstream("app").await;
    let (code, v) = deploy(
        &gw.agent,
        "app-production",
        up,
        "r1",
        &["--host", "app.test"],
    );
    assert_eq!(code, 0, "{v}");
    let ca = TestCa::new("custom test CA");
    let (cert, key) = ca.leaf(&["app.test"]);
    let files = [
        write_pem(dir, "app.crt", &cert),
        write_pem(dir, "app.key", &key),
    ];
    let mut args = vec![
        "cert",
        "ensure",
        "app.test",
        "--cert-file",
        &files[0],
        "--key-file",
        &files[1],
    ];
    args.extend_from_slice(extra);
    let (code, v) = gw.agent.ctl(&args);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["result"]["certs"][0]["source"], "custom");
    assert!(!v.to_string().contains("PRIVATE KEY"), "{v}");
    (gw, ca, files, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_certificate_serves_h1_and_h2_refuses_unknown_names_and_redirects_port_80() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gw, ca, [cert_file, key_file], _task) =
        gateway_serving_app(dir.path(), &["--hsts-max-age-secs", "600"]).await;

    // HTTP/1.1 and HTTP/2, chosen by ALPN; the app sees https.
    for (alpn, expected) in [(&b"http/1.1"[..], &b"http/1.1"[..]), (b"h2", b"h2")] {
        let config = client_config(ca_roots(&ca), &[alpn]);
        let a = https_get(gw.tls, "app.test", "/x", config)
            .await
            .expect("https");
        assert_eq!(a.alpn.as_deref(), Some(expected));
        assert_eq!((a.status, a.body.as_str()), (200, "app proto=https"));
        assert_eq!(a.headers["strict-transport-security"], "max-age=600");
    }

    // A name with no certificate: a TLS alert, never app.test's certificate.
    let config = client_config(ca_roots(&ca), &[b"h2"]);
    let err = connect(gw.tls, "other.test", config)
        .await
        .expect_err("refused");
    assert!(err.contains("alert"), "{err}");

    // Port 80: a host with a certificate is redirected, path and query kept;
    // the app never sees it.
    let client = client();
    let mut req = hyper::Request::get(format!("http://{}/a/b?q=1&r=2", gw.agent.listen));
    req = req.header("host", "app.test");
    let resp = client
        .request(
            req.body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("req"),
        )
        .await
        .expect("plain request");
    assert_eq!(resp.status(), 301);
    assert_eq!(
        resp.headers()["location"],
        format!("https://app.test:{}/a/b?q=1&r=2", gw.tls.port()).as_str()
    );

    // Opting out: plain HTTP goes to the app (which sees http).
    let (code, v) = gw.agent.ctl(&[
        "cert",
        "ensure",
        "app.test",
        "--cert-file",
        &cert_file,
        "--key-file",
        &key_file,
        "--no-redirect-http",
    ]);
    assert_eq!(code, 0, "{v}");
    let (status, _, body) = get(&client, &gw.agent.url("/a"), Some("app.test"))
        .await
        .expect("get");
    assert_eq!((status, body.as_str()), (200, "app proto=http"));

    // A certificate for another name is refused (exit 9) and changes nothing.
    let (other_cert, other_key) = ca.leaf(&["www.test"]);
    let (code, v) = gw.agent.ctl(&[
        "cert",
        "ensure",
        "app.test",
        "--cert-file",
        &write_pem(dir.path(), "w.crt", &other_cert),
        "--key-file",
        &write_pem(dir.path(), "w.key", &other_key),
    ]);
    assert_eq!(code, 9, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("not `app.test`"),
        "{v}"
    );

    // `raw -` reads the request (private key included) from stdin.
    let (wild_cert, wild_key) = ca.leaf(&["*.apps.test"]);
    let request = serde_json::json!({"verb": "cert_ensure", "host": "*.apps.test",
        "source": {"type": "custom", "cert_pem": wild_cert, "key_pem": wild_key}});
    let mut child = Command::new(BIN)
        .args(["ctl", "--socket"])
        .arg(&gw.agent.socket)
        .args(["raw", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ctl raw -");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("ctl");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The wildcard serves one label below it.
    let config = client_config(ca_roots(&ca), &[b"http/1.1"]);
    let a = connect(gw.tls, "blue.apps.test", config).await;
    assert!(a.is_ok(), "{:?}", a.err());

    // Failed handshakes are counted, not logged one by one.
    let metrics = reqwest_metrics(gw.agent.metrics).await;
    assert!(
        metrics.contains("slipway_tls_handshakes_total{result=\"failed\"} 1"),
        "{metrics}"
    );
}

async fn reqwest_metrics(addr: SocketAddr) -> String {
    let (_, _, body) = get(&client(), &format!("http://{addr}/metrics"), None)
        .await
        .expect("metrics");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_http01_certificate_verifies_against_pebbles_root_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (http, tls) = (low_port(), low_port());
    let pebble = start_pebble(dir.path(), http, tls, 3600).await;
    let mut gw = gateway(dir.path(), http, tls, agent_flags(&pebble)).await;
    let (up, _task) = echo_upstream("app").await;
    let (code, v) = deploy(
        &gw.agent,
        "app-production",
        up,
        "r1",
        &["--host", "app.test"],
    );
    assert_eq!(code, 0, "{v}");

    let (code, v) = gw.agent.ctl(&["cert", "ensure", "app.test"]);
    assert_eq!(code, 0, "{v}");
    let info = &v["result"]["certs"][0];
    assert_eq!(info["source"], "acme");
    assert!(
        info["issuer"].as_str().unwrap_or("").contains("Pebble"),
        "{v}"
    );
    assert!(
        info["next_renewal"].as_i64() < info["not_after"].as_i64(),
        "{v}"
    );
    let serial = serial_of(&gw.agent.ctl(&["cert", "list"]).1, "app.test").expect("serial");

    let root = issuing_root(&pebble).await;
    let a = https_get(
        gw.tls,
        "app.test",
        "/",
        client_config(root.clone(), &[b"h2"]),
    )
    .await
    .expect("https verified against pebble's root");
    assert_eq!(
        (a.status, a.body.as_str(), a.serial.as_str()),
        (200, "app proto=https", serial.as_str())
    );

    // Files on the state volume are private.
    let tls_dir = dir.path().join("state/tls");
    for entry in walk(&tls_dir) {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&entry)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        let expected = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, expected, "{}", entry.display());
    }

    // A restarted agent serves the stored certificate at once (no CA needed:
    // stop pebble first).
    drop(pebble);
    let (listen, metrics) = (gw.agent.listen, gw.agent.metrics);
    gw.agent.kill();
    let flags = vec!["--tls-listen".to_string(), gw.tls.to_string()];
    let agent = Agent::start_at(dir.path(), listen, metrics, flags).await;
    let a = https_get(gw.tls, "app.test", "/", client_config(root, &[b"http/1.1"]))
        .await
        .expect("https after restart");
    assert_eq!((a.status, a.serial.as_str()), (200, serial.as_str()));
    drop(agent);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_falls_back_to_tls_alpn_01_when_port_80_is_not_reachable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (http, tls, unreachable) = (low_port(), low_port(), low_port());
    // pebble dials a port nobody listens on for HTTP-01.
    let pebble = start_pebble(dir.path(), unreachable, tls, 3600).await;
    let gw = gateway(dir.path(), http, tls, agent_flags(&pebble)).await;
    let (code, v) = gw.agent.ctl(&["cert", "ensure", "alpn.test"]);
    assert_eq!(code, 0, "{v}");
    let root = issuing_root(&pebble).await;
    let a = connect(gw.tls, "alpn.test", client_config(root, &[b"h2"])).await;
    assert!(a.is_ok(), "{:?}", a.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_validation_failure_reports_the_cas_reason_and_serves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (http, tls) = (low_port(), low_port());
    let pebble = start_pebble(dir.path(), low_port(), low_port(), 3600).await;
    let gw = gateway(dir.path(), http, tls, agent_flags(&pebble)).await;
    let (code, v) = gw.agent.ctl(&["cert", "ensure", "broken.test"]);
    assert_eq!(code, 9, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert_eq!(v["error"]["kind"], "cert_failed");
    for part in [
        "could not validate `broken.test`",
        "http-01:",
        "tls-alpn-01:",
        "DNS for `broken.test`",
        "urn:ietf:params:acme:error",
    ] {
        assert!(message.contains(part), "missing {part:?} in {message}");
    }
    let (_, list) = gw.agent.ctl(&["cert", "list"]);
    assert_eq!(list["result"]["certs"], serde_json::json!([]), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificate_is_renewed_under_https_load_without_a_failed_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (http, tls) = (low_port(), low_port());
    // 60 s certificates: renewal after at most 40 s.
    let pebble = start_pebble(dir.path(), http, tls, 60).await;
    let gw = gateway(dir.path(), http, tls, agent_flags(&pebble)).await;
    let (up, _task) = echo_upstream("app").await;
    let (code, v) = deploy(
        &gw.agent,
        "app-production",
        up,
        "r1",
        &["--host", "app.test"],
    );
    assert_eq!(code, 0, "{v}");
    let (code, v) = gw.agent.ctl(&["cert", "ensure", "app.test"]);
    assert_eq!(code, 0, "{v}");
    let first = serial_of(&gw.agent.ctl(&["cert", "list"]).1, "app.test").expect("serial");
    let root = issuing_root(&pebble).await;

    // New connections (each a handshake) plus one long-lived h2 connection.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let serials = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (stop, ok, failed, serials, root) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            serials.clone(),
            root.clone(),
        );
        let addr = gw.tls;
        tasks.push(tokio::spawn(async move {
            let config = client_config(root, &[b"h2", b"http/1.1"]);
            while !stop.load(Ordering::SeqCst) {
                match https_get(addr, "app.test", "/", config.clone()).await {
                    Ok(a) if a.status == 200 => {
                        ok.fetch_add(1, Ordering::SeqCst);
                        serials.lock().expect("serials").insert(a.serial);
                    }
                    other => {
                        eprintln!("failed: {other:?}");
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let kept = connect(gw.tls, "app.test", client_config(root.clone(), &[b"h2"]))
        .await
        .expect("kept connection");
    let (mut kept, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(kept),
    )
    .await
    .expect("h2");
    tokio::spawn(conn);

    let renewed = eventually("the certificate renewed", Duration::from_secs(75), || {
        let agent = &gw.agent;
        let first = first.clone();
        async move { serial_of(&agent.ctl(&["cert", "list"]).1, "app.test").filter(|s| *s != first) }
    })
    .await;
    // New handshakes now present the new certificate...
    eventually(
        "clients see the new certificate",
        Duration::from_secs(5),
        || {
            let serials = serials.clone();
            let renewed = renewed.clone();
            async move {
                serials
                    .lock()
                    .expect("serials")
                    .contains(&renewed)
                    .then_some(())
            }
        },
    )
    .await;
    // ...and the connection opened before the renewal still works.
    let req = hyper::Request::get("https://app.test/kept")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("req");
    let resp = kept
        .send_request(req)
        .await
        .expect("kept connection still serves");
    assert_eq!(resp.status(), 200);

    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("load task");
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(ok > 100, "only {ok} requests");
    assert_eq!(failed, 0, "{failed} failed of {}", ok + failed);
    let (_, list) = gw.agent.ctl(&["cert", "list"]);
    assert!(list["result"]["certs"][0]["last_error"].is_null(), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listeners_are_handed_over_in_an_upgrade_without_a_failed_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gw, ca, _, _task) = gateway_serving_app(dir.path(), &[]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, roots) = (stop.clone(), ok.clone(), failed.clone(), ca_roots(&ca));
        let addr = gw.tls;
        tasks.push(tokio::spawn(async move {
            let config = client_config(roots, &[b"http/1.1"]);
            while !stop.load(Ordering::SeqCst) {
                match https_get(addr, "app.test", "/", config.clone()).await {
                    Ok(a) if a.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    other => {
                        eprintln!("failed: {other:?}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        }));
    }
    let wait_more = |n: u64| {
        let ok = ok.clone();
        async move {
            let at = ok.load(Ordering::SeqCst);
            eventually("more HTTPS requests", Duration::from_secs(10), || {
                let ok = ok.clone();
                async move { (ok.load(Ordering::SeqCst) > at + n).then_some(()) }
            })
            .await
        }
    };
    wait_more(50).await;

    // The successor gets the TLS listeners too (no --tls-listen bind of its own
    // would be needed; it is given the same flags as the CLI would).
    let socket = dir.path().join("successor.sock");
    let args = vec![
        "--take-over".to_string(),
        "--tls-listen".into(),
        gw.tls.to_string(),
    ];
    let child = Agent::command(
        dir.path(),
        gw.agent.listen,
        gw.agent.metrics,
        &socket,
        &args,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("successor");
    let successor = Agent {
        child,
        listen: gw.agent.listen,
        metrics: gw.agent.metrics,
        socket,
    };
    eventually(
        "successor beside its predecessor",
        Duration::from_secs(10),
        || async {
            let (code, v) = successor.ctl(&["version"]);
            (code == 0 && v["result"]["role"] == "taking_over").then_some(())
        },
    )
    .await;
    wait_more(50).await;
    let status = Command::new("kill")
        .args(["-TERM", &gw.agent.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    eventually(
        "successor owns everything",
        Duration::from_secs(15),
        || async {
            let (_, v) = successor.ctl(&["version"]);
            (v["result"]["role"] == "serving").then_some(())
        },
    )
    .await;
    wait_more(50).await;
    let (code, v) = successor.ctl(&["cert", "list"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["result"]["certs"][0]["host"], "app.test");

    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("load task");
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(failed, 0, "{failed} failed of {}", ok + failed);
    drop(gw);
}
