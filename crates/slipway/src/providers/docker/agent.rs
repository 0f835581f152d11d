//! Talking to the host's agent: one admin request, sent by running
//! `slipway-agent ctl raw '<json>'` inside the agent container through the
//! engine's exec (the admin socket is never on a network port).

use std::time::{Duration, Instant};

use slipway_core::admin::{AdminError, AdminErrorKind, AdminRequest, AdminResponse, AdminResult};

use super::engine::Engine;

fn carries_secret(request: &AdminRequest) -> bool {
    matches!(
        request,
        AdminRequest::CertEnsure(slipway_core::admin::CertEnsureArgs {
            source: slipway_core::admin::CertSource::Custom { .. },
            ..
        }) | AdminRequest::NotifyConfigure(_)
    )
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the agent in {container} cannot be reached: {reason}")]
    Unreachable { container: String, reason: String },
    #[error("{}", .0.message)]
    Refused(Box<AdminError>),
}

/// How long a state change waits for an agent upgrade to finish.
const HANDOVER_PATIENCE: Duration = Duration::from_secs(60);

pub struct AgentClient<'a> {
    engine: &'a Engine,
    container: String,
}

impl<'a> AgentClient<'a> {
    pub fn new(engine: &'a Engine, container: impl Into<String>) -> Self {
        Self {
            engine,
            container: container.into(),
        }
    }

    pub fn container(&self) -> &str {
        &self.container
    }

    /// One request. A state change refused because an agent upgrade holds
    /// the ledger for a moment (`handing_over`) is retried for up to a
    /// minute, so a deploy or a lock heartbeat rides through an upgrade.
    pub async fn call(&self, request: &AdminRequest) -> Result<AdminResult, AgentError> {
        let started = Instant::now();
        loop {
            match self.call_once(request).await {
                Err(AgentError::Refused(e))
                    if e.kind == AdminErrorKind::HandingOver
                        && started.elapsed() < HANDOVER_PATIENCE =>
                {
                    tracing::info!("{}; retrying", e.message);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => return other,
            }
        }
    }

    async fn call_once(&self, request: &AdminRequest) -> Result<AdminResult, AgentError> {
        let unreachable = |reason: String| AgentError::Unreachable {
            container: self.container.clone(),
            reason,
        };
        let json = serde_json::to_string(request).map_err(|e| unreachable(e.to_string()))?;
        // A request carrying a private key goes on stdin: an exec's
        // arguments are visible to anyone who can inspect the container.
        // Others stay arguments, which agents older than `raw -` understand.
        let out = if carries_secret(request) {
            self.engine
                .exec(
                    &self.container,
                    &["slipway-agent", "ctl", "raw", "-"],
                    Some(json.as_bytes()),
                )
                .await
        } else {
            self.engine
                .exec(
                    &self.container,
                    &["slipway-agent", "ctl", "raw", &json],
                    None,
                )
                .await
        }
        .map_err(|e| unreachable(e.to_string()))?;
        let stdout = out.stdout_text();
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'));
        match line.map(serde_json::from_str::<AdminResponse>) {
            Some(Ok(AdminResponse::Ok { result })) => Ok(result),
            Some(Ok(AdminResponse::Error { error })) => Err(AgentError::Refused(Box::new(error))),
            Some(Err(e)) => Err(unreachable(format!("unreadable answer ({e})"))),
            None => Err(unreachable(format!(
                "no answer (exit {}): {}",
                out.code,
                out.stderr_text().trim()
            ))),
        }
    }
}
