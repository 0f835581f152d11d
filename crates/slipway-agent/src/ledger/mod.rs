//! The host's ledger as the admin API sees it: lock and history verbs over
//! the atomic [`store::Store`]. Time comes from a [`Clock`] and the lock
//! expiry from the agent's config, so tests can make a lock go stale quickly.

pub mod store;

use std::sync::Arc;
use std::time::Duration;

use slipway_core::admin::{
    AdminError, AdminErrorKind, AdminResult, HistoryListArgs, HistoryRecordArgs, LockAcquireArgs,
    LockRefArgs, LockReport,
};
use slipway_core::analysis;
use slipway_core::ledger::{self, LockError, LockRequest, RouteRecord, history, lock};
use time::OffsetDateTime;

pub use store::{Store, StoreError};

/// Source of "now" for lock expiry.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

pub struct Ledger {
    pub store: Store,
    pub lock_expiry: Duration,
    pub clock: Clock,
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        let kind = if e.is_too_new() {
            AdminErrorKind::LedgerTooNew
        } else {
            AdminErrorKind::Internal
        };
        err(kind, e.to_string())
    }
}

fn err(kind: AdminErrorKind, message: String) -> AdminError {
    AdminError {
        kind,
        message,
        health: None,
        holder: None,
    }
}

fn lock_error(app: &str, e: LockError) -> AdminError {
    let message = format!("app `{app}`: {e}");
    match e {
        LockError::Held(holder) => AdminError {
            kind: AdminErrorKind::LockHeld,
            message: format!(
                "{message}. Wait for that deploy to finish; once the lock is past its \
                 lock_expires_at, the next acquire takes it over"
            ),
            health: None,
            holder: Some(holder),
        },
        LockError::NotHeld { current, .. } => AdminError {
            kind: AdminErrorKind::LockNotHeld,
            message: format!(
                "{message}. It expired and was taken over, or was released; acquire it again"
            ),
            health: None,
            holder: current,
        },
    }
}

impl Ledger {
    pub fn lock_acquire(&self, a: LockAcquireArgs) -> Result<AdminResult, AdminError> {
        let now = (self.clock)();
        let app = a.app.clone();
        let acquired = self.store.update(|f| {
            let entry = f.app_mut(&a.app);
            let request = LockRequest {
                locked_by: a.locked_by,
                hostname: a.hostname,
                pid: a.pid,
                deployment_id: a.deployment_id,
            };
            let id = format!("lock_{}", ulid::Ulid::new());
            lock::acquire(&mut entry.lock, request, id, now, self.lock_expiry)
                .map_err(|e| lock_error(&a.app, e))
        })?;
        let warning = acquired.took_over.as_ref().map(|old| {
            let msg = format!("took over a stale deploy lock held by {}", old.describe());
            tracing::warn!(app = %app, "{msg}");
            msg
        });
        Ok(AdminResult::Lock(Box::new(LockReport {
            app,
            lock: Some(acquired.lock),
            took_over: acquired.took_over,
            warning,
        })))
    }

    pub fn lock_renew(&self, a: LockRefArgs) -> Result<AdminResult, AdminError> {
        let now = (self.clock)();
        let held = self.store.update(|f| {
            lock::renew(
                &mut f.app_mut(&a.app).lock,
                &a.lock_id,
                now,
                self.lock_expiry,
            )
            .map_err(|e| lock_error(&a.app, e))
        })?;
        Ok(lock_report(a.app, Some(held)))
    }

    pub fn lock_release(&self, a: LockRefArgs) -> Result<AdminResult, AdminError> {
        self.store.update(|f| {
            lock::release(&mut f.app_mut(&a.app).lock, &a.lock_id, a.force)
                .map_err(|e| lock_error(&a.app, e))
        })?;
        Ok(lock_report(a.app, None))
    }

    /// The lock as stored; a stale lock is still shown (with its past
    /// `lock_expires_at`) so the operator sees who left it.
    pub fn lock_status(&self, app: String) -> Result<AdminResult, AdminError> {
        let held = self
            .store
            .read(|f| f.apps.get(&app).and_then(|a| a.lock.clone()));
        let now = (self.clock)();
        let warning = held.as_ref().filter(|l| l.is_stale(now)).map(|l| {
            format!(
                "the lock is stale (the next acquire takes it over): {}",
                l.describe()
            )
        });
        Ok(AdminResult::Lock(Box::new(LockReport {
            app,
            lock: held,
            took_over: None,
            warning,
        })))
    }

    pub fn history_record(&self, a: HistoryRecordArgs) -> Result<AdminResult, AdminError> {
        let deployment_id = a.deployment.id.clone();
        self.store.update(|f| {
            let app = f.app_mut(&a.app);
            let mut deployment = a.deployment;
            // The agent's analysis verdict wins over the CLI's later record.
            analysis::bookkeeping::reconcile_record(app, &mut deployment);
            history::record(app, deployment);
            Ok::<_, AdminError>(())
        })?;
        Ok(AdminResult::Recorded { deployment_id })
    }

    pub fn history_list(&self, a: HistoryListArgs) -> Result<AdminResult, AdminError> {
        let limit = a.limit.unwrap_or(ledger::HISTORY_KEEP);
        let deployments = self.store.read(|f| {
            f.apps
                .get(&a.app)
                .map(|l| l.deployment_history.iter().take(limit).cloned().collect())
                .unwrap_or_default()
        });
        Ok(AdminResult::History { deployments })
    }

    pub fn state(&self, app: String) -> Result<AdminResult, AdminError> {
        let state = self
            .store
            .read(|f| f.apps.get(&app).cloned())
            .unwrap_or_else(|| ledger::AppLedger::new(&app));
        Ok(AdminResult::State {
            state: Box::new(state),
        })
    }

    /// Save an app's route; `rolled_back` also swaps current/previous
    /// deployment.
    pub fn save_route(
        &self,
        app: &str,
        route: RouteRecord,
        rolled_back: bool,
    ) -> Result<(), AdminError> {
        self.store.update(|f| {
            let entry = f.app_mut(app);
            entry.route = Some(route);
            if rolled_back {
                history::rolled_back(entry);
            }
            Ok::<_, AdminError>(())
        })
    }

    /// Save an app's route after the analysis switched back from
    /// deployment `deployment_id` (see
    /// `slipway_core::analysis::bookkeeping::switched_back`), in one write.
    pub fn save_route_switched_back(
        &self,
        app: &str,
        route: RouteRecord,
        deployment_id: &str,
        reason: &str,
    ) -> Result<(), AdminError> {
        self.store.update(|f| {
            let entry = f.app_mut(app);
            entry.route = Some(route);
            analysis::bookkeeping::switched_back(entry, deployment_id, reason);
            Ok::<_, AdminError>(())
        })
    }

    /// Drops everything kept for `app` (route, lock, history).
    pub fn forget_app(&self, app: &str) -> Result<(), AdminError> {
        self.store.update(|f| {
            f.apps.remove(app);
            Ok::<_, AdminError>(())
        })
    }

    pub fn routes(&self) -> Vec<(String, RouteRecord)> {
        self.store.read(|f| {
            f.apps
                .iter()
                .filter_map(|(k, v)| v.route.clone().map(|r| (k.clone(), r)))
                .collect()
        })
    }
}

fn lock_report(app: String, lock: Option<ledger::Lock>) -> AdminResult {
    AdminResult::Lock(Box::new(LockReport {
        app,
        lock,
        took_over: None,
        warning: None,
    }))
}
