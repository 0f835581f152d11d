//! The one mapping from a failed request to an HTTP status and a JSON body
//! `{"error": "..."}`. Database details go to the log, not to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            ApiError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m.clone()),
            // Pool errors mean the database is down or saturated: retryable.
            ApiError::Db(err @ DbError::Pool(_)) => {
                tracing::warn!(error = %err.describe(), "request failed: database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database unavailable, try again shortly".to_owned(),
                )
            }
            ApiError::Db(err) => {
                tracing::error!(error = %err.describe(), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}
