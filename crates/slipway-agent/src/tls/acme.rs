//! Obtaining a certificate for one host from an RFC 8555 directory:
//! the account (created once, kept on the state volume), then an order
//! validated over HTTP-01 (port 80) and, when that fails, a fresh order over
//! TLS-ALPN-01 (port 443), each answered through the [`CertMap`]. One host
//! per certificate, so one bad name never blocks another.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};

use super::certificate;
use super::map::CertMap;
use super::store::{self, TlsStore};

/// The `--acme-*` settings.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    pub directory: String,
    pub email: Option<String>,
    /// PEM root to trust for the directory's own HTTPS (test CAs).
    pub ca_root: Option<PathBuf>,
}

/// How long the CA may take to validate, then to issue.
const VALIDATION_WITHIN: Duration = Duration::from_secs(90);
const ISSUANCE_WITHIN: Duration = Duration::from_secs(60);

/// A newly issued chain and its key (PEM).
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Why an order failed: the CA refused validation (worth trying the other
/// challenge), or something else (the CA is unreachable, refuses the name).
enum Failure {
    Validation(String),
    Other(String),
}

pub struct Acme {
    pub config: AcmeConfig,
    account: tokio::sync::Mutex<Option<Account>>,
}

fn ca_error(e: instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(p) => problem_text(&p),
        other => other.to_string(),
    }
}

fn problem_text(p: &instant_acme::Problem) -> String {
    let mut text = p.detail.clone().unwrap_or_else(|| "no detail".into());
    if let Some(kind) = &p.r#type {
        text.push_str(&format!(" ({kind})"));
    }
    text
}

/// Removes the challenge answers of one attempt, however it ends.
struct Answers<'a> {
    map: &'a CertMap,
    tokens: Vec<String>,
    alpn: Vec<String>,
}

impl Drop for Answers<'_> {
    fn drop(&mut self) {
        for t in &self.tokens {
            self.map.remove_token(t);
        }
        for h in &self.alpn {
            self.map.remove_alpn_challenge(h);
        }
    }
}

impl Acme {
    pub fn new(config: AcmeConfig) -> Self {
        Self {
            config,
            account: tokio::sync::Mutex::new(None),
        }
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder, String> {
        match &self.config.ca_root {
            Some(root) => Account::builder_with_root(root).map_err(|e| {
                format!(
                    "cannot use --acme-ca-root {}: {e}; give a PEM file with the CA certificate",
                    root.display()
                )
            }),
            None => Account::builder().map_err(|e| format!("cannot start the ACME client: {e}")),
        }
    }

    /// The account on this directory: loaded from the state volume, or
    /// created (and saved, mode 0600) on first use.
    async fn account(&self, store: &TlsStore) -> Result<Account, String> {
        let mut slot = self.account.lock().await;
        if let Some(a) = &*slot {
            return Ok(a.clone());
        }
        let dir = store
            .acme_dir(&self.config.directory)
            .map_err(|e| format!("cannot create the ACME state directory: {e}"))?;
        let path = dir.join("account.json");
        let account = match fs_err::read(&path) {
            Ok(bytes) => {
                let creds: AccountCredentials = serde_json::from_slice(&bytes).map_err(|e| {
                    format!(
                        "{} is not valid: {e}; delete it to register a new account",
                        path.display()
                    )
                })?;
                self.builder()?
                    .from_credentials(creds)
                    .await
                    .map_err(|e| self.unreachable(e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let contact = self.config.email.as_ref().map(|m| format!("mailto:{m}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let (account, creds) = self
                    .builder()?
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.config.directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|e| self.unreachable(e))?;
                let bytes = serde_json::to_vec(&creds)
                    .map_err(|e| format!("cannot encode the ACME account: {e}"))?;
                store::write_atomic(&path, &bytes)
                    .map_err(|e| format!("cannot save the ACME account: {e}"))?;
                tracing::info!(directory = %self.config.directory, id = account.id(), "ACME account registered");
                account
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        *slot = Some(account.clone());
        Ok(account)
    }

    fn unreachable(&self, e: instant_acme::Error) -> String {
        format!(
            "the ACME directory {} did not answer as expected: {}; check --acme-directory (and \
             --acme-ca-root for a private CA) and that this host reaches it",
            self.config.directory,
            ca_error(e)
        )
    }

    /// Obtain a certificate for `host`: HTTP-01 first, TLS-ALPN-01 if that
    /// fails. The error carries the CA's reasons and what to fix.
    pub async fn issue(
        &self,
        store: &TlsStore,
        map: &CertMap,
        host: &str,
    ) -> Result<Issued, String> {
        let account = self.account(store).await?;
        let mut reasons = Vec::new();
        for kind in [ChallengeType::Http01, ChallengeType::TlsAlpn01] {
            let name = if kind == ChallengeType::Http01 {
                "http-01"
            } else {
                "tls-alpn-01"
            };
            match self.attempt(&account, map, host, kind).await {
                Ok(issued) => {
                    tracing::info!(host, challenge = name, "certificate issued");
                    return Ok(issued);
                }
                Err(Failure::Validation(reason)) => {
                    tracing::info!(host, challenge = name, %reason, "validation failed");
                    reasons.push(format!("{name}: {reason}"));
                }
                Err(Failure::Other(reason)) => {
                    return Err(format!(
                        "the CA {} refused a certificate for `{host}`: {reason}",
                        self.config.directory
                    ));
                }
            }
        }
        Err(format!(
            "the CA {} could not validate `{host}` ({}). Fix: make sure DNS for `{host}` points \
             at this server and that ports 80 and 443 reach this entry point from the internet \
             (firewall, NAT, a proxy in front); traffic stays where it was",
            self.config.directory,
            reasons.join("; ")
        ))
    }

    async fn attempt(
        &self,
        account: &Account,
        map: &CertMap,
        host: &str,
        kind: ChallengeType,
    ) -> Result<Issued, Failure> {
        let ids = [Identifier::Dns(host.to_owned())];
        let mut order = account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(|e| Failure::Other(ca_error(e)))?;
        let mut answers = Answers {
            map,
            tokens: Vec::new(),
            alpn: Vec::new(),
        };
        {
            let mut authzs = order.authorizations();
            while let Some(authz) = authzs.next().await {
                let mut authz = authz.map_err(|e| Failure::Other(ca_error(e)))?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    // Reused from an earlier validation.
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(Failure::Validation(format!(
                            "the authorization is {other:?}"
                        )));
                    }
                }
                let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
                    Failure::Validation(format!("the CA offers no {kind:?} challenge"))
                })?;
                let key_auth = challenge.key_authorization();
                match kind {
                    ChallengeType::TlsAlpn01 => {
                        let cert = certificate::alpn_challenge(host, key_auth.digest().as_ref())
                            .map_err(Failure::Other)?;
                        map.add_alpn_challenge(host, cert);
                        answers.alpn.push(host.to_owned());
                    }
                    _ => {
                        map.add_token(&challenge.token, key_auth.as_str());
                        answers.tokens.push(challenge.token.clone());
                    }
                }
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| Failure::Validation(ca_error(e)))?;
            }
        }
        let policy = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(VALIDATION_WITHIN);
        let status = match order.poll_ready(&policy).await {
            Ok(s) => s,
            Err(instant_acme::Error::Api(p)) => {
                let detail = self.challenge_error(&mut order).await;
                return Err(Failure::Validation(
                    detail.unwrap_or_else(|| problem_text(&p)),
                ));
            }
            Err(e) => return Err(Failure::Other(ca_error(e))),
        };
        if status != OrderStatus::Ready {
            let detail = self.challenge_error(&mut order).await;
            return Err(Failure::Validation(
                detail.unwrap_or_else(|| format!("the order is {status:?}")),
            ));
        }
        drop(answers);
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| Failure::Other(ca_error(e)))?;
        let cert_pem = order
            .poll_certificate(&RetryPolicy::new().timeout(ISSUANCE_WITHIN))
            .await
            .map_err(|e| Failure::Other(ca_error(e)))?;
        Ok(Issued { cert_pem, key_pem })
    }

    /// The CA's own words on why a challenge failed.
    async fn challenge_error(&self, order: &mut instant_acme::Order) -> Option<String> {
        let mut authzs = order.authorizations();
        while let Some(Ok(mut authz)) = authzs.next().await {
            if let Ok(state) = authz.refresh().await
                && let Some(p) = state.challenges.iter().find_map(|c| c.error.as_ref())
            {
                return Some(problem_text(p));
            }
        }
        None
    }

    /// The CA's suggested renewal window (ARI) for a certificate, as unix
    /// seconds; `None` when the directory offers no ARI or cannot tell.
    pub async fn renewal_window(
        &self,
        store: &TlsStore,
        leaf: &rustls::pki_types::CertificateDer<'_>,
    ) -> Option<(i64, i64)> {
        let account = self.account(store).await.ok()?;
        let id = instant_acme::CertificateIdentifier::try_from(leaf).ok()?;
        match account.renewal_info(&id).await {
            Ok((info, _)) => Some((
                info.suggested_window.start.unix_timestamp(),
                info.suggested_window.end.unix_timestamp(),
            )),
            Err(instant_acme::Error::Unsupported(_)) => None,
            Err(e) => {
                tracing::debug!(error = %e, "no renewal information from the CA");
                None
            }
        }
    }
}

/// Shared handle.
pub type SharedAcme = Arc<Acme>;
