//! events-server: the reference service Slipway deploys, shaped like the
//! Togather server (an events API on PostgreSQL with PostGIS, pgvector and
//! pg_trgm). The binary (`main.rs`) only parses arguments and maps errors to
//! exit codes; this library holds the service so tests can run it in-process.
//!
//! - [`config`]: environment → validated [`config::Config`], before binding.
//! - [`routes`]: the HTTP surface; [`db`]: the pool and all SQL.
//! - [`health`]: `/health` checks and their aggregation; [`metrics`]: Prometheus.
//! - [`version`]: build metadata; [`state`]: what handlers share.
//! - [`selftest`]: the `selftest` subcommand, a smoke test from inside the container.
//! - [`serve`]: accept until a shutdown signal, then drain within a bound.

pub mod config;
pub mod db;
pub mod fault;
pub mod health;
pub mod metrics;
pub mod routes;
pub mod selftest;
pub mod state;
pub mod version;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Config;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// How a shutdown proceeds once its signal arrives.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// Keep accepting this long with `/health` at 503, so a router polling
    /// health sees the verdict and stops sending traffic first.
    pub delay: Duration,
    /// Then stop accepting and give in-flight requests at most this long.
    pub timeout: Duration,
}

/// Runs the service as the binary does: binds `0.0.0.0:$PORT` and serves
/// until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), RunError> {
    let state = AppState::new(&config)?;
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })?;
    tracing::info!(
        %addr,
        version = version::VERSION,
        commit = version::GIT_COMMIT,
        slot = config.slot.map(|s| s.as_str()),
        schema = version::latest_migration(),
        "listening"
    );
    let drain = Drain {
        delay: config.drain_delay,
        timeout: config.shutdown_timeout,
    };
    serve(listener, state, drain, shutdown_signal()).await
}

/// Serves `state`'s routes on `listener` until `signal` completes, then
/// drains: `/health` turns 503 `shutting_down`, accepting continues for
/// `drain.delay`, then stops, and in-flight requests get `drain.timeout`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    drain: Drain,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let app = routes::router(state.clone());
    let closed = Arc::new(Notify::new());

    let shutdown = {
        let closed = Arc::clone(&closed);
        async move {
            signal.await;
            state.begin_shutdown();
            tracing::info!(
                delay_s = drain.delay.as_secs_f64(),
                timeout_s = drain.timeout.as_secs_f64(),
                "shutdown requested: health now 503, draining"
            );
            // The configured grace period, not a synchronisation guess.
            tokio::time::sleep(drain.delay).await;
            tracing::info!("no longer accepting connections");
            // notify_one keeps a permit, so the waiter below cannot miss it.
            closed.notify_one();
        }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let deadline = async {
        closed.notified().await;
        tokio::time::sleep(drain.timeout).await;
    };

    tokio::select! {
        result = server.into_future() => {
            result.map_err(RunError::Serve)?;
            tracing::info!("drained; exiting");
            Ok(())
        }
        () = deadline => {
            tracing::warn!(
                timeout_s = drain.timeout.as_secs_f64(),
                "in-flight requests did not finish in time; exiting anyway"
            );
            Ok(())
        }
    }
}

/// Completes on SIGTERM (what `docker stop` sends) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    // Each handler that installs replaces that signal's default action, so
    // wait on every one that did; never on none but a missing one.
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        (Ok(mut only), Err(err)) | (Err(err), Ok(mut only)) => {
            tracing::warn!(error = %err, "could not install one signal handler");
            only.recv().await;
        }
        (Err(err), Err(_)) => {
            // No handler replaced the default actions: SIGTERM still stops the
            // process, only without draining.
            tracing::warn!(error = %err, "could not install signal handlers; shutdown will not drain");
            std::future::pending::<()>().await;
        }
    }
}
