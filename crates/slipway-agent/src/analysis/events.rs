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

/// The events of a final report (none for a cancelled one).
pub fn of_verdict(report: &AnalysisReport) -> Vec<Event> {
    let env = &report.spec.environment;
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
            format!("{env}: release {release} passed its post-deploy analysis"),
            format!("{reason}. Nothing to do."),
        )],
        AnalysisState::Inconclusive => vec![event(
            report,
            EventKind::AnalysisInconclusive,
            Severity::Warning,
            format!("{env}: the analysis of release {release} was inconclusive"),
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
                    EventKind::LatencyRegression => format!("{env}: release {release} is slower"),
                    _ => format!("{env}: release {release} fails its health check"),
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
                format!("{env}: release {release} failed its post-deploy analysis"),
                format!("{reason}. {what_now}"),
            ));
            if let Some(AnalysisAction::SwitchedBack { to_release, .. }) = &report.action {
                events.push(event(
                    report,
                    EventKind::DeployRolledBack,
                    Severity::Critical,
                    format!("{env}: rolled back from {release} to {to_release} by the analysis"),
                    format!("{reason}. {what_now}"),
                ));
            }
            events
        }
    }
}
