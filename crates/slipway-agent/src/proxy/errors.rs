//! Every way a proxied request can fail, classified once: where the fault
//! lies (upstream, downstream client, or the agent itself) and which status
//! the client gets. `classify` is the only place that maps errors to codes.

use std::time::Duration;

use hyper::StatusCode;

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
        ProxyError::Upstream(super::pool::UpstreamError::Http(err)) => classify_http(err),
    }
}

/// A client error is the downstream's fault when it came from the request
/// body we were relaying (too long, or the client went away mid-upload).
fn classify_http(err: &hyper::Error) -> (Source, StatusCode) {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return (Source::Downstream, StatusCode::PAYLOAD_TOO_LARGE);
        }
        if let Some(h) = c.downcast_ref::<hyper::Error>()
            && h.is_user()
            && c.source().is_some()
        {
            return (Source::Downstream, StatusCode::BAD_REQUEST);
        }
        cause = c.source();
    }
    (Source::Upstream, StatusCode::BAD_GATEWAY)
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
