//! Post-deploy analysis: the agent, which sees every request, watches a new
//! release after the switch and decides whether it is fit, against the
//! previous release's figures over a comparable window before the switch.
//!
//! This module is the shared model: what the CLI asks for ([`AnalysisSpec`],
//! sent with the `deploy` verb so the analysis starts at the switch itself
//! and survives the CLI going away) and what the agent reports
//! ([`AnalysisReport`], kept in the ledger and in the deployment's history
//! entry). Verdict rules live beside it and are pure.

use serde::{Deserialize, Serialize};

/// What to do when the analysis fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Switch back to the previous (still warm) target, record the
    /// deployment as rolled back, and notify.
    #[default]
    Rollback,
    /// Only notify.
    Alert,
}

impl std::fmt::Display for OnFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rollback => "rollback",
            Self::Alert => "alert",
        })
    }
}

/// `deploy`'s request to analyse the new target after the switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSpec {
    /// The deployment being analysed (`dep_<ulid>`): its history entry gets
    /// the report and, on a switch-back, the `rolled_back` status.
    pub deployment_id: String,
    /// The operator's environment name (`production`), for events.
    pub environment: String,
    /// How long after the switch the release is watched.
    pub window_ms: u64,
    /// The sliding window the error ratio and latency are judged over, and
    /// how long a latency regression must last before it counts.
    pub interval_ms: u64,
    pub on_failure: OnFailure,
    /// Health probes of the new target failing this many times in a row fail
    /// the analysis.
    pub health_failures: u32,
    /// Milliseconds between two health probes of the new target.
    pub health_interval_ms: u64,
    /// 5xx responses over all responses, in the sliding window, above which
    /// the analysis fails (0.05 = 5 %).
    pub max_error_ratio: f64,
    /// Requests a window needs before its ratio or latency is judged; a
    /// whole analysis window with fewer is `inconclusive`.
    pub min_requests: u64,
    /// p95 above this multiple of the baseline's p95 is a regression...
    pub p95_factor: f64,
    /// ...when it is also above this many milliseconds.
    pub p95_floor_ms: f64,
}

/// Where an analysis stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisState {
    Running,
    Passed,
    Failed,
    /// Too little traffic to judge: never reported as passed.
    Inconclusive,
    /// Ended before its window: another deploy or a rollback replaced the
    /// release.
    Cancelled,
}

impl AnalysisState {
    pub fn is_final(self) -> bool {
        self != Self::Running
    }
}

impl std::fmt::Display for AnalysisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Inconclusive => "inconclusive",
            Self::Cancelled => "cancelled",
        })
    }
}

/// Figures of one target over one span of time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Length of the span in milliseconds.
    pub span_ms: u64,
    pub requests: u64,
    pub errors_5xx: u64,
    /// Non-5xx responses over all responses (None without requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// The analysis' own health probes of the new target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthTally {
    pub probes: u64,
    pub failures: u64,
    pub failing_in_a_row: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// What the analysis noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    HealthFailing,
    ErrorRatio,
    LatencyRegression,
    LowTraffic,
    NoBaseline,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// For people, with the comparison: "p95 now 180 ms vs 95 ms before, +89 %".
    pub message: String,
    /// Milliseconds after the switch.
    pub at_ms: u64,
    /// Whether it fails the analysis (a regression) or is only a note.
    pub failing: bool,
}

/// What the agent did about a failed analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnalysisAction {
    /// Traffic went back to the previous target.
    SwitchedBack {
        /// Milliseconds after the switch.
        at_ms: u64,
        /// From the first failing observation to the switch-back.
        detection_to_switch_ms: u64,
        /// The target traffic went back to.
        to_release: String,
    },
    /// `on_failure: alert`: only notified.
    Alerted,
    /// Switching back was not possible (no previous target, or it does not
    /// answer its health check); notified with the reason.
    SwitchBackFailed { reason: String },
}

/// One analysis, as `slipway status` and `slipway watch` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisReport {
    pub app: String,
    pub spec: AnalysisSpec,
    pub release: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_release: Option<String>,
    pub started_at_unix_ms: u64,
    /// Milliseconds since the switch (up to the window once final).
    pub elapsed_ms: u64,
    pub state: AnalysisState,
    /// The previous release over a comparable window before the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<WindowStats>,
    /// The new release since the switch.
    pub total: WindowStats,
    /// The new release over the last `interval_ms`.
    pub recent: WindowStats,
    pub health: HealthTally,
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Why the verdict is what it is (final states only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<AnalysisAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_unix_ms: Option<u64>,
}
