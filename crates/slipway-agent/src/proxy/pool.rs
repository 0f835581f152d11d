//! Keep-alive connections to upstreams, one pool per proxy thread. A request
//! takes an idle connection for its target (or dials one), and its response
//! body hands the connection back when it ends, so no task is spawned per
//! request to watch for the connection becoming free (hyper-util's legacy
//! client does that). A request that an idle connection could not even
//! start (closed by the upstream meanwhile) is retried once on a new one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Limited;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::http::uri::Authority;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

type Sender = SendRequest<Limited<Incoming>>;

/// Connect bound for a new upstream connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to `{0}`: {1}")]
    Connect(String, std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

/// The pool is looked up twice per request with a short key: a multiply
/// hash (FxHash) instead of SipHash, which costs more than the lookup. Keys
/// are the targets' `host:port` text compared as bytes (`Authority`'s own
/// `Hash`/`Eq` go byte by byte, case-folded, and cost ten times more).
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.write_u8(b);
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.write_u64(u64::from(b));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IdleMap = HashMap<Box<str>, Vec<Sender>, BuildHasherDefault<FxHasher>>;

pub struct Pool {
    idle: Mutex<IdleMap>,
    max_idle_per_host: usize,
}

/// A connection lent to one request; `recycle` gives it back. It does not
/// keep its key: the caller has the target at hand, and cloning the
/// target's `Authority` would touch a reference count shared by every proxy
/// thread.
pub struct Conn {
    pool: Arc<Pool>,
    sender: Sender,
}

impl Conn {
    /// Return the connection (to `key`, the target it was taken for) once
    /// the response body ended cleanly.
    pub fn recycle(self, key: &Authority) {
        if self.sender.is_closed() {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = match idle.get_mut(key.as_str()) {
            Some(list) => list,
            None => idle.entry(Box::from(key.as_str())).or_default(),
        };
        if list.len() < self.pool.max_idle_per_host {
            list.push(self.sender);
        }
    }
}

impl Pool {
    pub fn new(max_idle_per_host: usize) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(HashMap::default()),
            max_idle_per_host,
        })
    }

    fn take(&self, key: &Authority) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key.as_str())?;
        while let Some(s) = list.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    async fn dial(&self, key: &Authority) -> Result<Sender, UpstreamError> {
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
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Send `req` to `key` over a pooled (or new) connection.
    pub async fn send(
        self: &Arc<Self>,
        key: &Authority,
        mut req: Request<Limited<Incoming>>,
    ) -> Result<(Response<Incoming>, Conn), UpstreamError> {
        // An idle connection may have been closed by the upstream since it
        // was pooled; hyper hands the request back if it was not sent.
        while let Some(mut sender) = self.take(key) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, self.lend(sender))),
                Err(mut e) => match e.take_message() {
                    Some(back) => req = back,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        // Boxed: dialing is the rare path, and its future is most of this
        // one's size, which every request's future would carry (and copy).
        Box::pin(self.send_fresh(key, req)).await
    }

    async fn send_fresh(
        self: &Arc<Self>,
        key: &Authority,
        req: Request<Limited<Incoming>>,
    ) -> Result<(Response<Incoming>, Conn), UpstreamError> {
        let mut sender = self.dial(key).await?;
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        Ok((resp, self.lend(sender)))
    }

    fn lend(self: &Arc<Self>, sender: Sender) -> Conn {
        Conn {
            pool: Arc::clone(self),
            sender,
        }
    }
}
