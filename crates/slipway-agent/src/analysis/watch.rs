//! One running analysis: once a second (and after every health probe) it
//! reads the new target's counters, computes the figures since the switch
//! and over the sliding window, asks the verdict rules, keeps the live
//! report, persists it every few seconds, and on a verdict acts: switch
//! back (or only alert), record, notify.
//!
//! Only an agent whose handover gate is open writes the ledger or switches:
//! while an upgrade hands over, both agents observe, neither acts, and the
//! one left owning the ledger carries on.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use slipway_core::analysis::histogram::CounterSnapshot;
use slipway_core::analysis::verdict::{self, Breaches, Observation, Verdict};
use slipway_core::analysis::{
    AnalysisAction, AnalysisReport, AnalysisState, Finding, HealthTally, OnFailure, WindowStats,
    bookkeeping,
};
use tokio::sync::Notify;

use super::{Live, sampler};
use crate::Agent;
use crate::health::{self, HealthClient};
use crate::target::Target;

/// How often the figures are evaluated.
const TICK: Duration = Duration::from_secs(1);
/// How often a running report is written to the ledger.
const PERSIST_EVERY: Duration = Duration::from_secs(3);

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// Where this agent's watch begins: at the switch, or at a resume.
pub struct Start {
    /// Milliseconds after the switch this watch begins at.
    pub offset_ms: u64,
    /// The target's counters then.
    pub snapshot: CounterSnapshot,
    /// Requests and 5xx counted by an earlier agent (a resume).
    pub carried: (u64, u64),
}

/// Milliseconds since the switch, on this agent's monotonic clock.
#[derive(Clone, Copy)]
struct Clock {
    offset_ms: u64,
    began: Instant,
}

impl Clock {
    fn elapsed_ms(&self) -> u64 {
        self.offset_ms
            .saturating_add(u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

/// Probe the new target's health path every `health_interval_ms`, counting
/// into `tally` and waking the watch after each probe.
async fn probe_health(
    live: Arc<Live>,
    target: Arc<Target>,
    path: String,
    timeout: Duration,
    tally: Arc<Mutex<HealthTally>>,
    probed: Arc<Notify>,
    clock: Clock,
) {
    let client = HealthClient::default();
    let every = Duration::from_millis(live.spec().health_interval_ms.max(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = live.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let outcome = health::probe(&client, &target.addr, &path, timeout).await;
        {
            let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
            t.probes += 1;
            match outcome {
                Ok(()) => {
                    t.failing_in_a_row = 0;
                    t.failing_since_ms = None;
                }
                Err(seen) => {
                    if t.failing_in_a_row == 0 {
                        t.failing_since_ms = Some(clock.elapsed_ms());
                    }
                    t.failures += 1;
                    t.failing_in_a_row += 1;
                    t.last_failure = Some(format!("GET {path} of {}: {seen}", target.addr));
                }
            }
        }
        probed.notify_one();
    }
}

/// Keep the latest finding of each kind.
fn merge_findings(kept: &mut Vec<Finding>, new: Vec<Finding>) {
    for f in new {
        match kept.iter_mut().find(|k| k.kind == f.kind) {
            // The latest figures, dated when first noticed.
            Some(k) => {
                let at_ms = k.at_ms;
                *k = f;
                k.at_ms = at_ms;
            }
            None => kept.push(f),
        }
    }
}

/// Watch `target` (the analysed release) until a verdict or a cancel.
pub async fn run(agent: Arc<Agent>, live: Arc<Live>, target: Arc<Target>, start: Start) {
    let app = live.app.clone();
    let spec = live.spec();
    let clock = Clock {
        offset_ms: start.offset_ms,
        began: Instant::now(),
    };
    let (path, timeout) = match agent.router.route(&app) {
        Some(route) => (route.health.path.clone(), route.health.timeout_ms),
        None => ("/health".to_owned(), 2000),
    };
    let tally = Arc::new(Mutex::new(live.report().health));
    let probed = Arc::new(Notify::new());
    tokio::spawn(probe_health(
        Arc::clone(&live),
        Arc::clone(&target),
        path,
        Duration::from_millis(timeout),
        Arc::clone(&tally),
        Arc::clone(&probed),
        clock,
    ));
    let interval_ms = spec.interval_ms.max(1);
    let mut window: VecDeque<CounterSnapshot> = VecDeque::new();
    window.push_back(start.snapshot.clone());
    let mut breaches = Breaches::default();
    let mut persisted = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = live.cancel.cancelled() => return,
            _ = tick.tick() => {}
            () = probed.notified() => {}
        }
        let serving = agent
            .router
            .route(&app)
            .and_then(|r| r.active.as_ref().map(|t| t.record()));
        if serving.as_ref() != Some(&target.record()) {
            let now_serving = serving.map_or_else(|| "nothing".to_owned(), |t| t.release);
            let reason = format!(
                "release {} is no longer active ({now_serving} is): the analysis stopped",
                target.release
            );
            if finish(&agent, &live, AnalysisState::Cancelled, reason, None, None) {
                return;
            }
            continue;
        }

        let now = target.counters.snapshot(sampler::now_ms());
        window.push_back(now.clone());
        // Keep the newest snapshot at least `interval_ms` old as the front.
        while window.len() > 2 && now.at_ms.saturating_sub(window[1].at_ms) >= interval_ms {
            window.pop_front();
        }
        let mut total = WindowStats::between(&start.snapshot, &now);
        total.requests += start.carried.0;
        total.errors_5xx += start.carried.1;
        if total.requests > 0 {
            let ratio = total.errors_5xx as f64 / total.requests as f64;
            total.error_ratio = Some(ratio);
            total.success_ratio = Some(1.0 - ratio);
        }
        total.span_ms = clock.elapsed_ms();
        let recent = WindowStats::between(&window[0], &now);
        let health = tally.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let elapsed_ms = clock.elapsed_ms();
        let report = {
            let mut r = live.report.lock().unwrap_or_else(|e| e.into_inner());
            if r.state.is_final() {
                return;
            }
            let evaluation = verdict::evaluate(
                &Observation {
                    spec: &spec,
                    baseline: r.baseline.as_ref(),
                    total: &total,
                    recent: &recent,
                    health: &health,
                    elapsed_ms,
                },
                &breaches,
            );
            breaches = evaluation.breaches;
            r.elapsed_ms = elapsed_ms;
            r.total = total;
            r.recent = recent;
            r.health = health;
            merge_findings(&mut r.findings, evaluation.findings);
            (evaluation.verdict, r.clone())
        };
        match report.0 {
            Verdict::Running => {
                if persisted.elapsed() >= PERSIST_EVERY
                    && let Ok(_pass) = agent.handover.gate.pass()
                {
                    persist_running(&agent, &live);
                    persisted = Instant::now();
                }
            }
            Verdict::Passed { reason } => {
                if finish(&agent, &live, AnalysisState::Passed, reason, None, None) {
                    return;
                }
            }
            Verdict::Inconclusive { reason } => {
                if finish(
                    &agent,
                    &live,
                    AnalysisState::Inconclusive,
                    reason,
                    None,
                    None,
                ) {
                    return;
                }
            }
            Verdict::Failed {
                reason,
                detected_at_ms,
            } => {
                if fail(&agent, &live, &target, reason, detected_at_ms, clock).await {
                    return;
                }
            }
        }
    }
}

/// Write the running report to the ledger (the caller holds a gate pass).
fn persist_running(agent: &Agent, live: &Live) {
    let report = live.report();
    if report.state.is_final() {
        return;
    }
    let written = agent.ledger.store.update(|f| {
        f.app_mut(&live.app).analysis = Some(report);
        Ok::<_, crate::ledger::StoreError>(())
    });
    if let Err(e) = written {
        tracing::warn!(app = %live.app, error = %e, "cannot save the running analysis; retrying");
    }
}

/// Act on a failure: switch back (rollback) or not (alert), then record.
/// False when this agent may not act now (handing over): retry later.
async fn fail(
    agent: &Arc<Agent>,
    live: &Arc<Live>,
    target: &Target,
    reason: String,
    detected_at_ms: u64,
    clock: Clock,
) -> bool {
    let Ok(_pass) = agent.handover.gate.pass() else {
        return false;
    };
    let spec = live.spec();
    let action = match spec.on_failure {
        OnFailure::Alert => AnalysisAction::Alerted,
        OnFailure::Rollback => {
            if live.cancel.is_cancelled() {
                return true;
            }
            let from = target.record();
            match agent
                .router
                .switch_back(&live.app, &from, &spec.deployment_id, &reason)
                .await
            {
                Ok(switched) => {
                    let at_ms = clock.elapsed_ms();
                    tracing::warn!(app = %live.app, from = %from.release, to = %switched.release,
                        detection_to_switch_ms = at_ms.saturating_sub(detected_at_ms),
                        "analysis failed: switched back");
                    AnalysisAction::SwitchedBack {
                        at_ms,
                        detection_to_switch_ms: at_ms.saturating_sub(detected_at_ms),
                        to_release: switched.release,
                    }
                }
                Err(e) => {
                    let still = agent
                        .router
                        .route(&live.app)
                        .and_then(|r| r.active.as_ref().map(|t| t.record()))
                        == Some(from);
                    if live.cancel.is_cancelled() || !still {
                        // A deploy or rollback replaced the release meanwhile.
                        return true;
                    }
                    tracing::error!(app = %live.app, error = %e.message,
                        "analysis failed and the switch back failed");
                    AnalysisAction::SwitchBackFailed { reason: e.message }
                }
            }
        }
    };
    finish_with_pass(
        agent,
        live,
        AnalysisState::Failed,
        reason,
        Some(action),
        Some(detected_at_ms),
    );
    true
}

/// Make the report final, record it (ledger, history entry) and raise its
/// events. False when this agent may not write now (handing over).
pub fn finish(
    agent: &Agent,
    live: &Live,
    state: AnalysisState,
    reason: String,
    action: Option<AnalysisAction>,
    detected_at_ms: Option<u64>,
) -> bool {
    let Ok(_pass) = agent.handover.gate.pass() else {
        return false;
    };
    finish_with_pass(agent, live, state, reason, action, detected_at_ms);
    true
}

/// [`finish`] for a caller already holding a gate pass (a verb).
pub fn finish_with_pass(
    agent: &Agent,
    live: &Live,
    state: AnalysisState,
    reason: String,
    action: Option<AnalysisAction>,
    detected_at_ms: Option<u64>,
) {
    let report: AnalysisReport = {
        let mut r = live.report.lock().unwrap_or_else(|e| e.into_inner());
        if r.state.is_final() {
            return;
        }
        r.state = state;
        if state != AnalysisState::Failed && state != AnalysisState::Cancelled {
            r.elapsed_ms = r.elapsed_ms.min(r.spec.window_ms);
        }
        r.reason = Some(reason);
        r.action = action;
        r.detected_at_ms = detected_at_ms;
        r.finished_at_unix_ms = Some(unix_ms());
        r.clone()
    };
    live.cancel.cancel();
    let written = agent.ledger.store.update(|f| {
        bookkeeping::record_verdict(f.app_mut(&live.app), &report);
        Ok::<_, crate::ledger::StoreError>(())
    });
    if let Err(e) = written {
        tracing::error!(app = %live.app, error = %e, "cannot record the analysis verdict in the ledger");
    }
    agent.analyses.forget(&live.app, live);
    tracing::info!(app = %live.app, release = %report.release, state = %report.state,
        reason = report.reason.as_deref().unwrap_or(""), "analysis finished");
    for event in super::events::of_verdict(&report) {
        agent.notifier.raise(event);
    }
}
