//! One HTTP(S) POST with a deadline: the client every channel shares. TLS
//! is verified against the platform's CA bundle (the image ships one), as
//! the ACME client does. Errors never carry the URL: webhook URLs hold
//! tokens in their path or query.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderMap, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What one attempt got back.
#[derive(Debug)]
pub enum Answer {
    /// The receiver answered (any status), with its `Retry-After`, if any.
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// No answer: no connection, TLS refused, timed out.
    NoAnswer(String),
}

/// How much of a response body is read (and dropped) so the connection can
/// be reused; receivers answer with a few bytes.
const DRAIN_LIMIT: usize = 64 * 1024;

pub struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Sender {
    pub fn new() -> Result<Self, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(|e| {
                format!(
                    "cannot load the CA certificates for HTTPS notifications: {e}; the agent's \
                     image must carry a CA bundle (/etc/ssl/certs)"
                )
            })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// POST `body` to `url` with `headers`, within `timeout` (connect,
    /// request and response head).
    pub async fn post(
        &self,
        url: &str,
        headers: HeaderMap,
        body: String,
        timeout: Duration,
    ) -> Answer {
        let uri: hyper::Uri = match url.parse() {
            Ok(u) => u,
            Err(_) => return Answer::NoAnswer("the destination is not a valid URL".into()),
        };
        let mut request = hyper::Request::post(uri);
        if let Some(h) = request.headers_mut() {
            *h = headers;
        }
        let request = match request.body(Full::new(Bytes::from(body))) {
            Ok(r) => r,
            Err(_) => return Answer::NoAnswer("cannot build the request".into()),
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| describe(&e))?;
            let code = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .and_then(|v| slipway_core::notify::retry::parse_retry_after(v, SystemTime::now()));
            let _ = http_body_util::Limited::new(response.into_body(), DRAIN_LIMIT)
                .collect()
                .await;
            Ok::<_, String>(Answer::Status { code, retry_after })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => Answer::NoAnswer(e),
            Err(_) => Answer::NoAnswer(format!("no answer within {} ms", timeout.as_millis())),
        }
    }
}

/// `cannot connect: tcp connect error: Connection refused`: what failed,
/// then each cause once (hyper's and rustls' messages name no URL).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    let mut text = what.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
