//! What every handler shares: the pool, the metrics, and the process's
//! lifecycle (start time, whether a shutdown has begun).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;

use crate::config::{Config, Slot};
use crate::db;
use crate::metrics::Metrics;

/// Cheap to clone: everything is behind one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub pool: Pool,
    pub metrics: Metrics,
    pub slot: Option<Slot>,
    pub fail_health_after: Option<Duration>,
    pub faults: crate::fault::Faults,
    /// Requests the faults have seen (for `error_every`).
    pub fault_count: std::sync::atomic::AtomicU64,
    pub started_at: Instant,
    shutting_down: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("could not set up the database pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("could not set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl AppState {
    /// Builds the state; connects to nothing yet (the pool is lazy).
    pub fn new(config: &Config) -> Result<AppState, StateError> {
        let pool = db::pool(config)?;
        let metrics = Metrics::new()?;
        Ok(AppState(Arc::new(Inner {
            pool,
            metrics,
            slot: config.slot,
            fail_health_after: config.fail_health_after,
            faults: config.faults,
            fault_count: std::sync::atomic::AtomicU64::new(0),
            started_at: Instant::now(),
            shutting_down: AtomicBool::new(false),
        })))
    }

    /// From now on `/health` and `/readyz` answer 503 `shutting_down`.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
