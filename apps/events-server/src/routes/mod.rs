//! The HTTP surface: every route in one table, and the metrics middleware
//! around all of them.

mod error;
mod events;
mod ops;

use axum::Router;
use axum::middleware;
use axum::routing::get;

use crate::metrics;
use crate::state::AppState;

pub use error::ApiError;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/events", get(events::search).post(events::create))
        .route("/events/{id}", get(events::get))
        .route("/events/{id}/similar", get(events::similar))
        .route("/health", get(ops::health))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/version", get(ops::version))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        // Inside the metrics layer, so planted faults are measured like real ones.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::fault::apply,
        ))
        // `layer` (not `route_layer`) so unmatched requests are counted too;
        // matched ones still see their `MatchedPath`.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}
