//! `events-server selftest [PATH...]`: a smoke test of the running server
//! from inside its own container (Slipway's `hooks.pre_switch`), so it needs
//! no shell or curl in the image. GETs each path (default `/health` and
//! `/version`) on `127.0.0.1:$PORT`; every answer must be 2xx, and
//! `/version` must report this binary's commit (the process answering is
//! this release). Exit 0 when all pass, 1 otherwise, with what was seen.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::version;

/// Paths checked when none are given.
pub const DEFAULT_PATHS: &[&str] = &["/health", "/version"];
const TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of a body quoted in a failure.
const EXCERPT: usize = 300;

/// Runs the checks against `port`; `Ok` lines to print, or the failure.
pub fn run(port: u16, paths: &[String]) -> Result<Vec<String>, String> {
    let paths: Vec<String> = if paths.is_empty() {
        DEFAULT_PATHS.iter().map(|p| p.to_string()).collect()
    } else {
        paths.to_vec()
    };
    let mut lines = Vec::new();
    for path in &paths {
        if !path.starts_with('/') {
            return Err(format!("`{path}` is not a path (write e.g. /health)"));
        }
        let started = Instant::now();
        let (status, body) = get(port, path).map_err(|e| {
            format!(
                "GET {path} on 127.0.0.1:{port} failed: {e} (is the server running on PORT={port}?)"
            )
        })?;
        let ms = started.elapsed().as_millis();
        if !(200..300).contains(&status) {
            return Err(format!(
                "GET {path} answered {status} in {ms} ms: {}",
                excerpt(&body)
            ));
        }
        if path == "/version" && !body.contains(version::GIT_COMMIT) {
            return Err(format!(
                "GET /version does not report this binary's commit {}: {}",
                version::GIT_COMMIT,
                excerpt(&body)
            ));
        }
        lines.push(format!("GET {path} → {status} in {ms} ms"));
    }
    Ok(lines)
}

/// One HTTP/1.1 GET with `Connection: close`: the status and the body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: events-server-selftest\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.take(1 << 20).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    Ok((status, body))
}

fn excerpt(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(EXCERPT).collect()
}
