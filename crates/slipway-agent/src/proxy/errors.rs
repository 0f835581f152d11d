//! Every way a proxied request can fail, classified once: where the fault
//! lies (upstream, downstream client, or the agent itself) and which status
//! the client gets. `classify` is the only place that maps errors to codes.

use std::time::Duration;

use hyper::StatusCode;

use super::client::ClientError;

/// Where a failure came from (as in pingora's `ErrorSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Upstream,
    Downstream,
    Internal,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Downstream => "downstream",
            Self::Internal => "internal",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no app is routed for this host")]
    NoRoute,
    #[error("the app has no active target")]
    NoTarget,
    #[error("the app is paused and its hold bound was reached")]
    Paused { retry_after_secs: u64 },
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(u64),
    #[error("upstream did not answer within {} ms", .0.as_millis())]
    UpstreamTimeout(Duration),
    #[error("cut at the old target's drain deadline")]
    DrainCut,
    #[error("{0}")]
    Upstream(#[from] super::pool::UpstreamError),
}

/// The one mapping from a proxy failure to its source and status code.
pub fn classify(e: &ProxyError) -> (Source, StatusCode) {
    match e {
        ProxyError::NoRoute => (Source::Internal, StatusCode::NOT_FOUND),
        ProxyError::NoTarget | ProxyError::Paused { .. } | ProxyError::DrainCut => {
            (Source::Internal, StatusCode::SERVICE_UNAVAILABLE)
        }
        ProxyError::BodyTooLarge(_) => (Source::Downstream, StatusCode::PAYLOAD_TOO_LARGE),
        ProxyError::UpstreamTimeout(_) => (Source::Upstream, StatusCode::GATEWAY_TIMEOUT),
        ProxyError::Upstream(super::pool::UpstreamError::Connect(..)) => {
            (Source::Upstream, StatusCode::BAD_GATEWAY)
        }
        ProxyError::Upstream(super::pool::UpstreamError::Http(err)) => classify_client(err),
    }
}

/// A failure of the request body we were relaying is the downstream's
/// fault (too long: 413; the client went away mid-upload: 400); anything
/// else on the upstream connection is the upstream's.
fn classify_client(err: &ClientError) -> (Source, StatusCode) {
    match err {
        ClientError::RequestBody(e) if e.is::<http_body_util::LengthLimitError>() => {
            (Source::Downstream, StatusCode::PAYLOAD_TOO_LARGE)
        }
        ClientError::RequestBody(_) => (Source::Downstream, StatusCode::BAD_REQUEST),
        ClientError::Closed | ClientError::Io(_) | ClientError::Invalid(_) => {
            (Source::Upstream, StatusCode::BAD_GATEWAY)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_one_status() {
        let cases = [
            (ProxyError::NoRoute, 404),
            (ProxyError::NoTarget, 503),
            (
                ProxyError::Paused {
                    retry_after_secs: 1,
                },
                503,
            ),
            (ProxyError::BodyTooLarge(1), 413),
            (ProxyError::UpstreamTimeout(Duration::from_secs(1)), 504),
            (ProxyError::DrainCut, 503),
        ];
        for (e, code) in cases {
            assert_eq!(classify(&e).1.as_u16(), code, "{e}");
        }
    }
}
