//! The JSON access log: one line per request on stdout (time, app, release,
//! slot, method, path, status, duration, bytes, client). Lines are buffered
//! and flushed by a background task every 100 ms (or when the buffer is
//! large), so a busy proxy makes one write per batch, not per request.

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Flush early once this much is buffered.
const FLUSH_AT: usize = 64 * 1024;

#[derive(Serialize)]
pub struct Entry<'a> {
    #[serde(with = "time::serde::rfc3339")]
    pub time: time::OffsetDateTime,
    pub app: &'a str,
    pub release: &'a str,
    pub slot: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub bytes: u64,
    pub client: IpAddr,
    /// Set when the response ended abnormally (upstream error, drain cut).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

#[derive(Default)]
pub struct AccessLog {
    buf: Mutex<Vec<u8>>,
}

impl AccessLog {
    pub fn write(&self, entry: &Entry<'_>) {
        let full = {
            let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
            if serde_json::to_writer(&mut *buf, entry).is_ok() {
                buf.push(b'\n');
            }
            (buf.len() >= FLUSH_AT).then(|| std::mem::take(&mut *buf))
        };
        if let Some(bytes) = full {
            emit(&bytes);
        }
    }

    pub fn flush(&self) {
        let bytes = std::mem::take(&mut *self.buf.lock().unwrap_or_else(|e| e.into_inner()));
        if !bytes.is_empty() {
            emit(&bytes);
        }
    }

    /// Flush every 100 ms until the process ends.
    pub async fn flush_every_100ms(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            self.flush();
        }
    }
}

fn emit(bytes: &[u8]) {
    // A closed stdout must not take the proxy down; the lines are lost.
    let _ = std::io::stdout().lock().write_all(bytes);
}
