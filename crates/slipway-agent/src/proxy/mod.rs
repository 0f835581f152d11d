//! The public HTTP entry point: a `SO_REUSEPORT` listener (so a newer agent
//! can bind the same port beside this one during an upgrade), HTTP/1.1 and
//! h2c via hyper-util's auto builder, one task per connection, and a
//! graceful stop (stop accepting, let connections finish, bounded).
//!
//! With `--tls-listen`, each proxy thread also accepts on its HTTPS listener
//! (handshake here, then the same service; see [`edge`] for what the plain
//! listener answers itself then).
//!
//! - [`service`]: one request's flow.
//! - [`edge`]: ACME challenges, redirects to HTTPS, HSTS.
//! - [`forward`]: rewriting and sending to the upstream; upgrades.
//! - [`pool`]: keep-alive upstream connections of one proxy thread.
//! - [`body`]: the streamed response body and its bookkeeping.
//! - [`errors`]: the one classification of failures into status codes.

pub mod body;
pub mod client;
pub mod deadline;
pub mod edge;
pub mod errors;
pub mod forward;
pub mod pool;
pub mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::header::HeaderName;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access_log::AccessLog;
use crate::metrics::AppMetrics;
use crate::router::Router;
use forward::ForwardConfig;

/// Shared state of every connection.
pub struct Proxy {
    pub router: Arc<Router>,
    pub pool: Arc<pool::Pool>,
    pub forward: ForwardConfig,
    pub release_header: HeaderName,
    pub access_log: Option<Arc<AccessLog>>,
    /// Metrics bucket for requests that matched no app.
    pub unrouted: Arc<AppMetrics>,
    /// Set once this proxy thread stops accepting: HTTP/1 responses then say
    /// `Connection: close` (see [`serve`]).
    pub closing: AtomicBool,
    /// TLS termination, when this agent is the host's entry point.
    pub edge: Option<edge::Edge>,
}

impl Proxy {
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }
}

/// Bind with `SO_REUSEADDR` + `SO_REUSEPORT`: two agents (old and new, during
/// an upgrade) can then listen on one port and the kernel spreads new
/// connections between them until the old one closes its listener.
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// After a stop, how long busy keep-alive connections get to end by
/// themselves (on their next response) before idle ones are closed.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Connection-level settings.
pub struct ServeConfig {
    /// HTTP/1 keep-alive idle bound (also bounds slow request heads).
    pub idle_timeout: Duration,
    /// How long a stop waits for open connections.
    pub shutdown_timeout: Duration,
}

/// Accept and serve until `stop` is cancelled, then finish gracefully.
/// `tls_listener` (with `proxy.edge`) accepts HTTPS connections.
pub async fn serve(
    listener: TcpListener,
    tls_listener: Option<TcpListener>,
    proxy: Arc<Proxy>,
    cfg: ServeConfig,
    stop: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.idle_timeout)
        // Body pieces are copied behind the head and written with one
        // `write`: cheaper than a vectored write of a buffer queue for the
        // small answers most requests get.
        .writev(false)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    let tls_listener = tls_listener.filter(|_| proxy.edge.is_some());
    loop {
        let (stream, peer, tls) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, peer, false),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            accepted = accept_tls(tls_listener.as_ref()) => match accepted {
                Ok((stream, peer)) => (stream, peer, true),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed (TLS listener)");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = forward::Conn {
            peer: peer.ip(),
            tls,
        };
        let svc = {
            let proxy = Arc::clone(&proxy);
            service_fn(move |req: Request<Incoming>| service::handle(Arc::clone(&proxy), conn, req))
        };
        if tls {
            let Some(edge) = proxy.edge.as_ref() else {
                continue;
            };
            let (acceptor, stats) = (edge.acceptor.clone(), Arc::clone(&edge.stats));
            let (builder, watcher) = (builder.clone(), graceful.watcher());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(
                    crate::tls::handshake::HANDSHAKE_TIMEOUT,
                    acceptor.accept(stream),
                );
                let mut stream = match handshake.await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return stats.failed(&e),
                    Err(_) => return stats.failed(&"handshake timed out"),
                };
                stats.succeeded();
                if stream.get_ref().1.alpn_protocol() == Some(crate::tls::map::ACME_TLS_ALPN) {
                    // A CA validating TLS-ALPN-01 only needed the handshake.
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
                    return;
                }
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .into_owned();
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(error = %e, "TLS connection ended with an error");
                }
            });
            continue;
        }
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(tls_listener);
    drop(listener);
    // HTTP/1 responses now say `Connection: close` (`service::handle`), so a
    // busy keep-alive client reconnects (to the successor, which accepts on
    // the same socket) between requests instead of finding its connection
    // closed under a request it just sent.
    proxy.closing.store(true, Ordering::Relaxed);
    tracing::info!(
        connections = graceful.count(),
        "stopped accepting; letting open connections finish"
    );
    // Busy connections end by themselves after their next response; give
    // them a moment before idle ones are closed.
    let started = tokio::time::Instant::now();
    let linger = CLOSE_LINGER.min(cfg.shutdown_timeout);
    while graceful.count() > 0 && started.elapsed() < linger {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = cfg.shutdown_timeout.saturating_sub(started.elapsed());
    if tokio::time::timeout(left, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout reached with connections still open");
    }
}

/// The next HTTPS connection, or never when there is no TLS listener.
async fn accept_tls(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}
