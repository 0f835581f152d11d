//! The agent's own health check of a target before it takes traffic: `GET
//! <path>` until `passes` 2xx answers in a row, one attempt per interval,
//! each bounded by the per-attempt timeout, all bounded by the deadline. On
//! failure the caller gets what was seen (status codes or connection errors,
//! and the start of the last body) to put in its answer.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use slipway_core::admin::{HealthCheck, HealthFailure};
use tokio::time::Instant;

/// Attempts remembered for the failure report.
const SEEN_KEEP: usize = 20;
/// Bytes of the last body quoted in the failure report.
const BODY_EXCERPT: usize = 512;

/// A client used only for health checks: no pooled connections, so a check
/// always proves the target accepts a new connection.
#[derive(Clone)]
pub struct HealthClient(Client<HttpConnector, Empty<Bytes>>);

impl Default for HealthClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self(
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(connector),
        )
    }
}

/// Check `target`; `Ok(attempts)` once it passed `passes` times in a row.
pub async fn check(
    client: &HealthClient,
    target: &str,
    cfg: &HealthCheck,
) -> Result<u32, HealthFailure> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(cfg.deadline_ms);
    let mut failure = HealthFailure {
        target: target.to_owned(),
        path: cfg.path.clone(),
        attempts: 0,
        seen: Vec::new(),
        last_body: None,
    };
    let uri: Uri = match format!("http://{target}{}", cfg.path).parse() {
        Ok(u) => u,
        Err(e) => {
            failure.seen.push(format!("invalid target or path: {e}"));
            return Err(failure);
        }
    };
    let mut seen = VecDeque::with_capacity(SEEN_KEEP);
    let mut in_a_row = 0;
    loop {
        failure.attempts += 1;
        let attempt_started = Instant::now();
        let outcome = attempt(client, &uri, Duration::from_millis(cfg.timeout_ms)).await;
        let passed = match outcome {
            Ok((status, body)) => {
                if !body.is_empty() {
                    failure.last_body = Some(body);
                }
                seen_push(&mut seen, status.to_string());
                (200..300).contains(&status)
            }
            Err(e) => {
                seen_push(&mut seen, e);
                false
            }
        };
        in_a_row = if passed { in_a_row + 1 } else { 0 };
        if in_a_row >= cfg.passes.max(1) {
            return Ok(failure.attempts);
        }
        let next = attempt_started + Duration::from_millis(cfg.interval_ms);
        if next >= deadline {
            failure.seen = seen.into();
            return Err(failure);
        }
        tokio::time::sleep_until(next).await;
    }
}

/// One probe of `target`'s health `path` (the post-deploy analysis'):
/// Ok on a 2xx, else what was seen (`503 "database unreachable"`,
/// `connect error: Connection refused`, `timeout after 2000 ms`).
pub async fn probe(
    client: &HealthClient,
    target: &str,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let uri: Uri = format!("http://{target}{path}")
        .parse()
        .map_err(|e| format!("invalid target or path `{target}{path}`: {e}"))?;
    match attempt(client, &uri, timeout).await? {
        (status, _) if (200..300).contains(&status) => Ok(()),
        (status, body) if body.is_empty() => Err(status.to_string()),
        (status, body) => Err(format!(
            "{status} {:?}",
            body.chars().take(80).collect::<String>()
        )),
    }
}

fn seen_push(seen: &mut VecDeque<String>, what: String) {
    if seen.len() == SEEN_KEEP {
        seen.pop_front();
    }
    seen.push_back(what);
}

async fn attempt(
    client: &HealthClient,
    uri: &Uri,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let req = Request::get(uri.clone())
        .header(hyper::header::USER_AGENT, "slipway-agent health check")
        .body(Empty::new())
        .map_err(|e| format!("cannot build request: {e}"))?;
    let run = async {
        let resp = client.0.request(req).await.map_err(|e| describe(&e))?;
        let status = resp.status().as_u16();
        // Read a bounded prefix: a health endpoint streaming forever must
        // not hang the check past its timeout (the outer timeout covers it).
        let body = Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let excerpt = &body[..body.len().min(BODY_EXCERPT)];
        Ok((status, String::from_utf8_lossy(excerpt).into_owned()))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("timeout after {} ms", timeout.as_millis())),
    }
}

/// The innermost cause of a client error (e.g. `Connection refused`).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_connect() {
        format!("connect error: {cause}")
    } else {
        format!("error: {cause}")
    }
}
