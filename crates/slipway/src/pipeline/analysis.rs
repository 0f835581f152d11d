//! The host's post-deploy analysis as the CLI sees it: the request sent
//! with the switch (so the agent starts it at the switch itself and carries
//! on whether or not this command stays), following it live, and the words
//! for its report in `deploy`, `status` and `watch`.

use std::time::{Duration, Instant};

use slipway_core::admin::{AdminRequest, AdminResult, AnalysisCancelArgs, AppArgs};
use slipway_core::analysis::{
    AnalysisAction, AnalysisReport, AnalysisSpec, AnalysisState, WindowStats,
};

use super::context::{StepError, Target};

/// What the agent is asked to run after the switch; `None` when
/// `deployment.analysis.window` is `0s`.
pub fn spec(t: &Target, deployment_id: &str) -> Option<AnalysisSpec> {
    let a = &t.config.settings.deployment.analysis;
    let window = a.window_for(&t.config.environment);
    if window.is_zero() {
        return None;
    }
    Some(AnalysisSpec {
        deployment_id: deployment_id.to_string(),
        environment: t.config.environment.clone(),
        window_ms: window.as_millis() as u64,
        interval_ms: a.interval.0.as_millis() as u64,
        on_failure: a.on_failure,
        health_failures: a.health_failures,
        health_interval_ms: a.health_interval.0.as_millis() as u64,
        max_error_ratio: a.max_error_ratio,
        min_requests: a.min_requests,
        p95_factor: a.p95_factor,
        p95_floor_ms: a.p95_floor.0.as_secs_f64() * 1000.0,
    })
}

/// The app's running analysis, else its last one.
pub async fn current(t: &Target) -> Result<Option<AnalysisReport>, StepError> {
    match t
        .agent_call(AdminRequest::AnalysisStatus(AppArgs {
            app: t.names.route(),
        }))
        .await
    {
        Ok(AdminResult::Analysis { report }) => Ok(report.map(|r| *r)),
        Ok(other) => Err(StepError::new(format!(
            "unexpected agent answer: {other:?}"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// End the app's running analysis (if any) as `cancelled`, with `reason`.
pub async fn cancel(t: &Target, reason: String) -> Result<(), StepError> {
    t.agent_call(AdminRequest::AnalysisCancel(AnalysisCancelArgs {
        app: t.names.route(),
        reason,
    }))
    .await?;
    Ok(())
}

/// Follow the analysis of `deployment_id` for up to `stay`, printing a line
/// when something changed (at most every `every`). Returns the last report
/// seen; `None` if the agent never had one for this deployment.
pub async fn follow(
    t: &Target,
    deployment_id: &str,
    stay: Duration,
    every: Duration,
    print: &dyn Fn(&str),
) -> Result<Option<AnalysisReport>, StepError> {
    let end = Instant::now() + stay;
    let mut last_line = String::new();
    let mut last_print = Instant::now() - every;
    let mut findings_seen = Vec::new();
    let mut report = None;
    loop {
        let now = current(t)
            .await?
            .filter(|r| r.spec.deployment_id == deployment_id);
        if let Some(r) = &now {
            // A finding is shown when it first appears and again when it
            // turns failing (the agent keeps the latest of each kind).
            for f in &r.findings {
                if !findings_seen.contains(&(f.kind, f.failing)) {
                    findings_seen.push((f.kind, f.failing));
                    print(&format!(
                        "{} {}",
                        if f.failing { "✗" } else { "·" },
                        f.message
                    ));
                }
            }
            let line = progress_line(r);
            if r.state.is_final() || (line != last_line && last_print.elapsed() >= every) {
                print(&line);
                last_line = line;
                last_print = Instant::now();
            }
            if r.state.is_final() {
                return Ok(now);
            }
        }
        report = now.or(report);
        if Instant::now() >= end {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One line: where it stands and the figures against the baseline.
pub fn progress_line(r: &AnalysisReport) -> String {
    let mut parts = vec![format!(
        "analysis {} {}/{}",
        r.state,
        clock(r.elapsed_ms.min(r.spec.window_ms)),
        clock(r.spec.window_ms)
    )];
    parts.push(format!("{} requests", r.total.requests));
    if let Some(ratio) = r.total.error_ratio {
        parts.push(format!("5xx {}", percent(ratio)));
    }
    parts.push(latency(
        "p95",
        r.total.p95_ms,
        r.baseline.as_ref().and_then(|b| b.p95_ms),
    ));
    parts.push(format!(
        "health {}/{} ok",
        r.health.probes - r.health.failures.min(r.health.probes),
        r.health.probes
    ));
    parts.join(", ")
}

/// The whole report, for `status` and the end of `watch`.
pub fn describe(r: &AnalysisReport) -> Vec<String> {
    let mut lines = vec![format!(
        "{} of {} (deployment {}), {}",
        match r.state {
            AnalysisState::Running => "running",
            AnalysisState::Passed => "passed",
            AnalysisState::Failed => "FAILED",
            AnalysisState::Inconclusive => "inconclusive",
            AnalysisState::Cancelled => "cancelled",
        },
        r.release,
        r.spec.deployment_id,
        if r.state == AnalysisState::Running {
            format!(
                "{} of {} done, {} left",
                clock(r.elapsed_ms),
                clock(r.spec.window_ms),
                clock(r.spec.window_ms.saturating_sub(r.elapsed_ms))
            )
        } else {
            format!("after {}", clock(r.elapsed_ms))
        }
    )];
    lines.push(format!("now:    {}", stats(&r.total)));
    match &r.baseline {
        Some(b) => lines.push(format!(
            "before: {} ({} over the {} before the switch)",
            stats(b),
            r.previous_release.as_deref().unwrap_or("previous release"),
            clock(b.span_ms)
        )),
        None => lines.push("before: no baseline (no earlier release served traffic)".into()),
    }
    lines.push(format!(
        "health: {} probes, {} failed{}",
        r.health.probes,
        r.health.failures,
        r.health
            .last_failure
            .as_deref()
            .map(|f| format!(", last: {f}"))
            .unwrap_or_default()
    ));
    for f in &r.findings {
        lines.push(format!(
            "{} {}",
            if f.failing { "✗" } else { "·" },
            f.message
        ));
    }
    if let Some(reason) = &r.reason {
        lines.push(format!("verdict: {reason}"));
    }
    match &r.action {
        Some(AnalysisAction::SwitchedBack {
            detection_to_switch_ms,
            to_release,
            ..
        }) => lines.push(format!(
            "action: traffic switched back to {to_release}, {:.1} s after the problem started",
            *detection_to_switch_ms as f64 / 1000.0
        )),
        Some(AnalysisAction::Alerted) => {
            lines.push("action: alert only (deployment.analysis.on_failure: alert)".into())
        }
        Some(AnalysisAction::SwitchBackFailed { reason }) => {
            lines.push(format!("action: switching back FAILED: {reason}"))
        }
        None => {}
    }
    lines
}

fn stats(s: &WindowStats) -> String {
    let mut parts = vec![format!("{} requests", s.requests)];
    if let Some(ratio) = s.error_ratio {
        parts.push(format!("5xx {}", percent(ratio)));
    }
    for (name, v) in [("p50", s.p50_ms), ("p95", s.p95_ms), ("p99", s.p99_ms)] {
        if let Some(v) = v {
            parts.push(format!("{name} {}", ms(v)));
        }
    }
    parts.join(", ")
}

fn latency(name: &str, now: Option<f64>, before: Option<f64>) -> String {
    match (now, before) {
        (Some(n), Some(b)) if b > 0.0 => format!(
            "{name} {} vs {} before ({:+.0} %)",
            ms(n),
            ms(b),
            (n / b - 1.0) * 100.0
        ),
        (Some(n), _) => format!("{name} {}", ms(n)),
        (None, _) => format!("{name} -"),
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn percent(ratio: f64) -> String {
    format!("{:.1} %", ratio * 100.0)
}

/// `m:ss`.
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_compares_with_the_percentage() {
        assert_eq!(
            latency("p95", Some(180.0), Some(95.0)),
            "p95 180 ms vs 95.0 ms before (+89 %)"
        );
        assert_eq!(latency("p95", Some(12.0), None), "p95 12.0 ms");
        assert_eq!(clock(125_000), "2:05");
        assert_eq!(percent(0.0523), "5.2 %");
    }
}
