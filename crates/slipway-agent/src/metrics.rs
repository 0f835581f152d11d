//! Prometheus metrics, kept in atomics (no per-request locking or
//! allocation) and rendered as text on the internal listener's `/metrics`.
//! Counters are keyed by app/release/slot in a registry so that they keep
//! counting across target activations (a rollback to a release reuses its
//! counters), as Prometheus expects of a counter.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_core::analysis::histogram::{self, CounterSnapshot};

use crate::router::RouteTable;

/// Upper bounds (seconds) of the request latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Per-request counters are split in this many shards, each on its own
/// cache line; a thread always adds to the same one. The proxy threads (one
/// per core) then never write to a cache line another core writes to, which
/// costs more than the addition. Reading sums the shards.
const SHARDS: usize = 8;

#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded<T>(T);

/// This thread's shard.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// One thread's share of a target's counters.
#[derive(Debug)]
struct CounterShard {
    classes: [AtomicU64; 5],
    /// The analysis' fine-grained latency histogram (see
    /// `slipway_core::analysis::histogram`), non-cumulative.
    latency: [AtomicU64; histogram::BUCKETS],
}

impl Default for CounterShard {
    fn default() -> Self {
        Self {
            classes: Default::default(),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Responses of one app/release/slot by status class (1xx..5xx), and their
/// latency: what the post-deploy analysis compares releases by.
#[derive(Debug, Default)]
pub struct StatusCounters {
    shards: [Padded<CounterShard>; SHARDS],
}

impl StatusCounters {
    pub fn count(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.shards[shard()].0.classes[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Count one response's latency (at the end of its body).
    pub fn observe_latency(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.shards[shard()].0.latency[histogram::bucket_of(micros)]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Totals by class (1xx..5xx).
    fn by_class(&self) -> [u64; 5] {
        let mut sum = [0; 5];
        for s in &self.shards {
            for (total, n) in sum.iter_mut().zip(&s.0.classes) {
                *total += n.load(Ordering::Relaxed);
            }
        }
        sum
    }

    /// Everything counted so far, summed over the shards, stamped `at_ms`.
    pub fn snapshot(&self, at_ms: u64) -> CounterSnapshot {
        let mut snap = CounterSnapshot::zero(at_ms);
        snap.by_class = self.by_class();
        for s in &self.shards {
            for (total, n) in snap.latency.iter_mut().zip(&s.0.latency) {
                *total += n.load(Ordering::Relaxed);
            }
        }
        snap
    }
}

/// One shard of an app's latency histogram.
#[derive(Debug, Default)]
struct Latency {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Per-app latency histogram and switch statistics.
#[derive(Debug)]
pub struct AppMetrics {
    pub app: Arc<str>,
    latency: [Padded<Latency>; SHARDS],
    switches: AtomicU64,
    switch_failures: AtomicU64,
    switch_millis_sum: AtomicU64,
    /// Responses the agent made itself (no target involved): 404, 503...
    pub local: StatusCounters,
    /// Maintenance answers (counted here only, not as 5xx in `local`).
    maintenance: AtomicU64,
}

impl AppMetrics {
    fn new(app: &str) -> Self {
        Self {
            app: Arc::from(app),
            latency: Default::default(),
            switches: AtomicU64::new(0),
            switch_failures: AtomicU64::new(0),
            switch_millis_sum: AtomicU64::new(0),
            local: StatusCounters::default(),
            maintenance: AtomicU64::new(0),
        }
    }

    /// One request answered with the maintenance page.
    pub fn maintenance_answered(&self) {
        self.maintenance.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe(&self, elapsed: Duration) {
        let shard = &self.latency[shard()].0;
        let secs = elapsed.as_secs_f64();
        // Buckets are stored non-cumulatively; rendering sums them.
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            shard.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        shard.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        shard.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// (non-cumulative buckets, count, sum in µs) over all shards.
    fn latency(&self) -> ([u64; LATENCY_BUCKETS.len()], u64, u64) {
        let mut buckets = [0; LATENCY_BUCKETS.len()];
        let (mut count, mut sum) = (0, 0);
        for s in &self.latency {
            for (total, n) in buckets.iter_mut().zip(&s.0.buckets) {
                *total += n.load(Ordering::Relaxed);
            }
            count += s.0.count.load(Ordering::Relaxed);
            sum += s.0.sum_micros.load(Ordering::Relaxed);
        }
        (buckets, count, sum)
    }

    pub fn switched(&self, took: Duration) {
        self.switches.fetch_add(1, Ordering::Relaxed);
        let millis = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.switch_millis_sum.fetch_add(millis, Ordering::Relaxed);
    }

    pub fn switch_failed(&self) {
        self.switch_failures.fetch_add(1, Ordering::Relaxed);
    }
}

type CounterKey = (String, String, String);

/// All metrics of the agent.
#[derive(Debug, Default)]
pub struct Metrics {
    apps: Mutex<HashMap<String, Arc<AppMetrics>>>,
    counters: Mutex<HashMap<CounterKey, Arc<StatusCounters>>>,
}

impl Metrics {
    pub fn app(&self, app: &str) -> Arc<AppMetrics> {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            apps.entry(app.to_owned())
                .or_insert_with(|| Arc::new(AppMetrics::new(app))),
        )
    }

    pub fn counters(&self, app: &str, release: &str, slot: Option<&str>) -> Arc<StatusCounters> {
        let key = (
            app.to_owned(),
            release.to_owned(),
            slot.unwrap_or("").to_owned(),
        );
        let mut map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(key).or_default())
    }

    /// The Prometheus text exposition of everything, plus the live route
    /// table's in-flight counts and active releases.
    pub fn render(&self, table: &RouteTable) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# TYPE slipway_requests_total counter\n");
        {
            let map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
            let mut keys: Vec<_> = map.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            for ((app, release, slot), c) in keys {
                for (i, n) in c.by_class().into_iter().enumerate() {
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "slipway_requests_total{{app=\"{}\",release=\"{}\",slot=\"{}\",status=\"{}xx\"}} {n}",
                            esc(app),
                            esc(release),
                            esc(slot),
                            i + 1
                        );
                    }
                }
            }
        }
        let apps: Vec<Arc<AppMetrics>> = {
            let map = self.apps.lock().unwrap_or_else(|e| e.into_inner());
            let mut v: Vec<_> = map.values().cloned().collect();
            v.sort_by(|a, b| a.app.cmp(&b.app));
            v
        };
        for m in &apps {
            for (i, n) in m.local.by_class().into_iter().enumerate() {
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "slipway_requests_total{{app=\"{}\",release=\"\",slot=\"\",status=\"{}xx\"}} {n}",
                        esc(&m.app),
                        i + 1
                    );
                }
            }
        }
        out.push_str("# TYPE slipway_request_duration_seconds histogram\n");
        for m in &apps {
            let app = esc(&m.app);
            let (buckets, count, sum_micros) = m.latency();
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS.iter().zip(buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "slipway_request_duration_seconds_bucket{{app=\"{app}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let sum = sum_micros as f64 / 1e6;
            let _ = writeln!(
                out,
                "slipway_request_duration_seconds_bucket{{app=\"{app}\",le=\"+Inf\"}} {count}\n\
                 slipway_request_duration_seconds_sum{{app=\"{app}\"}} {sum}\n\
                 slipway_request_duration_seconds_count{{app=\"{app}\"}} {count}"
            );
        }
        out.push_str("# TYPE slipway_switches_total counter\n");
        for m in &apps {
            let app = esc(&m.app);
            let _ = writeln!(
                out,
                "slipway_switches_total{{app=\"{app}\"}} {}\n\
                 slipway_switch_failures_total{{app=\"{app}\"}} {}\n\
                 slipway_switch_duration_seconds_sum{{app=\"{app}\"}} {}\n\
                 slipway_switch_duration_seconds_count{{app=\"{app}\"}} {}",
                m.switches.load(Ordering::Relaxed),
                m.switch_failures.load(Ordering::Relaxed),
                m.switch_millis_sum.load(Ordering::Relaxed) as f64 / 1e3,
                m.switches.load(Ordering::Relaxed),
            );
        }
        out.push_str("# TYPE slipway_maintenance_responses_total counter\n");
        for m in &apps {
            let n = m.maintenance.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "slipway_maintenance_responses_total{{app=\"{}\"}} {n}",
                    esc(&m.app)
                );
            }
        }
        out.push_str("# TYPE slipway_maintenance gauge\n");
        for route in table.routes() {
            let _ = writeln!(
                out,
                "slipway_maintenance{{app=\"{}\"}} {}",
                esc(&route.name),
                u8::from(route.maintenance.is_some())
            );
        }
        out.push_str("# TYPE slipway_in_flight gauge\n# TYPE slipway_active_release gauge\n");
        for route in table.routes() {
            let app = esc(&route.name);
            for (target, active) in route
                .active
                .iter()
                .map(|t| (t, true))
                .chain(route.draining.iter().map(|t| (t, false)))
            {
                let labels = format!(
                    "app=\"{app}\",release=\"{}\",slot=\"{}\",target=\"{}\"",
                    esc(&target.release),
                    esc(target.slot.as_deref().unwrap_or("")),
                    esc(&target.addr)
                );
                let _ = writeln!(out, "slipway_in_flight{{{labels}}} {}", target.in_flight());
                if active {
                    let _ = writeln!(out, "slipway_active_release{{{labels}}} 1");
                }
            }
        }
        out
    }
}

/// Escape a Prometheus label value.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_sum_every_shard_of_status_and_latency() {
        let counters = Arc::new(StatusCounters::default());
        let threads: Vec<_> = (0..SHARDS + 1)
            .map(|_| {
                let c = Arc::clone(&counters);
                std::thread::spawn(move || {
                    c.count(200);
                    c.count(503);
                    c.observe_latency(Duration::from_millis(20));
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let snap = counters.snapshot(7);
        let n = (SHARDS + 1) as u64;
        assert_eq!((snap.at_ms, snap.by_class), (7, [0, n, 0, 0, n]));
        assert_eq!(snap.latency[histogram::bucket_of(20_000)], n);
        assert_eq!(snap.latency.iter().sum::<u64>(), n);
    }

    #[test]
    fn histogram_is_cumulative_and_counters_keep_counting_per_release() {
        let m = Metrics::default();
        let app = m.app("web");
        app.observe(Duration::from_micros(500));
        app.observe(Duration::from_millis(30));
        m.counters("web", "r1", Some("blue")).count(200);
        m.counters("web", "r1", Some("blue")).count(502);
        let text = m.render(&RouteTable::default());
        assert!(
            text.contains(r#"slipway_request_duration_seconds_bucket{app="web",le="0.001"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"slipway_request_duration_seconds_bucket{app="web",le="0.05"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"slipway_requests_total{app="web",release="r1",slot="blue",status="2xx"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"status="5xx"} 1"#), "{text}");
    }

    #[test]
    fn shards_of_every_thread_are_summed() {
        let m = Arc::new(Metrics::default());
        let threads: Vec<_> = (0..SHARDS + 3)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    let app = m.app("web");
                    let counters = m.counters("web", "r1", None);
                    for _ in 0..100 {
                        app.observe(Duration::from_micros(1500));
                        counters.count(200);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let n = 100 * (SHARDS + 3);
        let text = m.render(&RouteTable::default());
        assert!(
            text.contains(&format!(
                r#"slipway_requests_total{{app="web",release="r1",slot="",status="2xx"}} {n}"#
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                r#"slipway_request_duration_seconds_bucket{{app="web",le="0.0025"}} {n}"#
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                r#"slipway_request_duration_seconds_count{{app="web"}} {n}"#
            )),
            "{text}"
        );
    }
}
