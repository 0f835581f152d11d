//! Forwarding one request to its target: rewrite the request (hop-by-hop
//! headers out, `X-Forwarded-*` in, absolute URI to the target), send it
//! over the pooled keep-alive client bounded by the upstream timeout and the
//! target's drain deadline, clean the response headers, and for `101
//! Switching Protocols` splice the two upgraded connections together.

use std::future::Future as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use http_body_util::Limited;
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;
use tokio_util::sync::WaitForCancellationFuture;

use super::client::{UpBody, UpConn};
use super::deadline::Deadline;
use super::errors::ProxyError;
use super::pool::Pool;
use crate::target::{InFlight, Target};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What the proxy knows of the client connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub peer: IpAddr,
    /// Arrived over this agent's TLS listener.
    pub tls: bool,
}

/// Settings of the forwarding step.
pub struct ForwardConfig {
    pub max_body: u64,
    pub upstream_timeout: Duration,
    pub forwarded_proto: HeaderValue,
}

/// The host a request is for (Host header, or the HTTP/2 authority),
/// without port.
pub fn request_host<B>(req: &Request<B>) -> Option<&str> {
    let raw = match req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        Some(h) => h,
        None => req.uri().authority().map(|a| a.as_str())?,
    };
    // `[v6]:port`, `name:port`, `name`.
    Some(match raw.rfind(':') {
        Some(i) if !raw[i..].contains(']') => &raw[..i],
        _ => raw,
    })
}

/// Send `req` to `target`. Returns the upstream response and, for an upgrade
/// request, the client side of the upgrade to splice later.
///
/// The rewriting around the one await is done by plain functions, so this
/// future (part of every request's, which is moved several times) only holds
/// what lives across the await.
pub async fn forward(
    pool: &Arc<Pool>,
    cfg: &ForwardConfig,
    conn: Conn,
    req: Request<Incoming>,
    target: &Target,
) -> Result<(Response<UpBody>, Option<OnUpgrade>), ProxyError> {
    let (request, client_upgrade) = rewrite_request(cfg, conn, req, target)?;
    let mut resp = send_bounded(pool, cfg.upstream_timeout, request, target).await?;
    clean_response(&mut resp);
    Ok((resp, client_upgrade))
}

/// The request as the upstream gets it: hop-by-hop headers out,
/// `X-Forwarded-*` in, origin-form target, body bounded.
fn rewrite_request(
    cfg: &ForwardConfig,
    conn: Conn,
    mut req: Request<Incoming>,
    target: &Target,
) -> Result<(Request<Limited<Incoming>>, Option<OnUpgrade>), ProxyError> {
    // hyper sizes the body from `Content-Length` (HTTP/1 and HTTP/2).
    if req.body().size_hint().lower() > cfg.max_body {
        return Err(ProxyError::BodyTooLarge(cfg.max_body));
    }
    // One pass over the names tells whether any hop-by-hop header is there
    // (a plain request has none), so the common case skips every lookup.
    let hop = has_hop_by_hop(req.headers());
    let upgrade = if hop {
        upgrade_protocol(req.headers())
    } else {
        None
    };
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();

    if hop {
        remove_hop_by_hop(&mut parts.headers);
    }
    if let Some(proto) = upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, proto);
    }
    append_forwarded_for(&mut parts.headers, conn.peer);
    // A request that came over this agent's TLS is `https` whatever the
    // configured value (which describes a terminator in front of us).
    let proto = if conn.tls {
        HeaderValue::from_static("https")
    } else if cfg.forwarded_proto.as_bytes() == b"keep" {
        // Behind the host's entry point (the only client that reaches this
        // port): its `https`/`http` stands; anything else is not believed.
        match parts
            .headers
            .get(&X_FORWARDED_PROTO)
            .map(HeaderValue::as_bytes)
        {
            Some(b"https") => HeaderValue::from_static("https"),
            _ => HeaderValue::from_static("http"),
        }
    } else {
        forwarded_proto(&cfg.forwarded_proto)
    };
    parts.headers.insert(X_FORWARDED_PROTO.clone(), proto);
    match parts.headers.get(header::HOST) {
        Some(host) => {
            let host = host.clone();
            parts.headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        None => {
            // HTTP/2 (`:authority`) or an absolute-form request without Host.
            let host = match parts.uri.authority() {
                Some(a) => HeaderValue::from_str(a.as_str()).ok(),
                None => None,
            };
            if let Some(host) = host {
                parts.headers.insert(X_FORWARDED_HOST.clone(), host.clone());
                parts.headers.insert(header::HOST, host);
            } else if let Ok(host) = HeaderValue::from_str(target.authority.as_str()) {
                parts.headers.insert(header::HOST, host);
            }
        }
    }
    // Origin-form to the upstream (RFC 9112 3.2.1): the path and query only;
    // the authority travels in Host. HTTP/1 requests mostly arrive so.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    }
    parts.version = Version::HTTP_11;
    let limit = usize::try_from(cfg.max_body).unwrap_or(usize::MAX);
    Ok((
        Request::from_parts(parts, Limited::new(body, limit)),
        client_upgrade,
    ))
}

/// Hop-by-hop headers out of the upstream's response (those of a `101` are
/// put back as `Connection: upgrade` + its `Upgrade`).
fn clean_response<B>(resp: &mut Response<B>) {
    if !has_hop_by_hop(resp.headers()) {
        return;
    }
    let switching = resp.status() == hyper::StatusCode::SWITCHING_PROTOCOLS;
    let upgrade_back = switching
        .then(|| resp.headers().get(header::UPGRADE).cloned())
        .flatten();
    remove_hop_by_hop(resp.headers_mut());
    if let Some(proto) = upgrade_back {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        resp.headers_mut().insert(header::UPGRADE, proto);
    }
}

/// A request waits this long for its upstream before it also watches the
/// target's drain cut: most answers come sooner and never touch the cut
/// token (whose registration locks state shared by every proxy thread). A
/// cut that falls in this first stretch is seen at its end.
const CUT_WATCH_AFTER: Duration = Duration::from_millis(20);

/// Send over the pool, bounded by the upstream timeout and the target's
/// drain cut. One coarse deadline (`deadline`, no tokio timer) serves both:
/// it first passes at `CUT_WATCH_AFTER` to start watching the cut, then is
/// moved to the timeout.
async fn send_bounded(
    pool: &Arc<Pool>,
    timeout: Duration,
    request: Request<Limited<Incoming>>,
    target: &Target,
) -> Result<Response<UpBody>, ProxyError> {
    let send = pool.send(&target.authority, request);
    tokio::pin!(send);
    let mut deadline = Deadline::default();
    let mut start: Option<Instant> = None;
    let mut cut: Option<Pin<Box<WaitForCancellationFuture<'_>>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = send.as_mut().poll(cx) {
            return Poll::Ready(r.map_err(ProxyError::from));
        }
        if let Some(c) = cut.as_mut()
            && c.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(ProxyError::DrainCut));
        }
        match start {
            None => {
                let now = Instant::now();
                start = Some(now);
                deadline.arm(now + CUT_WATCH_AFTER.min(timeout), cx);
            }
            Some(started) if deadline.passed(cx) => {
                if cut.is_some() || CUT_WATCH_AFTER >= timeout {
                    return Poll::Ready(Err(ProxyError::UpstreamTimeout(timeout)));
                }
                let mut c = Box::pin(target.cut_token().cancelled());
                if c.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(ProxyError::DrainCut));
                }
                cut = Some(c);
                deadline.arm(started + timeout, cx);
            }
            Some(_) => {}
        }
        Poll::Pending
    })
    .await
}

/// The `X-Forwarded-Proto` value, without touching the configured value's
/// reference count (shared by every proxy thread) for the usual two.
fn forwarded_proto(configured: &HeaderValue) -> HeaderValue {
    match configured.as_bytes() {
        b"http" => HeaderValue::from_static("http"),
        b"https" => HeaderValue::from_static("https"),
        _ => configured.clone(),
    }
}

/// Splice an upgraded client connection to the upgraded upstream one until
/// either side closes or the target's drain deadline cuts it. The in-flight
/// guard lives as long as the tunnel, so a WebSocket holds its old target
/// (and its drain) open until it closes.
pub async fn tunnel(client: OnUpgrade, upstream: Box<UpConn>, guard: InFlight) {
    let client = match client.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let (mut upstream, early) = upstream.into_upgraded();
    // What the upstream sent right behind its `101` head.
    if !early.is_empty()
        && let Err(e) = client.write_all(&early).await
    {
        tracing::debug!(error = %e, "upgraded connection ended with an error");
        return;
    }
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "upgraded connection ended with an error");
            }
        }
        () = guard.target().cut_token().cancelled() => {
            tracing::info!(target = %guard.target().addr, "upgraded connection cut at drain deadline");
        }
    }
}

/// The `Upgrade` protocol when the request asks for one (`Connection:
/// upgrade` + `Upgrade: <proto>`).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
    });
    if wants {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Whether any hop-by-hop header (RFC 9110 7.6.1) is present; headers
/// named by `Connection` only count when `Connection` itself is there.
fn has_hop_by_hop(headers: &HeaderMap) -> bool {
    headers.keys().any(is_hop_by_hop)
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    // Standard names compare as enum tags; the two custom ones by bytes.
    *name == header::CONNECTION
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || *name == header::TE
        || *name == header::TRAILER
        || *name == header::PROXY_AUTHENTICATE
        || *name == header::PROXY_AUTHORIZATION
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
}

/// Remove the hop-by-hop headers (RFC 9110 7.6.1), including those the
/// `Connection` header names.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: IpAddr) {
    let mut buf = [0u8; 64];
    let ip = ip_text(peer, &mut buf);
    // One lookup (the name is hashed byte by byte) for the read and the write.
    match headers.entry(&X_FORWARDED_FOR) {
        header::Entry::Occupied(mut e) => {
            let Ok(prior) = e.get().to_str() else {
                if let Ok(v) = HeaderValue::from_bytes(ip) {
                    e.insert(v);
                }
                return;
            };
            let mut v = Vec::with_capacity(prior.len() + 2 + ip.len());
            v.extend_from_slice(prior.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(ip);
            if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(v)) {
                e.insert(v);
            }
        }
        header::Entry::Vacant(e) => {
            if let Ok(v) = HeaderValue::from_bytes(ip) {
                e.insert(v);
            }
        }
    }
}

/// `ip` as `Display` writes it, formatted on the stack (IPv4 by hand: the
/// `fmt` machinery costs more than the rest of this header's work).
fn ip_text(ip: IpAddr, buf: &mut [u8; 64]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            &buf[..n]
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{v6}");
            let n = usize::try_from(cursor.position()).unwrap_or(0);
            &buf[..n]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn host_port_is_stripped() {
        let req = Request::get("/")
            .header("host", "App.example:8080")
            .body(())
            .expect("req");
        assert_eq!(request_host(&req), Some("App.example"));
        let v6 = Request::get("/")
            .header("host", "[::1]")
            .body(())
            .expect("req");
        assert_eq!(request_host(&v6), Some("[::1]"));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        append_forwarded_for(&mut h, "127.0.0.1".parse().expect("ip"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        let mut fresh = HeaderMap::new();
        append_forwarded_for(&mut fresh, "::ffff:10.1.2.3".parse().expect("ip"));
        assert_eq!(fresh["x-forwarded-for"], "::ffff:10.1.2.3");
    }

    #[test]
    fn ip_text_is_display() {
        let mut buf = [0u8; 64];
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "2001:db8::1",
            "::",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(ip_text(ip, &mut buf), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn plain_requests_have_no_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a"));
        h.insert("x-keep-alive-ish", HeaderValue::from_static("1"));
        assert!(!has_hop_by_hop(&h));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        assert!(has_hop_by_hop(&h));
        let mut te = HeaderMap::new();
        te.insert(header::TE, HeaderValue::from_static("trailers"));
        assert!(has_hop_by_hop(&te));
    }
}
