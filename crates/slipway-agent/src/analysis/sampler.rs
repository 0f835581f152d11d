//! The baseline's source: once a second, a cumulative snapshot of every
//! app's active target's counters, kept for up to an hour per app. At a
//! switch, the previous target's figures over `[switch − window, switch]`
//! are the difference between its snapshot at the switch and the oldest
//! one in that span (or as much of it as exists).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use slipway_core::analysis::WindowStats;
use slipway_core::analysis::histogram::CounterSnapshot;

use crate::metrics::StatusCounters;
use crate::router::Router;

/// How often the active targets are sampled.
pub const EVERY: Duration = Duration::from_secs(1);
/// Samples kept per app: an hour at one a second (about 700 bytes each,
/// so at most ~2.5 MB per app).
pub const KEEP: usize = 3600;

/// Milliseconds of the agent's monotonic clock (since its first use): the
/// time base of every snapshot, immune to wall-clock steps.
pub fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX)
}

struct Sample {
    /// Whose counters: the same app/release/slot keeps the same `Arc`.
    counters: Arc<StatusCounters>,
    snapshot: CounterSnapshot,
}

#[derive(Default)]
pub struct Samples {
    by_app: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl Samples {
    fn push(&self, app: &str, counters: Arc<StatusCounters>, snapshot: CounterSnapshot) {
        let mut map = self.by_app.lock().unwrap_or_else(|e| e.into_inner());
        let ring = map.entry(app.to_owned()).or_default();
        if ring.len() == KEEP {
            ring.pop_front();
        }
        ring.push_back(Sample { counters, snapshot });
    }

    /// `counters`' figures from the oldest sample of the span it has been
    /// active without a break, at most `window_ms` before `now`, up to
    /// `now` (its snapshot at the switch). None without such a sample.
    pub fn baseline(
        &self,
        app: &str,
        counters: &Arc<StatusCounters>,
        now: &CounterSnapshot,
        window_ms: u64,
    ) -> Option<WindowStats> {
        let map = self.by_app.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = map
            .get(app)?
            .iter()
            .rev()
            .take_while(|s| {
                Arc::ptr_eq(&s.counters, counters)
                    && s.snapshot.at_ms.saturating_add(window_ms) >= now.at_ms
            })
            .last()?;
        Some(WindowStats::between(&oldest.snapshot, now))
    }

    /// Forget apps no longer routed.
    fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut map = self.by_app.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|app, _| keep(app));
    }
}

/// Sample every active target once a second, for as long as the agent runs.
pub async fn run(router: Arc<Router>, samples: Arc<Samples>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let table = router.table();
        for route in table.routes() {
            if let Some(target) = &route.active {
                let snapshot = target.counters.snapshot(now_ms());
                samples.push(&route.name, Arc::clone(&target.counters), snapshot);
            }
        }
        samples.retain(|app| table.routes().iter().any(|r| &*r.name == app));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(counters: &StatusCounters, at_ms: u64) -> CounterSnapshot {
        counters.snapshot(at_ms)
    }

    #[test]
    fn baseline_spans_the_window_of_the_same_target_only() {
        let samples = Samples::default();
        let (a, b) = (
            Arc::new(StatusCounters::default()),
            Arc::new(StatusCounters::default()),
        );
        // a active 0..=10 s, 10 requests a second; b active before it.
        samples.push("web", Arc::clone(&b), snap(&b, 0));
        for s in 1..=10u64 {
            for _ in 0..10 {
                a.count(200);
            }
            samples.push("web", Arc::clone(&a), snap(&a, s * 1000));
        }
        for _ in 0..10 {
            a.count(500);
        }
        let at_switch = snap(&a, 11_000);
        let w = samples
            .baseline("web", &a, &at_switch, 5_000)
            .expect("baseline");
        assert_eq!((w.span_ms, w.requests, w.errors_5xx), (5_000, 50, 10));
        // Longer than it was active: as much as exists.
        let w = samples
            .baseline("web", &a, &at_switch, 60_000)
            .expect("baseline");
        assert_eq!((w.span_ms, w.requests), (10_000, 100));
        assert!(
            samples
                .baseline("web", &b, &snap(&b, 11_000), 60_000)
                .is_none()
        );
        assert!(samples.baseline("api", &a, &at_switch, 60_000).is_none());
    }
}
