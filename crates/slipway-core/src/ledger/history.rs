//! Deployment records and the current/previous/history bookkeeping of one
//! app: what `history record` and a rollback do to the ledger.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::{AppLedger, HISTORY_KEEP};

/// One deployment, in the deployment-state file's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// `dep_<ulid>`.
    pub id: String,
    /// Release id; the agent's `--release` for the same deployment.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub deployed_at: OffsetDateTime,
    pub deployed_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_slot: Option<String>,
    /// `healthy`, `degraded`, `unhealthy` or `unknown`.
    #[serde(default = "unknown")]
    pub health_status: String,
    /// `active`, `superseded`, `rolled_back`, `failed`, `in_progress`...
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations_run: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// What failed, for a failed deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn unknown() -> String {
    "unknown".to_owned()
}

/// Record a deployment. A record with the same id replaces the earlier one
/// (the CLI records `in_progress`, then the outcome). `status: "active"`
/// makes it current and the former current becomes previous (`superseded`).
pub fn record(ledger: &mut AppLedger, deployment: Deployment) {
    if deployment.status == "active" {
        let same = ledger
            .current_deployment
            .as_ref()
            .is_some_and(|c| c.id == deployment.id);
        if let Some(mut old) = ledger.current_deployment.take().filter(|_| !same) {
            old.status = "superseded".to_owned();
            set_status(ledger, &old.id, "superseded");
            ledger.previous_deployment = Some(old);
        }
        ledger.current_deployment = Some(deployment.clone());
    }
    ledger.deployment_history.retain(|d| d.id != deployment.id);
    ledger.deployment_history.insert(0, deployment);
    ledger.deployment_history.truncate(HISTORY_KEEP);
}

/// After the agent switched back to the previous target: previous becomes
/// current (`active`, one more rollback), current becomes previous
/// (`rolled_back`). No-op without a previous deployment.
pub fn rolled_back(ledger: &mut AppLedger) {
    let Some(mut back) = ledger.previous_deployment.take() else {
        return;
    };
    back.status = "active".to_owned();
    back.rollback_count = Some(back.rollback_count.unwrap_or(0) + 1);
    set_status(ledger, &back.id, "active");
    if let Some(mut old) = ledger.current_deployment.take() {
        old.status = "rolled_back".to_owned();
        set_status(ledger, &old.id, "rolled_back");
        ledger.previous_deployment = Some(old);
    }
    ledger.current_deployment = Some(back);
}

fn set_status(ledger: &mut AppLedger, id: &str, status: &str) {
    for d in ledger.deployment_history.iter_mut().filter(|d| d.id == id) {
        d.status = status.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn dep(id: &str, status: &str) -> Deployment {
        Deployment {
            id: id.to_owned(),
            version: format!("v-{id}"),
            git_commit: None,
            deployed_at: datetime!(2026-01-28 10:30 UTC),
            deployed_by: "op".to_owned(),
            active_slot: Some("blue".to_owned()),
            health_status: "healthy".to_owned(),
            status: status.to_owned(),
            migrations_run: None,
            rollback_count: None,
            duration_ms: None,
            error: None,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn active_record_shifts_current_to_previous_and_rollback_swaps_back() {
        let mut l = AppLedger::new("web");
        record(&mut l, dep("a", "active"));
        record(&mut l, dep("b", "in_progress"));
        assert_eq!(
            l.current_deployment.as_ref().map(|d| d.id.as_str()),
            Some("a")
        );
        record(&mut l, dep("b", "active"));
        assert_eq!(
            l.current_deployment.as_ref().map(|d| d.id.as_str()),
            Some("b")
        );
        assert_eq!(
            l.previous_deployment.as_ref().map(|d| d.status.as_str()),
            Some("superseded")
        );
        assert_eq!(l.deployment_history.len(), 2, "same id replaced");
        rolled_back(&mut l);
        let cur = l.current_deployment.as_ref().expect("current");
        assert_eq!((cur.id.as_str(), cur.rollback_count), ("a", Some(1)));
        assert_eq!(l.deployment_history[1].status, "active");
        assert_eq!(l.deployment_history[0].status, "rolled_back");
    }
}
