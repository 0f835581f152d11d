//! What an analysis writes into an app's ledger: the report in the
//! deployment's history entry, the `rolled_back` status after a switch
//! back, and the rule that the agent's verdict wins over a later
//! `history_record` of the same deployment (the CLI records `active` at
//! the end of its deploy, which may come after the switch back).

use serde_json::Value;

use super::{AnalysisAction, AnalysisReport, AnalysisState, FindingKind};
use crate::ledger::{AppLedger, Deployment, history};

/// `extra` key of a history entry holding the analysis report.
pub const EXTRA_ANALYSIS: &str = "analysis";
/// `extra` key naming who rolled a deployment back (`analysis`).
pub const EXTRA_ROLLED_BACK_BY: &str = "rolled_back_by";

/// The history entry's `health_status` a final report implies: `healthy`
/// when passed, `degraded` when only latency regressed, `unhealthy` when
/// health probes or 5xx failed it; None when it says nothing (running,
/// inconclusive, cancelled).
pub fn health_status(report: &AnalysisReport) -> Option<&'static str> {
    match report.state {
        AnalysisState::Passed => Some("healthy"),
        AnalysisState::Failed => {
            let hard = report.findings.iter().any(|f| {
                f.failing && matches!(f.kind, FindingKind::HealthFailing | FindingKind::ErrorRatio)
            });
            Some(if hard { "unhealthy" } else { "degraded" })
        }
        _ => None,
    }
}

/// Apply `change` to every copy of deployment `id` (history entry, current,
/// previous); whether there was one.
fn update_deployment(ledger: &mut AppLedger, id: &str, change: impl Fn(&mut Deployment)) -> bool {
    let mut found = false;
    let copies = ledger
        .deployment_history
        .iter_mut()
        .chain(ledger.current_deployment.as_mut())
        .chain(ledger.previous_deployment.as_mut());
    for d in copies.filter(|d| d.id == id) {
        change(d);
        found = true;
    }
    found
}

fn mark_rolled_back(d: &mut Deployment, reason: &str) {
    d.status = "rolled_back".to_owned();
    if d.error.is_none() {
        d.error = Some(reason.to_owned());
    }
    d.extra.insert(
        EXTRA_ROLLED_BACK_BY.to_owned(),
        Value::String("analysis".to_owned()),
    );
}

/// The analysis switched traffic back from deployment `id`. If it was
/// already the current deployment, the previous one becomes current again
/// (as after `rollback`); either way its entry is `rolled_back` with the
/// reason.
pub fn switched_back(ledger: &mut AppLedger, id: &str, reason: &str) {
    if ledger
        .current_deployment
        .as_ref()
        .is_some_and(|c| c.id == id)
    {
        history::rolled_back(ledger);
    }
    update_deployment(ledger, id, |d| mark_rolled_back(d, reason));
}

/// Keep a final report in the ledger and in its deployment's entry
/// (`extra.analysis`, and `health_status` when the verdict says one).
pub fn record_verdict(ledger: &mut AppLedger, report: &AnalysisReport) {
    let json = serde_json::to_value(report).unwrap_or(Value::Null);
    let status = health_status(report);
    update_deployment(ledger, &report.spec.deployment_id, |d| {
        d.extra.insert(EXTRA_ANALYSIS.to_owned(), json.clone());
        if let Some(s) = status {
            d.health_status = s.to_owned();
        }
    });
    ledger.analysis = Some(report.clone());
}

/// Before `history_record` stores `incoming`: the agent's verdict wins. A
/// deployment the analysis switched back from stays `rolled_back` (with
/// the analysis' reason) whatever status the CLI sends, and a final report
/// is kept in the entry the CLI's record replaces.
pub fn reconcile_record(ledger: &AppLedger, incoming: &mut Deployment) {
    let report = ledger
        .analysis
        .as_ref()
        .filter(|r| r.spec.deployment_id == incoming.id);
    let stored = ledger
        .deployment_history
        .iter()
        .find(|d| d.id == incoming.id);
    let switched_back_reason = match report {
        Some(r) if matches!(r.action, Some(AnalysisAction::SwitchedBack { .. })) => {
            Some(r.reason.clone().unwrap_or_default())
        }
        _ => stored
            .filter(|d| {
                d.extra.get(EXTRA_ROLLED_BACK_BY).and_then(Value::as_str) == Some("analysis")
            })
            .map(|d| d.error.clone().unwrap_or_default()),
    };
    if let Some(reason) = switched_back_reason {
        mark_rolled_back(incoming, &reason);
    }
    let kept = match report.filter(|r| r.state.is_final() && r.state != AnalysisState::Cancelled) {
        Some(r) => serde_json::to_value(r).ok(),
        None => stored.and_then(|d| d.extra.get(EXTRA_ANALYSIS).cloned()),
    };
    if let Some(json) = kept {
        incoming
            .extra
            .entry(EXTRA_ANALYSIS.to_owned())
            .or_insert(json);
    }
    if let Some(s) = report.and_then(health_status) {
        incoming.health_status = s.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use time::macros::datetime;

    use super::*;
    use crate::analysis::{AnalysisSpec, Finding, HealthTally, OnFailure, WindowStats};

    fn dep(id: &str, status: &str) -> Deployment {
        Deployment {
            id: id.to_owned(),
            version: format!("v-{id}"),
            git_commit: None,
            deployed_at: datetime!(2026-01-28 10:30 UTC),
            deployed_by: "op".to_owned(),
            active_slot: None,
            health_status: "unknown".to_owned(),
            status: status.to_owned(),
            migrations_run: None,
            rollback_count: None,
            duration_ms: None,
            error: None,
            extra: BTreeMap::new(),
        }
    }

    fn report(id: &str, state: AnalysisState, action: Option<AnalysisAction>) -> AnalysisReport {
        AnalysisReport {
            app: "web".into(),
            spec: AnalysisSpec {
                deployment_id: id.into(),
                environment: "production".into(),
                window_ms: 1000,
                interval_ms: 1000,
                on_failure: OnFailure::Rollback,
                health_failures: 3,
                health_interval_ms: 1000,
                max_error_ratio: 0.05,
                min_requests: 10,
                p95_factor: 2.0,
                p95_floor_ms: 50.0,
            },
            release: "v-b".into(),
            previous_release: Some("v-a".into()),
            started_at_unix_ms: 0,
            elapsed_ms: 1000,
            state,
            baseline: None,
            total: WindowStats::default(),
            recent: WindowStats::default(),
            health: HealthTally::default(),
            findings: vec![Finding {
                kind: FindingKind::ErrorRatio,
                message: "5xx ratio 50.0 %".into(),
                at_ms: 900,
                failing: true,
            }],
            reason: Some("5xx ratio 50.0 %".into()),
            action,
            finished_at_unix_ms: None,
            detected_at_ms: Some(900),
            resumed_at_ms: Vec::new(),
        }
    }

    fn switched() -> Option<AnalysisAction> {
        Some(AnalysisAction::SwitchedBack {
            at_ms: 1000,
            detection_to_switch_ms: 100,
            to_release: "v-a".into(),
        })
    }

    #[test]
    fn switch_back_before_the_cli_recorded_active_and_the_cli_cannot_resurrect_it() {
        let mut l = AppLedger::new("web");
        history::record(&mut l, dep("a", "active"));
        history::record(&mut l, dep("b", "in_progress"));
        switched_back(&mut l, "b", "5xx ratio 50.0 %");
        let r = report("b", AnalysisState::Failed, switched());
        record_verdict(&mut l, &r);
        assert_eq!(
            l.current_deployment.as_ref().map(|d| d.id.as_str()),
            Some("a")
        );
        assert_eq!(l.deployment_history[0].status, "rolled_back");

        // The CLI's end-of-deploy record arrives afterwards.
        let mut late = dep("b", "active");
        reconcile_record(&l, &mut late);
        history::record(&mut l, late);
        assert_eq!(
            l.current_deployment.as_ref().map(|d| d.id.as_str()),
            Some("a")
        );
        let b = &l.deployment_history[0];
        assert_eq!((b.id.as_str(), b.status.as_str()), ("b", "rolled_back"));
        assert_eq!(b.error.as_deref(), Some("5xx ratio 50.0 %"));
        assert_eq!(b.health_status, "unhealthy");
        assert_eq!(b.extra[EXTRA_ANALYSIS]["state"], "failed");
    }

    #[test]
    fn switch_back_of_the_current_deployment_makes_the_previous_current() {
        let mut l = AppLedger::new("web");
        history::record(&mut l, dep("a", "active"));
        history::record(&mut l, dep("b", "active"));
        switched_back(&mut l, "b", "health failing");
        let cur = l.current_deployment.as_ref().expect("current");
        assert_eq!((cur.id.as_str(), cur.status.as_str()), ("a", "active"));
        let prev = l.previous_deployment.as_ref().expect("previous");
        assert_eq!(
            (prev.id.as_str(), prev.status.as_str()),
            ("b", "rolled_back")
        );
        assert_eq!(prev.error.as_deref(), Some("health failing"));
        assert_eq!(l.deployment_history[0].status, "rolled_back");
    }

    #[test]
    fn a_passed_verdict_survives_the_cli_replacing_the_entry() {
        let mut l = AppLedger::new("web");
        history::record(&mut l, dep("b", "active"));
        let mut r = report("b", AnalysisState::Passed, None);
        r.findings.clear();
        record_verdict(&mut l, &r);
        assert_eq!(l.deployment_history[0].health_status, "healthy");
        let mut again = dep("b", "active");
        reconcile_record(&l, &mut again);
        assert_eq!(again.status, "active");
        assert_eq!(again.health_status, "healthy");
        assert_eq!(again.extra[EXTRA_ANALYSIS]["state"], "passed");
        // Another deployment is left alone.
        let mut other = dep("c", "active");
        reconcile_record(&l, &mut other);
        assert!(other.extra.is_empty());
    }

    #[test]
    fn latency_only_failures_are_degraded() {
        let mut r = report("b", AnalysisState::Failed, Some(AnalysisAction::Alerted));
        r.findings[0].kind = FindingKind::LatencyRegression;
        assert_eq!(health_status(&r), Some("degraded"));
        r.state = AnalysisState::Inconclusive;
        assert_eq!(health_status(&r), None);
    }
}
