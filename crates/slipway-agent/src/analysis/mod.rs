//! The post-deploy analysis, run by the agent after a switch (see
//! `slipway_core::analysis` for the model and the verdict rules).
//!
//! - [`sampler`]: the active targets' counters once a second, for baselines.
//! - [`watch`]: one running analysis (figures, health probes, verdict, act).
//! - [`events`]: what its verdict tells people.
//!
//! This module starts analyses (at a `deploy` with `analysis`, and on agent
//! start for one left running in the ledger), cancels them (a later deploy,
//! a `rollback` verb) and answers `analysis_status`.

pub mod events;
pub mod sampler;
pub mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use slipway_core::admin::{
    AdminError, AdminErrorKind, AdminResult, DeployArgs, RollbackArgs, SwitchReport,
};
use slipway_core::analysis::{
    AnalysisReport, AnalysisSpec, AnalysisState, HealthTally, WindowStats,
};
use tokio_util::sync::CancellationToken;

use crate::Agent;

/// A running analysis as the agent holds it.
pub struct Live {
    pub app: String,
    report: Mutex<AnalysisReport>,
    /// Cancelled when it ends, whatever ended it; stops its tasks.
    cancel: CancellationToken,
}

impl Live {
    fn new(report: AnalysisReport) -> Arc<Self> {
        Arc::new(Self {
            app: report.app.clone(),
            report: Mutex::new(report),
            cancel: CancellationToken::new(),
        })
    }

    pub fn report(&self) -> AnalysisReport {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn spec(&self) -> AnalysisSpec {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spec
            .clone()
    }
}

/// The agent's analyses: the running one per app, and the samples their
/// baselines come from.
#[derive(Default)]
pub struct Analyses {
    running: Mutex<HashMap<String, Arc<Live>>>,
    pub samples: Arc<sampler::Samples>,
}

impl Analyses {
    fn get(&self, app: &str) -> Option<Arc<Live>> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(app)
            .cloned()
    }

    /// Drop `live` from the running ones (if it still is the app's).
    fn forget(&self, app: &str, live: &Live) {
        let mut map = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if map
            .get(app)
            .is_some_and(|l| std::ptr::eq(Arc::as_ptr(l), live))
        {
            map.remove(app);
        }
    }

    fn insert(&self, live: Arc<Live>) -> Option<Arc<Live>> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(live.app.clone(), live)
    }
}

fn bad_request(message: String) -> AdminError {
    AdminError {
        kind: AdminErrorKind::BadRequest,
        message,
        health: None,
        holder: None,
    }
}

/// Refuse a spec the rules cannot work with, before anything switches.
fn validate(spec: &AnalysisSpec) -> Result<(), AdminError> {
    let problem = if spec.deployment_id.trim().is_empty() {
        Some("deployment_id is empty".to_owned())
    } else if spec.window_ms < 1000 {
        Some(format!("window_ms {} is under 1000", spec.window_ms))
    } else if spec.interval_ms < 1000 {
        Some(format!("interval_ms {} is under 1000", spec.interval_ms))
    } else if spec.health_interval_ms < 100 {
        Some(format!(
            "health_interval_ms {} is under 100",
            spec.health_interval_ms
        ))
    } else if !(0.0..=1.0).contains(&spec.max_error_ratio) {
        Some(format!(
            "max_error_ratio {} is not between 0 and 1",
            spec.max_error_ratio
        ))
    } else if !(spec.p95_factor.is_finite() && spec.p95_factor > 0.0) {
        Some(format!(
            "p95_factor {} is not a positive number",
            spec.p95_factor
        ))
    } else if !(spec.p95_floor_ms.is_finite() && spec.p95_floor_ms >= 0.0) {
        Some(format!(
            "p95_floor_ms {} is not a number of milliseconds",
            spec.p95_floor_ms
        ))
    } else {
        None
    };
    match problem {
        Some(p) => Err(bad_request(format!(
            "the deploy's analysis spec is invalid: {p}; nothing was switched. Fix the \
             analysis settings and deploy again"
        ))),
        None => Ok(()),
    }
}

/// Cancel the app's running analysis, if any (the caller holds a gate pass).
fn cancel(agent: &Agent, app: &str, why: String) {
    if let Some(live) = agent.analyses.get(app) {
        watch::finish_with_pass(agent, &live, AnalysisState::Cancelled, why, None, None);
    }
}

/// `analysis_cancel`: the CLI is about to replace the slot the analysis
/// would switch back to (a new deploy starts there), so switching back
/// would send traffic to a release nobody checked.
pub fn cancel_verb(
    agent: &Agent,
    a: slipway_core::admin::AnalysisCancelArgs,
) -> Result<AdminResult, AdminError> {
    cancel(agent, &a.app, a.reason);
    status(agent, &a.app)
}

/// `deploy`: the router's health-gated switch; then, after a switch, the
/// app's running analysis is cancelled and the requested one starts. The
/// verb answers right after the switch: the analysis runs on its own.
pub async fn deploy(agent: &Arc<Agent>, a: DeployArgs) -> Result<AdminResult, AdminError> {
    if let Some(spec) = &a.analysis {
        validate(spec)?;
    }
    let spec = a.analysis.clone();
    let app = a.app.clone();
    let result = agent.router.deploy(a).await?;
    if let AdminResult::Switched(switch) = &result {
        cancel(
            agent,
            &app,
            format!("release {} was deployed over it", switch.release),
        );
        if let Some(spec) = spec {
            start(agent, &app, spec, switch);
        }
    }
    Ok(result)
}

/// `rollback`: the operator decided; the running analysis stops first so it
/// cannot race the rollback with its own switch back.
pub async fn rollback(agent: &Arc<Agent>, a: RollbackArgs) -> Result<AdminResult, AdminError> {
    cancel(agent, &a.app, "cancelled by a `rollback`".to_owned());
    agent.router.rollback(a).await
}

/// Start analysing the target `switch` made active.
fn start(agent: &Arc<Agent>, app: &str, spec: AnalysisSpec, switch: &SwitchReport) {
    let Some(route) = agent.router.route(app) else {
        return;
    };
    let Some(target) = route
        .active
        .clone()
        .filter(|t| *t.release == switch.release)
    else {
        tracing::warn!(app, release = %switch.release, "not analysed: the route changed right after the switch");
        return;
    };
    let at = sampler::now_ms();
    let baseline = route.previous.as_ref().and_then(|prev| {
        let counters = agent
            .metrics
            .counters(app, &prev.release, prev.slot.as_deref());
        let at_switch = counters.snapshot(at);
        let sampled = agent
            .analyses
            .samples
            .baseline(app, &counters, &at_switch, spec.window_ms);
        // The replaced target (now draining) counted from zero since it was
        // created: a start for a baseline younger than the first sample.
        let created = route
            .draining
            .iter()
            .rev()
            .find(|t| t.record() == *prev)
            .map(|t| &t.created)
            .filter(|c| c.at_ms.saturating_add(spec.window_ms) >= at)
            .map(|c| WindowStats::between(c, &at_switch));
        match (sampled, created) {
            (Some(s), Some(c)) if c.span_ms > s.span_ms => Some(c),
            (Some(s), _) => Some(s),
            (None, c) => c,
        }
    });
    let report = AnalysisReport {
        app: app.to_owned(),
        spec,
        release: switch.release.clone(),
        previous_release: switch.previous_release.clone(),
        started_at_unix_ms: switch.switched_at_unix_nanos / 1_000_000,
        elapsed_ms: 0,
        state: AnalysisState::Running,
        baseline,
        total: WindowStats::default(),
        recent: WindowStats::default(),
        health: HealthTally::default(),
        findings: Vec::new(),
        reason: None,
        action: None,
        finished_at_unix_ms: None,
        detected_at_ms: None,
        resumed_at_ms: Vec::new(),
    };
    // The deploy verb holds a gate pass: this agent owns the ledger.
    let saved = agent.ledger.store.update(|f| {
        f.app_mut(app).analysis = Some(report.clone());
        Ok::<_, crate::ledger::StoreError>(())
    });
    if let Err(e) = saved {
        tracing::warn!(app, error = %e, "cannot save the new analysis; it runs in memory");
    }
    let start = watch::Start {
        offset_ms: 0,
        snapshot: target.counters.snapshot(at),
        carried: (0, 0),
    };
    launch(agent, Live::new(report), target, start);
}

fn launch(
    agent: &Arc<Agent>,
    live: Arc<Live>,
    target: Arc<crate::target::Target>,
    start: watch::Start,
) {
    if let Some(old) = agent.analyses.insert(Arc::clone(&live)) {
        old.cancel.cancel();
    }
    tracing::info!(app = %live.app, release = %target.release, "analysis started");
    tokio::spawn(watch::run(Arc::clone(agent), live, target, start));
}

/// On agent start (or take-over): resume every analysis the ledger shows
/// running whose release is still the app's active target, for what is
/// left of its window (by the wall clock since the switch). Counters start
/// at zero in a new agent; the stored baseline and tallies are kept. An
/// analysis whose release is no longer active ends as cancelled (once this
/// agent owns the ledger; until then its owner deals with it).
pub fn resume(agent: &Arc<Agent>) {
    let running: Vec<AnalysisReport> = agent.ledger.store.read(|f| {
        f.apps
            .values()
            .filter_map(|a| a.analysis.clone())
            .filter(|r| r.state == AnalysisState::Running)
            .collect()
    });
    for mut report in running {
        let app = report.app.clone();
        let target = agent
            .router
            .route(&app)
            .and_then(|r| r.active.clone())
            .filter(|t| *t.release == report.release);
        let Some(target) = target else {
            tokio::spawn(cancel_once_owner(Arc::clone(agent), report));
            continue;
        };
        let offset_ms = watch::unix_ms().saturating_sub(report.started_at_unix_ms);
        report.resumed_at_ms.push(offset_ms);
        let carried = (report.total.requests, report.total.errors_5xx);
        tracing::info!(app = %app, release = %report.release, after_ms = offset_ms,
            window_ms = report.spec.window_ms, "resuming the post-deploy analysis");
        let start = watch::Start {
            offset_ms,
            snapshot: target.counters.snapshot(sampler::now_ms()),
            carried,
        };
        launch(agent, Live::new(report), target, start);
    }
}

/// End a stored running analysis whose release is no longer active, once
/// this agent owns the ledger (at once, unless it is taking over) and if
/// nobody ended it meanwhile.
async fn cancel_once_owner(agent: Arc<Agent>, report: AnalysisReport) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if agent.handover.stopping() {
            return;
        }
        let Ok(_pass) = agent.handover.gate.pass() else {
            continue;
        };
        let stored = agent
            .ledger
            .store
            .read(|f| f.apps.get(&report.app).and_then(|a| a.analysis.clone()));
        let still_running = stored.is_some_and(|r| {
            r.state == AnalysisState::Running && r.spec.deployment_id == report.spec.deployment_id
        });
        if still_running && agent.analyses.get(&report.app).is_none() {
            let live = Live::new(report);
            watch::finish_with_pass(
                &agent,
                &live,
                AnalysisState::Cancelled,
                "the release was no longer active when this agent started".to_owned(),
                None,
                None,
            );
        }
        return;
    }
}

/// `analysis_status`: the app's running analysis (live), else its last one.
pub fn status(agent: &Agent, app: &str) -> Result<AdminResult, AdminError> {
    let report = match agent.analyses.get(app) {
        Some(live) => Some(live.report()),
        None => agent
            .ledger
            .store
            .read(|f| f.apps.get(app).and_then(|a| a.analysis.clone())),
    };
    Ok(AdminResult::Analysis {
        report: report.map(Box::new),
    })
}
