//! One upstream activation: its address, the release it serves, its state
//! (`Active` → `Draining` → `Drained`) and its in-flight request count.
//!
//! The in-flight count and the state form a two-flag handshake so that no
//! request can start on a target once its drain began: a request first
//! increments the count, then reads the state; a drain first writes the
//! state, then reads the count (both `SeqCst`). Whichever comes second sees
//! the other, so either the drain waits for the request, or the request
//! backs off and re-reads the route table (which already names the new
//! target, because the table is swapped before the drain begins).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use hyper::header::HeaderValue;
use hyper::http::uri::Authority;
use slipway_core::ledger::TargetRecord;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use slipway_core::analysis::histogram::CounterSnapshot;

use crate::metrics::StatusCounters;

const ACTIVE: u8 = 0;
const DRAINING: u8 = 1;
const DRAINED: u8 = 2;

/// Where a target is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Active,
    Draining,
    Drained,
}

/// Invalid `host:port` given as a target.
#[derive(Debug, thiserror::Error)]
#[error("target `{0}` is not a `host:port` address")]
pub struct BadTarget(pub String);

pub struct Target {
    pub addr: String,
    pub authority: Authority,
    pub release: Arc<str>,
    pub slot: Option<Arc<str>>,
    /// The release response header's value, built once.
    pub release_header: HeaderValue,
    pub counters: Arc<StatusCounters>,
    /// Its counters when it was created (before any request): what it
    /// served since is the difference. A baseline's start when the sampler
    /// has not sampled it yet.
    pub created: CounterSnapshot,
    in_flight: AtomicU64,
    state: AtomicU8,
    idle: Notify,
    /// Cancelled at the drain deadline: every request still running on this
    /// target (bodies, WebSocket tunnels) is cut.
    cut: CancellationToken,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("release", &self.release)
            .field("state", &self.state())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Target {
    pub fn new(record: &TargetRecord, counters: Arc<StatusCounters>) -> Result<Self, BadTarget> {
        let authority: Authority = record
            .target
            .parse()
            .map_err(|_| BadTarget(record.target.clone()))?;
        if authority.port_u16().is_none() {
            return Err(BadTarget(record.target.clone()));
        }
        let release_header = HeaderValue::from_str(&record.release)
            .map_err(|_| BadTarget(format!("{} (release `{}`)", record.target, record.release)))?;
        Ok(Self {
            addr: record.target.clone(),
            authority,
            release: Arc::from(record.release.as_str()),
            slot: record.slot.as_deref().map(Arc::from),
            release_header,
            created: counters.snapshot(crate::analysis::sampler::now_ms()),
            counters,
            in_flight: AtomicU64::new(0),
            state: AtomicU8::new(ACTIVE),
            idle: Notify::new(),
            cut: CancellationToken::new(),
        })
    }

    pub fn record(&self) -> TargetRecord {
        TargetRecord {
            target: self.addr.clone(),
            release: self.release.to_string(),
            slot: self.slot.as_deref().map(str::to_owned),
        }
    }

    pub fn state(&self) -> TargetState {
        match self.state.load(Ordering::SeqCst) {
            ACTIVE => TargetState::Active,
            DRAINING => TargetState::Draining,
            _ => TargetState::Drained,
        }
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Count a request in, unless the target stopped taking new ones.
    pub fn try_begin(self: &Arc<Self>) -> Option<InFlight> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.state.load(Ordering::SeqCst) != ACTIVE {
            self.end();
            return None;
        }
        Some(InFlight(Arc::clone(self)))
    }

    fn end(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if before == 1 && self.state.load(Ordering::SeqCst) != ACTIVE {
            self.idle.notify_waiters();
        }
    }

    /// Stop taking new requests. Call only after the route table no longer
    /// names this target as active.
    pub fn begin_drain(&self) {
        let _ = self
            .state
            .compare_exchange(ACTIVE, DRAINING, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Resolves once no request is in flight (after `begin_drain`).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// End of the drain: cut whatever still runs and mark the target done.
    pub fn finish_drain(&self) {
        self.state.store(DRAINED, Ordering::SeqCst);
        self.cut.cancel();
    }

    pub fn cut_token(&self) -> &CancellationToken {
        &self.cut
    }
}

/// Held for the whole life of one proxied request (until its response body
/// ends or its upgraded tunnel closes); dropping it counts the request out.
pub struct InFlight(Arc<Target>);

impl InFlight {
    pub fn target(&self) -> &Arc<Target> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Arc<Target> {
        let rec = TargetRecord {
            target: "127.0.0.1:1".to_owned(),
            release: "r1".to_owned(),
            slot: None,
        };
        Arc::new(Target::new(&rec, Arc::default()).expect("valid"))
    }

    #[test]
    fn draining_target_refuses_new_requests_and_counts_old_ones() {
        let t = target();
        let guard = t.try_begin().expect("active");
        t.begin_drain();
        assert!(t.try_begin().is_none());
        assert_eq!(t.in_flight(), 1);
        drop(guard);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn bad_addresses_are_refused() {
        let rec = TargetRecord {
            target: "no port".to_owned(),
            release: "r".to_owned(),
            slot: None,
        };
        assert!(Target::new(&rec, Arc::default()).is_err());
    }

    #[tokio::test]
    async fn wait_idle_returns_when_last_request_ends() {
        let t = target();
        let guard = t.try_begin().expect("active");
        t.begin_drain();
        let waiter = tokio::spawn({
            let t = Arc::clone(&t);
            async move { t.wait_idle().await }
        });
        drop(guard);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("idle in time")
            .expect("joined");
    }
}
