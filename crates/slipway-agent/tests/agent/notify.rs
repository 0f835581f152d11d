//! Notifications end to end: the real agent delivers to real receivers
//! (small hyper servers recording what they get), and the signatures are
//! checked with an independent HMAC implementation. Multi-threaded: `ctl`
//! blocks its thread, and the receivers must answer meanwhile.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{KeyInit as _, Mac as _};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::util::{Agent, ctl_at, eventually, free_port};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_BODY: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const URL_TOKEN: &str = "T0KEN-in-the-path-9f8e7d";
const NTFY_TOKEN: &str = "tk_ntfy_secret_5a4b3c";

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
    at: Instant,
}

/// A webhook receiver: answers the scripted statuses in order (each with
/// its headers), then 200; records every request.
struct Receiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Statuses to answer in order, each with its extra headers.
type Script = Vec<(u16, Vec<(&'static str, &'static str)>)>;
type SharedScript = Arc<Mutex<VecDeque<(u16, Vec<(&'static str, &'static str)>)>>>;

impl Receiver {
    async fn start(script: Script) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        Self::serve(listener, script)
    }

    async fn start_at(addr: SocketAddr, script: Script) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind receiver on its reserved port");
        Self::serve(listener, script)
    }

    /// An HTTPS receiver with a certificate for 127.0.0.1 from `ca`.
    async fn start_tls(ca: &slipway_testkit::pebble::TestCa, script: Script) -> Receiver {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let (chain, key) = ca.leaf(&["127.0.0.1"]);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
            .collect::<Result<_, _>>()
            .expect("chain");
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        Self::serve_with(
            listener,
            script,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
    }

    fn serve(listener: tokio::net::TcpListener, script: Script) -> Receiver {
        Self::serve_with(listener, script, None)
    }

    fn serve_with(
        listener: tokio::net::TcpListener,
        script: Script,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Receiver {
        let addr = listener.local_addr().expect("addr");
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let task = tokio::spawn({
            let requests = Arc::clone(&requests);
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (requests, script, tls) =
                        (Arc::clone(&requests), Arc::clone(&script), tls.clone());
                    tokio::spawn(async move {
                        match tls {
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    serve_connection(stream, requests, script).await;
                                }
                            }
                            None => serve_connection(stream, requests, script).await,
                        }
                    });
                }
            }
        });
        Receiver {
            addr,
            requests,
            task,
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("requests").clone()
    }

    fn webhook_url(&self) -> String {
        format!("http://{}/hooks/{URL_TOKEN}?token={URL_TOKEN}", self.addr)
    }
}

/// Record each request on one connection and answer the next scripted status.
async fn serve_connection<S>(stream: S, requests: Arc<Mutex<Vec<Recorded>>>, script: SharedScript)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (requests, script) = (Arc::clone(&requests), Arc::clone(&script));
        async move {
            let method = req.method().to_string();
            let path = req.uri().path().to_owned();
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            let body = req.into_body().collect().await?.to_bytes();
            requests.lock().expect("requests").push(Recorded {
                method,
                path,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                at: Instant::now(),
            });
            let (status, extra) = script
                .lock()
                .expect("script")
                .pop_front()
                .unwrap_or((200, vec![]));
            let mut resp = Response::new(Full::new(Bytes::from("ok")));
            *resp.status_mut() = StatusCode::from_u16(status).expect("status");
            for (k, v) in extra {
                resp.headers_mut().insert(k, v.parse().expect("header"));
            }
            Ok::<_, hyper::Error>(resp)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

/// The agent with fast retries, its JSON log kept in `<dir>/agent.log`.
async fn start_agent(dir: &Path) -> Agent {
    start_agent_with_env(dir, &[]).await
}

async fn start_agent_with_env(dir: &Path, env: &[(&str, &Path)]) -> Agent {
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    spawn_agent(dir, listen, metrics, "admin", &[], env).await
}

/// Spawn the agent with admin socket `<dir>/<name>.sock` and its log in
/// `<dir>/agent.log`; wait until it answers.
async fn spawn_agent(
    dir: &Path,
    listen: SocketAddr,
    metrics: SocketAddr,
    name: &str,
    args: &[&str],
    env: &[(&str, &Path)],
) -> Agent {
    let socket = dir.join(format!("{name}.sock"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .expect("log file");
    let extra: Vec<String> = ["--notify-retry-base-ms", "50", "--log-format", "json"]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect();
    let child = Agent::command(dir, listen, metrics, &socket, &extra)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn agent");
    let agent = Agent {
        child,
        listen,
        metrics,
        socket,
    };
    eventually("agent admin socket", Duration::from_secs(10), || async {
        (ctl_at(&agent.socket, &["version"]).0 == 0).then_some(())
    })
    .await;
    agent
}

fn raw(agent: &Agent, request: Value) -> (i32, Value) {
    agent.ctl(&["raw", &request.to_string()])
}

fn webhook(url: &str) -> Value {
    json!({"url": url, "secret": SECRET, "template": {"type": "standard"},
           "timeout_ms": 2000, "give_up_after_ms": 60000})
}

fn configure(agent: &Agent, app: &str, channels: Value) -> Value {
    let (code, out) = raw(
        agent,
        json!({"verb": "notify_configure", "app": app, "channels": channels}),
    );
    assert_eq!(code, 0, "notify_configure: {out}");
    out["result"].clone()
}

fn event(app: &str, kind: &str, severity: &str) -> Value {
    json!({
        "id": format!("evt_{}", ulid::Ulid::new()),
        "kind": kind,
        "app": app,
        "environment": "production",
        "release": "1a2b3c",
        "at": "2026-12-03T06:00:00Z",
        "severity": severity,
        "title": format!("{app}: deploy of 1a2b3c"),
        "message": "Traffic is on 1a2b3c.\nNothing to do.",
        "details": {"step": "switch"}
    })
}

/// Queue `event`; the channels it was queued for.
fn notify(agent: &Agent, app: &str, event: &Value) -> Value {
    let (code, out) = raw(agent, json!({"verb": "notify", "app": app, "event": event}));
    assert_eq!(code, 0, "notify: {out}");
    assert_eq!(out["result"]["event_id"], event["id"]);
    out["result"]["channels"].clone()
}

fn status(agent: &Agent, app: &str) -> Value {
    let (code, out) = raw(agent, json!({"verb": "notify_status", "app": app}));
    assert_eq!(code, 0, "notify_status: {out}");
    out["result"].clone()
}

/// Wait until nothing is pending and the newest outcome is `outcome`.
async fn settled(agent: &Agent, app: &str, outcome: &str) -> Value {
    eventually(
        &format!("a {outcome} delivery"),
        Duration::from_secs(15),
        || async {
            let s = status(agent, app);
            let done = s["pending"].as_array().is_some_and(Vec::is_empty)
                && s["recent"][0]["outcome"] == outcome;
            done.then_some(s)
        },
    )
    .await
}

/// The Standard Webhooks check, written against `hmac`/`sha2`, not the
/// agent's `ring`.
fn signature_ok(r: &Recorded) -> bool {
    let key = STANDARD.decode(SECRET_BODY).expect("secret");
    let mut mac = hmac::Hmac::<sha2_v011::Sha256>::new_from_slice(&key).expect("key");
    let signed = format!(
        "{}.{}.{}",
        r.headers["webhook-id"], r.headers["webhook-timestamp"], r.body
    );
    mac.update(signed.as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    r.headers["webhook-signature"]
        .split(' ')
        .any(|s| s == expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_a_500_is_retried_with_the_same_id_and_valid_signatures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(vec![(500, vec![])]).await;
    let agent = start_agent(dir.path()).await;
    let app = "events-production";
    let configured = configure(
        &agent,
        app,
        json!({"webhook": webhook(&receiver.webhook_url())}),
    );
    assert_eq!(configured["channels"], json!(["webhook"]));

    let e = event(app, "deploy_succeeded", "info");
    assert_eq!(notify(&agent, app, &e), json!(["webhook"]));
    let s = settled(&agent, app, "delivered").await;
    assert_eq!(s["recent"][0]["attempts"], 2);
    assert_eq!(s["recent"][0]["event_id"], e["id"]);

    let got = receiver.requests();
    assert_eq!(got.len(), 2, "one failed attempt, one delivery: {got:?}");
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/hooks/{URL_TOKEN}"));
        assert_eq!(r.headers["webhook-id"], e["id"].as_str().expect("id"));
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.headers["user-agent"].starts_with("slipway-agent/"));
        assert!(signature_ok(r), "bad signature on {r:?}");
        let body: Value = serde_json::from_str(&r.body).expect("JSON body");
        assert_eq!(body["type"], "deploy.succeeded");
        assert_eq!(body["data"]["id"], e["id"]);
        assert_eq!(body["data"]["message"], e["message"]);
    }
    // A body signed with another id must not verify: the check can fail.
    let mut forged = got[0].clone();
    forged
        .headers
        .insert("webhook-id".into(), "evt_other".into());
    assert!(!signature_ok(&forged));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_retry_after_is_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(vec![(429, vec![("retry-after", "2")])]).await;
    let agent = start_agent(dir.path()).await;
    let app = "events-production";
    configure(
        &agent,
        app,
        json!({"webhook": webhook(&receiver.webhook_url())}),
    );
    notify(&agent, app, &event(app, "deploy_started", "info"));
    settled(&agent, app, "delivered").await;
    let got = receiver.requests();
    assert_eq!(got.len(), 2);
    let gap = got[1].at - got[0].at;
    // The retry base is 50 ms: only the receiver's Retry-After explains 2 s.
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_a_410_disables_the_channel_until_configured_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(vec![(410, vec![])]).await;
    let agent = start_agent(dir.path()).await;
    let app = "events-production";
    let channels = json!({"webhook": webhook(&receiver.webhook_url())});
    configure(&agent, app, channels.clone());
    let first = event(app, "deploy_succeeded", "info");
    notify(&agent, app, &first);
    let s = settled(&agent, app, "disabled").await;
    assert_eq!(s["channels"][0]["channel"], "webhook");
    assert_eq!(s["channels"][0]["disabled"], true);
    let reason = s["channels"][0]["disabled_reason"]
        .as_str()
        .expect("reason");
    assert!(
        reason.contains("410") && reason.contains("configured again"),
        "{reason}"
    );
    assert_eq!(
        s["channels"][0]["destination"],
        format!("http://{}", receiver.addr)
    );

    // Later events are not queued for it...
    let skipped = event(app, "deploy_failed", "critical");
    assert_eq!(notify(&agent, app, &skipped), json!([]));
    assert_eq!(status(&agent, app)["pending"], json!([]));
    // ...until it is configured again.
    configure(&agent, app, channels);
    assert_eq!(status(&agent, app)["channels"][0]["disabled"], false);
    let third = event(app, "deploy_succeeded", "info");
    assert_eq!(notify(&agent, app, &third), json!(["webhook"]));
    settled(&agent, app, "delivered").await;
    let ids: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(
        ids,
        [&first["id"], &third["id"]].map(|v| v.as_str().expect("id").to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_ntfy_publishes_json_with_the_bearer_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(vec![]).await;
    let agent = start_agent(dir.path()).await;
    let app = "events-production";
    configure(
        &agent,
        app,
        json!({"ntfy": {"server": format!("http://{}", receiver.addr), "topic": "deploys",
            "token": NTFY_TOKEN, "priority": 4, "tags": ["slipway"],
            "click": "https://events.example.org", "timeout_ms": 2000, "give_up_after_ms": 10000}}),
    );
    let e = event(app, "deploy_failed", "critical");
    assert_eq!(notify(&agent, app, &e), json!(["ntfy"]));
    settled(&agent, app, "delivered").await;
    let got = receiver.requests();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/"));
    assert_eq!(r.headers["authorization"], format!("Bearer {NTFY_TOKEN}"));
    let body: Value = serde_json::from_str(&r.body).expect("JSON body");
    assert_eq!(body["topic"], "deploys");
    assert_eq!(body["title"], e["title"]);
    assert_eq!(body["message"], e["message"]);
    assert_eq!(body["priority"], 4);
    assert_eq!(body["tags"], json!(["rotating_light", "slipway"]));
    assert_eq!(body["click"], "https://events.example.org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_an_event_queued_while_the_receiver_is_down_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let url = format!("http://{addr}/hooks/{URL_TOKEN}");
    let mut agent = start_agent(dir.path()).await;
    let app = "events-production";
    configure(&agent, app, json!({"webhook": webhook(&url)}));
    let e = event(app, "deploy_rolled_back", "warning");
    notify(&agent, app, &e);
    eventually("a failed attempt", Duration::from_secs(10), || async {
        let s = status(&agent, app);
        let p = &s["pending"][0];
        (p["outcome"] == "retrying"
            && p["error"]
                .as_str()
                .is_some_and(|e| e.contains(&addr.to_string())))
        .then_some(())
    })
    .await;
    agent.kill();
    drop(agent);

    let agent = start_agent(dir.path()).await;
    assert_eq!(status(&agent, app)["pending"][0]["event_id"], e["id"]);
    let receiver = Receiver::start_at(addr, vec![]).await;
    settled(&agent, app, "delivered").await;
    let got = receiver.requests();
    assert_eq!(got.len(), 1, "delivered exactly once: {got:?}");
    assert_eq!(got[0].headers["webhook-id"], e["id"].as_str().expect("id"));
    assert!(signature_ok(&got[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_answers_per_channel_and_no_secret_leaves_the_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The first request fails, so a failed attempt is logged too.
    let receiver = Receiver::start(vec![(503, vec![])]).await;
    let agent = start_agent(dir.path()).await;
    let app = "events-production";
    let configured = configure(
        &agent,
        app,
        json!({
            "webhook": webhook(&receiver.webhook_url()),
            "ntfy": {"server": format!("http://{}", receiver.addr), "topic": "deploys",
                     "token": NTFY_TOKEN, "timeout_ms": 2000, "give_up_after_ms": 10000}
        }),
    );
    assert_eq!(configured["channels"], json!(["webhook", "ntfy"]));
    let e = event(app, "deploy_succeeded", "info");
    assert_eq!(notify(&agent, app, &e), json!(["webhook", "ntfy"]));
    eventually("both deliveries", Duration::from_secs(15), || async {
        let s = status(&agent, app);
        let delivered = s["recent"].as_array().map_or(0, |r| {
            r.iter().filter(|x| x["outcome"] == "delivered").count()
        });
        (s["pending"] == json!([]) && delivered == 2).then_some(())
    })
    .await;

    let (code, out) = raw(&agent, json!({"verb": "notify_test", "app": app}));
    assert_eq!(code, 0, "{out}");
    let results = out["result"]["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["outcome"], "delivered", "{r}");
        assert_eq!(r["event"], "notify.test");
    }
    let tests = receiver
        .requests()
        .into_iter()
        .filter(|r| r.body.contains("notify.test") || r.body.contains("test notification"))
        .count();
    assert_eq!(tests, 2, "one test request per channel");

    // Nothing configured: a clear error saying how to configure.
    let (code, out) = raw(
        &agent,
        json!({"verb": "notify_test", "app": "other-production"}),
    );
    assert_eq!(code, 3, "{out}");
    let message = out["error"]["message"].as_str().expect("message");
    assert!(message.contains("notify_configure"), "{message}");

    let log = std::fs::read_to_string(dir.path().join("agent.log")).expect("log");
    let secrets = [SECRET, SECRET_BODY, URL_TOKEN, NTFY_TOKEN];
    for r in receiver.requests() {
        for s in secrets {
            assert!(!r.body.contains(s), "a payload holds a secret: {}", r.body);
        }
    }
    for s in secrets {
        assert!(!log.contains(s), "the agent's log holds a secret");
    }
    // The log does say what happened: the event's own JSON line, and the
    // failed attempt with the destination redacted.
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.iter().any(|l| {
        l["target"] == "slipway::event"
            && l["fields"]["event"]
                .as_str()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .is_some_and(|v| v["id"] == e["id"])
    }));
    assert!(lines.iter().any(|l| l["level"] == "WARN"
        && l["fields"]["destination"] == format!("http://{}", receiver.addr)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_configure_refuses_bad_channels_and_keeps_them_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(dir.path()).await;
    let app = "events-production";
    let url = format!("https://hooks.example.org/services/{URL_TOKEN}");
    let refused = |channels: Value, expect: &str| {
        let (code, out) = raw(
            &agent,
            json!({"verb": "notify_configure", "app": app, "channels": channels}),
        );
        assert_eq!(code, 2, "{out}");
        let message = out["error"]["message"]
            .as_str()
            .expect("message")
            .to_owned();
        assert!(message.contains(expect), "{message}");
        assert!(
            !message.contains(URL_TOKEN) && !message.contains(SECRET_BODY),
            "{message}"
        );
    };
    let mut bad = webhook(&url);
    bad["template"] = json!({"type": "custom", "body": "{\"text\": {{title}}}"});
    refused(json!({"webhook": bad}), "valid JSON");
    let mut bad = webhook(&url);
    bad["template"] = json!({"type": "custom", "body": "{\"text\": \"{{titel}}\"}"});
    refused(json!({"webhook": bad}), "{{title}}");
    let mut bad = webhook(&url);
    bad["secret"] = json!(SECRET_BODY);
    refused(json!({"webhook": bad}), "whsec_");
    refused(
        json!({"webhook": webhook(&format!("ftp://example.org/{URL_TOKEN}"))}),
        "http://",
    );
    assert_eq!(status(&agent, app)["channels"], json!([]));

    configure(&agent, app, json!({"webhook": webhook(&url)}));
    let s = status(&agent, app);
    assert_eq!(s["channels"][0]["destination"], "https://hooks.example.org");
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    let notify_dir = dir.path().join("state/notify");
    assert_eq!(mode(&notify_dir), 0o700);
    assert_eq!(
        mode(&notify_dir.join(format!("channels/{app}.json"))),
        0o600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_https_receivers_are_verified_against_the_system_ca_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = slipway_testkit::pebble::TestCa::new("notify test CA");
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &ca.cert_pem).expect("write CA bundle");
    let receiver = Receiver::start_tls(&ca, vec![]).await;
    // The platform's bundle is replaced by one holding only the test CA
    // (`SSL_CERT_FILE`, as OpenSSL reads it), so the certificate is really
    // verified: an agent without it could not connect.
    let agent = start_agent_with_env(dir.path(), &[("SSL_CERT_FILE", bundle.as_path())]).await;
    let app = "events-production";
    let url = format!("https://{}/hooks/{URL_TOKEN}", receiver.addr);
    configure(&agent, app, json!({"webhook": webhook(&url)}));
    let e = event(app, "deploy_succeeded", "info");
    notify(&agent, app, &e);
    settled(&agent, app, "delivered").await;
    let got = receiver.requests();
    assert_eq!(got.len(), 1);
    assert!(signature_ok(&got[0]));
    assert_eq!(
        status(&agent, app)["channels"][0]["destination"],
        format!("https://{}", receiver.addr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_an_untrusted_https_receiver_is_retried_with_the_tls_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = slipway_testkit::pebble::TestCa::new("a CA the agent does not trust");
    let other = slipway_testkit::pebble::TestCa::new("the only CA the agent trusts");
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &other.cert_pem).expect("write CA bundle");
    let receiver = Receiver::start_tls(&ca, vec![]).await;
    let agent = start_agent_with_env(dir.path(), &[("SSL_CERT_FILE", bundle.as_path())]).await;
    let app = "events-production";
    let url = format!("https://{}/hooks/{URL_TOKEN}", receiver.addr);
    configure(&agent, app, json!({"webhook": webhook(&url)}));
    notify(&agent, app, &event(app, "deploy_succeeded", "info"));
    let error = eventually("a refused TLS attempt", Duration::from_secs(10), || async {
        let s = status(&agent, app);
        let p = &s["pending"][0];
        (p["outcome"] == "retrying").then(|| p["error"].as_str().unwrap_or("").to_owned())
    })
    .await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(!error.contains(URL_TOKEN), "{error}");
    assert!(receiver.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_an_upgrade_hands_the_outbox_to_the_successor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let url = format!("http://{addr}/hooks/{URL_TOKEN}");
    let mut serving = start_agent(dir.path()).await;
    let app = "events-production";
    configure(&serving, app, json!({"webhook": webhook(&url)}));
    let e = event(app, "deploy_succeeded", "info");
    notify(&serving, app, &e);
    eventually("a failed attempt", Duration::from_secs(10), || async {
        (status(&serving, app)["pending"][0]["outcome"] == "retrying").then_some(())
    })
    .await;

    let successor = spawn_agent(
        dir.path(),
        serving.listen,
        serving.metrics,
        "successor",
        &["--take-over"],
        &[],
    )
    .await;
    // The successor waits for the volume's delivery lock while the old
    // agent lives (and still delivers).
    eventually(
        "the successor waiting to deliver",
        Duration::from_secs(10),
        || async {
            let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
            log.contains("another agent delivers").then_some(())
        },
    )
    .await;
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &serving.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    eventually("the old agent exited", Duration::from_secs(15), || {
        let exited = serving.child.try_wait().expect("try_wait").is_some();
        async move { exited.then_some(()) }
    })
    .await;

    let receiver = Receiver::start_at(addr, vec![]).await;
    settled(&successor, app, "delivered").await;
    let got = receiver.requests();
    assert_eq!(got.len(), 1, "delivered exactly once: {got:?}");
    assert_eq!(got[0].headers["webhook-id"], e["id"].as_str().expect("id"));
}
