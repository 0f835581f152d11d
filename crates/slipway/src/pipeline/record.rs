//! Deployment records in the agent's ledger: `in_progress` when a deploy
//! starts (so an interrupted one is recognisable), then its outcome.

use std::collections::BTreeMap;

use slipway_core::admin::{AdminRequest, HistoryRecordArgs};
use slipway_core::ledger::history::Deployment;

use super::context::{StepError, Target};
use super::release::Release;

pub struct Outcome<'a> {
    pub status: &'a str,
    pub health: &'a str,
    pub slot: Option<String>,
    pub migrations_run: Option<u32>,
    pub error: Option<String>,
    pub duration_ms: Option<u64>,
    pub extra: BTreeMap<String, serde_json::Value>,
}

pub fn deployment(id: &str, release: &Release, outcome: Outcome<'_>) -> Deployment {
    let mut extra = outcome.extra;
    extra.insert("release_version".into(), release.version.clone().into());
    extra.insert("git_ref".into(), release.git_ref.clone().into());
    Deployment {
        id: id.to_string(),
        version: release.id.clone(),
        git_commit: Some(release.commit.clone()),
        deployed_at: time::OffsetDateTime::now_utc(),
        deployed_by: release.deployer.clone(),
        active_slot: outcome.slot,
        health_status: outcome.health.to_string(),
        status: outcome.status.to_string(),
        migrations_run: outcome.migrations_run,
        rollback_count: None,
        duration_ms: outcome.duration_ms,
        error: outcome.error,
        extra,
    }
}

pub async fn record(t: &Target, deployment: Deployment) -> Result<(), StepError> {
    t.agent_call(AdminRequest::HistoryRecord(HistoryRecordArgs {
        app: t.names.route(),
        deployment,
    }))
    .await
    .map(|_| ())
    .map_err(Into::into)
}

pub fn new_deployment_id() -> String {
    format!("dep_{}", ulid::Ulid::new())
}
