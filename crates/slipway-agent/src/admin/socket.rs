//! The admin socket: a unix socket (mode 0600, so only root in the container
//! and `docker exec` reach it), one JSON request per line, one JSON response
//! per line. A connection may send several requests.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use slipway_core::admin::{AdminErrorKind, AdminRequest, AdminResponse};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::Agent;

/// Longest request line accepted (a history record is well below this).
const MAX_LINE: u64 = 1024 * 1024;

/// Bind the socket, replacing a stale one left by a crashed agent.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, agent: Arc<Agent>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let agent = Arc::clone(&agent);
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, agent).await {
                        tracing::debug!(error = %e, "admin connection ended");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "admin accept failed"),
        }
    }
}

async fn connection(stream: UnixStream, agent: Arc<Agent>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_LINE)).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let response = match serde_json::from_str::<AdminRequest>(&line) {
            Ok(req) => super::handlers::handle(&agent, req).await,
            // serde's own message may quote a value of the request, and a
            // `cert_ensure` request holds a private key: say where, not what.
            Err(e) if line.contains("key_pem") => AdminResponse::error(
                AdminErrorKind::BadRequest,
                format!(
                    "invalid request: {:?} error at line {}, column {}; check the fields of the verb",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            ),
            Err(e) => {
                AdminResponse::error(AdminErrorKind::BadRequest, format!("invalid request: {e}"))
            }
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_else(|e| {
            format!(r#"{{"status":"error","error":{{"kind":"internal","message":"cannot encode response: {e}"}}}}"#)
                .into_bytes()
        });
        out.push(b'\n');
        write.write_all(&out).await?;
    }
    Ok(())
}
