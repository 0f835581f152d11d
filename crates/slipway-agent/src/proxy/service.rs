//! One request through the proxy, in order: find the app by host, admit the
//! request to the app's active target (waiting while paused), forward it,
//! then stream the response back with the release header, or splice the
//! upgraded connection. Failures are classified once (`errors::classify`)
//! and answered by the agent itself.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::Proxy;
use super::body::{Finish, ProxyBody};
use super::errors::{ProxyError, classify};
use super::forward::{self, request_host};
use crate::metrics::AppMetrics;
use crate::router::Admission;
use crate::target::InFlight;

pub async fn handle(
    proxy: Arc<Proxy>,
    client: IpAddr,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path_and_query().cloned();
    let admission = proxy.router.admit(request_host(&req)).await;
    let finish = |app: Arc<AppMetrics>, guard: Option<InFlight>| Finish {
        guard,
        app,
        log: proxy.access_log.clone(),
        started,
        method: method.clone(),
        path: path.clone(),
        client,
        status: 0,
        bytes: 0,
        error: None,
    };
    let (route, guard) = match admission {
        Admission::Go(route, guard) => (route, guard),
        Admission::NoRoute => {
            return Ok(proxy.fail(
                finish(Arc::clone(&proxy.unrouted), None),
                ProxyError::NoRoute,
            ));
        }
        Admission::NoTarget(route) => {
            return Ok(proxy.fail(
                finish(Arc::clone(&route.metrics), None),
                ProxyError::NoTarget,
            ));
        }
        Admission::PauseExceeded(route, retry_after_secs) => {
            let e = ProxyError::Paused { retry_after_secs };
            return Ok(proxy.fail(finish(Arc::clone(&route.metrics), None), e));
        }
    };
    let target = Arc::clone(guard.target());
    let result = forward::forward(&proxy.pool, &proxy.forward, client, req, &target).await;
    let mut done = finish(Arc::clone(&route.metrics), Some(guard));
    let (mut resp, conn, client_upgrade) = match result {
        Ok(r) => r,
        Err(e) => return Ok(proxy.fail(done, e)),
    };
    resp.headers_mut()
        .insert(proxy.release_header.clone(), target.release_header.clone());
    let status = resp.status();
    target.counters.count(status.as_u16());
    done.status = status.as_u16();

    if status == StatusCode::SWITCHING_PROTOCOLS {
        if let (Some(client_side), Some(guard)) = (client_upgrade, done.guard.take()) {
            let upstream_side = hyper::upgrade::on(&mut resp);
            tokio::spawn(forward::tunnel(client_side, upstream_side, guard));
        }
        // The access line for an upgrade is written now; the tunnel holds
        // the in-flight count until it closes. The upgraded connection is
        // the tunnel's now, never the pool's.
        drop((done, conn));
        return Ok(resp.map(|_| ProxyBody::empty()));
    }
    Ok(resp.map(|body| ProxyBody::upstream(body, done, conn)))
}

impl Proxy {
    /// Answer a failed request ourselves.
    fn fail(&self, mut done: Finish, e: ProxyError) -> Response<ProxyBody> {
        let (source, status) = classify(&e);
        match source {
            super::errors::Source::Upstream => {
                let target = done
                    .guard
                    .as_ref()
                    .map(|g| g.target().addr.as_str())
                    .unwrap_or("");
                tracing::warn!(app = %done.app.app, target, error = %e, "upstream failure");
            }
            _ => {
                tracing::debug!(app = %done.app.app, error = %e, source = source.as_str(), "request failed")
            }
        }
        match done.guard.as_ref() {
            Some(g) => g.target().counters.count(status.as_u16()),
            None => done.app.local.count(status.as_u16()),
        }
        done.status = status.as_u16();
        done.error = Some(source.as_str());
        let text = format!(
            "{} {}: {e}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        done.bytes = text.len() as u64;
        let mut resp = Response::new(ProxyBody::local(text));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let retry_after = match e {
            ProxyError::Paused { retry_after_secs } => Some(retry_after_secs),
            ProxyError::NoTarget | ProxyError::DrainCut => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
