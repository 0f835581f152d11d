//! Notifications: one event model for everything Slipway tells people, and
//! the channels it tells them through. The CLI raises events about the
//! deploys it runs; the agent raises the ones it sees on the host (the
//! analysis' verdict, a switch-back). Both hand them to the agent, which
//! queues them on its volume and delivers them (see the agent's `notify`),
//! so delivery does not depend on any CLI still running.
//!
//! A delivery failure never changes a deploy's result. Secrets never appear
//! in a payload: an [`Event`] carries no configuration, and a
//! [`Credential`] never prints.
//!
//! The pure parts of delivery live here, so they are tested without a
//! network: [`payload`] (a webhook's body per template, template checks),
//! [`ntfy`] (the publish request), [`retry`] (classification, backoff,
//! `Retry-After`, the budget) and [`redact`] (destinations safe to show).

pub mod ntfy;
pub mod payload;
pub mod redact;
pub mod retry;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    DeployStarted,
    DeploySucceeded,
    DeployFailed,
    /// Traffic went back to the previous release: by the analysis, by a
    /// failed deploy's undo, or by `slipway rollback` (see `details.by`).
    DeployRolledBack,
    AnalysisPassed,
    AnalysisFailed,
    AnalysisInconclusive,
    LatencyRegression,
    HealthFailing,
    StaleLockTakenOver,
    /// Maintenance mode went on: the public gets the maintenance page.
    MaintenanceOn,
    /// Maintenance mode was lifted: requests reach the release again.
    MaintenanceOff,
    /// `slipway notify test`.
    Test,
}

impl EventKind {
    /// The dotted name in payloads (`deploy.succeeded`).
    pub fn name(self) -> &'static str {
        match self {
            Self::DeployStarted => "deploy.started",
            Self::DeploySucceeded => "deploy.succeeded",
            Self::DeployFailed => "deploy.failed",
            Self::DeployRolledBack => "deploy.rolled_back",
            Self::AnalysisPassed => "analysis.passed",
            Self::AnalysisFailed => "analysis.failed",
            Self::AnalysisInconclusive => "analysis.inconclusive",
            Self::LatencyRegression => "analysis.latency_regression",
            Self::HealthFailing => "analysis.health_failing",
            Self::StaleLockTakenOver => "lock.stale_taken_over",
            Self::MaintenanceOn => "maintenance.on",
            Self::MaintenanceOff => "maintenance.off",
            Self::Test => "notify.test",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// The name in payloads and templates (`critical`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// One event. `id` is stable: it is the webhook's `webhook-id` on every
/// retry, so receivers can drop duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `evt_<ulid>`.
    pub id: String,
    pub kind: EventKind,
    /// The agent's route name (`<app>-<env>`).
    pub app: String,
    /// The operator's environment name (`production`).
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub severity: Severity,
    /// One line for people ("events/production: deploy of 1a2b3c failed").
    pub title: String,
    /// What happened, why, and what to do.
    pub message: String,
    /// Machine-readable facts (the analysis report, the failed step...).
    #[serde(default)]
    pub details: serde_json::Value,
}

/// A value that must travel to the agent (the wire shows it) but never
/// prints: webhook URLs (they carry tokens), signing secrets, ntfy tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credential(String);

impl Credential {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::secret::REDACTED)
    }
}

/// The built-in payload shapes of the webhook channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WebhookTemplate {
    /// The event itself as JSON (Standard Webhooks `{type, timestamp, data}`).
    #[default]
    Standard,
    /// Slack incoming webhook (`{"text": ...}`).
    Slack,
    /// Discord webhook (`{"content": ...}`).
    Discord,
    /// Mattermost incoming webhook (`{"text": ...}`).
    Mattermost,
    /// The operator's own JSON body with `{{field}}` placeholders.
    Custom { body: String },
}

/// A generic webhook following the Standard Webhooks specification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookChannel {
    pub url: Credential,
    /// `whsec_<base64>`: signs every delivery (`webhook-signature: v1,...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Credential>,
    #[serde(default)]
    pub template: WebhookTemplate,
    /// One attempt's timeout.
    pub timeout_ms: u64,
    /// Give up on a delivery after this long (retries included).
    pub give_up_after_ms: u64,
}

/// An ntfy topic (<https://ntfy.sh> or a self-hosted server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NtfyChannel {
    pub server: String,
    pub topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Credential>,
    /// ntfy priority 1..5 for critical events; others get 3 (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Click URL (e.g. the service's public URL or a dashboard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click: Option<String>,
    pub timeout_ms: u64,
    pub give_up_after_ms: u64,
}

/// Where one app's (environment's) events go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Channels {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookChannel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntfy: Option<NtfyChannel>,
}

/// The outcome of delivering one event to one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryResult {
    /// `webhook` or `ntfy`.
    pub channel: String,
    pub event_id: String,
    pub event: String,
    /// `delivered`, `retrying`, `failed` (gave up), `disabled` (410 Gone).
    pub outcome: String,
    pub attempts: u32,
    /// Last HTTP status seen, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong, without any secret (URLs shown without path/query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_unix_ms: Option<u64>,
}

/// One channel as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatus {
    pub channel: String,
    /// Where it goes, redacted (scheme and host only).
    pub destination: String,
    /// Disabled after a 410 Gone, until configured again.
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}

/// `notify_status`: channels, the queue, recent outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyStatus {
    pub app: String,
    pub channels: Vec<ChannelStatus>,
    /// Deliveries waiting (or retrying) in the queue on the agent's volume.
    pub pending: Vec<DeliveryResult>,
    /// The last outcomes, newest first.
    pub recent: Vec<DeliveryResult>,
}
