//! Helpers shared by the integration tests: a migrated database in a real
//! PostgreSQL container, the service running in-process on 127.0.0.1:0, a
//! small HTTP client, and polling with a deadline (never fixed sleeps).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use events_server::config::Config;
use events_server::state::AppState;
use events_server::{Drain, RunError};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use slipway_core::migrate::{MigrationSet, Runner, RunnerOptions, UpReport};
use slipway_core::secret::Secret;
use slipway_testkit::PgContainer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A JWT_SECRET that passes validation (32 bytes).
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef-xyz";

pub fn migrations_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

/// Applies the service's migrations (all, or the first `limit`) with Slipway's
/// own runner, as a deploy would.
pub async fn migrate(url: &str, limit: Option<usize>) -> UpReport {
    let set = MigrationSet::load(&migrations_dir()).expect("load migrations");
    let mut runner = Runner::connect(&Secret::new(url), RunnerOptions::default())
        .await
        .expect("connect the migration runner");
    runner.up(&set, limit).await.expect("apply migrations")
}

/// A fresh database `name` in `pg`, fully migrated; returns its URL.
pub async fn migrated_database(pg: &PgContainer, name: &str) -> String {
    pg.create_database(name);
    let url = pg.url_for_db(name);
    migrate(&url, None).await;
    url
}

/// Starts a PostgreSQL container without blocking the async runtime's thread.
pub async fn start_postgres() -> PgContainer {
    tokio::task::spawn_blocking(PgContainer::start)
        .await
        .expect("PgContainer::start panicked")
}

/// A plain client connection for assertions on the schema.
pub async fn sql_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect for assertions");
    tokio::spawn(connection);
    client
}

/// The service running in this process, on an ephemeral port.
pub struct TestServer {
    pub base: String,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RunError>>>,
}

impl TestServer {
    /// Starts with `DATABASE_URL=database_url`, a valid `JWT_SECRET`, and
    /// `extra` environment variables, through the same validation as the binary.
    pub async fn start(database_url: &str, extra: &[(&str, &str)], drain: Drain) -> TestServer {
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("DATABASE_URL".into(), database_url.into());
        env.insert("JWT_SECRET".into(), JWT_SECRET.into());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("valid test config");
        let state = AppState::new(&config).expect("state");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(events_server::serve(listener, state.clone(), drain, signal));
        TestServer {
            base,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends the shutdown signal (what SIGTERM does in the binary).
    pub fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Whether `serve` has not returned yet.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Waits for `serve` to return, at most `deadline`.
    pub async fn finished_within(&mut self, deadline: Duration) -> Result<(), RunError> {
        let task = self.task.take().expect("server task not yet awaited");
        tokio::time::timeout(deadline, task)
            .await
            .expect("server did not stop within the deadline")
            .expect("server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A drain that ends at once: for tests that do not test shutdown.
pub const QUICK_DRAIN: Drain = Drain {
    delay: Duration::ZERO,
    timeout: Duration::from_secs(2),
};

/// An HTTP response, body read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

pub async fn get(url: &str) -> Reply {
    try_request("GET", url, None)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

pub async fn post_json(url: &str, body: &serde_json::Value) -> Reply {
    try_request("POST", url, Some(body.to_string()))
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// One request on a fresh connection (no pooling, so a test that stops a
/// server never reuses a connection from before), bounded by 10 s.
pub async fn try_request(method: &str, url: &str, body: Option<String>) -> Result<Reply, String> {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Full<Bytes>>();
    let mut builder = Request::builder().method(method).uri(url);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            content_type,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no response within 10 s".to_owned())?
}

/// Calls `probe` every 100 ms until it returns `Ok`, or panics after
/// `deadline` with `what` and the last `Err` it returned.
pub async fn poll_until<T, F, Fut>(deadline: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if started.elapsed() >= deadline => {
                panic!("{what}: not within {deadline:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Polls `url` until its status is `status`; returns that reply.
pub async fn poll_status(url: &str, status: u16, deadline: Duration) -> Reply {
    poll_until(deadline, &format!("GET {url} → {status}"), || async {
        let reply = try_request("GET", url, None).await?;
        if reply.status == status {
            Ok(reply)
        } else {
            Err(format!("{} {}", reply.status, reply.body))
        }
    })
    .await
}
