//! Forwarding one request to its target: rewrite the request (hop-by-hop
//! headers out, `X-Forwarded-*` in, absolute URI to the target), send it
//! over the pooled keep-alive client bounded by the upstream timeout and the
//! target's drain deadline, clean the response headers, and for `101
//! Switching Protocols` splice the two upgraded connections together.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Limited;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::{PathAndQuery, Scheme};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, Uri, Version};
use hyper_util::rt::TokioIo;

use super::errors::ProxyError;
use super::pool::{Conn, Pool};
use crate::target::{InFlight, Target};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

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
pub async fn forward(
    pool: &Arc<Pool>,
    cfg: &ForwardConfig,
    peer: IpAddr,
    mut req: Request<Incoming>,
    target: &Target,
) -> Result<(Response<Incoming>, Conn, Option<OnUpgrade>), ProxyError> {
    if let Some(len) = content_length(req.headers())
        && len > cfg.max_body
    {
        return Err(ProxyError::BodyTooLarge(cfg.max_body));
    }
    let upgrade = upgrade_protocol(req.headers());
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();

    let original_host = match parts.headers.get(header::HOST) {
        Some(h) => Some(h.clone()),
        None => parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    remove_hop_by_hop(&mut parts.headers);
    if let Some(proto) = upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, proto);
    }
    append_forwarded_for(&mut parts.headers, peer);
    parts
        .headers
        .insert(X_FORWARDED_PROTO.clone(), cfg.forwarded_proto.clone());
    if let Some(host) = original_host {
        parts.headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        parts.headers.insert(header::HOST, host);
    }
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(target.authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|_| ProxyError::NoTarget)?;
    parts.version = Version::HTTP_11;

    let request = Request::from_parts(
        parts,
        Limited::new(body, usize::try_from(cfg.max_body).unwrap_or(usize::MAX)),
    );
    let sent = tokio::select! {
        r = tokio::time::timeout(cfg.upstream_timeout, pool.send(&target.authority, request)) => r,
        () = target.cut_token().cancelled() => return Err(ProxyError::DrainCut),
    };
    let (mut resp, conn) = match sent {
        Ok(r) => r?,
        Err(_) => return Err(ProxyError::UpstreamTimeout(cfg.upstream_timeout)),
    };
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
    Ok((resp, conn, client_upgrade))
}

/// Splice an upgraded client connection to the upgraded upstream one until
/// either side closes or the target's drain deadline cuts it. The in-flight
/// guard lives as long as the tunnel, so a WebSocket holds its old target
/// (and its drain) open until it closes.
pub async fn tunnel(client: OnUpgrade, upstream: OnUpgrade, guard: InFlight) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
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

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
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

/// Remove the hop-by-hop headers (RFC 9110 7.6.1), including those the
/// `Connection` header names.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if let Some(conn) = headers.get(header::CONNECTION) {
        let named: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
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
    let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) => HeaderValue::from_str(&format!("{prior}, {peer}")),
        None => HeaderValue::from_str(&peer.to_string()),
    };
    if let Ok(v) = value {
        headers.insert(X_FORWARDED_FOR.clone(), v);
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
    }
}
