//! Plain HTTP GETs from the CLI to the public port (local engine): to
//! confirm the switch reached the new release and to watch it afterwards.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, Clone)]
pub struct Probe {
    pub status: u16,
    pub release: Option<String>,
    pub body: String,
    pub latency: Duration,
}

pub type HttpClient =
    Client<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One GET with a timeout; `Err` is a transport failure or timeout.
pub async fn get(client: &HttpClient, url: &str, timeout: Duration) -> Result<Probe, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let started = Instant::now();
    let response = tokio::time::timeout(timeout, client.get(uri))
        .await
        .map_err(|_| format!("no answer within {}ms", timeout.as_millis()))?
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let release = response
        .headers()
        .get("x-slipway-release")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = tokio::time::timeout(timeout, response.into_body().collect())
        .await
        .map_err(|_| "body timed out".to_string())?
        .map_err(|e| e.to_string())?
        .to_bytes();
    let body = String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
    Ok(Probe {
        status,
        release,
        body,
        latency: started.elapsed(),
    })
}
