//! Test support: the real agent binary in a fresh temp dir per test, small
//! hyper upstreams (plain, slow, failing, WebSocket echo), a client, and
//! polling with deadlines (never sleeps as synchronisation).

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

pub const BIN: &str = env!("CARGO_BIN_EXE_slipway-agent");

/// A free loopback port (bound then released; the agent binds it next).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Poll `f` until it returns Some, or panic at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Agent {
    pub child: Child,
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    pub socket: PathBuf,
}

impl Agent {
    pub async fn start(dir: &Path, extra: &[&str]) -> Agent {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        Self::start_at(
            dir,
            listen,
            metrics,
            extra.iter().map(|s| s.to_string()).collect(),
        )
        .await
    }

    pub async fn start_at(
        dir: &Path,
        listen: SocketAddr,
        metrics: SocketAddr,
        extra: Vec<String>,
    ) -> Agent {
        let socket = dir.join("admin.sock");
        let child = Self::command(dir, listen, metrics, &socket, &extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn agent");
        let agent = Agent {
            child,
            listen,
            metrics,
            socket,
        };
        let sock = agent.socket.clone();
        eventually("agent admin socket", Duration::from_secs(10), || {
            let sock = sock.clone();
            async move {
                let out = ctl_at(&sock, &["version"]);
                (out.0 == 0).then_some(())
            }
        })
        .await;
        agent
    }

    pub fn command(
        dir: &Path,
        listen: SocketAddr,
        metrics: SocketAddr,
        socket: &Path,
        extra: &[String],
    ) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--metrics-listen")
            .arg(metrics.to_string())
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(socket)
            .arg("--access-log")
            .arg("off")
            .args(extra);
        cmd
    }

    /// `slipway-agent ctl <args>` → (exit code, parsed JSON stdout).
    pub fn ctl(&self, args: &[&str]) -> (i32, Value) {
        ctl_at(&self.socket, args)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn ctl_at(socket: &Path, args: &[&str]) -> (i32, Value) {
    let out: Output = Command::new(BIN)
        .arg("ctl")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run ctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(text.trim()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

/// Deploy with a fast health check.
pub fn deploy(
    agent: &Agent,
    app: &str,
    target: SocketAddr,
    release: &str,
    extra: &[&str],
) -> (i32, Value) {
    let target = target.to_string();
    let mut args = vec![
        "deploy",
        app,
        "--target",
        &target,
        "--release",
        release,
        "--health-passes",
        "1",
        "--health-interval-ms",
        "50",
        "--health-deadline-ms",
        "2000",
    ];
    args.extend_from_slice(extra);
    agent.ctl(&args)
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// GET → (status, release header, body).
pub async fn get(
    client: &HttpClient,
    url: &str,
    host: Option<&str>,
) -> Result<(u16, String, String), String> {
    let mut req = Request::get(url);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let release = resp
        .headers()
        .get("x-slipway-release")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, release, String::from_utf8_lossy(&body).into_owned()))
}

/// A test upstream: answers `<name>` on any path, `/health` with the
/// configured status, `/slow?ms=N` after N ms, `/ws` as a WebSocket echo
/// that prefixes `<name>:`. Counts requests.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicU64>,
    pub health_status: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicU64::new(0));
        let health_status = Arc::new(AtomicU16::new(200));
        let name: Arc<str> = Arc::from(name);
        let task = tokio::spawn({
            let hits = Arc::clone(&hits);
            let health_status = Arc::clone(&health_status);
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (name, hits, health_status) = (
                        Arc::clone(&name),
                        Arc::clone(&hits),
                        Arc::clone(&health_status),
                    );
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            answer(
                                Arc::clone(&name),
                                Arc::clone(&hits),
                                Arc::clone(&health_status),
                                req,
                            )
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .with_upgrades()
                            .await;
                    });
                }
            }
        });
        Upstream {
            addr,
            hits,
            health_status,
            task,
        }
    }
}

async fn answer(
    name: Arc<str>,
    hits: Arc<AtomicU64>,
    health_status: Arc<AtomicU16>,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_owned();
    if path == "/health" {
        let code = health_status.load(Ordering::SeqCst);
        let mut resp = Response::new(Full::new(Bytes::from(if code == 200 {
            "ok"
        } else {
            "database unreachable"
        })));
        *resp.status_mut() =
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Ok(resp);
    }
    hits.fetch_add(1, Ordering::SeqCst);
    if path == "/slow" {
        let ms: u64 = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path == "/ws" {
        let key = req.headers().get("sec-websocket-key").cloned();
        let Some(key) = key else {
            let mut r = Response::new(Full::new(Bytes::from("not a websocket request")));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(r);
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            while let Some(Ok(msg)) = ws.next().await {
                match msg {
                    Message::Text(t)
                        if ws.send(Message::text(format!("{name}:{t}"))).await.is_err() =>
                    {
                        break;
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        });
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert("connection", "upgrade".parse().expect("hv"));
        resp.headers_mut()
            .insert("upgrade", "websocket".parse().expect("hv"));
        resp.headers_mut()
            .insert("sec-websocket-accept", accept.parse().expect("hv"));
        return Ok(resp);
    }
    Ok(Response::new(Full::new(Bytes::from(name.to_string()))))
}

/// Bounded continuous load: `workers` tasks, each with its own keep-alive
/// client, at most `per_worker` GETs of `url` each; a response counts as ok
/// only if `accept(status, release header, body)` holds.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    pub ok: Arc<AtomicU64>,
    pub errors: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(
        url: String,
        workers: usize,
        per_worker: usize,
        accept: fn(u16, &str, &str) -> bool,
    ) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let tasks = (0..workers)
            .map(|_| {
                let (stop, ok, errors, url) = (
                    Arc::clone(&stop),
                    Arc::clone(&ok),
                    Arc::clone(&errors),
                    url.clone(),
                );
                tokio::spawn(async move {
                    let client = client();
                    for _ in 0..per_worker {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        match get(&client, &url, None).await {
                            Ok((status, release, body)) if accept(status, &release, &body) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            other => {
                                eprintln!("error: {other:?}");
                                errors.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            errors,
            tasks,
        }
    }

    /// Wait until `more` further requests have succeeded.
    pub async fn served_more(&self, what: &str, more: u64) {
        let at = self.ok.load(Ordering::SeqCst);
        eventually(what, Duration::from_secs(5), || async {
            (self.ok.load(Ordering::SeqCst) > at + more).then_some(())
        })
        .await;
    }

    /// Stop and return (ok, errors).
    pub async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("load task");
        }
        (
            self.ok.load(Ordering::SeqCst),
            self.errors.load(Ordering::SeqCst),
        )
    }
}

/// Start a successor beside `serving`, with its own admin socket.
pub async fn take_over(serving: &Agent, dir: &Path, name: &str, extra: &[&str]) -> Agent {
    let socket = dir.join(format!("{name}.sock"));
    let mut args = vec!["--take-over".to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Agent::command(dir, serving.listen, serving.metrics, &socket, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn successor");
    let successor = Agent {
        child,
        listen: serving.listen,
        metrics: serving.metrics,
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
    successor
}
