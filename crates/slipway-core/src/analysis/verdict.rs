//! The verdict rules, pure: given what the agent measured, is the new
//! release failing, still under watch, or (at the window's end) passed or
//! inconclusive? The agent calls [`evaluate`] once a second and carries
//! [`Breaches`] from one call to the next.
//!
//! Rules, as Argo Rollouts' and Flagger's analyses:
//! - health: the agent's own probes of the new target failing
//!   `health_failures` times in a row fail it at once;
//! - errors: a 5xx ratio above `max_error_ratio` over the sliding window of
//!   `interval_ms`, once that window holds `min_requests`, fails it at once;
//! - latency: a p95 above `p95_factor` × the baseline's p95 *and* above
//!   `p95_floor_ms`, with `min_requests` in the window, fails it once it has
//!   lasted `interval_ms`. Without a baseline of `min_requests` the rule is
//!   skipped (a `no_baseline` note), never failed on;
//! - at the end of `window_ms`: fewer than `min_requests` since the switch is
//!   `inconclusive` (too little traffic never passes), else `passed`.

use super::{AnalysisSpec, Finding, FindingKind, HealthTally, WindowStats};

/// When each rule's current breach began (milliseconds after the switch);
/// None while it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breaches {
    pub error_ratio_since_ms: Option<u64>,
    pub latency_since_ms: Option<u64>,
}

/// Everything one evaluation looks at.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub spec: &'a AnalysisSpec,
    /// The previous release over a comparable window before the switch.
    pub baseline: Option<&'a WindowStats>,
    /// The new release since the switch.
    pub total: &'a WindowStats,
    /// The new release over the last `interval_ms`.
    pub recent: &'a WindowStats,
    pub health: &'a HealthTally,
    /// Milliseconds since the switch.
    pub elapsed_ms: u64,
}

/// What the analysis concludes now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Keep watching.
    Running,
    Failed {
        /// The failing findings' messages, joined.
        reason: String,
        /// The first failing observation (milliseconds after the switch):
        /// where the detection-to-switch time starts.
        detected_at_ms: u64,
    },
    Passed {
        reason: String,
    },
    Inconclusive {
        reason: String,
    },
}

/// One evaluation's outcome: the verdict, what was noticed (failing
/// findings and notes; the agent keeps the latest of each kind), and the
/// breaches to pass to the next evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    pub breaches: Breaches,
}

fn percent(ratio: f64) -> String {
    format!("{:.1} %", ratio * 100.0)
}

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// A latency in people's units: "180 ms", "2.4 ms", "1.25 s".
pub fn millis(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// Signed percentage change from `before` to `now`: "+89 %".
fn change(now: f64, before: f64) -> String {
    if before <= 0.0 {
        return "new".to_owned();
    }
    format!("{:+.0} %", (now / before - 1.0) * 100.0)
}

/// Whether the baseline is thick enough to compare latency against.
fn usable_baseline<'a>(
    spec: &AnalysisSpec,
    baseline: Option<&'a WindowStats>,
) -> Option<&'a WindowStats> {
    baseline.filter(|b| b.requests >= spec.min_requests.max(1) && b.p95_ms.is_some())
}

pub fn evaluate(o: &Observation<'_>, before: &Breaches) -> Evaluation {
    let spec = o.spec;
    let now = o.elapsed_ms;
    let mut findings = Vec::new();
    let mut breaches = Breaches::default();
    let mut detected: Vec<u64> = Vec::new();

    // Health: N failures in a row.
    if spec.health_failures > 0 && o.health.failing_in_a_row >= spec.health_failures {
        let since = o.health.failing_since_ms.unwrap_or(now);
        detected.push(since);
        findings.push(Finding {
            kind: FindingKind::HealthFailing,
            message: format!(
                "the new release failed its health check {} times in a row ({} needed to fail; \
                 {} of {} probes failed since the switch), last: {}",
                o.health.failing_in_a_row,
                spec.health_failures,
                o.health.failures,
                o.health.probes,
                o.health.last_failure.as_deref().unwrap_or("unknown"),
            ),
            at_ms: now,
            failing: true,
        });
    }

    // Errors: the sliding window's 5xx ratio. The breach starts when the
    // ratio first exceeds the limit, even before the window holds enough
    // requests to judge: that is when the problem became visible.
    let recent_ratio = o.recent.error_ratio.unwrap_or(0.0);
    if o.recent.errors_5xx > 0 && recent_ratio > spec.max_error_ratio {
        let since = before.error_ratio_since_ms.unwrap_or(now);
        breaches.error_ratio_since_ms = Some(since);
        if o.recent.requests >= spec.min_requests {
            detected.push(since);
            let before_text = match o.baseline.and_then(|b| b.error_ratio.map(|r| (r, b))) {
                Some((r, b)) => format!(
                    "before the switch it was {} ({} of {})",
                    percent(r),
                    b.errors_5xx,
                    b.requests
                ),
                None => "no figure from before the switch".to_owned(),
            };
            findings.push(Finding {
                kind: FindingKind::ErrorRatio,
                message: format!(
                    "5xx ratio {} over the last {} ({} of {} requests) is above the {} limit; {}",
                    percent(recent_ratio),
                    seconds(o.recent.span_ms),
                    o.recent.errors_5xx,
                    o.recent.requests,
                    percent(spec.max_error_ratio),
                    before_text
                ),
                at_ms: now,
                failing: true,
            });
        }
    }

    // Latency: against the baseline's p95, for `interval_ms` in a row.
    match usable_baseline(spec, o.baseline) {
        None => findings.push(Finding {
            kind: FindingKind::NoBaseline,
            message: format!(
                "no latency comparison: the previous release served {} requests before the \
                 switch ({} needed), so the p95 rule is skipped",
                o.baseline.map_or(0, |b| b.requests),
                spec.min_requests
            ),
            at_ms: now,
            failing: false,
        }),
        Some(base) => {
            let base_p95 = base.p95_ms.unwrap_or(0.0);
            let limit = (base_p95 * spec.p95_factor).max(spec.p95_floor_ms);
            if let Some(p95) = o
                .recent
                .p95_ms
                .filter(|_| o.recent.requests >= spec.min_requests)
                && p95 > limit
            {
                let since = before.latency_since_ms.unwrap_or(now);
                breaches.latency_since_ms = Some(since);
                let lasted = now.saturating_sub(since);
                let failing = lasted >= spec.interval_ms;
                if failing {
                    detected.push(since);
                }
                findings.push(Finding {
                    kind: FindingKind::LatencyRegression,
                    message: format!(
                        "p95 now {} vs {} before, {} (limit: {}× the baseline and at least {}), \
                         for {}{}",
                        millis(p95),
                        millis(base_p95),
                        change(p95, base_p95),
                        spec.p95_factor,
                        millis(spec.p95_floor_ms),
                        seconds(lasted),
                        if failing {
                            String::new()
                        } else {
                            format!(" (fails once it lasts {})", seconds(spec.interval_ms))
                        }
                    ),
                    at_ms: now,
                    failing,
                });
            }
        }
    }

    let failing: Vec<&Finding> = findings.iter().filter(|f| f.failing).collect();
    let verdict = if !failing.is_empty() {
        Verdict::Failed {
            reason: failing
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            detected_at_ms: detected.into_iter().min().unwrap_or(now),
        }
    } else if now < spec.window_ms {
        Verdict::Running
    } else if o.total.requests < spec.min_requests {
        let message = format!(
            "only {} requests reached the new release in the {} window ({} needed to judge it); \
             watch it yourself or deploy again with more traffic",
            o.total.requests,
            seconds(spec.window_ms),
            spec.min_requests
        );
        findings.push(Finding {
            kind: FindingKind::LowTraffic,
            message: message.clone(),
            at_ms: now,
            failing: false,
        });
        Verdict::Inconclusive { reason: message }
    } else {
        let latency = match (o.total.p95_ms, usable_baseline(spec, o.baseline)) {
            (Some(p95), Some(b)) => format!(
                ", p95 {} vs {} before ({})",
                millis(p95),
                millis(b.p95_ms.unwrap_or(0.0)),
                change(p95, b.p95_ms.unwrap_or(0.0))
            ),
            (Some(p95), None) => format!(", p95 {} (no baseline to compare)", millis(p95)),
            _ => String::new(),
        };
        Verdict::Passed {
            reason: format!(
                "{} requests in {}, 5xx ratio {}{}, health {} of {} probes passed",
                o.total.requests,
                seconds(spec.window_ms),
                percent(o.total.error_ratio.unwrap_or(0.0)),
                latency,
                o.health.probes - o.health.failures.min(o.health.probes),
                o.health.probes
            ),
        }
    };
    Evaluation {
        verdict,
        findings,
        breaches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::OnFailure;

    fn spec() -> AnalysisSpec {
        AnalysisSpec {
            deployment_id: "dep_1".into(),
            environment: "production".into(),
            window_ms: 60_000,
            interval_ms: 10_000,
            on_failure: OnFailure::Rollback,
            health_failures: 3,
            health_interval_ms: 5_000,
            max_error_ratio: 0.05,
            min_requests: 20,
            p95_factor: 1.5,
            p95_floor_ms: 50.0,
        }
    }

    fn stats(requests: u64, errors: u64, p95: Option<f64>) -> WindowStats {
        WindowStats {
            span_ms: 10_000,
            requests,
            errors_5xx: errors,
            success_ratio: (requests > 0).then(|| (requests - errors) as f64 / requests as f64),
            error_ratio: (requests > 0).then(|| errors as f64 / requests as f64),
            p50_ms: p95.map(|p| p / 2.0),
            p95_ms: p95,
            p99_ms: p95,
        }
    }

    struct Case {
        spec: AnalysisSpec,
        baseline: Option<WindowStats>,
        total: WindowStats,
        recent: WindowStats,
        health: HealthTally,
        elapsed_ms: u64,
    }

    impl Case {
        fn new() -> Self {
            Self {
                spec: spec(),
                baseline: Some(stats(500, 0, Some(95.0))),
                total: stats(100, 0, Some(90.0)),
                recent: stats(50, 0, Some(90.0)),
                health: HealthTally::default(),
                elapsed_ms: 20_000,
            }
        }

        fn eval(&self, before: &Breaches) -> Evaluation {
            evaluate(
                &Observation {
                    spec: &self.spec,
                    baseline: self.baseline.as_ref(),
                    total: &self.total,
                    recent: &self.recent,
                    health: &self.health,
                    elapsed_ms: self.elapsed_ms,
                },
                before,
            )
        }
    }

    #[test]
    fn a_healthy_release_keeps_running_then_passes_at_the_window_end() {
        let mut c = Case::new();
        assert_eq!(c.eval(&Breaches::default()).verdict, Verdict::Running);
        c.elapsed_ms = 60_000;
        match c.eval(&Breaches::default()).verdict {
            Verdict::Passed { reason } => {
                assert!(reason.contains("100 requests"), "{reason}");
                assert!(
                    reason.contains("p95 90 ms vs 95 ms before (-5 %)"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_little_traffic_is_inconclusive_never_passed() {
        let mut c = Case::new();
        c.total = stats(5, 0, Some(10.0));
        c.recent = stats(5, 0, Some(10.0));
        c.elapsed_ms = 60_000;
        let e = c.eval(&Breaches::default());
        match &e.verdict {
            Verdict::Inconclusive { reason } => {
                assert!(reason.contains("only 5 requests"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            e.findings
                .iter()
                .any(|f| f.kind == FindingKind::LowTraffic && !f.failing)
        );
    }

    #[test]
    fn health_failing_in_a_row_fails_from_the_first_failing_probe() {
        let mut c = Case::new();
        c.health = HealthTally {
            probes: 6,
            failures: 2,
            failing_in_a_row: 2,
            last_failure: Some("GET /health: 503".into()),
            failing_since_ms: Some(12_000),
        };
        assert_eq!(c.eval(&Breaches::default()).verdict, Verdict::Running);
        c.health.failing_in_a_row = 3;
        c.health.failures = 3;
        match c.eval(&Breaches::default()).verdict {
            Verdict::Failed {
                reason,
                detected_at_ms,
            } => {
                assert_eq!(detected_at_ms, 12_000);
                assert!(reason.contains("3 times in a row"), "{reason}");
                assert!(reason.contains("GET /health: 503"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_ratio_fails_once_the_window_has_enough_requests_dated_from_its_start() {
        let mut c = Case::new();
        c.recent = stats(10, 5, Some(90.0));
        c.elapsed_ms = 5_000;
        let first = c.eval(&Breaches::default());
        assert_eq!(first.verdict, Verdict::Running, "10 < min_requests 20");
        assert_eq!(first.breaches.error_ratio_since_ms, Some(5_000));
        c.recent = stats(40, 20, Some(90.0));
        c.elapsed_ms = 7_000;
        let second = c.eval(&first.breaches);
        match second.verdict {
            Verdict::Failed {
                reason,
                detected_at_ms,
            } => {
                assert_eq!(detected_at_ms, 5_000);
                assert!(reason.contains("5xx ratio 50.0 %"), "{reason}");
                assert!(reason.contains("20 of 40"), "{reason}");
                assert!(reason.contains("5.0 % limit"), "{reason}");
                assert!(
                    reason.contains("before the switch it was 0.0 % (0 of 500)"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        // A ratio back under the limit ends the breach.
        c.recent = stats(40, 1, Some(90.0));
        assert_eq!(
            c.eval(&Breaches::default()).breaches.error_ratio_since_ms,
            None
        );
    }

    #[test]
    fn latency_must_exceed_factor_and_floor_for_the_interval() {
        let mut c = Case::new();
        c.recent = stats(50, 0, Some(180.0));
        c.elapsed_ms = 10_000;
        let first = c.eval(&Breaches::default());
        assert_eq!(first.verdict, Verdict::Running);
        let note = first
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::LatencyRegression)
            .expect("regression noted");
        assert!(!note.failing);
        assert!(
            note.message
                .contains("p95 now 180 ms vs 95 ms before, +89 %"),
            "{}",
            note.message
        );
        c.elapsed_ms = 20_000;
        match c.eval(&first.breaches).verdict {
            Verdict::Failed {
                detected_at_ms,
                reason,
            } => {
                assert_eq!(detected_at_ms, 10_000);
                assert!(reason.contains("for 10 s"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Above the factor but under the absolute floor: no regression.
        c.baseline = Some(stats(500, 0, Some(10.0)));
        c.recent = stats(50, 0, Some(40.0));
        let e = c.eval(&Breaches {
            latency_since_ms: Some(0),
            ..Breaches::default()
        });
        assert_eq!(e.verdict, Verdict::Running);
        assert_eq!(e.breaches.latency_since_ms, None);
    }

    #[test]
    fn a_missing_or_thin_baseline_skips_the_latency_rule() {
        for baseline in [None, Some(stats(3, 0, Some(1.0)))] {
            let mut c = Case::new();
            c.baseline = baseline;
            c.recent = stats(50, 0, Some(5_000.0));
            let e = c.eval(&Breaches {
                latency_since_ms: Some(0),
                ..Breaches::default()
            });
            assert_eq!(e.verdict, Verdict::Running);
            assert!(
                e.findings
                    .iter()
                    .any(|f| f.kind == FindingKind::NoBaseline && !f.failing)
            );
            c.elapsed_ms = 60_000;
            assert!(matches!(
                c.eval(&Breaches::default()).verdict,
                Verdict::Passed { .. }
            ));
        }
    }

    #[test]
    fn latency_of_a_thin_window_is_not_judged() {
        let mut c = Case::new();
        c.recent = stats(5, 0, Some(5_000.0));
        let e = c.eval(&Breaches {
            latency_since_ms: Some(0),
            ..Breaches::default()
        });
        assert_eq!(e.verdict, Verdict::Running);
    }

    #[test]
    fn people_units() {
        assert_eq!(millis(2.44), "2.4 ms");
        assert_eq!(millis(180.2), "180 ms");
        assert_eq!(millis(1250.0), "1.25 s");
        assert_eq!(change(60.0, 20.0), "+200 %");
    }
}
