//! Operational endpoints: `/health` (full report), `/healthz` (alive),
//! `/readyz` (ready for traffic), `/version`, `/metrics`, and the 404 fallback.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::health;
use crate::state::AppState;
use crate::version;

pub async fn health(State(state): State<AppState>) -> Response {
    let report = health::report(&state).await;
    (report.status.http_status(), Json(report)).into_response()
}

/// Liveness: the process answers. Deliberately checks nothing else, so a
/// database outage does not get the container restarted.
pub async fn healthz() -> Response {
    Json(json!({ "status": "alive" })).into_response()
}

/// Readiness: the same verdict as `/health` (503 when unhealthy or shutting
/// down), in a small body.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let report = health::report(&state).await;
    let code = report.status.http_status();
    let ready = if code.is_success() {
        "ready"
    } else {
        "not_ready"
    };
    (
        code,
        Json(json!({ "status": ready, "health": report.status })),
    )
        .into_response()
}

pub async fn version() -> Response {
    Json(version::info()).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    match state
        .metrics
        .render(&state.pool, state.started_at.elapsed().as_secs())
    {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "could not render metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "no such route" })),
    )
        .into_response()
}
