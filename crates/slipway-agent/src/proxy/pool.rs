//! Keep-alive connections to upstreams, one pool per proxy thread. A request
//! takes an idle connection for its target (or dials one) and drives it in
//! its own task (`client`); its response body hands the connection back when
//! it ends. No task is spawned per connection or per request. An idle
//! connection the upstream closed is skipped when taken; a request that
//! one got no answer on at all (closed just then) is sent again on another
//! when that is safe (no body, idempotent method).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Limited;
use hyper::Response;
use hyper::body::Incoming;
use hyper::http::uri::Authority;

use super::client::{self, ClientError, UpBody, UpConn};

/// Connect bound for a new upstream connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to `{0}`: {1}")]
    Connect(String, std::io::Error),
    #[error("{0}")]
    Http(#[from] ClientError),
}

/// The pool is looked up twice per request with a short key: FxHash
/// instead of SipHash, which costs more than the lookup. Keys are the
/// targets' `host:port` text compared as bytes (`Authority`'s own
/// `Hash`/`Eq` go byte by byte, case-folded, and cost ten times more).
type IdleMap = HashMap<Box<str>, Vec<Box<UpConn>>, rustc_hash::FxBuildHasher>;

/// The upstream side of one proxy thread: its idle connections.
pub struct Pool {
    idle: Mutex<IdleMap>,
    max_idle_per_host: usize,
    /// Recycles so far; every `SWEEP_EVERY`th sweeps the idle lists.
    recycled: AtomicUsize,
}

/// No task watches idle connections, so one the upstream closed keeps its
/// socket until it is taken (and skipped), or until a sweep every this many
/// recycles drops it (connections of a replaced target are never taken).
const SWEEP_EVERY: usize = 1024;

impl Pool {
    pub fn new(max_idle_per_host: usize) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(HashMap::default()),
            max_idle_per_host,
            recycled: AtomicUsize::new(0),
        })
    }

    /// Give back a connection (to `key`, the target it was taken for)
    /// whose last response ended cleanly.
    pub fn recycle(&self, key: &Authority, conn: Box<UpConn>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = match idle.get_mut(key.as_str()) {
            Some(list) => list,
            None => idle.entry(Box::from(key.as_str())).or_default(),
        };
        if list.len() < self.max_idle_per_host {
            list.push(conn);
        }
        if self.recycled.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            idle.retain(|_, list| {
                list.retain(|c| c.is_reusable());
                !list.is_empty()
            });
        }
    }

    fn take(&self, key: &Authority) -> Option<Box<UpConn>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key.as_str())?;
        while let Some(c) = list.pop() {
            if c.is_reusable() {
                return Some(c);
            }
        }
        None
    }

    async fn dial(&self, key: &Authority) -> Result<Box<UpConn>, UpstreamError> {
        let connect = tokio::net::TcpStream::connect(key.as_str());
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(UpstreamError::Connect(key.to_string(), e)),
            Err(_) => {
                let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
                return Err(UpstreamError::Connect(key.to_string(), e));
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(UpConn::new(stream))
    }

    /// Send `req` to `key` over a pooled (or new) connection.
    pub async fn send(
        &self,
        key: &Authority,
        req: hyper::Request<Limited<Incoming>>,
    ) -> Result<Response<UpBody>, UpstreamError> {
        let (mut parts, mut body) = req.into_parts();
        let framing = client::request_framing(&mut parts, &body);
        // An idle connection may have been closed by the upstream since it
        // was pooled (and the close not seen yet): a request that got no
        // answer at all, had no body and may be repeated is sent again.
        while let Some(mut conn) = self.take(key) {
            match conn.send(&parts, framing, &mut body).await {
                Ok(head) => {
                    return Ok(head
                        .response
                        .map(|()| UpBody::new(conn, head.body, head.keep_alive)));
                }
                Err(e) if client::retryable(&e, &parts.method, framing) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Boxed: dialing is the rare path, and its future is most of this
        // one's size, which every request's future would carry (and copy).
        Box::pin(async {
            let mut conn = self.dial(key).await?;
            let head = conn.send(&parts, framing, &mut body).await?;
            Ok(head
                .response
                .map(|()| UpBody::new(conn, head.body, head.keep_alive)))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sweep_drops_idle_connections_the_upstream_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let dead = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (closed, _) = listener.accept().await.expect("accept");
        let live = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (_kept, _) = listener.accept().await.expect("accept");
        drop(closed);
        tokio::time::sleep(Duration::from_millis(20)).await;

        let pool = Pool::new(8);
        let a: Authority = "a:1".parse().expect("authority");
        let b: Authority = "b:1".parse().expect("authority");
        pool.recycle(&a, UpConn::new(dead));
        pool.recycled.store(SWEEP_EVERY - 1, Ordering::Relaxed);
        pool.recycle(&b, UpConn::new(live));
        let idle = pool.idle.lock().expect("lock");
        assert!(!idle.contains_key("a:1"));
        assert_eq!(idle.get("b:1").map(Vec::len), Some(1));
    }
}
