//! What the entry point answers itself when it terminates TLS: on the
//! plain listener (port 80) ACME HTTP-01 challenges first, then a 301 to
//! HTTPS for hosts it has a certificate for (unless their policy opts out);
//! on HTTPS responses the host's HSTS header, when it opted in.

use std::sync::Arc;

use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::body::ProxyBody;
use super::forward::request_host;
use crate::tls::handshake::HandshakeStats;
use crate::tls::map::CertMap;

/// HTTP-01 answers live under this path (RFC 8555 8.3).
const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

pub struct Edge {
    pub map: Arc<CertMap>,
    pub stats: Arc<HandshakeStats>,
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Port redirects point at (443 is left out of the URL).
    pub https_port: u16,
}

impl Edge {
    /// The answer to a plain-HTTP request, when the agent gives it itself.
    pub fn plain_answer<B>(&self, req: &Request<B>) -> Option<Response<ProxyBody>> {
        if let Some(token) = req.uri().path().strip_prefix(CHALLENGE_PREFIX)
            && let Some(key_authorization) = self.map.token(token)
        {
            let mut resp = Response::new(ProxyBody::local(key_authorization));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            return Some(resp);
        }
        let host = request_host(req)?;
        if !self.map.lookup(host)?.redirect_http {
            return None;
        }
        let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let location = redirect_location(host, self.https_port, path);
        let location = HeaderValue::from_str(&location).ok()?;
        let mut resp = Response::new(ProxyBody::local(String::new()));
        *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
        resp.headers_mut().insert(header::LOCATION, location);
        Some(resp)
    }

    /// The HSTS value for a request's host, if it opted in.
    pub fn hsts<B>(&self, req: &Request<B>) -> Option<HeaderValue> {
        self.map.lookup(request_host(req)?)?.hsts.clone()
    }
}

/// `https://host[:port]/path?query`; the port only when not 443.
pub fn redirect_location(host: &str, https_port: u16, path_and_query: &str) -> String {
    let path = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_path_and_query_and_drop_the_default_port() {
        assert_eq!(
            redirect_location("a.example.org", 443, "/x/y?q=1&r=2"),
            "https://a.example.org/x/y?q=1&r=2"
        );
        assert_eq!(
            redirect_location("a.example.org", 8443, "/"),
            "https://a.example.org:8443/"
        );
        // An absolute-form or `*` target never leaks into the Location.
        assert_eq!(
            redirect_location("a.example.org", 443, "*"),
            "https://a.example.org/"
        );
    }
}
