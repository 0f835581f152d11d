//! Faults planted for testing a deploy's analysis (`EVENTS_SERVER_DELAY_MS`,
//! `EVENTS_SERVER_ERROR_EVERY`): a release that is slower, or answers some
//! requests with 500, while its health endpoint stays healthy, which is how
//! real regressions look to a load balancer. Off unless set.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Added to every request but the probes'.
    pub delay: Duration,
    /// Every Nth request but the probes' answers 500.
    pub error_every: Option<u32>,
}

/// Paths the platform probes: never faulted, so the release stays "healthy".
fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/healthz" | "/readyz" | "/metrics")
}

pub async fn apply(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let faults = state.faults;
    if faults == Faults::default() || is_probe(request.uri().path()) {
        return next.run(request).await;
    }
    if !faults.delay.is_zero() {
        tokio::time::sleep(faults.delay).await;
    }
    if let Some(every) = faults.error_every {
        let n = state.fault_count.fetch_add(1, Ordering::Relaxed) + 1;
        if n % u64::from(every) == 0 {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "EVENTS_SERVER_ERROR_EVERY: planted failure (simulated broken release)\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}
