//! The deploy lock, held by the host's agent so two operators on two
//! laptops exclude each other. Renewed by a heartbeat while the deploy runs.
//! A lock left by a `kill -9`ed deploy from this same machine (its pid is
//! gone) is recognised at once instead of waiting out the 30-minute expiry.

use std::time::Duration;

use slipway_core::admin::{
    AdminErrorKind, AdminRequest, AdminResult, LockAcquireArgs, LockRefArgs,
};
use slipway_core::ledger::Lock;

use super::context::{StepError, Target};
use crate::owner::hostname;
use crate::providers::docker::AgentError;

pub struct Held {
    pub lock: Lock,
    pub warning: Option<String>,
    /// The stale lock this acquire replaced, if any.
    pub took_over: Option<Lock>,
}

/// Whether a lock was left by a process of this machine that no longer runs.
pub fn is_orphaned(lock: &Lock) -> bool {
    crate::owner::is_gone(&lock.hostname, lock.pid)
}

pub fn describe(lock: &Lock) -> String {
    let fmt = &time::format_description::well_known::Rfc3339;
    format!(
        "{} (pid {} on {}) since {}, deployment {}, expires {}",
        lock.locked_by,
        lock.pid,
        lock.hostname,
        lock.locked_at.format(fmt).unwrap_or_default(),
        lock.deployment_id,
        lock.lock_expires_at.format(fmt).unwrap_or_default()
    )
}

pub async fn acquire(t: &Target, deployment_id: &str) -> Result<Held, StepError> {
    let request = || {
        AdminRequest::LockAcquire(LockAcquireArgs {
            app: t.names.route(),
            locked_by: crate::identity::deployer(&t.config.root),
            hostname: hostname(),
            pid: std::process::id(),
            deployment_id: deployment_id.to_string(),
        })
    };
    match t.agent_call(request()).await {
        Ok(AdminResult::Lock(report)) => held(*report),
        Err(AgentError::Refused(e)) if e.kind == AdminErrorKind::LockHeld => {
            let holder = e.holder.as_deref().cloned();
            match holder {
                Some(lock) if is_orphaned(&lock) => {
                    release_force(t, &lock.lock_id).await?;
                    let mut h = match t.agent_call(request()).await {
                        Ok(AdminResult::Lock(report)) => held(*report)?,
                        Ok(other) => return Err(StepError::new(format!("unexpected agent answer: {other:?}"))),
                        Err(e) => return Err(e.into()),
                    };
                    h.warning = Some(format!(
                        "an earlier deploy was interrupted ({}); its lock was taken over and its leftovers cleaned up",
                        describe(&lock)
                    ));
                    Ok(h)
                }
                Some(lock) => Err(StepError::new(format!("another deploy holds the lock: {}", describe(&lock))).hint(
                    "wait for it to finish (`slipway status <env>` shows progress); if it is dead, `slipway lock release <env> --force`",
                )),
                None => Err(StepError::new(e.message.clone())),
            }
        }
        Ok(other) => Err(StepError::new(format!(
            "unexpected agent answer: {other:?}"
        ))),
        Err(e) => Err(e.into()),
    }
}

fn held(report: slipway_core::admin::LockReport) -> Result<Held, StepError> {
    let lock = report
        .lock
        .ok_or_else(|| StepError::new("the agent granted no lock"))?;
    Ok(Held {
        lock,
        warning: report.warning,
        took_over: report.took_over,
    })
}

pub async fn release(t: &Target, lock_id: &str) -> Result<(), StepError> {
    release_lock(t, lock_id, false).await
}

/// Releases a lock this process does not hold (an orphaned one, or the
/// operator's `--force`).
pub async fn release_force(t: &Target, lock_id: &str) -> Result<(), StepError> {
    release_lock(t, lock_id, true).await
}

async fn release_lock(t: &Target, lock_id: &str, force: bool) -> Result<(), StepError> {
    let request = AdminRequest::LockRelease(LockRefArgs {
        app: t.names.route(),
        lock_id: lock_id.to_string(),
        force,
    });
    match t.agent_call(request).await {
        // Already released (or expired and taken over): nothing left to do.
        Ok(_) => Ok(()),
        Err(AgentError::Refused(e)) if e.kind == AdminErrorKind::LockNotHeld => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Renews the lock every `every` until the returned guard is dropped.
pub fn heartbeat(t: &Target, lock_id: &str, every: Duration) -> tokio::task::JoinHandle<()> {
    let host = t
        .config
        .settings
        .providers
        .docker
        .as_ref()
        .and_then(|d| d.host.clone());
    let container = t.names.agent();
    let app = t.names.route();
    let lock_id = lock_id.to_string();
    tokio::spawn(async move {
        let Ok(engine) = crate::providers::docker::Engine::connect(host.as_deref()).await else {
            return;
        };
        let client = crate::providers::docker::AgentClient::new(&engine, container);
        loop {
            tokio::time::sleep(every).await;
            let request = AdminRequest::LockRenew(LockRefArgs {
                app: app.clone(),
                lock_id: lock_id.clone(),
                force: false,
            });
            if let Err(e) = client.call(&request).await {
                tracing::warn!("renewing the deploy lock failed: {e}");
            }
        }
    })
}
