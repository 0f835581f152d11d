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
