//! The certificate map every TLS handshake reads: host → certificate (and
//! that host's HTTP policy), plus the ACME challenge answers in flight.
//! Copy-on-write behind `ArcSwap`: a change builds a new map and swaps it in,
//! so handshakes never wait on a lock, open connections keep the certificate
//! they negotiated, and the next handshake sees the new one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::header::HeaderValue;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// How one host (or `*.parent`) is served.
pub struct Served {
    pub key: Arc<CertifiedKey>,
    /// Port 80 redirects this host to HTTPS (else proxies it as plain HTTP).
    pub redirect_http: bool,
    /// `Strict-Transport-Security` value for its HTTPS responses.
    pub hsts: Option<HeaderValue>,
}

#[derive(Default)]
pub struct CertMap {
    hosts: ArcSwap<HashMap<String, Arc<Served>>>,
    /// TLS-ALPN-01 challenge certificates by host.
    alpn: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 token → key authorization.
    tokens: ArcSwap<HashMap<String, String>>,
}

impl std::fmt::Debug for CertMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertMap")
            .field("hosts", &self.hosts.load().len())
            .finish_non_exhaustive()
    }
}

/// `name` lower-cased without a trailing dot, borrowed when it already is.
pub fn normalize(name: &str) -> Cow<'_, str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// The entry for `host` (already normalized): the exact name first, then
/// the wildcard one label up (`a.example.org` → `*.example.org`; a wildcard
/// covers exactly one label, as RFC 6125 says).
pub fn find<'m, V>(map: &'m HashMap<String, V>, host: &str) -> Option<&'m V> {
    if let Some(v) = map.get(host) {
        return Some(v);
    }
    let (first, parent) = host.split_once('.')?;
    if first.is_empty() || first == "*" || !parent.contains('.') {
        return None;
    }
    map.get(&format!("*.{parent}"))
}

fn update<K: Clone + Eq + std::hash::Hash, V: Clone>(
    swap: &ArcSwap<HashMap<K, V>>,
    f: impl Fn(&mut HashMap<K, V>),
) {
    swap.rcu(|m| {
        let mut m = HashMap::clone(m);
        f(&mut m);
        m
    });
}

impl CertMap {
    /// What serves `host` (any case, port stripped by the caller).
    pub fn lookup(&self, host: &str) -> Option<Arc<Served>> {
        find(&self.hosts.load(), &normalize(host)).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.load().is_empty()
    }

    pub fn install(&self, host: &str, served: Served) {
        let served = Arc::new(served);
        update(&self.hosts, |m| {
            m.insert(host.to_owned(), Arc::clone(&served));
        });
    }

    pub fn remove(&self, host: &str) {
        update(&self.hosts, |m| {
            m.remove(host);
        });
    }

    pub fn add_token(&self, token: &str, key_authorization: &str) {
        update(&self.tokens, |m| {
            m.insert(token.to_owned(), key_authorization.to_owned());
        });
    }

    pub fn remove_token(&self, token: &str) {
        update(&self.tokens, |m| {
            m.remove(token);
        });
    }

    /// The key authorization for an HTTP-01 token, if one is being validated.
    pub fn token(&self, token: &str) -> Option<String> {
        self.tokens.load().get(token).cloned()
    }

    pub fn add_alpn_challenge(&self, host: &str, key: Arc<CertifiedKey>) {
        update(&self.alpn, |m| {
            m.insert(host.to_owned(), Arc::clone(&key));
        });
    }

    pub fn remove_alpn_challenge(&self, host: &str) {
        update(&self.alpn, |m| {
            m.remove(host);
        });
    }
}

impl ResolvesServerCert for CertMap {
    /// No certificate for the name (or no SNI at all) → `None`: rustls then
    /// ends the handshake with an alert; never another host's certificate.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = normalize(hello.server_name()?).into_owned();
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            return self.alpn.load().get(&name).cloned();
        }
        find(&self.hosts.load(), &name).map(|s| Arc::clone(&s.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: &[&str]) -> HashMap<String, &'static str> {
        keys.iter().map(|k| (k.to_string(), "x")).collect()
    }

    #[test]
    fn exact_name_wins_over_the_wildcard() {
        let mut m = map(&["*.example.org"]);
        m.insert("api.example.org".into(), "exact");
        assert_eq!(find(&m, "api.example.org"), Some(&"exact"));
        assert_eq!(find(&m, "www.example.org"), Some(&"x"));
    }

    #[test]
    fn a_wildcard_covers_one_label_only() {
        let m = map(&["*.example.org"]);
        assert_eq!(find(&m, "a.b.example.org"), None);
        assert_eq!(find(&m, "example.org"), None);
        // `*.org` style entries never match a bare second-level name.
        let m = map(&["*.org"]);
        assert_eq!(find(&m, "example.org"), None);
    }

    #[test]
    fn unknown_names_find_nothing() {
        let m = map(&["api.example.org"]);
        assert_eq!(find(&m, "other.example.org"), None);
        assert_eq!(find(&m, ""), None);
        assert_eq!(find(&m, "*.example.org"), None);
    }

    #[test]
    fn names_are_compared_lower_case_without_the_root_dot() {
        assert_eq!(normalize("API.Example.org."), "api.example.org");
        assert!(matches!(normalize("api.example.org"), Cow::Borrowed(_)));
    }
}
