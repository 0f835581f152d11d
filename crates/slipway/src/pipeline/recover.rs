//! Repairing what an interrupted command (`kill -9`, a lost laptop lid)
//! left behind. Run by `deploy`, `rollback` and `status` before anything
//! else. Traffic is never touched here: whatever the agent serves keeps
//! being served.
//!
//! - The lock of a dead process of this machine is released.
//! - A slot the interrupted deploy started but never switched to is removed.
//! - If the switch did happen (the agent routes to the interrupted deploy's
//!   slot), that release passed the agent's health check and is serving, so
//!   it is recorded as the current deployment rather than yanked away; its
//!   watch window is what was lost, and the note says so.
//! - Maintenance mode the interrupted deploy put on stays on (the public
//!   keeps getting the page): the schema may be half-migrated, so only the
//!   operator, or the next `deploy --maintenance`, lifts it; the note says so.
//! - A one-off migrate container whose command died is settled (see
//!   `tasks::settle_leftover_migrations`): a migration still running there
//!   holds the migration lock, so `deploy` and `rollback` wait for it (up to
//!   `database.migration.lock_wait`, with progress) and `status` reports it;
//!   once it has ended, its outcome is noted and the container removed.

use slipway_core::ledger::AppLedger;

use super::context::{StepError, Target};
use super::lock;
use super::record;
use crate::providers::docker::names::{LABEL_DEPLOYMENT, LABEL_RELEASE, Slot};
use crate::tasks::{self, StillRunning, TaskContext};

/// Repairs what an interrupted command left; each repair is said to `note`
/// as it happens.
pub async fn recover(
    t: &Target,
    still_running: StillRunning,
    note: &dyn Fn(&str),
) -> Result<(), StepError> {
    let ctx = TaskContext {
        engine: &t.engine,
        names: &t.names,
        config: &t.config,
    };
    tasks::settle_leftover_migrations(&ctx, still_running, note)
        .await
        .map_err(StepError::from)?;
    for n in interrupted_deploy(t).await? {
        note(&n);
    }
    Ok(())
}

/// How long `deploy` and `rollback` wait for a leftover migration: as long
/// as their own migration would wait for its lock.
pub fn wait_for_migrations(t: &Target) -> StillRunning {
    StillRunning::Wait(t.config.settings.database.migration.lock_wait.0)
}

async fn interrupted_deploy(t: &Target) -> Result<Vec<String>, StepError> {
    let Some(ledger) = t.ledger().await? else {
        return Ok(Vec::new());
    };
    let Some(held) = ledger.lock.clone() else {
        return Ok(Vec::new());
    };
    if !lock::is_orphaned(&held) {
        return Ok(Vec::new());
    }
    let mut notes = vec![format!(
        "found an interrupted deploy: {}",
        lock::describe(&held)
    )];
    let active = Target::active_slot(Some(&ledger));
    for slot in [Slot::Blue, Slot::Green] {
        let name = t.names.slot(slot);
        let Some(container) = t.engine.inspect(&name).await else {
            continue;
        };
        if container.labels.get(LABEL_DEPLOYMENT) != Some(&held.deployment_id) {
            continue;
        }
        if Some(slot) == active {
            let release = container
                .labels
                .get(LABEL_RELEASE)
                .cloned()
                .unwrap_or_default();
            mark_switched(t, &ledger, &held.deployment_id, slot, &release).await?;
            notes.push(format!(
                "its release {release} had already passed the health check and taken traffic in {name}; recorded it as current (the host's analysis of it goes on without the CLI: `slipway watch {env}`; `slipway rollback {env}` if it misbehaves)",
                env = t.config.environment
            ));
        } else if let Some(back) =
            in_progress(&ledger, &held.deployment_id).filter(|d| d.status == "rolled_back")
        {
            // It did switch, and the host's analysis switched back from it.
            t.engine.remove(&name).await?;
            notes.push(format!(
                "its release had taken traffic, then the host's analysis switched back from it ({}); removed {name}",
                back.error.as_deref().unwrap_or("see `slipway history`")
            ));
        } else {
            t.engine.remove(&name).await?;
            notes.push(format!(
                "removed {name}, which it had started but never switched to"
            ));
            mark_failed(t, &ledger, &held.deployment_id).await?;
        }
    }
    if let Some(m) = super::maintenance::current(Some(&ledger))
        .filter(|m| m.deployment_id.as_deref() == Some(held.deployment_id.as_str()))
    {
        notes.push(format!(
            "it had put maintenance mode on ({}); it stays ON and the public still gets the \
             maintenance page. Check the serving release (`slipway status {env}`), then lift it: \
             {lift} (a `deploy --maintenance` takes it over and lifts it after its switch)",
            m.describe(),
            env = t.config.environment,
            lift = super::maintenance::lift_command(t)
        ));
    }
    lock::release_force(t, &held.lock_id).await?;
    notes.push("released its lock".into());
    Ok(notes)
}

async fn mark_switched(
    t: &Target,
    ledger: &AppLedger,
    id: &str,
    slot: Slot,
    release: &str,
) -> Result<(), StepError> {
    let mut deployment = in_progress(ledger, id).unwrap_or_else(|| {
        record::deployment(
            id,
            &super::release::Release::already_built(release, "", release, "", "unknown".into()),
            record::Outcome {
                status: "active",
                health: "unknown",
                slot: None,
                migrations_run: None,
                error: None,
                duration_ms: None,
                extra: Default::default(),
            },
        )
    });
    deployment.status = "active".into();
    deployment.active_slot = Some(slot.to_string());
    deployment.health_status = "healthy".into();
    deployment.extra.insert("recovered".into(), true.into());
    record::record(t, deployment).await
}

async fn mark_failed(t: &Target, ledger: &AppLedger, id: &str) -> Result<(), StepError> {
    if let Some(mut deployment) = in_progress(ledger, id) {
        deployment.status = "failed".into();
        deployment.error =
            Some("interrupted before the switch; cleaned up by the next command".into());
        record::record(t, deployment).await?;
    }
    Ok(())
}

fn in_progress(ledger: &AppLedger, id: &str) -> Option<slipway_core::ledger::history::Deployment> {
    ledger
        .deployment_history
        .iter()
        .find(|d| d.id == id)
        .cloned()
}
