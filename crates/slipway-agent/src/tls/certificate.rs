//! Reading certificates: PEM chain + key into what rustls serves, the facts
//! status shows (issuer, serial, validity, names), the checks a custom
//! certificate must pass, and the TLS-ALPN-01 challenge certificate.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// What status shows of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertMeta {
    pub issuer: String,
    /// Hex serial number.
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names (subject alternative names), lower case.
    pub names: Vec<String>,
}

/// A chain and key ready to serve.
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    pub meta: CertMeta,
}

/// Parse a PEM chain (leaf first) and its private key. The error never
/// contains key material.
pub fn load_pem(cert_pem: &str, key_pem: &str) -> Result<Loaded, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate PEM does not parse ({e})"))?;
    let Some(leaf) = chain.first() else {
        return Err("the certificate PEM holds no CERTIFICATE block".into());
    };
    let meta = meta_of(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| {
        "the private key PEM holds no usable key (PKCS#8, PKCS#1 or SEC1 expected)".to_owned()
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
        "the private key is of a type this agent cannot sign with (RSA, ECDSA P-256/P-384 or \
         Ed25519 expected)"
            .to_owned()
    })?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| {
        "the private key does not belong to the certificate (its public key differs); send \
         the key that was used to request this certificate"
            .to_owned()
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        meta,
    })
}

/// The facts of one DER certificate.
pub fn meta_of(der: &CertificateDer<'_>) -> Result<CertMeta, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("the certificate is not valid X.509 ({e})"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(n) = name {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    Ok(CertMeta {
        issuer: cert.issuer().to_string(),
        serial: hex::encode(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        names,
    })
}

/// Whether a certificate for `names` is valid for `host` (an entry name:
/// a host or `*.parent`). A wildcard name covers one label.
pub fn covers(names: &[String], host: &str) -> bool {
    names.iter().any(|name| {
        if name == host {
            return true;
        }
        match (name.strip_prefix("*."), host.split_once('.')) {
            (Some(parent), Some((first, rest))) => {
                !first.is_empty() && first != "*" && rest == parent
            }
            _ => false,
        }
    })
}

/// The checks a custom certificate passes before it is installed.
pub fn check_custom(meta: &CertMeta, host: &str, now: i64) -> Result<(), String> {
    if !covers(&meta.names, host) {
        return Err(format!(
            "the certificate is for [{}], not `{host}`; send a certificate whose subject \
             alternative names include `{host}` (or a wildcard `*.parent` covering it)",
            meta.names.join(", ")
        ));
    }
    if meta.not_after <= now {
        return Err(format!(
            "the certificate expired at {} (unix {}); renew it with its CA and send the new one",
            rfc3339(meta.not_after),
            meta.not_after
        ));
    }
    Ok(())
}

/// A unix time as RFC 3339, for messages.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// The self-signed certificate TLS-ALPN-01 validation expects (RFC 8737):
/// `host` as its only name and the key authorization's digest in a critical
/// `acmeIdentifier` extension.
pub fn alpn_challenge(host: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let fail = |e: rcgen::Error| format!("cannot make the tls-alpn-01 certificate: {e}");
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(fail)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| format!("cannot use the tls-alpn-01 key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn wildcard_names_cover_one_label() {
        let names = vec!["*.example.org".to_owned(), "example.org".to_owned()];
        assert!(covers(&names, "api.example.org"));
        assert!(covers(&names, "example.org"));
        assert!(covers(&names, "*.example.org"));
        assert!(!covers(&names, "a.b.example.org"));
        assert!(!covers(&names, "example.com"));
    }

    #[test]
    fn a_custom_pair_loads_and_its_facts_are_read() {
        let (cert, key) = self_signed(&["api.example.org"]);
        let loaded = load_pem(&cert, &key).expect("loads");
        assert_eq!(loaded.meta.names, vec!["api.example.org"]);
        assert!(loaded.meta.not_after > loaded.meta.not_before);
        assert!(!loaded.meta.serial.is_empty());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        check_custom(&loaded.meta, "api.example.org", now).expect("covers");
        let err = check_custom(&loaded.meta, "www.example.org", now).expect_err("other host");
        assert!(err.contains("not `www.example.org`"), "{err}");
        let err = check_custom(&loaded.meta, "api.example.org", loaded.meta.not_after + 1)
            .expect_err("expired");
        assert!(err.contains("expired"), "{err}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_without_printing_it() {
        let (cert, _) = self_signed(&["api.example.org"]);
        let (_, other_key) = self_signed(&["api.example.org"]);
        let err = load_pem(&cert, &other_key).err().expect("mismatch");
        assert!(err.contains("does not belong"), "{err}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
        let err = load_pem(&cert, "garbage").err().expect("no key");
        assert!(err.contains("no usable key"), "{err}");
        let err = load_pem("garbage", &other_key).err().expect("no cert");
        assert!(err.contains("no CERTIFICATE"), "{err}");
    }

    #[test]
    fn the_alpn_challenge_certificate_names_the_host() {
        let key = alpn_challenge("api.example.org", &[7u8; 32]).expect("challenge");
        let meta = meta_of(&key.cert[0]).expect("meta");
        assert_eq!(meta.names, vec!["api.example.org"]);
    }
}
