//! TLS test support: a test CA (rcgen), an HTTPS client that reports the
//! negotiated protocol and the served certificate's serial, an upstream
//! that echoes `X-Forwarded-Proto`, low ports unique per test, and a real
//! ACME server: Debian's `pebble` with `pebble-challtestsrv` as its DNS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::util::eventually;

/// A loopback port below 32768 (outside the kernel's ephemeral range, so a
/// client socket never takes it meanwhile), free when handed out and never
/// handed out twice by this process.
pub fn low_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 600) as u16 * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_700, "ran out of low ports");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A test CA that signs leaf certificates.
pub struct TestCa {
    pub cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("ca key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca cert");
        TestCa {
            cert_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// (chain PEM, key PEM) for `names`.
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        (cert.pem(), key.serialize_pem())
    }

    pub fn roots(&self) -> RootCertStore {
        roots_from_pem(&self.cert_pem)
    }
}

pub fn roots_from_pem(pem: &str) -> RootCertStore {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.expect("root pem")).expect("add root");
    }
    roots
}

/// One HTTPS exchange as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub alpn: Option<Vec<u8>>,
    /// Hex serial of the certificate the server presented.
    pub serial: String,
    pub headers: hyper::HeaderMap,
}

pub fn client_config(roots: RootCertStore, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Every connection a full handshake: a resumed session shows the
    // certificate of the session it resumes, not the one served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A TLS connection to `addr` for `sni`, verified against the config's roots.
pub async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))
}

/// GET `path` over a new TLS connection (HTTP/2 when ALPN says so).
pub async fn https_get(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<Answer, String> {
    let stream = connect(addr, sni, config).await?;
    let (_, session) = stream.get_ref();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let leaf = session
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no server certificate")?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| e.to_string())?;
    let serial = hex::encode(cert.raw_serial());
    let io = TokioIo::new(stream);
    let uri = format!("https://{sni}{path}");
    let resp = if alpn.as_deref() == Some(b"h2") {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(conn);
        let req = Request::get(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        send.send_request(req)
            .await
            .map_err(|e| format!("h2 request: {e}"))?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("h1 handshake: {e}"))?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", sni)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        send.send_request(req)
            .await
            .map_err(|e| format!("h1 request: {e}"))?
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        alpn,
        serial,
        headers,
    })
}

/// An upstream answering `<name> proto=<X-Forwarded-Proto>` on every path.
pub async fn echo_upstream(name: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let proto = req
                        .headers()
                        .get("x-forwarded-proto")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned();
                    async move {
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                            format!("{name} proto={proto}"),
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

/// pebble (the ACME server) and pebble-challtestsrv (its DNS: every name
/// resolves to 127.0.0.1), killed on drop.
pub struct Pebble {
    pebble: Child,
    dns: Child,
    pub directory: String,
    /// PEM of the CA behind pebble's own HTTPS (for --acme-ca-root).
    pub api_root: PathBuf,
    api_ca: TestCa,
    management: SocketAddr,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pebble {
    /// Validation dials `http_port` (HTTP-01) and `tls_port` (TLS-ALPN-01)
    /// on 127.0.0.1; certificates live `validity_secs`.
    pub async fn start(dir: &Path, http_port: u16, tls_port: u16, validity_secs: u64) -> Pebble {
        let dir = dir.join("pebble");
        std::fs::create_dir_all(&dir).expect("pebble dir");
        let api_ca = TestCa::new("pebble api test CA");
        let (cert, key) = api_ca.leaf(&["127.0.0.1", "localhost"]);
        std::fs::write(dir.join("cert.pem"), cert).expect("write");
        std::fs::write(dir.join("key.pem"), key).expect("write");
        let api_root = dir.join("api-root.pem");
        std::fs::write(&api_root, &api_ca.cert_pem).expect("write");
        let (listen, management, dns) = (low_port(), low_port(), low_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("cert.pem"),
            "privateKey": dir.join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_secs,
        }});
        std::fs::write(dir.join("config.json"), config.to_string()).expect("write");
        let log = |name: &str| {
            std::fs::File::create(dir.join(name))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null())
        };
        let dns_child = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", low_port())])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package `pebble`; scripts/setup.sh installs it)");
        let pebble_child = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("config.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Validate every order afresh, so renewals exercise challenges too.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (Debian package `pebble`; scripts/setup.sh installs it)");
        let pebble = Pebble {
            pebble: pebble_child,
            dns: dns_child,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            api_root,
            api_ca,
            management: format!("127.0.0.1:{management}").parse().expect("addr"),
        };
        let addr: SocketAddr = format!("127.0.0.1:{listen}").parse().expect("addr");
        eventually("pebble listening", Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
        })
        .await;
        pebble
    }

    /// The root pebble signs certificates with (changes at every start).
    pub async fn issuing_root(&self) -> RootCertStore {
        let config = client_config(self.api_ca.roots(), &[b"http/1.1"]);
        let answer = https_get(self.management, "127.0.0.1", "/roots/0", config)
            .await
            .expect("pebble /roots/0");
        assert_eq!(answer.status, 200, "{}", answer.body);
        roots_from_pem(&answer.body)
    }

    /// Agent flags for this ACME server.
    pub fn agent_flags(&self) -> Vec<String> {
        vec![
            "--acme-directory".into(),
            self.directory.clone(),
            "--acme-ca-root".into(),
            self.api_root.display().to_string(),
            "--acme-email".into(),
            "ops@example.org".into(),
        ]
    }
}
