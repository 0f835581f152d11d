//! `slipway rollback`: back to the previous release (or `--to` a kept one).
//! The kept slot is started if it was stopped, health-checked by the agent
//! and switched to; the slot it replaces is stopped and kept, so a roll
//! forward is just as quick. When the database holds migrations newer than
//! the target release, the operator is told which snapshot predates them
//! and must confirm.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;
use slipway_core::ledger::history::Deployment;

use super::context::{StepError, Target};
use super::progress::Progress;
use super::release::Release;
use super::{lock, record, recover, retire, slot};
use crate::providers::docker::names::{LABEL_RELEASE, Slot};

/// Ledger key (in a deployment's extra fields) of the schema version the
/// release migrated the database to.
pub const SCHEMA_VERSION: &str = "schema_version";

#[derive(Debug, serde::Serialize)]
pub struct RollbackReport {
    pub deployment_id: String,
    pub from_release: Option<String>,
    pub to_release: String,
    pub slot: String,
    pub steps: Vec<super::progress::StepRecord>,
    pub total_ms: u64,
    pub switched_after_ms: u64,
}

/// Why a rollback needs the operator's confirmation.
#[derive(Debug)]
pub struct NeedsConfirmation {
    pub message: String,
}

pub enum RollbackError {
    Step(StepError),
    Confirm(NeedsConfirmation),
}

impl From<StepError> for RollbackError {
    fn from(e: StepError) -> Self {
        RollbackError::Step(e)
    }
}

fn schema_version(d: &Deployment) -> Option<i64> {
    d.extra.get(SCHEMA_VERSION).and_then(|v| v.as_i64())
}

pub async fn rollback(
    t: &Target,
    to: Option<&str>,
    yes: bool,
    progress: &mut Progress<'_>,
) -> Result<RollbackReport, RollbackError> {
    let started = Instant::now();
    let s = Instant::now();
    recover::recover(t, recover::wait_for_migrations(t), &|n: &str| {
        progress.note(n)
    })
    .await?;
    let ledger = t.ledger().await?.ok_or_else(|| {
        StepError::new(format!(
            "nothing is deployed to `{}` yet (no agent runs)",
            t.config.environment
        ))
        .hint(format!(
            "deploy first: slipway deploy {}",
            t.config.environment
        ))
    })?;
    let current = ledger.current_deployment.clone();
    let active = Target::active_slot(Some(&ledger));
    let target_release = match to {
        Some(r) => r.to_string(),
        None => ledger.previous_deployment.as_ref().map(|d| d.version.clone()).ok_or_else(|| {
            StepError::new("there is no previous release to roll back to")
                .hint(format!("`slipway history {}` lists releases; pass --to <release> for an older kept one", t.config.environment))
        })?,
    };
    if current
        .as_ref()
        .is_some_and(|c| c.version == target_release)
        && active.is_some()
    {
        return Err(StepError::new(format!("release {target_release} is already serving")).into());
    }
    // Schema check: the ledger remembers the schema version each release left.
    let target_record = ledger
        .deployment_history
        .iter()
        .find(|d| d.version == target_release && d.status != "failed")
        .cloned();
    if let (Some(cur), Some(tgt)) = (current.as_ref(), target_record.as_ref())
        && let (Some(cv), Some(tv)) = (schema_version(cur), schema_version(tgt))
        && cv > tv
        && !yes
    {
        let snapshot = cur
            .extra
            .get("snapshot")
            .and_then(|s| s.as_str())
            .unwrap_or("(none recorded)");
        let name = std::path::Path::new(snapshot)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(RollbackError::Confirm(NeedsConfirmation {
            message: format!(
                "the database is at schema version {cv}, newer than release {target_release} expects ({tv}). \
                 The old release usually copes with a backward-compatible schema; if it does not, restore the snapshot taken before those migrations: {snapshot}\n  \
                 (slipway snapshot restore {} {name} --yes). Re-run with --yes to roll back anyway.",
                t.config.environment
            ),
        }));
    }
    let held = lock::acquire(t, &record::new_deployment_id()).await?;
    progress.done(
        "preflight",
        s,
        true,
        format!(
            "{} → {target_release}",
            current.as_ref().map_or("(none)", |c| c.version.as_str())
        ),
    );

    let result = switch_to(t, &target_release, active, progress).await;
    let outcome = match result {
        Ok(slot) => {
            let id = record::new_deployment_id();
            let mut extra = BTreeMap::new();
            extra.insert(
                "rollback_from".into(),
                json!(current.as_ref().map(|c| c.version.clone())),
            );
            if let Some(v) = target_record.as_ref().and_then(schema_version) {
                extra.insert(SCHEMA_VERSION.into(), json!(v));
            }
            let commit = target_record
                .as_ref()
                .and_then(|d| d.git_commit.clone())
                .unwrap_or_default();
            let version = target_record
                .as_ref()
                .and_then(|d| d.extra.get("release_version"))
                .and_then(|v| v.as_str())
                .unwrap_or(&target_release)
                .to_string();
            let release = Release::already_built(
                &target_release,
                &commit,
                &version,
                "rollback",
                crate::identity::deployer(&t.config.root),
            );
            let mut d = record::deployment(
                &id,
                &release,
                record::Outcome {
                    status: "active",
                    health: "healthy",
                    slot: Some(slot.0.to_string()),
                    migrations_run: None,
                    error: None,
                    duration_ms: Some(started.elapsed().as_millis() as u64),
                    extra,
                },
            );
            d.rollback_count =
                Some(current.as_ref().and_then(|c| c.rollback_count).unwrap_or(0) + 1);
            record::record(t, d).await?;
            Ok(RollbackReport {
                deployment_id: id,
                from_release: current.map(|c| c.version),
                to_release: target_release,
                slot: slot.0.to_string(),
                steps: progress.steps.clone(),
                total_ms: started.elapsed().as_millis() as u64,
                switched_after_ms: slot.1,
            })
        }
        Err(e) => Err(RollbackError::Step(e)),
    };
    let _ = lock::release(t, &held.lock.lock_id).await;
    outcome
}

/// Starts (or reuses) a slot holding `release`, switches to it, stops the other.
async fn switch_to(
    t: &Target,
    release: &str,
    active: Option<Slot>,
    progress: &mut Progress<'_>,
) -> Result<(Slot, u64), StepError> {
    let begin = Instant::now();
    let s = Instant::now();
    let mut chosen = None;
    for slot in [Slot::Blue, Slot::Green] {
        if Some(slot) == active {
            continue;
        }
        if let Some(c) = t.engine.inspect(&t.names.slot(slot)).await
            && c.labels.get(LABEL_RELEASE).map(String::as_str) == Some(release)
        {
            if !c.running {
                t.engine.start(&t.names.slot(slot)).await?;
            }
            chosen = Some(slot);
        }
    }
    let slot = match chosen {
        Some(s) => s,
        None => {
            let idle = active.map_or(Slot::Blue, Slot::other);
            if !t.engine.image_exists(&t.names.image(release)).await {
                return Err(StepError::new(format!("release {release} is no longer kept on the engine (image {} is gone)", t.names.image(release)))
                    .hint(format!("`slipway history {}` lists releases; deploy it again with `slipway deploy {} --ref <commit>`", t.config.environment, t.config.environment)));
            }
            slot::start(t, idle, release, "rollback").await?;
            idle
        }
    };
    progress.done(
        "start",
        s,
        true,
        format!("{} ({release})", t.names.slot(slot)),
    );
    let s = Instant::now();
    let report = slot::switch_when_healthy(t, slot, release, None).await?;
    let switched_after = begin.elapsed().as_millis() as u64;
    progress.done(
        "switch",
        s,
        true,
        format!(
            "{} → {release}",
            report.previous_release.as_deref().unwrap_or("(none)")
        ),
    );
    if let Some(old) = active {
        let s = Instant::now();
        retire::old_slot(t, old).await?;
        progress.done(
            "retire",
            s,
            true,
            format!("{} stopped and kept", t.names.slot(old)),
        );
    }
    Ok((slot, switched_after))
}
