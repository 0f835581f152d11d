//! The gate every state-changing admin verb passes: open while the agent
//! owns the ledger, shut while an upgrade hands it over, so that exactly one
//! agent ever writes the ledger and the routes it restores from.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_core::admin::{AdminError, AdminErrorKind, AgentRole};
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

pub struct Gate {
    lock: Arc<RwLock<()>>,
    shut: Mutex<Option<OwnedRwLockWriteGuard<()>>>,
    role: Mutex<(AgentRole, Option<u32>)>,
}

/// Held for the whole of one state-changing verb.
pub type Pass = OwnedRwLockReadGuard<()>;

impl Gate {
    /// Open: this agent owns the ledger.
    pub fn open() -> Self {
        Self {
            lock: Arc::new(RwLock::new(())),
            shut: Mutex::new(None),
            role: Mutex::new((AgentRole::Serving, None)),
        }
    }

    /// Shut from the start: a successor beside its predecessor.
    pub fn shut_for_take_over(predecessor_pid: u32) -> Self {
        let lock = Arc::new(RwLock::new(()));
        let guard = Arc::clone(&lock)
            .try_write_owned()
            .expect("a new lock is free");
        Self {
            lock,
            shut: Mutex::new(Some(guard)),
            role: Mutex::new((AgentRole::TakingOver, Some(predecessor_pid))),
        }
    }

    /// Let one state change through, or refuse it at once while shut (or
    /// while shutting: a waiting freeze blocks new passes).
    pub fn pass(&self) -> Result<Pass, AdminError> {
        Arc::clone(&self.lock).try_read_owned().map_err(|_| {
            let (role, peer) = self.role();
            let peer = peer
                .map(|p| format!(" (the other agent is pid {p})"))
                .unwrap_or_default();
            AdminError {
                kind: AdminErrorKind::HandingOver,
                message: format!(
                    "the agent is {role} during an agent upgrade{peer}, so routes and the \
                     ledger cannot change for a few seconds; retry"
                ),
                health: None,
                holder: None,
            }
        })
    }

    /// Shut the gate for a handover to `successor_pid`: waits up to `within`
    /// for state changes in progress (a switch's health check) to finish.
    pub async fn shut_for_handover(&self, successor_pid: u32, within: Duration) -> bool {
        match tokio::time::timeout(within, Arc::clone(&self.lock).write_owned()).await {
            Ok(guard) => {
                *self.shut.lock().expect("gate poisoned") = Some(guard);
                *self.role.lock().expect("gate poisoned") =
                    (AgentRole::HandingOver, Some(successor_pid));
                true
            }
            Err(_) => false,
        }
    }

    /// Open again: this agent is the only one left and owns everything.
    pub fn reopen(&self) {
        self.shut.lock().expect("gate poisoned").take();
        *self.role.lock().expect("gate poisoned") = (AgentRole::Serving, None);
    }

    pub fn role(&self) -> (AgentRole, Option<u32>) {
        *self.role.lock().expect("gate poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shut_gate_refuses_then_reopens() {
        let gate = Gate::open();
        drop(gate.pass().expect("open"));
        assert!(gate.shut_for_handover(42, Duration::from_secs(1)).await);
        let err = gate.pass().expect_err("shut");
        assert_eq!(err.kind, AdminErrorKind::HandingOver);
        assert!(err.message.contains("pid 42"), "{}", err.message);
        assert_eq!(gate.role(), (AgentRole::HandingOver, Some(42)));
        gate.reopen();
        assert!(gate.pass().is_ok());
        assert_eq!(gate.role(), (AgentRole::Serving, None));
    }

    #[tokio::test]
    async fn shutting_waits_for_a_change_in_progress() {
        let gate = Gate::open();
        let pass = gate.pass().expect("open");
        assert!(!gate.shut_for_handover(1, Duration::from_millis(50)).await);
        drop(pass);
        assert!(gate.shut_for_handover(1, Duration::from_millis(50)).await);
    }

    #[tokio::test]
    async fn successor_starts_shut() {
        let gate = Gate::shut_for_take_over(7);
        assert!(gate.pass().is_err());
        assert_eq!(gate.role(), (AgentRole::TakingOver, Some(7)));
        gate.reopen();
        assert!(gate.pass().is_ok());
    }
}
