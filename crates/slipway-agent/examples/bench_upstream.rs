//! A tiny fast upstream for the agent's benchmarks: answers `ok` (12 bytes
//! with headers kept small) on any path and `/health`; tags every response
//! with `x-upstream: <name>`. Requests carrying `x-sent-at` (client send
//! time, unix ns) are recorded with their arrival time, and `GET
//! /__arrivals` returns them as a JSON array of `[sent, arrived]` pairs, so the cutover benchmark can check which upstream got what when.
//!
//! `cargo run --release --example bench_upstream -- 127.0.0.1:9001 [name]`

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// (client send time, arrival time), unix ns.
type Arrivals = Arc<Mutex<Vec<(u64, u64)>>>;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let name = args.next().unwrap_or_else(|| "upstream".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(addr, name))
}

async fn serve(addr: String, name: String) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let tag = HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("upstream"));
    let arrivals: Arrivals = Arc::default();
    eprintln!("bench_upstream {name} listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (tag, arrivals) = (tag.clone(), Arc::clone(&arrivals));
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(tag.clone(), Arc::clone(&arrivals), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer(
    tag: HeaderValue,
    arrivals: Arrivals,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(sent) = req
        .headers()
        .get("x-sent-at")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        let arrived = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((sent, arrived));
    }
    let body = if req.uri().path() == "/__arrivals" {
        let list = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Bytes::from(serde_json::to_vec(&list).unwrap_or_default())
    } else {
        Bytes::from_static(b"ok")
    };
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut().insert("x-upstream", tag);
    Ok(resp)
}
