//! The per-app deploy lock: acquire, renew (the deploy's heartbeat), release,
//! and takeover of a stale lock. Pure functions over `Option<Lock>` with the
//! time passed in, so expiry is tested without waiting 30 minutes.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A held deploy lock, in the deployment-state file's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub lock_id: String,
    pub locked_by: String,
    pub hostname: String,
    pub pid: u32,
    pub deployment_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub locked_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub lock_expires_at: OffsetDateTime,
}

impl Lock {
    /// A lock past its expiry may be taken over by the next acquirer.
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        now >= self.lock_expires_at
    }

    /// `who@host (pid N), deployment D, since T, expires E`, for messages.
    pub fn describe(&self) -> String {
        let fmt = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.to_string())
        };
        format!(
            "{} on {} (pid {}), deployment {}, locked at {}, expires at {}",
            self.locked_by,
            self.hostname,
            self.pid,
            self.deployment_id,
            fmt(self.locked_at),
            fmt(self.lock_expires_at)
        )
    }
}

/// Who asks for the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    pub locked_by: String,
    pub hostname: String,
    pub pid: u32,
    pub deployment_id: String,
}

/// A successful acquire: the lock now held, and the stale one replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    pub lock: Lock,
    pub took_over: Option<Lock>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    #[error("the deploy lock is held by {}", .0.describe())]
    Held(Box<Lock>),
    #[error("lock `{lock_id}` is not the lock held ({})", match current {
        Some(lock) => format!("held: {}", lock.describe()),
        None => "no lock is held".to_owned(),
    })]
    NotHeld {
        lock_id: String,
        current: Option<Box<Lock>>,
    },
}

fn expiry_after(now: OffsetDateTime, expiry: Duration) -> OffsetDateTime {
    now + time::Duration::try_from(expiry).unwrap_or(time::Duration::MAX)
}

/// Take the lock. A live lock of another deployment refuses (naming its
/// holder); a stale one is replaced and returned in `took_over` so the
/// caller can warn; the same deployment asking again just renews (a CLI that
/// retries after a timeout must not lock itself out).
pub fn acquire(
    current: &mut Option<Lock>,
    request: LockRequest,
    new_lock_id: String,
    now: OffsetDateTime,
    expiry: Duration,
) -> Result<Acquired, LockError> {
    let mut took_over = None;
    if let Some(held) = current.as_mut() {
        if held.deployment_id == request.deployment_id && !held.is_stale(now) {
            held.lock_expires_at = expiry_after(now, expiry);
            return Ok(Acquired {
                lock: held.clone(),
                took_over: None,
            });
        }
        if !held.is_stale(now) {
            return Err(LockError::Held(Box::new(held.clone())));
        }
        took_over = current.take();
    }
    let lock = Lock {
        lock_id: new_lock_id,
        locked_by: request.locked_by,
        hostname: request.hostname,
        pid: request.pid,
        deployment_id: request.deployment_id,
        locked_at: now,
        lock_expires_at: expiry_after(now, expiry),
    };
    *current = Some(lock.clone());
    Ok(Acquired { lock, took_over })
}

/// Push the expiry of the caller's lock forward (the deploy's heartbeat).
/// A lock that went stale but was not taken over is still the caller's.
pub fn renew(
    current: &mut Option<Lock>,
    lock_id: &str,
    now: OffsetDateTime,
    expiry: Duration,
) -> Result<Lock, LockError> {
    match current.as_mut() {
        Some(held) if held.lock_id == lock_id => {
            held.lock_expires_at = expiry_after(now, expiry);
            Ok(held.clone())
        }
        other => Err(LockError::NotHeld {
            lock_id: lock_id.to_owned(),
            current: other.map(|l| Box::new(l.clone())),
        }),
    }
}

/// Release the caller's lock, or any lock with `force`. Releasing when
/// nothing is held succeeds (idempotent), so a CLI retry cannot fail.
pub fn release(
    current: &mut Option<Lock>,
    lock_id: &str,
    force: bool,
) -> Result<Option<Lock>, LockError> {
    match current {
        None => Ok(None),
        Some(held) if force || held.lock_id == lock_id => Ok(current.take()),
        Some(held) => Err(LockError::NotHeld {
            lock_id: lock_id.to_owned(),
            current: Some(Box::new(held.clone())),
        }),
    }
}

/// Serde adapter for the file's `lock` object: `{"locked": false}` when free,
/// `{"locked": true, <Lock fields>}` when held.
pub mod wire {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Lock;

    #[derive(Serialize, Deserialize)]
    struct Wire {
        locked: bool,
        #[serde(flatten)]
        lock: Option<Lock>,
    }

    pub fn serialize<S: Serializer>(lock: &Option<Lock>, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            locked: lock.is_some(),
            lock: lock.clone(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Lock>, D::Error> {
        let wire = Wire::deserialize(d)?;
        Ok(if wire.locked { wire.lock } else { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const EXPIRY: Duration = Duration::from_secs(30 * 60);

    fn req(who: &str, dep: &str) -> LockRequest {
        LockRequest {
            locked_by: who.to_owned(),
            hostname: "laptop".to_owned(),
            pid: 42,
            deployment_id: dep.to_owned(),
        }
    }

    #[test]
    fn second_acquire_is_refused_naming_the_holder() {
        let t0 = datetime!(2026-01-28 10:30 UTC);
        let mut cur = None;
        acquire(&mut cur, req("alice", "dep_a"), "l1".into(), t0, EXPIRY).expect("first");
        let err =
            acquire(&mut cur, req("bob", "dep_b"), "l2".into(), t0, EXPIRY).expect_err("held");
        assert!(
            err.to_string().contains("alice on laptop (pid 42)"),
            "{err}"
        );
        assert_eq!(cur.as_ref().map(|l| l.lock_id.as_str()), Some("l1"));
    }

    #[test]
    fn stale_lock_is_taken_over_and_renew_pushes_expiry() {
        let t0 = datetime!(2026-01-28 10:30 UTC);
        let mut cur = None;
        acquire(&mut cur, req("alice", "dep_a"), "l1".into(), t0, EXPIRY).expect("first");
        let renewed =
            renew(&mut cur, "l1", t0 + time::Duration::minutes(20), EXPIRY).expect("renew");
        assert_eq!(renewed.lock_expires_at, datetime!(2026-01-28 11:20 UTC));
        // Still live at 11:19: refused.
        let t1 = datetime!(2026-01-28 11:19 UTC);
        assert!(acquire(&mut cur, req("bob", "dep_b"), "l2".into(), t1, EXPIRY).is_err());
        // Stale at 11:20: taken over, old holder returned for the warning.
        let t2 = datetime!(2026-01-28 11:20 UTC);
        let got =
            acquire(&mut cur, req("bob", "dep_b"), "l2".into(), t2, EXPIRY).expect("takeover");
        assert_eq!(got.took_over.map(|l| l.locked_by), Some("alice".to_owned()));
        assert!(
            renew(&mut cur, "l1", t2, EXPIRY).is_err(),
            "old holder lost it"
        );
        assert!(release(&mut cur, "l1", false).is_err());
        assert!(release(&mut cur, "l2", false).expect("release").is_some());
        assert!(
            release(&mut cur, "l2", false)
                .expect("idempotent")
                .is_none()
        );
    }

    #[test]
    fn wire_shape_matches_deployment_state() {
        #[derive(Serialize, Deserialize)]
        struct Doc {
            #[serde(with = "wire")]
            lock: Option<Lock>,
        }
        let free = serde_json::to_string(&Doc { lock: None }).expect("ser");
        assert_eq!(free, r#"{"lock":{"locked":false}}"#);
        let t0 = datetime!(2026-01-28 10:30 UTC);
        let mut cur = None;
        acquire(&mut cur, req("alice", "dep_a"), "l1".into(), t0, EXPIRY).expect("first");
        let held = serde_json::to_value(&Doc { lock: cur.clone() }).expect("ser");
        assert_eq!(held["lock"]["locked"], true);
        assert_eq!(held["lock"]["lock_expires_at"], "2026-01-28T11:00:00Z");
        let back: Doc = serde_json::from_value(held).expect("de");
        assert_eq!(back.lock, cur);
    }
}
