//! The internal listener (default `127.0.0.1:9100`, never the public port):
//! `/metrics` in Prometheus text format and `/health` of the agent itself.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::Agent;

pub async fn serve(listener: TcpListener, agent: Arc<Agent>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let agent = Arc::clone(&agent);
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(Arc::clone(&agent), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer(
    agent: Arc<Agent>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, kind, body) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", {
            let mut text = agent.metrics.render(&agent.router.table());
            if let Some(tls) = &agent.tls {
                tls.render_metrics(&mut text);
            }
            text
        }),
        "/health" => (
            StatusCode::OK,
            "application/json",
            serde_json::json!({
                "status": "healthy",
                "agent_version": crate::VERSION,
                "uptime_secs": agent.started.elapsed().as_secs(),
                "apps": agent.router.table().routes().len(),
            })
            .to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    Ok(resp)
}
