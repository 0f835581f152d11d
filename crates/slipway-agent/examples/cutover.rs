//! Cutover benchmark: bounded continuous load against the agent while it
//! switches between two upstream processes 20 times. Passes when no request
//! failed and no request sent after a switch answered reached the old
//! upstream: each request carries its send time, each upstream records send
//! and arrival times, and a request sent after switch k returned that
//! arrived before switch k+1 swapped the route must be at switch k's target.
//! (Arriving later, it may rightly be at k+1's target: the load is
//! continuous, so a request can be sent before a switch and admitted after.)
//!
//! Run through `benches/agent/cutover.sh` (builds the release binaries).
//! Args: `[switches=20] [clients=32] [gap_ms=250]`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use slipway_core::admin::{AdminRequest, AdminResponse, AdminResult, DeployArgs, HealthCheck};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_port(port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < end, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("numeric args"));
    let switches = args.next().unwrap_or(20);
    let clients = args.next().unwrap_or(32);
    let gap = Duration::from_millis(args.next().unwrap_or(250));

    let exe = std::env::current_exe().expect("exe");
    let examples = exe.parent().expect("examples dir");
    let agent_bin = examples
        .parent()
        .expect("profile dir")
        .join("slipway-agent");
    let upstream_bin = examples.join("bench_upstream");
    let dir = tempfile::tempdir().expect("tempdir");

    let ports = [free_port(), free_port()];
    let names = ["blue", "green"];
    let _upstreams: Vec<Kill> = ports
        .iter()
        .zip(names)
        .map(|(p, n)| {
            Kill(
                Command::new(&upstream_bin)
                    .arg(format!("127.0.0.1:{p}"))
                    .arg(n)
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn upstream"),
            )
        })
        .collect();
    let (listen, metrics) = (free_port(), free_port());
    let socket = dir.path().join("admin.sock");
    let _agent = Kill(
        Command::new(&agent_bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{listen}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--socket")
            .arg(&socket)
            .args(["--access-log", "off"])
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn agent"),
    );
    for p in [ports[0], ports[1], listen] {
        wait_port(p).await;
    }
    let end = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < end, "no admin socket");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let deploy = |k: u64| {
        let socket = socket.clone();
        let port = ports[(k % 2) as usize];
        async move {
            let req = AdminRequest::Deploy(DeployArgs {
                app: "bench".into(),
                target: format!("127.0.0.1:{port}"),
                release: format!("r{k}"),
                slot: Some(names[(k % 2) as usize].into()),
                hosts: vec![],
                health: HealthCheck {
                    passes: 1,
                    interval_ms: 50,
                    ..HealthCheck::default()
                },
                drain_timeout_ms: 30_000,
                analysis: None,
            });
            let (line, resp) = slipway_agent::ctl::send(&socket, &req)
                .await
                .expect("admin");
            match resp {
                AdminResponse::Ok {
                    result: AdminResult::Switched(report),
                } => report,
                _ => panic!("deploy failed: {line}"),
            }
        }
    };
    deploy(0).await;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
        tasks.push(tokio::spawn(async move {
            let client: Client<HttpConnector, Empty<Bytes>> =
                Client::builder(TokioExecutor::new()).build(HttpConnector::new());
            let url = format!("http://127.0.0.1:{listen}/");
            while !stop.load(Ordering::Relaxed) {
                let req = Request::get(&url)
                    .header("x-sent-at", now_ns().to_string())
                    .body(Empty::new())
                    .expect("request");
                let good = match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        resp.into_body().collect().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let load_started = Instant::now();
    tokio::time::sleep(gap).await;
    // (swapped_at, returned_at, target index) per switch; switch 0
    // happened before the load.
    let mut windows = vec![(0u64, now_ns(), 0usize)];
    let mut switch_ms = Vec::new();
    for k in 1..=switches {
        let report = deploy(k).await;
        windows.push((report.switched_at_unix_nanos, now_ns(), (k % 2) as usize));
        switch_ms.push(report.duration_ms);
        tokio::time::sleep(gap).await;
    }
    stop.store(true, Ordering::SeqCst);
    let stopped = now_ns();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = load_started.elapsed();

    let fetch = |port: u16| async move {
        let client: Client<HttpConnector, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let uri = format!("http://127.0.0.1:{port}/__arrivals");
        let resp = client
            .request(Request::get(uri).body(Empty::new()).expect("req"))
            .await
            .expect("arrivals");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice::<Vec<(u64, u64)>>(&body).expect("json")
    };
    let arrivals = [fetch(ports[0]).await, fetch(ports[1]).await];

    // Sent after switch k returned and arrived before switch k+1 swapped:
    // must be at target_k.
    let mut violations = 0;
    let mut checked = 0;
    for (k, w) in windows.iter().enumerate() {
        let sent_after = w.1;
        let arrived_before = windows.get(k + 1).map_or(stopped, |n| n.0);
        let in_window =
            |(sent, arrived): &&(u64, u64)| *sent >= sent_after && *arrived < arrived_before;
        let old = 1 - w.2;
        checked += arrivals[w.2].iter().filter(in_window).count();
        let bad = arrivals[old].iter().filter(in_window).count();
        if bad > 0 {
            eprintln!("switch {k}: {bad} requests sent after it reached the old upstream");
        }
        violations += bad;
    }
    switch_ms.sort_unstable();
    let total = ok.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst);
    let failed = failed.load(Ordering::SeqCst);
    println!(
        "cutover: {switches} switches under {clients} clients, {total} requests in {:.1} s ({:.0} req/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!("failed requests: {failed}");
    println!(
        "requests sent after a switch returned, checked for their upstream: {checked}; reached the old upstream: {violations}"
    );
    println!(
        "switch duration (health check + swap) ms: min {} median {} max {}",
        switch_ms.first().unwrap_or(&0),
        switch_ms.get(switch_ms.len() / 2).unwrap_or(&0),
        switch_ms.last().unwrap_or(&0)
    );
    println!(
        "per upstream: {} blue, {} green",
        arrivals[0].len(),
        arrivals[1].len()
    );
    // Exit through `main`'s return so the child processes are killed.
    if failed > 0 || violations > 0 {
        eprintln!("cutover FAILED");
        drop((_upstreams, _agent));
        std::process::exit(1);
    }
}
