//! The host's ledger: per app (one app per environment) the deploy lock, the
//! current and previous deployment, the deployment history and the route the
//! agent serves. The agent keeps it in one JSON file on its volume; the CLI
//! reads it through the admin API. This module owns the file *format* (and
//! its version check); the agent owns the atomic file store.
//!
//! Each app's section has the shape of Togather's `deployment-state.json`
//! (`current_deployment`, `previous_deployment`, `deployment_history`, `lock`)
//! so operators who know that file recognise this one. Unknown fields are
//! kept (`extra`), so an agent of the same format version but an older build
//! rewrites a newer build's additions instead of dropping them.

pub mod history;
pub mod lock;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admin::HealthCheck;

pub use history::Deployment;
pub use lock::{Lock, LockError, LockRequest};

/// Format of the ledger file this build reads and writes. Raise it when a
/// change would make an older agent misread the file; older agents then
/// refuse it (see [`parse`]) instead of corrupting it.
pub const FORMAT_VERSION: u32 = 1;

/// History entries kept per app; older ones are dropped on write.
pub const HISTORY_KEEP: usize = 50;

/// The whole ledger file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerFile {
    pub format_version: u32,
    /// Version of the agent that last wrote the file, for error messages.
    #[serde(default)]
    pub written_by: String,
    #[serde(default)]
    pub apps: BTreeMap<String, AppLedger>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl LedgerFile {
    pub fn new(written_by: impl Into<String>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            written_by: written_by.into(),
            apps: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }

    /// The app's section, created empty on first use.
    pub fn app_mut(&mut self, app: &str) -> &mut AppLedger {
        self.apps
            .entry(app.to_owned())
            .or_insert_with(|| AppLedger::new(app))
    }
}

/// One app's (one environment's) section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppLedger {
    /// The app key the CLI uses (e.g. `togather-production`).
    pub environment: String,
    #[serde(default)]
    pub current_deployment: Option<Deployment>,
    #[serde(default)]
    pub previous_deployment: Option<Deployment>,
    /// Newest first, at most [`HISTORY_KEEP`] entries.
    #[serde(default)]
    pub deployment_history: Vec<Deployment>,
    /// `{"locked": false}` or `{"locked": true, "lock_id": ..., ...}`.
    #[serde(default, with = "lock::wire")]
    pub lock: Option<Lock>,
    /// What the agent routes for this app; restored on agent start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteRecord>,
    /// The post-deploy analysis running now, else the last one; resumed
    /// after an agent restart or upgrade while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<crate::analysis::AnalysisReport>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl AppLedger {
    pub fn new(app: &str) -> Self {
        Self {
            environment: app.to_owned(),
            current_deployment: None,
            previous_deployment: None,
            deployment_history: Vec::new(),
            lock: None,
            route: None,
            analysis: None,
            extra: BTreeMap::new(),
        }
    }
}

/// The route of one app as saved: enough to serve again after a restart and
/// to roll back to the previous target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    #[serde(default)]
    pub hosts: Vec<String>,
    pub active: Option<TargetRecord>,
    #[serde(default)]
    pub previous: Option<TargetRecord>,
    #[serde(default)]
    pub health: HealthCheck,
    pub drain_timeout_ms: u64,
    /// Maintenance mode, while it is on (see [`crate::maintenance`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::Maintenance>,
}

/// One upstream: address plus the release it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub target: String,
    pub release: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
}

/// Why a ledger file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "the ledger has format_version {found} (written by slipway-agent {written_by}), \
         but this agent reads format_version {supported} at most; it was left untouched. \
         Run an agent at least as new as the one that wrote it"
    )]
    TooNew {
        found: u32,
        supported: u32,
        written_by: String,
    },
    #[error("the ledger is not valid JSON of the expected shape: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Parse a ledger file, refusing one written in a newer format before looking
/// at anything else in it.
pub fn parse(bytes: &[u8]) -> Result<LedgerFile, LedgerError> {
    #[derive(Deserialize)]
    struct Probe {
        format_version: u32,
        #[serde(default)]
        written_by: String,
    }
    let probe: Probe = serde_json::from_slice(bytes)?;
    if probe.format_version > FORMAT_VERSION {
        return Err(LedgerError::TooNew {
            found: probe.format_version,
            supported: FORMAT_VERSION,
            written_by: if probe.written_by.is_empty() {
                "unknown".to_owned()
            } else {
                probe.written_by
            },
        });
    }
    Ok(serde_json::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_format_is_refused_with_both_versions_named() {
        let text = br#"{"format_version": 7, "written_by": "9.9.9", "apps": {"x": 42}}"#;
        let err = parse(text).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("format_version 7"), "{msg}");
        assert!(msg.contains("9.9.9"), "{msg}");
        assert!(
            msg.contains(&format!("format_version {FORMAT_VERSION}")),
            "{msg}"
        );
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = br#"{"format_version":1,"written_by":"0.1.0","future":true,
            "apps":{"web":{"environment":"web","lock":{"locked":false},"shiny":[1]}}}"#;
        let file = parse(text).expect("parses");
        let back = serde_json::to_value(&file).expect("serialises");
        assert_eq!(back["future"], Value::Bool(true));
        assert_eq!(back["apps"]["web"]["shiny"][0], 1);
        assert_eq!(back["apps"]["web"]["lock"]["locked"], false);
    }
}
