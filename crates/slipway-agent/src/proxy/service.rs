//! One request through the proxy, in order: find the app by host, admit the
//! request to the app's active target (waiting while paused), forward it,
//! then stream the response back with the release header, or splice the
//! upgraded connection. Failures are classified once (`errors::classify`)
//! and answered by the agent itself.

use std::cell::RefCell;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};

use super::Proxy;
use super::body::{Finish, ProxyBody};
use super::errors::{ProxyError, classify};
use super::forward::{self, Conn, request_host};
use crate::router::Admission;
use crate::target::InFlight;

pub async fn handle(
    proxy: Arc<Proxy>,
    conn: Conn,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let http1 = req.version() < Version::HTTP_2;
    let client = conn.peer;
    // The entry point's own answers on port 80 (ACME challenges, redirects
    // to HTTPS) come before any route; HTTPS responses may carry HSTS.
    let mut hsts = None;
    if let Some(edge) = &proxy.edge {
        if conn.tls {
            hsts = edge.hsts(&req);
        } else if let Some(resp) = edge.plain_answer(&req) {
            return Ok(resp);
        }
    }
    let admission = proxy.router.admit(request_host(&req)).await;
    let mut done = Finish {
        method: req.method().clone(),
        path: req.uri().path_and_query().cloned(),
        proxy,
        route: None,
        guard: None,
        started,
        client,
        status: 0,
        bytes: 0,
        error: None,
    };
    let error = match admission {
        Admission::Go(route, guard) => {
            done.route = Some(route);
            done.guard = Some(guard);
            None
        }
        Admission::NoRoute => Some(ProxyError::NoRoute),
        Admission::NoTarget(route) => {
            done.route = Some(route);
            Some(ProxyError::NoTarget)
        }
        Admission::PauseExceeded(route, retry_after_secs) => {
            done.route = Some(route);
            Some(ProxyError::Paused { retry_after_secs })
        }
        Admission::Maintenance(route, active) => {
            done.route = Some(route);
            let accept = req.headers().get(header::ACCEPT);
            return Ok(maintenance(done, &active, accept, http1));
        }
    };
    if let Some(e) = error {
        return Ok(fail(done, e, http1));
    }
    let Some(target) = done.guard.as_ref().map(InFlight::target) else {
        return Ok(fail(done, ProxyError::NoTarget, http1));
    };
    let proxy = &done.proxy;
    let result = forward::forward(&proxy.pool, &proxy.forward, conn, req, target).await;
    let (mut resp, client_upgrade) = match result {
        Ok(r) => r,
        Err(e) => return Ok(fail(done, e, http1)),
    };
    let (name, value) = release_header(&proxy.release_header, &target.release_header);
    resp.headers_mut().insert(name, value);
    if let Some(value) = hsts {
        resp.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, value);
    }
    let status = resp.status();
    target.counters.count(status.as_u16());
    done.status = status.as_u16();

    if status == StatusCode::SWITCHING_PROTOCOLS {
        if let (Some(client_side), Some(guard), Some(upstream_side)) = (
            client_upgrade,
            done.guard.take(),
            resp.body_mut().take_upgraded(),
        ) {
            tokio::spawn(forward::tunnel(client_side, upstream_side, guard));
        }
        // The access line for an upgrade is written now; the tunnel holds
        // the in-flight count until it closes. The upgraded connection is
        // the tunnel's now, never the pool's.
        drop(done);
        return Ok(resp.map(|_| ProxyBody::empty()));
    }
    if http1 && proxy.closing() {
        // This agent stopped accepting: a busy keep-alive client reconnects
        // (to the successor) between requests instead of finding its
        // connection closed under a request it just sent.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(resp.map(|body| ProxyBody::upstream(body, done)))
}

thread_local! {
    /// This proxy thread's own copies of the release header's name and its
    /// last value: cloning the configured name or a target's value would
    /// bump a reference count every proxy thread touches, per request.
    static RELEASE: RefCell<Option<(HeaderName, HeaderValue)>> = const { RefCell::new(None) };
}

/// The release header to add, from this thread's copies (made anew when
/// the release changes).
fn release_header(name: &HeaderName, value: &HeaderValue) -> (HeaderName, HeaderValue) {
    RELEASE.with_borrow_mut(|cached| {
        if let Some((n, v)) = cached.as_ref()
            && n == name
            && v.as_bytes() == value.as_bytes()
        {
            return (n.clone(), v.clone());
        }
        let own = (
            HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or_else(|_| name.clone()),
            HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone()),
        );
        *cached = Some(own.clone());
        own
    })
}

/// The maintenance answer: 503, `Retry-After`, never cached, the page.
fn maintenance(
    mut done: Finish,
    active: &crate::maintenance::Active,
    accept: Option<&HeaderValue>,
    http1: bool,
) -> Response<ProxyBody> {
    done.metrics().maintenance_answered();
    let (body, content_type) = active.answer(accept);
    done.status = StatusCode::SERVICE_UNAVAILABLE.as_u16();
    done.error = Some("maintenance");
    done.bytes = body.len() as u64;
    let mut resp = Response::new(ProxyBody::local(body));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::RETRY_AFTER, active.retry_after.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if http1 && done.proxy.closing() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Answer a failed request ourselves.
fn fail(mut done: Finish, e: ProxyError, http1: bool) -> Response<ProxyBody> {
    let (source, status) = classify(&e);
    match source {
        super::errors::Source::Upstream => {
            let target = done
                .guard
                .as_ref()
                .map(|g| g.target().addr.as_str())
                .unwrap_or("");
            tracing::warn!(app = %done.metrics().app, target, error = %e, "upstream failure");
        }
        _ => {
            tracing::debug!(app = %done.metrics().app, error = %e, source = source.as_str(), "request failed")
        }
    }
    match done.guard.as_ref() {
        Some(g) => g.target().counters.count(status.as_u16()),
        None => done.metrics().local.count(status.as_u16()),
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
    if http1 && done.proxy.closing() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
