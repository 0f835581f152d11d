//! Everything a pipeline step needs about one environment on one engine:
//! the resolved configuration, the engine, the names of its resources and
//! a client for its agent.

use std::time::Duration;

use slipway_core::admin::{AdminRequest, AdminResult, AppArgs, HealthCheck};
use slipway_core::config::ResolvedConfig;
use slipway_core::ledger::AppLedger;

use crate::providers::docker::names::{Names, Slot};
use crate::providers::docker::{AgentClient, AgentError, Engine, EngineError};

pub struct Target {
    pub config: ResolvedConfig,
    pub engine: Engine,
    pub names: Names,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub message: String,
    pub hint: Option<String>,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<EngineError> for StepError {
    fn from(e: EngineError) -> Self {
        let hint = e.hint();
        StepError::new(e.to_string()).hint(hint)
    }
}

impl From<AgentError> for StepError {
    fn from(e: AgentError) -> Self {
        let hint = match &e {
            AgentError::Unreachable { container, .. } => {
                format!(
                    "check the agent: `docker logs {container}`; `slipway deploy` starts it again"
                )
            }
            AgentError::Refused(_) => "see the agent's message above".to_string(),
        };
        StepError::new(e.to_string()).hint(hint)
    }
}

impl From<crate::tasks::TaskError> for StepError {
    fn from(e: crate::tasks::TaskError) -> Self {
        StepError {
            message: e.message.clone(),
            hint: e.hint.clone(),
        }
    }
}

impl Target {
    pub async fn connect(config: ResolvedConfig) -> Result<Self, StepError> {
        let host = config
            .settings
            .providers
            .docker
            .as_ref()
            .and_then(|d| d.host.clone());
        let engine = Engine::connect(host.as_deref()).await?;
        let names = crate::providers::docker::names::Names::new(
            &config.settings.app.name,
            &config.environment,
        );
        Ok(Self {
            config,
            engine,
            names,
        })
    }

    pub fn agent(&self) -> AgentClient<'_> {
        AgentClient::new(&self.engine, self.names.agent())
    }

    pub async fn agent_call(&self, request: AdminRequest) -> Result<AdminResult, AgentError> {
        self.agent().call(&request).await
    }

    /// The agent's ledger for this environment; `None` only when no agent
    /// container exists yet. An agent that exists but does not answer is an
    /// error: guessing "nothing deployed" could replace the live slot.
    pub async fn ledger(&self) -> Result<Option<AppLedger>, StepError> {
        let Some(agent) = self.engine.inspect(&self.names.agent()).await else {
            return Ok(None);
        };
        if !agent.running {
            return Err(
                StepError::new(format!("the agent {} is not running", self.names.agent())).hint(
                    format!(
                        "`slipway deploy {}` starts it again; `docker logs {}` says why it stopped",
                        self.config.environment,
                        self.names.agent()
                    ),
                ),
            );
        }
        let mut last = None;
        // The exec can fail transiently on a loaded host; a few tries.
        for _ in 0..3 {
            match self
                .agent_call(AdminRequest::State(AppArgs {
                    app: self.names.route(),
                }))
                .await
            {
                Ok(AdminResult::State { state }) => return Ok(Some(*state)),
                Ok(other) => {
                    return Err(StepError::new(format!(
                        "unexpected agent answer: {other:?}"
                    )));
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        Err(last.map_or_else(
            || StepError::new("the agent did not answer"),
            StepError::from,
        ))
    }

    /// The slot serving traffic now, from the agent's route.
    pub fn active_slot(ledger: Option<&AppLedger>) -> Option<Slot> {
        let target = ledger?.route.as_ref()?.active.as_ref()?;
        target.slot.as_deref().and_then(Slot::parse)
    }

    pub fn health_check(&self, deadline: Duration) -> HealthCheck {
        let h = &self.config.settings.health;
        HealthCheck {
            path: h.path.clone(),
            passes: h.healthy_threshold,
            interval_ms: h.interval.0.as_millis() as u64,
            timeout_ms: h.timeout.0.as_millis() as u64,
            deadline_ms: deadline.as_millis() as u64,
        }
    }

    pub fn public_url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}{path}",
            self.config.settings.deployment.public_port
        )
    }

    /// `host:port` of a slot as the agent sees it on the environment's network.
    pub fn slot_target(&self, slot: Slot) -> String {
        format!(
            "{}:{}",
            self.names.slot(slot),
            self.config.settings.app.port
        )
    }
}
