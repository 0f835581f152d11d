//! HTTPS on real domain names through the host's shared entry point, with a
//! real ACME server (Debian's `pebble`, its DNS answering 127.0.0.1 for
//! every name): two apps on one engine under two hostnames, one with an
//! ACME certificate and one with the operator's own, HTTP redirected, and
//! the second deployed and rolled back while the first is under HTTPS load
//! with zero failed requests. The entry point gets a name and ports of its
//! own, so this test shares nothing with another entry point on the engine.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use slipway_testkit::pebble::{Pebble, PebbleOptions, TestCa};

use crate::harness::App;
use crate::load::Load;

/// `curl` to the entry point for `host`, resolved to 127.0.0.1:`port`.
fn curl(host: &str, port: u16, url: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-D", "-", "--resolve"])
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The serial of the certificate the entry point serves for `host`.
fn served_issuer(host: &str, port: u16, root: &Path) -> String {
    let (out, err) = curl(
        host,
        port,
        &format!("https://{host}:{port}/health"),
        &[
            "-v",
            "-o",
            "/dev/null",
            "--cacert",
            root.to_str().expect("utf-8"),
        ],
    );
    format!("{out}{err}")
        .lines()
        .find(|l| l.contains("issuer:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn two_apps_on_one_host_get_https_and_one_deploys_without_failing_the_others_requests() {
    // Dropped last: the apps' edges leave the entry point's network first.
    let mut guard = EntryPointGuard(String::new());
    let a = App::new("tlsa");
    let b = App::new("tlsb");
    // Ports of this test's own entry point and pebble, from a's unique port.
    let (http_port, https_port) = (a.port + 4000, a.port + 5000);
    let pebble_dir = tempfile::tempdir().expect("tempdir");
    let base = a.port + 6000;
    let pebble = Pebble::start(
        pebble_dir.path(),
        &PebbleOptions {
            // Reached from the entry point's container as host.docker.internal.
            listen_host: "0.0.0.0".into(),
            http_port,
            tls_port: https_port,
            ..PebbleOptions::new([base, base + 1, base + 2, base + 3])
        },
    );
    let entry = format!("{}-gw", a.name);
    let (host_a, host_b) = (
        format!("{}.slipway.test", a.name),
        format!("{}.slipway.test", b.name),
    );
    let custom_ca = TestCa::new("operator's own CA");
    let (cert, key) = custom_ca.leaf(&[&format!("*.{}", "slipway.test")]);
    std::fs::write(b.root().join("wild.crt"), cert).expect("cert");
    std::fs::write(b.root().join("wild.key"), key).expect("key");
    std::fs::write(
        b.root().join(".gitignore"),
        "ctx/\ndeploy/config/environments/.env.*\nwild.*\n",
    )
    .expect("gitignore");
    b.commit_all("ignore the key");
    let custom_root = b.root().join("custom-root.pem");
    std::fs::write(&custom_root, &custom_ca.cert_pem).expect("root");
    for (app, host) in [(&a, &host_a), (&b, &host_b)] {
        app.set(format!("deployment.hostnames=[{host}]"));
        app.set(format!("providers.docker.entry_point.name={entry}"));
        app.set(format!(
            "providers.docker.entry_point.http_port={http_port}"
        ));
        app.set(format!(
            "providers.docker.entry_point.https_port={https_port}"
        ));
        app.set(format!(
            "acme.directory=https://host.docker.internal:{}/dir",
            pebble.listen_port()
        ));
        app.set(format!("acme.ca_root={}", pebble.api_root().display()));
        app.set("acme.email=ops@example.org");
    }
    b.set("deployment.tls.cert=wild.crt");
    b.set("deployment.tls.key=wild.key");
    guard.0 = entry.clone();

    // a: an ACME certificate, obtained before the switch.
    let run = a.deploy();
    assert_eq!(run.code, 0, "{}\npebble: {}", run.all(), pebble.log());
    assert!(run.stderr.contains("https"), "{}", run.all());
    let root = pebble_dir.path().join("issuing-root.pem");
    std::fs::write(&root, pebble.issuing_root_pem()).expect("root");
    let (out, err) = curl(
        &host_a,
        https_port,
        &format!("https://{host_a}:{https_port}/health"),
        &["--cacert", root.to_str().expect("utf-8")],
    );
    assert!(
        out.starts_with("HTTP/2 200") || out.starts_with("HTTP/1.1 200"),
        "{out}{err}"
    );
    assert!(
        served_issuer(&host_a, https_port, &root).contains("Pebble"),
        "{}",
        pebble.log()
    );
    // Plain HTTP is redirected, path and query kept.
    let (out, _) = curl(
        &host_a,
        http_port,
        &format!("http://{host_a}:{http_port}/version?x=1"),
        &[],
    );
    assert!(out.starts_with("HTTP/1.1 301"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains(&format!(
            "location: https://{host_a}:{https_port}/version?x=1"
        )),
        "{out}"
    );
    // An unknown name gets no certificate at all.
    let (_, err) = curl(
        "unknown.slipway.test",
        https_port,
        &format!("https://unknown.slipway.test:{https_port}/health"),
        &["-k", "-v"],
    );
    assert!(err.contains("alert") || err.contains("SSL"), "{err}");
    let status = a.status_json();
    assert_eq!(
        status["certificates"][0]["host"],
        host_a.as_str(),
        "{status}"
    );
    assert_eq!(status["certificates"][0]["source"], "acme", "{status}");

    // b: the operator's own (wildcard) certificate, beside a's ACME one,
    // deployed, redeployed and rolled back while a is under HTTPS load.
    let addr: SocketAddr = format!("127.0.0.1:{https_port}").parse().expect("addr");
    let root_pem = std::fs::read_to_string(&root).expect("root");
    let load = Load::start_https(
        addr,
        &host_a,
        "/version",
        &root_pem,
        3,
        200_000,
        Duration::from_millis(3),
    );
    let run = b.deploy();
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        served_issuer(&host_b, https_port, &custom_root).contains("operator's own CA"),
        "b serves its own certificate"
    );
    // A certificate that does not cover b's name: the deploy stops at the
    // https step, before anything moves; b keeps its certificate and release.
    let (good_cert, good_key) = (
        std::fs::read(b.root().join("wild.crt")).expect("cert"),
        std::fs::read(b.root().join("wild.key")).expect("key"),
    );
    let (wrong_cert, wrong_key) = custom_ca.leaf(&["elsewhere.example.org"]);
    std::fs::write(b.root().join("wild.crt"), wrong_cert).expect("cert");
    std::fs::write(b.root().join("wild.key"), wrong_key).expect("key");
    let serving_before = b.status_json()["current_deployment"]["version"].clone();
    let run = b.deploy();
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(&format!("no certificate for {host_b}"))
            && run.stderr.contains("traffic stayed"),
        "{}",
        run.all()
    );
    assert_eq!(
        b.status_json()["current_deployment"]["version"],
        serving_before
    );
    assert!(served_issuer(&host_b, https_port, &custom_root).contains("operator's own CA"));
    std::fs::write(b.root().join("wild.crt"), good_cert).expect("cert");
    std::fs::write(b.root().join("wild.key"), good_key).expect("key");

    b.commit_file("NOTES.md", "a second release\n", "second release");
    let run = b.deploy();
    assert_eq!(run.code, 0, "{}", run.all());
    let run = b.slipway(&["rollback", &b.env, "--yes"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let (out, err) = curl(
        &host_b,
        https_port,
        &format!("https://{host_b}:{https_port}/health"),
        &["--cacert", custom_root.to_str().expect("utf-8")],
    );
    assert!(out.contains(" 200"), "{out}{err}");
    // Both status views name b's certificate: its source and issuer.
    let run = b.slipway(&["agent", "status", &b.env]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(&format!("https    {host_b}: custom"))
            && run.stdout.contains("operator's own CA"),
        "{}",
        run.all()
    );
    let run = b.slipway(&["status", &b.env]);
    assert!(
        run.stdout.contains(&format!("https     {host_b}: custom")),
        "{}",
        run.all()
    );
    // b is destroyed while a is under load: the entry point lets b's name
    // go (no route to a missing edge, no certificate renewed for nobody).
    let run = b.slipway(&["destroy", &b.env, "--yes"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains(&format!("no longer routes {host_b}")),
        "{}",
        run.all()
    );
    let routes = Command::new("docker")
        .args(["exec", &entry, "slipway-agent", "ctl", "routes"])
        .output()
        .expect("ctl routes");
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(
        !routes.contains(&format!("{}-{}", b.name, b.env)),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("{}-{}", a.name, a.env)),
        "{routes}"
    );
    let (out, err) = curl(
        &host_b,
        https_port,
        &format!("https://{host_b}:{https_port}/health"),
        &["--cacert", custom_root.to_str().expect("utf-8")],
    );
    assert!(!out.contains(" 200") && !out.contains(" 502"), "{out}{err}");
    let (ok, failed, errors) = load.finish();
    assert!(ok > 100, "the load ran: {ok} ok");
    assert_eq!(
        failed, 0,
        "a's requests failed while b deployed: {errors:?}"
    );
    // a still serves the same certificate (the entry point kept it).
    assert!(served_issuer(&host_a, https_port, &root).contains("Pebble"));
    eprintln!(
        "a under load during b's two deploys, rollback and destroy: {ok} requests, {failed} failed"
    );
}

/// Removes this test's entry point (its containers, network and volume).
struct EntryPointGuard(String);

impl Drop for EntryPointGuard {
    fn drop(&mut self) {
        let name = &self.0;
        if name.is_empty() {
            return;
        }
        for c in [name.clone(), format!("{name}-edge"), format!("{name}-next")] {
            let _ = Command::new("docker").args(["rm", "-f", &c]).output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &format!("{name}-net")])
            .output();
        let _ = Command::new("docker")
            .args(["volume", "rm", &format!("{name}-state")])
            .output();
    }
}
