//! A bounded continuous load against the public port, counting failures:
//! the proof of "zero failed requests" through deploys and rollbacks.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Load {
    stop: Arc<AtomicBool>,
    pub ok: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// `workers` threads, each with a keep-alive connection pool, at most
    /// `max_requests` requests in all, paced every `pause`.
    pub fn start(url: &str, workers: usize, max_requests: u64, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads = (0..workers)
            .map(|_| {
                let (stop, ok, failed, errors, url) = (
                    stop.clone(),
                    ok.clone(),
                    failed.clone(),
                    errors.clone(),
                    url.to_string(),
                );
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let client: hyper_util::client::legacy::Client<
                            _,
                            http_body_util::Empty<bytes::Bytes>,
                        > = hyper_util::client::legacy::Client::builder(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .build_http();
                        while !stop.load(Ordering::Relaxed)
                            && ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed)
                                < max_requests
                        {
                            let result = tokio::time::timeout(
                                Duration::from_secs(10),
                                client.get(url.parse().unwrap()),
                            )
                            .await;
                            match result {
                                Ok(Ok(r)) if r.status().is_success() => {
                                    let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                other => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                    let text = match other {
                                        Ok(Ok(r)) => format!("HTTP {}", r.status()),
                                        Ok(Err(e)) => format!("{e:?}"),
                                        Err(_) => "timeout".into(),
                                    };
                                    errors.lock().unwrap().push(text);
                                }
                            }
                            tokio::time::sleep(pause).await;
                        }
                    });
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            errors,
            threads,
        }
    }

    /// The same over HTTPS to `addr` with SNI and `Host` `host`, verified
    /// against `root_pem`: each worker keeps one keep-alive connection and
    /// opens a new one (a new handshake) after a failure or every
    /// `reconnect_every` requests.
    pub fn start_https(
        addr: std::net::SocketAddr,
        host: &str,
        path: &str,
        root_pem: &str,
        workers: usize,
        max_requests: u64,
        pause: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        let config = tls_client(root_pem);
        let threads = (0..workers)
            .map(|_| {
                let (stop, ok, failed, errors) =
                    (stop.clone(), ok.clone(), failed.clone(), errors.clone());
                let (config, host, path) = (config.clone(), host.to_string(), path.to_string());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let mut conn = None;
                        let mut on_conn = 0u32;
                        while !stop.load(Ordering::Relaxed)
                            && ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed)
                                < max_requests
                        {
                            if conn.is_none() || on_conn >= 50 {
                                on_conn = 0;
                                conn = match https_connect(addr, &host, config.clone()).await {
                                    Ok(c) => Some(c),
                                    Err(e) => {
                                        failed.fetch_add(1, Ordering::Relaxed);
                                        errors.lock().unwrap().push(e);
                                        tokio::time::sleep(pause).await;
                                        continue;
                                    }
                                };
                            }
                            let Some(sender) = conn.as_mut() else {
                                continue;
                            };
                            on_conn += 1;
                            let req = hyper::Request::get(path.as_str())
                                .header("host", host.as_str())
                                .body(http_body_util::Empty::<bytes::Bytes>::new())
                                .unwrap();
                            let result = tokio::time::timeout(
                                Duration::from_secs(10),
                                sender.send_request(req),
                            )
                            .await;
                            match result {
                                Ok(Ok(r)) if r.status().is_success() => {
                                    let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                other => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                    conn = None;
                                    let text = match other {
                                        Ok(Ok(r)) => format!("HTTP {}", r.status()),
                                        Ok(Err(e)) => format!("{e:?}"),
                                        Err(_) => "timeout".into(),
                                    };
                                    errors.lock().unwrap().push(text);
                                }
                            }
                            tokio::time::sleep(pause).await;
                        }
                    });
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            errors,
            threads,
        }
    }

    /// Stops and returns (ok, failed, first errors).
    pub fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let errors = self
            .errors
            .lock()
            .unwrap()
            .iter()
            .take(10)
            .cloned()
            .collect();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

/// A rustls client trusting only `root_pem`.
pub fn tls_client(root_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.expect("root pem")).expect("add root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

type HttpsSender = hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>;

/// A verified TLS connection with an HTTP/1.1 sender on it.
pub async fn https_connect(
    addr: std::net::SocketAddr,
    host: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<HttpsSender, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| format!("http1 handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}
