//! The events an analysis' verdict raises, written for the people who get
//! them: what happened, the figures, what the agent did and what to do.

use serde_json::json;
use slipway_core::analysis::{AnalysisAction, AnalysisReport, AnalysisState, FindingKind};
use slipway_core::notify::{Event, EventKind, Severity};

fn event(
    report: &AnalysisReport,
    kind: EventKind,
    severity: Severity,
    title: String,
    message: String,
) -> Event {
    let mut details = json!({ "report": report });
    if kind == EventKind::DeployRolledBack {
        details["by"] = json!("analysis");
    }
    Event {
        id: format!("evt_{}", ulid::Ulid::new()),
        kind,
        app: report.app.clone(),
        environment: report.spec.environment.clone(),
        release: Some(report.release.clone()),
        previous_release: report.previous_release.clone(),
        deployment_id: Some(report.spec.deployment_id.clone()),
        at: time::OffsetDateTime::now_utc(),
        severity,
        title,
        message,
        details,
    }
}

/// `<app>/<env>` as the CLI's events name it: the route is `<app>-<env>`.
fn subject(report: &AnalysisReport) -> String {
    let env = &report.spec.environment;
    match report.app.strip_suffix(&format!("-{env}")) {
        Some(app) if !app.is_empty() => format!("{app}/{env}"),
        _ => env.clone(),
    }
}

/// The events of a final report (none for a cancelled one).
pub fn of_verdict(report: &AnalysisReport) -> Vec<Event> {
    let env = &report.spec.environment;
    let who = subject(report);
    let release = &report.release;
    let previous = report
        .previous_release
        .as_deref()
        .unwrap_or("the previous release");
    let reason = report.reason.clone().unwrap_or_default();
    match report.state {
        AnalysisState::Running | AnalysisState::Cancelled => Vec::new(),
        AnalysisState::Passed => vec![event(
            report,
            EventKind::AnalysisPassed,
            Severity::Info,
            format!("{who}: release {release} passed its post-deploy analysis"),
            format!("{reason}. Nothing to do."),
        )],
        AnalysisState::Inconclusive => vec![event(
            report,
            EventKind::AnalysisInconclusive,
            Severity::Warning,
            format!("{who}: the analysis of release {release} was inconclusive"),
            format!("{reason}. The release stays live; it was not judged healthy."),
        )],
        AnalysisState::Failed => {
            let what_now = match &report.action {
                Some(AnalysisAction::SwitchedBack {
                    detection_to_switch_ms,
                    to_release,
                    ..
                }) => format!(
                    "Traffic went back to release {to_release} {detection_to_switch_ms} ms after \
                     the problem was first seen, and the deployment is recorded as rolled back. \
                     Fix the release and deploy again."
                ),
                Some(AnalysisAction::SwitchBackFailed { reason })
                    if report.previous_release.is_none() =>
                {
                    format!(
                        "There is no previous release to switch back to ({reason}). Release \
                         {release} still serves traffic: deploy a fix."
                    )
                }
                Some(AnalysisAction::SwitchBackFailed { reason }) => format!(
                    "Switching back to {previous} failed: {reason}. Release {release} still \
                     serves traffic: check the previous release's container, then run \
                     `slipway rollback {env}`, or deploy a fix."
                ),
                Some(AnalysisAction::Alerted) | None => format!(
                    "Release {release} stays live (on_failure: alert). To go back to {previous}, \
                     run `slipway rollback {env}`."
                ),
            };
            let mut events = Vec::new();
            for f in report.findings.iter().filter(|f| f.failing) {
                let kind = match f.kind {
                    FindingKind::LatencyRegression => EventKind::LatencyRegression,
                    FindingKind::HealthFailing => EventKind::HealthFailing,
                    _ => continue,
                };
                let title = match kind {
                    EventKind::LatencyRegression => format!("{who}: release {release} is slower"),
                    _ => format!("{who}: release {release} fails its health check"),
                };
                events.push(event(
                    report,
                    kind,
                    Severity::Warning,
                    title,
                    format!("{}. {what_now}", f.message),
                ));
            }
            events.push(event(
                report,
                EventKind::AnalysisFailed,
                Severity::Critical,
                format!("{who}: release {release} failed its post-deploy analysis"),
                format!("{reason}. {what_now}"),
            ));
            if let Some(AnalysisAction::SwitchedBack { to_release, .. }) = &report.action {
                events.push(event(
                    report,
                    EventKind::DeployRolledBack,
                    Severity::Critical,
                    format!("{who}: rolled back from {release} to {to_release} by the analysis"),
                    format!("{reason}. {what_now}"),
                ));
            }
            events
        }
    }
}

#[cfg(test)]
mod tests {
    use slipway_core::analysis::{AnalysisSpec, Finding, HealthTally, OnFailure, WindowStats};

    use super::*;

    fn failed(action: AnalysisAction) -> AnalysisReport {
        AnalysisReport {
            app: "web-production".into(),
            spec: AnalysisSpec {
                deployment_id: "dep_1".into(),
                environment: "production".into(),
                window_ms: 60_000,
                interval_ms: 10_000,
                on_failure: OnFailure::Alert,
                health_failures: 3,
                health_interval_ms: 5_000,
                max_error_ratio: 0.05,
                min_requests: 20,
                p95_factor: 1.5,
                p95_floor_ms: 50.0,
            },
            release: "b2".into(),
            previous_release: Some("a1".into()),
            started_at_unix_ms: 0,
            elapsed_ms: 20_000,
            state: AnalysisState::Failed,
            baseline: None,
            total: WindowStats::default(),
            recent: WindowStats::default(),
            health: HealthTally::default(),
            findings: vec![Finding {
                kind: FindingKind::LatencyRegression,
                message: "p95 now 180 ms vs 95 ms before, +89 %".into(),
                at_ms: 10_000,
                failing: true,
            }],
            reason: Some("p95 now 180 ms vs 95 ms before, +89 %".into()),
            action: Some(action),
            finished_at_unix_ms: None,
            detected_at_ms: Some(10_000),
            resumed_at_ms: Vec::new(),
        }
    }

    #[test]
    fn an_alert_says_how_to_roll_back_and_names_the_regression() {
        let events = of_verdict(&failed(AnalysisAction::Alerted));
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::LatencyRegression, EventKind::AnalysisFailed]
        );
        for e in &events {
            assert!(e.message.contains("+89 %"), "{}", e.message);
            assert!(
                e.message.contains("run `slipway rollback production`"),
                "{}",
                e.message
            );
            assert_eq!(e.details["report"]["state"], "failed");
        }
    }

    #[test]
    fn a_switch_back_is_a_rollback_event_by_the_analysis() {
        let events = of_verdict(&failed(AnalysisAction::SwitchedBack {
            at_ms: 21_000,
            detection_to_switch_ms: 11_000,
            to_release: "a1".into(),
        }));
        let rolled = events
            .iter()
            .find(|e| e.kind == EventKind::DeployRolledBack)
            .expect("rolled back event");
        assert_eq!(rolled.details["by"], "analysis");
        assert!(
            rolled.message.contains("back to release a1 11000 ms after"),
            "{}",
            rolled.message
        );
        assert!(rolled.id.starts_with("evt_"));
    }

    #[test]
    fn a_failed_switch_back_tells_the_operator_to_roll_back() {
        let events = of_verdict(&failed(AnalysisAction::SwitchBackFailed {
            reason: "target `a:80` did not pass its health check".into(),
        }));
        let failed = events
            .iter()
            .find(|e| e.kind == EventKind::AnalysisFailed)
            .expect("failed event");
        assert!(
            failed.message.contains("did not pass its health check"),
            "{}",
            failed.message
        );
        assert!(
            failed.message.contains("`slipway rollback production`"),
            "{}",
            failed.message
        );
        assert!(events.iter().all(|e| e.kind != EventKind::DeployRolledBack));
    }
}
