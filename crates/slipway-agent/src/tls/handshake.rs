//! The TLS side of a connection: the server configuration (certificates
//! from the [`CertMap`], ALPN h2 / http/1.1 / acme-tls/1) and the handshake
//! outcome bookkeeping. Failed handshakes (scanners, clients asking for a
//! name this host does not serve, expired client clocks) are routine on a
//! public port: they are counted for /metrics and logged at most once a
//! minute, never once per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use rustls::ServerConfig;

use super::map::{ACME_TLS_ALPN, CertMap};

/// How long a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one log line about failed handshakes per this many seconds.
const LOG_EVERY_SECS: i64 = 60;

/// The one crypto provider of the process (ring); set before any TLS use,
/// including the ACME client's.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn server_config(map: Arc<CertMap>) -> Arc<ServerConfig> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(map);
    // Server preference order: rustls picks the first of these the client
    // offers. acme-tls/1 is only ever offered alone, by a CA validating.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    Arc::new(config)
}

#[derive(Debug, Default)]
pub struct HandshakeStats {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Failures since the last log line.
    unlogged: AtomicU64,
    last_log: AtomicI64,
}

impl HandshakeStats {
    pub fn succeeded(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self, error: &dyn std::fmt::Display) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.unlogged.fetch_add(1, Ordering::Relaxed);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let last = self.last_log.load(Ordering::Relaxed);
        if now - last >= LOG_EVERY_SECS
            && self
                .last_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let n = self.unlogged.swap(0, Ordering::Relaxed);
            tracing::info!(failed = n, last_error = %error,
                "TLS handshakes failed since the last report (counted in slipway_tls_handshakes_total{{result=\"failed\"}}; reported at most once a minute)");
        }
    }

    /// (succeeded, failed)
    pub fn totals(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}
