//! TLS test support: a test CA (rcgen), an HTTPS client that reports the
//! negotiated protocol and the served certificate's serial, an upstream
//! that echoes `X-Forwarded-Proto`, low ports unique per test, and a real
//! ACME server: Debian's `pebble` with `pebble-challtestsrv` as its DNS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};

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

pub use slipway_testkit::pebble::{Pebble, PebbleOptions, TestCa};

/// The CA's certificate as rustls roots.
pub fn ca_roots(ca: &TestCa) -> RootCertStore {
    roots_from_pem(&ca.cert_pem)
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

/// Starts pebble (see `slipway_testkit::pebble`) on low ports of this
/// process; validation dials `http_port` and `tls_port` on 127.0.0.1.
pub async fn start_pebble(dir: &Path, http_port: u16, tls_port: u16, validity_secs: u64) -> Pebble {
    let opts = PebbleOptions {
        http_port,
        tls_port,
        validity_secs,
        ..PebbleOptions::new([low_port(), low_port(), low_port(), low_port()])
    };
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || Pebble::start(&dir, &opts))
        .await
        .expect("pebble start")
}

/// The root pebble signs certificates with (changes at every start).
pub async fn issuing_root(pebble: &Pebble) -> RootCertStore {
    roots_from_pem(&tokio::task::block_in_place(|| pebble.issuing_root_pem()))
}

/// Agent flags for this ACME server.
pub fn agent_flags(pebble: &Pebble) -> Vec<String> {
    vec![
        "--acme-directory".into(),
        pebble.directory(),
        "--acme-ca-root".into(),
        pebble.api_root().display().to_string(),
        "--acme-email".into(),
        "ops@example.org".into(),
    ]
}
