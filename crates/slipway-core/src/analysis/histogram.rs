//! The latency histogram the analysis judges: log-spaced buckets four per
//! octave (each bound 2^(1/4) ≈ 1.19 times the one before) from 100 µs to
//! about 88 s, so a quantile estimated inside a bucket is off by at most
//! ~19 % of its value, whatever the latency's scale. The agent keeps the
//! counts in atomics per target; this module is the pure part: which bucket
//! a latency falls in, cumulative snapshots, deltas and quantiles.

use super::WindowStats;

/// Upper bound of bucket 0, in microseconds.
pub const FIRST_BOUND_US: f64 = 100.0;
/// Buckets per doubling of latency.
pub const PER_OCTAVE: u32 = 4;
/// Bucket 0 is [0, 100 µs]; bucket i (1..BUCKETS-1) ends at
/// 100 µs · 2^(i/4); the last bucket holds everything above ~88 s.
pub const BUCKETS: usize = 81;

/// Upper bound of bucket `i` in microseconds (infinite for the last one).
pub fn upper_bound_us(i: usize) -> f64 {
    if i + 1 >= BUCKETS {
        return f64::INFINITY;
    }
    FIRST_BOUND_US * 2f64.powf(i as f64 / f64::from(PER_OCTAVE))
}

/// Lower bound of bucket `i` in microseconds.
pub fn lower_bound_us(i: usize) -> f64 {
    if i == 0 { 0.0 } else { upper_bound_us(i - 1) }
}

/// The bucket a latency of `micros` falls in. Cheap enough for the hot
/// path: one logarithm, no allocation.
pub fn bucket_of(micros: u64) -> usize {
    let x = micros as f64 / FIRST_BOUND_US;
    if x <= 1.0 {
        return 0;
    }
    let i = (x.log2() * f64::from(PER_OCTAVE)).ceil();
    // `as` saturates; the clamp keeps huge latencies in the last bucket.
    (i as usize).min(BUCKETS - 1)
}

/// Cumulative counters of one target at one instant: responses by status
/// class (1xx..5xx) and the latency histogram. Two of them give the
/// figures of the span between (see [`WindowStats::between`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// When it was taken, in milliseconds of any monotonic clock (only
    /// differences are used).
    pub at_ms: u64,
    pub by_class: [u64; 5],
    pub latency: [u64; BUCKETS],
}

impl CounterSnapshot {
    pub fn zero(at_ms: u64) -> Self {
        Self {
            at_ms,
            by_class: [0; 5],
            latency: [0; BUCKETS],
        }
    }
}

/// The `q` quantile (0..=1) of a histogram in milliseconds, interpolated
/// linearly inside its bucket; None when it is empty. The open last bucket
/// answers its lower bound (the true value is at least that).
pub fn quantile_ms(counts: &[u64; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if (below + n) as f64 >= rank {
            let lower = lower_bound_us(i);
            let upper = upper_bound_us(i);
            if upper.is_infinite() {
                return Some(lower / 1000.0);
            }
            let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some((lower + (upper - lower) * within) / 1000.0);
        }
        below += n;
    }
    // Unreachable for q <= 1 (the loop ends at the total); answer the top.
    Some(lower_bound_us(BUCKETS - 1) / 1000.0)
}

impl WindowStats {
    /// The figures of the span from `earlier` to `later` (cumulative
    /// snapshots of the same counters). A counter that went backwards (the
    /// agent restarted in between) counts as zero, never as a huge number.
    pub fn between(earlier: &CounterSnapshot, later: &CounterSnapshot) -> Self {
        let mut classes = [0u64; 5];
        for (d, (a, b)) in classes
            .iter_mut()
            .zip(earlier.by_class.iter().zip(&later.by_class))
        {
            *d = b.saturating_sub(*a);
        }
        let mut latency = [0u64; BUCKETS];
        for (d, (a, b)) in latency
            .iter_mut()
            .zip(earlier.latency.iter().zip(&later.latency))
        {
            *d = b.saturating_sub(*a);
        }
        Self::from_counts(
            later.at_ms.saturating_sub(earlier.at_ms),
            &classes,
            &latency,
        )
    }

    /// The figures of `classes` (responses by status class) and `latency`
    /// counted over `span_ms`.
    pub fn from_counts(span_ms: u64, classes: &[u64; 5], latency: &[u64; BUCKETS]) -> Self {
        let requests: u64 = classes.iter().sum();
        let errors_5xx = classes[4];
        let ratio = |n: u64| (requests > 0).then(|| n as f64 / requests as f64);
        Self {
            span_ms,
            requests,
            errors_5xx,
            success_ratio: ratio(requests - errors_5xx),
            error_ratio: ratio(errors_5xx),
            p50_ms: quantile_ms(latency, 0.50),
            p95_ms: quantile_ms(latency, 0.95),
            p99_ms: quantile_ms(latency, 0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(latencies_us: &[u64]) -> [u64; BUCKETS] {
        let mut h = [0; BUCKETS];
        for &l in latencies_us {
            h[bucket_of(l)] += 1;
        }
        h
    }

    #[test]
    fn buckets_cover_100us_to_beyond_a_minute_at_a_quarter_octave() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(100), 0);
        assert_eq!(bucket_of(101), 1);
        assert!(upper_bound_us(BUCKETS - 2) > 60_000_000.0);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for i in 1..BUCKETS - 1 {
            let growth = upper_bound_us(i) / upper_bound_us(i - 1);
            assert!(
                (growth - 2f64.powf(0.25)).abs() < 1e-9,
                "bucket {i}: {growth}"
            );
            // A latency at a bound falls in the bucket it closes.
            let bound = upper_bound_us(i).floor() as u64;
            assert!(bucket_of(bound) <= i, "{bound} µs in {}", bucket_of(bound));
            assert!(bucket_of(bound + 1) >= i, "{} µs", bound + 1);
        }
    }

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        // 1..=1000 ms, uniform: p50 = 500 ms, p95 = 950 ms, p99 = 990 ms.
        let latencies: Vec<u64> = (1..=1000).map(|ms| ms * 1000).collect();
        let h = histogram(&latencies);
        for (q, truth) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = quantile_ms(&h, q).expect("non-empty");
            let error = (got - truth).abs() / truth;
            assert!(error < 0.19, "q{q}: {got} ms vs {truth} ms");
        }
        assert_eq!(quantile_ms(&[0; BUCKETS], 0.5), None);
    }

    #[test]
    fn a_constant_latency_is_estimated_inside_its_bucket() {
        let h = histogram(&[60_000; 100]);
        let p95 = quantile_ms(&h, 0.95).expect("non-empty");
        let i = bucket_of(60_000);
        assert!(p95 * 1000.0 > lower_bound_us(i) && p95 * 1000.0 <= upper_bound_us(i));
        assert!((p95 - 60.0).abs() / 60.0 < 0.19, "{p95}");
    }

    #[test]
    fn window_is_the_delta_of_two_snapshots() {
        let mut a = CounterSnapshot::zero(1_000);
        a.by_class = [0, 90, 0, 5, 5];
        a.latency = histogram(&[1_000; 100]);
        let mut b = a.clone();
        b.at_ms = 4_000;
        b.by_class = [0, 140, 0, 5, 55];
        for _ in 0..100 {
            b.latency[bucket_of(200_000)] += 1;
        }
        let w = WindowStats::between(&a, &b);
        assert_eq!((w.span_ms, w.requests, w.errors_5xx), (3_000, 100, 50));
        assert_eq!(w.error_ratio, Some(0.5));
        assert_eq!(w.success_ratio, Some(0.5));
        let p50 = w.p50_ms.expect("latency");
        assert!(
            (p50 - 200.0).abs() / 200.0 < 0.19,
            "only the new 200 ms requests: {p50}"
        );
    }

    #[test]
    fn counters_going_backwards_count_as_nothing() {
        let mut a = CounterSnapshot::zero(0);
        a.by_class = [0, 500, 0, 0, 0];
        let b = CounterSnapshot::zero(1_000);
        let w = WindowStats::between(&a, &b);
        assert_eq!(w.requests, 0);
        assert_eq!(w.error_ratio, None);
        assert_eq!(w.p95_ms, None);
    }
}
