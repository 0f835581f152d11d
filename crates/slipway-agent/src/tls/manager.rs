//! The certificates this agent serves and every change to them: the admin
//! verbs (`cert_ensure`, `cert_forget`, `certs`), loading what the state
//! volume holds at start, and one renewal task per ACME host. Handshakes
//! never come here: they read the [`CertMap`] this fills.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::header::HeaderValue;
use rustls::pki_types::CertificateDer;
use slipway_core::admin::{
    AdminError, AdminErrorKind, AdminResult, CertEnsureArgs, CertInfo, CertSource,
};

use super::acme::{Acme, AcmeConfig};
use super::certificate::{self, CertMeta, Loaded};
use super::handshake::HandshakeStats;
use super::map::{CertMap, Served};
use super::renew;
use super::store::{self, HostRecord, SourceKind, TlsStore};
use crate::handover::gate::Gate;

/// Longest single sleep of a renewal task: it wakes to re-read its host's
/// schedule at least this often.
const RECHECK: Duration = Duration::from_secs(3600);

struct HostState {
    record: HostRecord,
    meta: Option<CertMeta>,
    leaf: Option<CertificateDer<'static>>,
    next_renewal: Option<i64>,
    last_error: Option<(String, i64)>,
    failures: u32,
    renewal: Option<tokio::task::AbortHandle>,
}

pub struct Tls {
    pub map: Arc<CertMap>,
    pub stats: Arc<HandshakeStats>,
    store: TlsStore,
    acme: Option<Acme>,
    /// Renewals write the state volume: only the agent that owns it (gate
    /// open) renews, never both agents of an upgrade.
    gate: Arc<Gate>,
    hosts: Mutex<BTreeMap<String, HostState>>,
    /// One issuance per host at a time (an ensure and a renewal, or two
    /// ensures); other hosts are not held up.
    issuing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn err(kind: AdminErrorKind, message: String) -> AdminError {
    AdminError {
        kind,
        message,
        health: None,
        holder: None,
    }
}

/// A host name an entry may have: DNS labels, lower case, optionally one
/// leading `*.` (custom certificates only).
pub fn valid_host(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{host}` is not a host name this agent serves: lower-case DNS labels (a-z, 0-9, \
             `-`), optionally `*.` in front for a custom wildcard certificate"
        ))
    }
}

fn served(loaded: &Loaded, record: &HostRecord) -> Served {
    Served {
        key: Arc::clone(&loaded.key),
        redirect_http: record.redirect_http,
        hsts: record
            .hsts_max_age_secs
            .and_then(|n| HeaderValue::from_str(&format!("max-age={n}")).ok()),
    }
}

fn read_loaded(path: &std::path::Path) -> Result<Option<Loaded>, String> {
    match store::read_pair(path) {
        Ok(Some((cert, key))) => certificate::load_pem(&cert, &key)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

impl Tls {
    pub fn new(
        state_dir: &std::path::Path,
        acme: Option<AcmeConfig>,
        gate: Arc<Gate>,
    ) -> anyhow::Result<Arc<Self>> {
        let store = TlsStore::open(state_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create {}/tls for certificates: {e}; check the state volume's permissions",
                state_dir.display()
            )
        })?;
        Ok(Arc::new(Self {
            map: Arc::new(CertMap::default()),
            stats: Arc::new(HandshakeStats::default()),
            store,
            acme: acme.map(Acme::new),
            gate,
            hosts: Mutex::new(BTreeMap::new()),
            issuing: Mutex::new(HashMap::new()),
        }))
    }

    fn hosts(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, HostState>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn host_lock(&self, host: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.issuing.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(m.entry(host.to_owned()).or_default())
    }

    /// Serve what the state volume holds (at start, so a restarted or
    /// upgraded agent serves at once) and schedule ACME renewals.
    pub fn load(self: &Arc<Self>) -> anyhow::Result<()> {
        let records = self.store.hosts().map_err(|e| {
            anyhow::anyhow!("cannot read the served hosts: {e}; fix or delete the file")
        })?;
        for (host, record) in records {
            let path = match (record.source, &record.directory) {
                (SourceKind::Custom, _) => Ok(self.store.custom_file(&host)),
                (SourceKind::Acme, Some(dir)) => self.store.acme_file(dir, &host),
                (SourceKind::Acme, None) => {
                    tracing::warn!(host, "ACME host without a directory in hosts.json; skipped");
                    continue;
                }
            };
            let loaded = path
                .map_err(|e| e.to_string())
                .and_then(|p| read_loaded(&p));
            let mut state = HostState {
                record: record.clone(),
                meta: None,
                leaf: None,
                next_renewal: None,
                last_error: None,
                failures: 0,
                renewal: None,
            };
            match loaded {
                Ok(Some(loaded)) => {
                    if loaded.meta.not_after <= now() {
                        tracing::warn!(host, not_after = %certificate::rfc3339(loaded.meta.not_after),
                            "serving an EXPIRED certificate: clients will refuse it until it is renewed or replaced");
                    }
                    self.map.install(&host, served(&loaded, &record));
                    state.leaf = loaded.key.cert.first().cloned();
                    state.meta = Some(loaded.meta);
                }
                Ok(None) => {
                    state.last_error = Some(("no certificate stored for this host".into(), now()))
                }
                Err(e) => {
                    tracing::warn!(host, error = %e, "cannot load the stored certificate");
                    state.last_error = Some((e, now()));
                }
            }
            let acme = record.source == SourceKind::Acme;
            self.hosts().insert(host.clone(), state);
            if acme {
                self.schedule(&host);
                self.spawn_renewal(host);
            }
        }
        Ok(())
    }

    /// Set a host's next renewal by our own rule (now, if there is nothing
    /// to renew or it came from another directory).
    fn schedule(&self, host: &str) {
        let directory = self.acme.as_ref().map(|a| a.config.directory.clone());
        let mut hosts = self.hosts();
        let Some(st) = hosts.get_mut(host) else {
            return;
        };
        st.next_renewal = match (&st.meta, directory) {
            (Some(m), Some(d)) if st.record.directory.as_deref() == Some(d.as_str()) => Some(
                renew::own_renewal(m.not_before, m.not_after, rand::random::<f64>()),
            ),
            (_, Some(_)) => Some(now()),
            (_, None) => None,
        };
    }

    pub async fn ensure(self: &Arc<Self>, a: CertEnsureArgs) -> Result<AdminResult, AdminError> {
        let host = super::map::normalize(&a.host).into_owned();
        valid_host(&host).map_err(|m| err(AdminErrorKind::BadRequest, m))?;
        let info = match &a.source {
            CertSource::Custom { cert_pem, key_pem } => {
                self.ensure_custom(&host, cert_pem, key_pem, &a)?
            }
            CertSource::Acme => self.ensure_acme(&host, &a).await?,
        };
        Ok(AdminResult::Certs { certs: vec![info] })
    }

    fn ensure_custom(
        &self,
        host: &str,
        cert_pem: &str,
        key_pem: &str,
        a: &CertEnsureArgs,
    ) -> Result<CertInfo, AdminError> {
        let unusable = |m: String| {
            err(
                AdminErrorKind::CertFailed,
                format!("the custom certificate for `{host}` is unusable: {m}"),
            )
        };
        let loaded = certificate::load_pem(cert_pem, key_pem).map_err(unusable)?;
        certificate::check_custom(&loaded.meta, host, now()).map_err(unusable)?;
        let record = HostRecord {
            source: SourceKind::Custom,
            directory: None,
            redirect_http: a.redirect_http,
            hsts_max_age_secs: a.hsts_max_age_secs,
        };
        store::write_pair(&self.store.custom_file(host), cert_pem, key_pem).map_err(|e| {
            err(
                AdminErrorKind::Internal,
                format!("cannot store the certificate for `{host}` on the state volume: {e}"),
            )
        })?;
        self.commit(host, &loaded, record)?;
        tracing::info!(host, serial = %loaded.meta.serial, "custom certificate installed");
        Ok(self.info(host).expect("just installed"))
    }

    async fn ensure_acme(
        self: &Arc<Self>,
        host: &str,
        a: &CertEnsureArgs,
    ) -> Result<CertInfo, AdminError> {
        let Some(acme) = &self.acme else {
            return Err(err(
                AdminErrorKind::BadRequest,
                format!(
                    "cannot obtain a certificate for `{host}`: this agent has no ACME directory; \
                     start it with --acme-directory (or send a custom certificate)"
                ),
            ));
        };
        if host.starts_with("*.") {
            return Err(err(
                AdminErrorKind::BadRequest,
                format!(
                    "`{host}`: wildcard certificates need DNS-01 validation, which this agent \
                     does not do; send a custom certificate for it, or name each host"
                ),
            ));
        }
        let directory = acme.config.directory.clone();
        let record = HostRecord {
            source: SourceKind::Acme,
            directory: Some(directory.clone()),
            redirect_http: a.redirect_http,
            hsts_max_age_secs: a.hsts_max_age_secs,
        };
        let lock = self.host_lock(host);
        let _held = lock.lock().await;
        let path = self.store.acme_file(&directory, host).map_err(|e| {
            err(
                AdminErrorKind::Internal,
                format!("cannot prepare the ACME state directory: {e}"),
            )
        })?;
        let stored = read_loaded(&path).ok().flatten();
        if let Some(loaded) = &stored {
            let m = &loaded.meta;
            if now() < renew::own_renewal(m.not_before, m.not_after, 0.0) {
                self.commit(host, loaded, record)?;
                self.after_issue(host).await;
                return Ok(self.info(host).expect("just installed"));
            }
        }
        match self.issue_and_store(host, &path).await {
            Ok(loaded) => {
                self.commit(host, &loaded, record)?;
                self.after_issue(host).await;
                Ok(self.info(host).expect("just installed"))
            }
            Err(reason) => match stored {
                // Still valid, only due: keep serving it and keep trying.
                Some(loaded) if loaded.meta.not_after > now() => {
                    tracing::warn!(host, %reason, "renewal failed; serving the stored certificate until it expires");
                    self.commit(host, &loaded, record)?;
                    self.failed(host, &reason);
                    self.spawn_renewal(host.to_owned());
                    Ok(self.info(host).expect("just installed"))
                }
                _ => Err(err(AdminErrorKind::CertFailed, reason)),
            },
        }
    }

    async fn issue_and_store(&self, host: &str, path: &std::path::Path) -> Result<Loaded, String> {
        let Some(acme) = &self.acme else {
            return Err("this agent has no ACME directory (--acme-directory)".into());
        };
        let issued = acme.issue(&self.store, &self.map, host).await?;
        let loaded = certificate::load_pem(&issued.cert_pem, &issued.key_pem)
            .map_err(|e| format!("the CA sent a certificate this agent cannot use: {e}"))?;
        store::write_pair(path, &issued.cert_pem, &issued.key_pem)
            .map_err(|e| format!("cannot store the new certificate on the state volume: {e}"))?;
        Ok(loaded)
    }

    /// Serve `loaded` for `host`, remember it and persist the host list.
    fn commit(&self, host: &str, loaded: &Loaded, record: HostRecord) -> Result<(), AdminError> {
        let mut hosts = self.hosts();
        let mut records: BTreeMap<String, HostRecord> = hosts
            .iter()
            .map(|(h, s)| (h.clone(), s.record.clone()))
            .collect();
        records.insert(host.to_owned(), record.clone());
        self.store.save_hosts(&records).map_err(|e| {
            err(
                AdminErrorKind::Internal,
                format!("cannot save the served hosts on the state volume: {e}"),
            )
        })?;
        self.map.install(host, served(loaded, &record));
        let st = hosts.entry(host.to_owned()).or_insert_with(|| HostState {
            record: record.clone(),
            meta: None,
            leaf: None,
            next_renewal: None,
            last_error: None,
            failures: 0,
            renewal: None,
        });
        if record.source == SourceKind::Custom
            && let Some(task) = st.renewal.take()
        {
            task.abort();
        }
        st.record = record;
        st.meta = Some(loaded.meta.clone());
        st.leaf = loaded.key.cert.first().cloned();
        st.last_error = None;
        st.failures = 0;
        st.next_renewal = None;
        Ok(())
    }

    /// After an ACME certificate is installed: when to renew it (ARI when
    /// the CA offers it), and the task that will.
    async fn after_issue(self: &Arc<Self>, host: &str) {
        let (leaf, meta) = {
            let hosts = self.hosts();
            let Some(st) = hosts.get(host) else { return };
            (st.leaf.clone(), st.meta.clone())
        };
        let (Some(leaf), Some(meta), Some(acme)) = (leaf, meta, &self.acme) else {
            return;
        };
        let ari = acme.renewal_window(&self.store, &leaf).await;
        let at = renew::renewal_time(meta.not_before, meta.not_after, ari, rand::random::<f64>());
        if let Some(st) = self.hosts().get_mut(host) {
            st.next_renewal = Some(at);
        }
        self.spawn_renewal(host.to_owned());
    }

    fn failed(&self, host: &str, reason: &str) {
        let now = now();
        let mut hosts = self.hosts();
        let Some(st) = hosts.get_mut(host) else {
            return;
        };
        st.failures += 1;
        st.last_error = Some((reason.to_owned(), now));
        let wait = renew::backoff(st.failures, now, st.meta.as_ref().map(|m| m.not_after));
        st.next_renewal = Some(now + wait.as_secs() as i64);
        let expired = st.meta.as_ref().is_some_and(|m| m.not_after <= now);
        if expired {
            tracing::warn!(host, failures = st.failures, retry_in_secs = wait.as_secs(), %reason,
                "renewal failed and the certificate served has EXPIRED");
        } else {
            tracing::warn!(host, failures = st.failures, retry_in_secs = wait.as_secs(), %reason,
                "renewal failed; will retry");
        }
    }

    fn spawn_renewal(self: &Arc<Self>, host: String) {
        let me = Arc::clone(self);
        let key = host.clone();
        let task = tokio::spawn(async move { me.renewal_loop(host).await }).abort_handle();
        if let Some(old) = self
            .hosts()
            .get_mut(&key)
            .and_then(|st| st.renewal.replace(task))
        {
            old.abort();
        }
    }

    async fn renewal_loop(self: Arc<Self>, host: String) {
        loop {
            let due = match self.hosts().get(&host) {
                Some(st) => st.next_renewal,
                None => return,
            };
            let Some(due) = due else { return };
            let wait = due - now();
            if wait > 0 {
                tokio::time::sleep(Duration::from_secs(wait as u64).min(RECHECK)).await;
                continue;
            }
            // Only the agent that owns the state volume renews.
            let Ok(_pass) = self.gate.pass() else {
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            };
            let directory = match &self.acme {
                Some(a) => a.config.directory.clone(),
                None => return,
            };
            let lock = self.host_lock(&host);
            let _held = lock.lock().await;
            let record = match self.hosts().get(&host) {
                Some(st) if st.record.source == SourceKind::Acme => HostRecord {
                    directory: Some(directory.clone()),
                    ..st.record.clone()
                },
                _ => return,
            };
            let path = match self.store.acme_file(&directory, &host) {
                Ok(p) => p,
                Err(e) => {
                    self.failed(
                        &host,
                        &format!("cannot prepare the ACME state directory: {e}"),
                    );
                    continue;
                }
            };
            tracing::info!(host, "renewing the certificate");
            match self.issue_and_store(&host, &path).await {
                Ok(loaded) => match self.commit(&host, &loaded, record) {
                    Ok(()) => {
                        tracing::info!(host, serial = %loaded.meta.serial,
                            not_after = %certificate::rfc3339(loaded.meta.not_after), "certificate renewed");
                        let Some(acme) = &self.acme else { return };
                        let ari = match loaded.key.cert.first() {
                            Some(leaf) => acme.renewal_window(&self.store, leaf).await,
                            None => None,
                        };
                        let at = renew::renewal_time(
                            loaded.meta.not_before,
                            loaded.meta.not_after,
                            ari,
                            rand::random::<f64>(),
                        );
                        if let Some(st) = self.hosts().get_mut(&host) {
                            st.next_renewal = Some(at);
                        }
                    }
                    Err(e) => self.failed(&host, &e.message),
                },
                Err(reason) => self.failed(&host, &reason),
            }
        }
    }

    pub fn forget(&self, host: &str) -> Result<AdminResult, AdminError> {
        let host = super::map::normalize(host).into_owned();
        let mut hosts = self.hosts();
        let Some(st) = hosts.get(&host) else {
            return Err(err(
                AdminErrorKind::NotFound,
                format!("no certificate is served for `{host}`; `certs` lists those that are"),
            ));
        };
        let _ = st;
        let records: BTreeMap<String, HostRecord> = hosts
            .iter()
            .filter(|(h, _)| **h != host)
            .map(|(h, s)| (h.clone(), s.record.clone()))
            .collect();
        self.store.save_hosts(&records).map_err(|e| {
            err(
                AdminErrorKind::Internal,
                format!("cannot save the served hosts on the state volume: {e}"),
            )
        })?;
        if let Some(task) = hosts.remove(&host).and_then(|st| st.renewal) {
            task.abort();
        }
        drop(hosts);
        self.map.remove(&host);
        tracing::info!(host, "certificate no longer served (its files are kept)");
        Ok(self.list())
    }

    /// Every host, the ones that need attention first: expired, then
    /// failing, then by name.
    pub fn list(&self) -> AdminResult {
        let names: Vec<String> = self.hosts().keys().cloned().collect();
        let mut certs: Vec<CertInfo> = names.iter().filter_map(|h| self.info(h)).collect();
        certs.sort_by(|a, b| {
            (!a.expired, a.last_error.is_none(), &a.host).cmp(&(
                !b.expired,
                b.last_error.is_none(),
                &b.host,
            ))
        });
        AdminResult::Certs { certs }
    }

    fn info(&self, host: &str) -> Option<CertInfo> {
        let hosts = self.hosts();
        let st = hosts.get(host)?;
        let acme = st.record.source == SourceKind::Acme;
        Some(CertInfo {
            host: host.to_owned(),
            source: st.record.source.as_str().to_owned(),
            directory: st.record.directory.clone(),
            issuer: st.meta.as_ref().map(|m| m.issuer.clone()),
            serial: st.meta.as_ref().map(|m| m.serial.clone()),
            not_before: st.meta.as_ref().map(|m| m.not_before),
            not_after: st.meta.as_ref().map(|m| m.not_after),
            next_renewal: if acme { st.next_renewal } else { None },
            last_error: st.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at: st.last_error.as_ref().map(|(_, t)| *t),
            expired: st.meta.as_ref().is_some_and(|m| m.not_after <= now()),
            redirect_http: st.record.redirect_http,
            hsts_max_age_secs: st.record.hsts_max_age_secs,
        })
    }

    /// Handshake counts and each host's expiry and renewal failures, in
    /// Prometheus text (appended to /metrics).
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let (ok, failed) = self.stats.totals();
        let _ = writeln!(
            out,
            "# TYPE slipway_tls_handshakes_total counter\n\
             slipway_tls_handshakes_total{{result=\"ok\"}} {ok}\n\
             slipway_tls_handshakes_total{{result=\"failed\"}} {failed}\n\
             # TYPE slipway_tls_certificate_not_after_seconds gauge\n\
             # TYPE slipway_tls_renewal_failures gauge"
        );
        for (host, st) in self.hosts().iter() {
            let host = host.replace(['\\', '"', '\n'], "_");
            if let Some(m) = &st.meta {
                let _ = writeln!(
                    out,
                    "slipway_tls_certificate_not_after_seconds{{host=\"{host}\"}} {}",
                    m.not_after
                );
            }
            let _ = writeln!(
                out,
                "slipway_tls_renewal_failures{{host=\"{host}\"}} {}",
                st.failures
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_checked() {
        assert!(valid_host("api.example.org").is_ok());
        assert!(valid_host("*.example.org").is_ok());
        assert!(valid_host("localhost").is_ok());
        for bad in [
            "",
            "API.example.org",
            "a..b",
            "-a.b",
            "a b",
            "*.",
            "a.*.b",
            "a/b",
        ] {
            assert!(valid_host(bad).is_err(), "{bad}");
        }
    }
}
