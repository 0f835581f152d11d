//! A bounded continuous load against the public port, counting failures:
//! the proof of "zero failed requests" through deploys and rollbacks.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Load {
    tally: Arc<Tally>,
    threads: Vec<JoinHandle<()>>,
}

/// What every worker of one load counts into.
struct Tally {
    stop: AtomicBool,
    max_requests: u64,
    ok: AtomicU64,
    failed: AtomicU64,
    /// Failures that were HTTP answers (a status), not connection errors
    /// or timeouts.
    answered: AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
}

type Answer<E> =
    Result<Result<hyper::Response<hyper::body::Incoming>, E>, tokio::time::error::Elapsed>;

impl Tally {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
                < self.max_requests
    }

    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.errors.lock().unwrap().push(why);
    }

    /// Counts one answer (read to its end when it succeeded); false when
    /// it failed.
    async fn record<E: std::fmt::Debug>(&self, answer: Answer<E>) -> bool {
        match answer {
            Ok(Ok(r)) if r.status().is_success() => {
                let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                self.ok.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(Ok(r)) => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                self.fail(format!("HTTP {}", r.status()));
                false
            }
            Ok(Err(e)) => {
                self.fail(format!("{e:?}"));
                false
            }
            Err(_) => {
                self.fail("timeout".into());
                false
            }
        }
    }
}

impl Load {
    /// `workers` threads, each running `worker` on its own current-thread
    /// runtime until the load stops or `max_requests` are done.
    fn spawn<F, Fut>(workers: usize, max_requests: u64, worker: F) -> Load
    where
        F: Fn(Arc<Tally>) -> Fut + Send + Clone + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let tally = Arc::new(Tally {
            stop: AtomicBool::new(false),
            max_requests,
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            errors: Default::default(),
        });
        let threads = (0..workers)
            .map(|_| {
                let (tally, worker) = (tally.clone(), worker.clone());
                std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(worker(tally));
                })
            })
            .collect();
        Load { tally, threads }
    }

    /// `workers` threads, each with a keep-alive connection pool, at most
    /// `max_requests` requests in all, paced every `pause`.
    pub fn start(url: &str, workers: usize, max_requests: u64, pause: Duration) -> Load {
        let url: hyper::Uri = url.parse().unwrap();
        Load::spawn(workers, max_requests, move |tally| {
            let url = url.clone();
            async move {
                let client: hyper_util::client::legacy::Client<
                    _,
                    http_body_util::Empty<bytes::Bytes>,
                > = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http();
                while tally.running() {
                    let answer =
                        tokio::time::timeout(Duration::from_secs(10), client.get(url.clone()))
                            .await;
                    tally.record(answer).await;
                    tokio::time::sleep(pause).await;
                }
            }
        })
    }

    /// The same over HTTPS to `addr` with SNI and `Host` `host`, verified
    /// against `root_pem`: each worker keeps one keep-alive connection and
    /// opens a new one (a new handshake) after a failure or every 50
    /// requests.
    pub fn start_https(
        addr: std::net::SocketAddr,
        host: &str,
        path: &str,
        root_pem: &str,
        workers: usize,
        max_requests: u64,
        pause: Duration,
    ) -> Load {
        let config = tls_client(root_pem);
        let (host, path) = (host.to_string(), path.to_string());
        Load::spawn(workers, max_requests, move |tally| {
            let (config, host, path) = (config.clone(), host.clone(), path.clone());
            async move {
                let mut conn = None;
                let mut on_conn = 0u32;
                while tally.running() {
                    if conn.is_none() || on_conn >= 50 {
                        on_conn = 0;
                        match https_connect(addr, &host, config.clone()).await {
                            Ok(c) => conn = Some(c),
                            Err(e) => {
                                tally.fail(e);
                                tokio::time::sleep(pause).await;
                                continue;
                            }
                        }
                    }
                    let Some(sender) = conn.as_mut() else {
                        continue;
                    };
                    on_conn += 1;
                    let req = hyper::Request::get(path.as_str())
                        .header("host", host.as_str())
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .unwrap();
                    let answer =
                        tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
                            .await;
                    if !tally.record(answer).await {
                        conn = None;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        })
    }

    /// Requests answered with success so far.
    pub fn ok_so_far(&self) -> u64 {
        self.tally.ok.load(Ordering::Relaxed)
    }

    /// Failed requests so far that got an HTTP answer (not a connection
    /// error or a timeout).
    pub fn answered_failures(&self) -> u64 {
        self.tally.answered.load(Ordering::Relaxed)
    }

    /// Stops every worker and waits for them (the counts are final after).
    pub fn stop(&mut self) {
        self.tally.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Stops and returns (ok, failed, first errors).
    pub fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop();
        let errors = self
            .tally
            .errors
            .lock()
            .unwrap()
            .iter()
            .take(10)
            .cloned()
            .collect();
        (
            self.tally.ok.load(Ordering::Relaxed),
            self.tally.failed.load(Ordering::Relaxed),
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
