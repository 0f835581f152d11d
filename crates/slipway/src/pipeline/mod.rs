//! The deploy pipeline of DESIGN.md, in order. This file only calls the
//! steps; each lives in its own module. On failure, what this deploy did is
//! undone in reverse and traffic stays on (or returns to) the old release.
//!
//!  1. plan (pure; `--dry-run` stops here)      7. migrate (one-off task next to the db)
//!  2. preflight: engine, git ref, repair       8. start the idle slot
//!  3. provision network, agent; take the lock; 9. pre-switch hook, in the new slot
//!     the pre-deploy hook; upgrade an agent       once healthy
//!     of another build
//!  4. build `<app>:<release>`                  10. switch through the agent + confirm
//!  5. provision the database (+ extensions)    11. show the agent's analysis live
//!  6. read what is pending; snapshot the       12. retire old slot, prune, record, unlock
//!     database (by default only if something is)
//!
//! The agent starts its post-deploy analysis at the switch itself and
//! switches back on failure, whether or not this command is still running.
//! The post-deploy hook runs last, after success or failure, once the lock
//! is released; it cannot change the outcome.

pub mod agent;
pub mod analysis;
pub mod build;
pub mod ci_gate;
pub mod context;
pub mod events;
pub mod gateway;
pub mod hooks;
pub mod http_probe;
pub mod lock;
pub mod maintenance;
pub mod progress;
pub mod provision;
pub mod record;
pub mod recover;
pub mod release;
pub mod retire;
pub mod rollback;
pub mod slot;
pub mod teardown;
pub mod watch;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use context::{StepError, Target};
use progress::{Progress, StepRecord};
use release::Release;

use crate::providers::docker::names::Slot;
use crate::tasks::{self, MigrateAction, Pending, TaskContext};
use slipway_core::analysis::{AnalysisAction, AnalysisState};
use slipway_core::config::hooks::HookPoint;
use slipway_core::config::schema::SnapshotWhen;
use slipway_core::notify::{EventKind, Severity};

#[derive(Clone, Debug, Default)]
pub struct DeployOptions {
    pub git_ref: Option<String>,
    pub skip_migrations: bool,
    /// Maintenance mode from the migrate step to the switch.
    pub maintenance: bool,
    /// The CI gate's `--skip-ci-check --reason`.
    pub ci: ci_gate::GateOptions,
}

#[derive(Debug, serde::Serialize)]
pub struct DeployReport {
    pub deployment_id: String,
    pub environment: String,
    pub release: Release,
    pub image: String,
    pub slot: String,
    pub previous_release: Option<String>,
    pub url: String,
    pub snapshot: Option<String>,
    /// Why no snapshot was taken, when none was.
    pub snapshot_skipped: Option<String>,
    pub migrations: serde_json::Value,
    pub steps: Vec<StepRecord>,
    pub total_ms: u64,
    /// Milliseconds from the command's start to the moment the agent switched.
    pub switched_after_ms: Option<u64>,
    /// The host's analysis as last seen (it may still be running).
    pub analysis: Option<slipway_core::analysis::AnalysisReport>,
    /// The CI gate's outcome (passed with its checks, or skipped with the
    /// reason); absent without `deployment.require_ci` or `--skip-ci-check`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<serde_json::Value>,
}

/// A failed deploy: which step, why, what to do; traffic state included.
#[derive(Debug)]
pub struct DeployFailure {
    pub step: String,
    pub error: StepError,
    pub rolled_back: bool,
    pub steps: Vec<StepRecord>,
}

pub async fn deploy(
    t: &Target,
    opts: &DeployOptions,
    progress: &mut Progress<'_>,
) -> Result<DeployReport, DeployFailure> {
    let deployment_id = record::new_deployment_id();
    let mut state = Run {
        id: deployment_id.clone(),
        ..Run::default()
    };
    let result = run(t, opts, progress, &mut state).await;
    let mut failure = match result {
        Ok(mut report) => {
            let facts = hooks::Facts::new(
                t,
                &report.release,
                &report.deployment_id,
                report.previous_release.as_deref(),
            );
            let outcome = hooks::Outcome {
                status: "succeeded",
                slot: Some(report.slot.clone()),
                runtime_ms: progress.elapsed().as_millis() as u64,
                failed_step: None,
                error: None,
            };
            hooks::post_deploy(t, &facts, &outcome, progress).await;
            report.steps = progress.steps.clone();
            return Ok(report);
        }
        Err(f) => f,
    };
    // Undo, in reverse.
    let mut rolled_back = state.switched_back_by_agent;
    if state.switched && !state.switched_back_by_agent {
        if let Some(old) = state.stopped_old_slot {
            // exclusive_jobs stopped it at the switch; it must answer again.
            let _ = t.engine.start(&t.names.slot(old)).await;
        }
        if let (Some(old), Some(previous)) = (state.old_slot, state.previous.clone()) {
            // Through `deploy` to the still-warm old slot rather than the
            // agent's `rollback` verb: the ledger's current deployment is
            // still the old release (this one was never recorded active),
            // so the agent must not swap current and previous.
            let started = Instant::now();
            let back = slot::switch_when_healthy(t, old, &previous, None).await;
            rolled_back = back.is_ok();
            progress.done(
                "switch back",
                started,
                rolled_back,
                match &back {
                    Ok(_) => format!("traffic is back on {previous} in {}", t.names.slot(old)),
                    Err(e) => format!("FAILED: {e}"),
                },
            );
        }
    }
    if let Some(slot) = state.started_slot
        && (!state.switched || rolled_back)
    {
        let _ = t.engine.remove(&t.names.slot(slot)).await;
        progress.note(&format!(
            "removed the new release's container {}",
            t.names.slot(slot)
        ));
    }
    let about = events::About {
        release: state.release.as_ref().map(|r| r.id.clone()),
        previous_release: state.previous.clone(),
        deployment_id: Some(state.id.clone()),
    };
    let safe = !state.switched || rolled_back;
    if let Some(more) =
        maintenance::after_failure(t, progress, &mut state.maintenance, safe, &about).await
    {
        let hint = failure.1.hint.take();
        failure.1.hint = Some(hint.map_or(more.clone(), |h| format!("{h}\n  {more}")));
    }
    if let Some(release) = &state.release {
        let mut extra = BTreeMap::new();
        if let Some(s) = &state.snapshot {
            extra.insert("snapshot".into(), json!(s));
        }
        if let Some(a) = &state.analysis {
            extra.insert("analysis".into(), json!(a));
        }
        if let Some(ci) = &state.ci {
            extra.insert("ci".into(), ci.clone());
        }
        let deployment = record::deployment(
            &state.id,
            release,
            record::Outcome {
                status: if rolled_back { "rolled_back" } else { "failed" },
                health: "unhealthy",
                slot: state.started_slot.map(|s| s.to_string()),
                migrations_run: state.migrations_run,
                error: Some(format!("{}: {}", failure.0, failure.1.message)),
                duration_ms: Some(progress.elapsed().as_millis() as u64),
                extra,
            },
        );
        let _ = record::record(t, deployment).await;
        release.cleanup(&t.config.root);
    }
    if let Some(lock_id) = &state.lock_id {
        let _ = lock::release(t, lock_id).await;
    }
    if let Some(h) = state.heartbeat.take() {
        h.abort();
    }
    raise_failure(t, progress, &state, &failure, rolled_back).await;
    // Only a deploy that took the lock ran at all (one refused by a held
    // lock or a bad ref never started, and is not the hook's business).
    if let (Some(release), Some(_)) = (&state.release, &state.lock_id) {
        let facts = hooks::Facts::new(t, release, &state.id, state.previous.as_deref());
        let outcome = hooks::Outcome {
            status: if rolled_back { "rolled_back" } else { "failed" },
            slot: state.started_slot.map(|s| s.to_string()),
            runtime_ms: progress.elapsed().as_millis() as u64,
            failed_step: Some(failure.0.clone()),
            error: Some(failure.1.message.clone()),
        };
        hooks::post_deploy(t, &facts, &outcome, progress).await;
    }
    Err(DeployFailure {
        step: failure.0,
        error: failure.1,
        rolled_back,
        steps: progress.steps.clone(),
    })
}

/// What this deploy has done so far (for the undo).
#[derive(Default)]
struct Run {
    id: String,
    release: Option<Release>,
    lock_id: Option<String>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    started_slot: Option<Slot>,
    switched: bool,
    stopped_old_slot: Option<Slot>,
    old_slot: Option<Slot>,
    previous: Option<String>,
    snapshot: Option<String>,
    migrations_run: Option<u32>,
    /// The agent's analysis already switched traffic back (nothing to undo
    /// at the route).
    switched_back_by_agent: bool,
    analysis: Option<slipway_core::analysis::AnalysisReport>,
    maintenance: maintenance::InDeploy,
    /// The CI gate's outcome, for the history entry (`extra.ci`).
    ci: Option<serde_json::Value>,
}

type Failed = (String, StepError);

fn at(step: &str) -> impl FnOnce(StepError) -> Failed + '_ {
    move |e| (step.to_string(), e)
}

async fn run(
    t: &Target,
    opts: &DeployOptions,
    progress: &mut Progress<'_>,
    state: &mut Run,
) -> Result<DeployReport, Failed> {
    let command_started = Instant::now();

    // 2. preflight: the git ref, and repair of an interrupted earlier run.
    let s = Instant::now();
    let release = release::resolve(&t.config.root, opts.git_ref.as_deref()).map_err(|e| {
        (
            "preflight".to_string(),
            StepError::new(e.message).hint(e.hint),
        )
    })?;
    // The CI gate, before anything is built (a refusal records nothing: no
    // deploy ran).
    let gate = ci_gate::check(
        &t.config,
        &release,
        &opts.ci,
        &|name: &str| std::env::var(name).ok(),
        &|n: &str| progress.note(n),
    )
    .await;
    let gate = match gate {
        Ok(g) => g,
        Err(e) => {
            release.cleanup(&t.config.root);
            return Err((
                "preflight".to_string(),
                StepError::new(e.message).hint(e.hint),
            ));
        }
    };
    state.ci = gate.record();
    state.release = Some(release.clone());
    recover::recover(t, recover::wait_for_migrations(t), &|n: &str| {
        progress.note(n)
    })
    .await
    .map_err(at("preflight"))?;
    progress.done(
        "preflight",
        s,
        true,
        format!(
            "engine {} (API {}) at {}, release {} ({}); {}",
            t.engine.server_version,
            t.engine.api_version,
            t.engine.host,
            release.id,
            release.version,
            gate.summary()
        ),
    );

    // 3. network + agent, then the lock.
    let s = Instant::now();
    let tools_image = tasks::ensure_tools_image(&t.engine, &|l: &str| tracing::info!("{l}"))
        .await
        .map_err(|e| ("provision".to_string(), e.into()))?;
    provision::network(t).await.map_err(at("provision"))?;
    let agent = agent::ensure(t, &tools_image)
        .await
        .map_err(at("provision"))?;
    progress.done(
        "provision",
        s,
        true,
        format!(
            "network {}, agent {}{}",
            t.names.network(),
            t.names.agent(),
            if agent.created { " (created)" } else { "" }
        ),
    );
    let agent_plan = agent::deploy_agent_plan(&agent, &tools_image, env!("CARGO_PKG_VERSION"));
    match agent_plan {
        agent::DeployAgentPlan::KeepNewer => progress.note(&format!(
            "the agent runs a newer Slipway's build ({}); kept. `slipway agent upgrade {}` \
             replaces it with this one's",
            agent.version.agent_version, t.config.environment
        )),
        agent::DeployAgentPlan::Legacy => progress.note(&format!(
            "the agent predates gap-free upgrades (it publishes the port itself); run \
             `slipway agent upgrade {} --allow-gap` once at a quiet moment",
            t.config.environment
        )),
        agent::DeployAgentPlan::Keep | agent::DeployAgentPlan::Upgrade => {}
    }
    let s = Instant::now();
    let held = lock::acquire(t, &state.id).await.map_err(at("lock"))?;
    if let Some(w) = &held.warning {
        progress.note(w);
    }
    state.lock_id = Some(held.lock.lock_id.clone());
    state.heartbeat = Some(lock::heartbeat(
        t,
        &held.lock.lock_id,
        Duration::from_secs(60),
    ));
    let ledger = t.ledger().await.map_err(at("lock"))?;
    // A release still under analysis is superseded by this deploy: its
    // build and migration load the host (which would skew the figures),
    // and this release gets its own analysis from its switch.
    if let Some(running) = ledger
        .as_ref()
        .and_then(|l| l.analysis.as_ref())
        .filter(|a| !a.state.is_final())
    {
        analysis::cancel(
            t,
            format!(
                "superseded by deployment {} of {}, which gets its own analysis",
                state.id, release.id
            ),
        )
        .await
        .map_err(at("lock"))?;
        progress.note(&format!(
            "ended the analysis of {} ({} of {} done): this deploy supersedes it",
            running.release,
            analysis::clock(running.elapsed_ms),
            analysis::clock(running.spec.window_ms)
        ));
    }
    state.maintenance = maintenance::at_lock(t, ledger.as_ref(), opts.maintenance, &|n: &str| {
        progress.note(n)
    });
    let active = Target::active_slot(ledger.as_ref());
    state.previous = ledger
        .as_ref()
        .and_then(|l| l.route.as_ref()?.active.as_ref().map(|a| a.release.clone()));
    let idle = active.map_or(Slot::Blue, Slot::other);
    state.old_slot = active;
    record::record(
        t,
        record::deployment(
            &state.id,
            &release,
            record::Outcome {
                status: "in_progress",
                health: "unknown",
                slot: Some(idle.to_string()),
                migrations_run: None,
                error: None,
                duration_ms: None,
                extra: state
                    .ci
                    .iter()
                    .map(|ci| ("ci".to_string(), ci.clone()))
                    .collect(),
            },
        ),
    )
    .await
    .map_err(at("lock"))?;
    progress.done(
        "lock",
        s,
        true,
        format!("held as {} ({})", held.lock.locked_by, held.lock.lock_id),
    );
    let about = events::About {
        release: Some(release.id.clone()),
        previous_release: state.previous.clone(),
        deployment_id: Some(state.id.clone()),
    };
    if let Some(old) = &held.took_over {
        let e = events::event(
            t,
            EventKind::StaleLockTakenOver,
            Severity::Warning,
            &about,
            format!("{}: a stale deploy lock was taken over", events::subject(t)),
            format!(
                "the deploy lock held by {} had expired; deployment {} took it over. \
                 If that deploy is still running somewhere, stop it",
                old.describe(),
                state.id
            ),
            json!({ "stale_lock": old }),
        );
        events::raise(t, progress.printer(), e).await;
    }

    // The operator's pre-deploy hook may still refuse: nothing has changed
    // on the target but the lock and the in-progress record.
    let facts = hooks::Facts::new(t, &release, &state.id, state.previous.as_deref());
    hooks::pre_deploy(t, &facts, progress)
        .await
        .map_err(at(HookPoint::PreDeploy.step()))?;

    // 3b. An agent from another Slipway build is replaced by this one's,
    // under the lock, before this deploy's switch (no traffic gap).
    if agent_plan == agent::DeployAgentPlan::Upgrade {
        let s = Instant::now();
        let upgraded = agent::upgrade(t, &tools_image, false, &|l: &str| tracing::info!("{l}"))
            .await
            .map_err(at("agent upgrade"))?;
        progress.done(
            "agent upgrade",
            s,
            true,
            format!(
                "{} → {} ({} → {}), both served for {} ms",
                upgraded.from_version,
                upgraded.to_version,
                upgraded.from_image,
                upgraded.to_image,
                upgraded.beside_ms
            ),
        );
    }

    // Where this environment's events go, then the first of them.
    match events::configure(t).await {
        Ok(channels) if !channels.is_empty() => {
            progress.note(&format!("notifications: {}", channels.join(", ")))
        }
        Ok(_) => {}
        Err(e) => progress.note(&format!(
            "note: notifications not configured on the agent: {}",
            e.message
        )),
    }
    let started_event = events::event(
        t,
        EventKind::DeployStarted,
        Severity::Info,
        &about,
        format!("{}: deploying {}", events::subject(t), release.id),
        format!(
            "{} deploys {} ({}) over {}",
            release.deployer,
            release.id,
            release.version,
            state.previous.as_deref().unwrap_or("nothing")
        ),
        json!({ "deployed_by": release.deployer, "version": release.version }),
    );
    events::raise(t, progress.printer(), started_event).await;

    // 4. build.
    let s = Instant::now();
    let built = build::image(t, &release, progress)
        .await
        .map_err(at("build"))?;
    let image = t.names.image(&release.id);
    progress.done(
        "build",
        s,
        true,
        format!("{image}{}", if built { "" } else { " (cached)" }),
    );

    // 5. database.
    let s = Instant::now();
    let created = provision::database(t).await.map_err(at("database"))?;
    progress.done(
        "database",
        s,
        true,
        if created.is_empty() {
            "ready, extensions checked".to_string()
        } else {
            format!("created {}", created.join(", "))
        },
    );

    // 6. snapshot: only when there is a schema to protect and (by default)
    // a migration to protect it from. Whether one is pending is read first,
    // in milliseconds, from the database container.
    let ctx = TaskContext {
        engine: &t.engine,
        names: &t.names,
        config: &t.config,
    };
    let migrations_dir = release
        .source_root
        .join(&t.config.settings.database.migrations);
    let mut snapshot = None;
    let mut snapshot_skipped = None;
    let mut pending = None;
    if !opts.skip_migrations {
        let s = Instant::now();
        let p = tasks::pending_migrations(&ctx, &migrations_dir).await;
        progress.done("pending", s, true, describe_pending(&p));
        pending = Some(p);
    }
    if let Some(p) = &pending {
        let s = Instant::now();
        let when = t.config.settings.database.snapshots.when;
        let skip = if when == SnapshotWhen::WhenMigrating && matches!(p, Pending::Nothing { .. }) {
            Some("no pending migration (database.snapshots.when: when_migrating)".to_string())
        } else if tasks::database_has_schema(&ctx)
            .await
            .map_err(|e| ("snapshot".to_string(), e.into()))?
        {
            None
        } else {
            Some("the database has no schema yet".to_string())
        };
        if let Some(why) = skip {
            progress.done("snapshot", s, true, format!("skipped: {why}"));
            snapshot_skipped = Some(why);
        } else {
            let snap = tasks::snapshot_create(&ctx, "pre-migrate", &release.id, &release.commit)
                .await
                .map_err(|e| ("snapshot".to_string(), e.into()))?;
            let path = snap.path.display().to_string();
            progress.done("snapshot", s, true, path.clone());
            snapshot = Some(path);
            state.snapshot = snapshot.clone();
        }
    }

    // 6b. `--maintenance`: the public gets the maintenance page from here
    // to the switch, and the migration gets its own, longer timeouts.
    if opts.maintenance {
        let s = Instant::now();
        let nothing = matches!(pending, Some(Pending::Nothing { .. }));
        let serving = state.previous.is_some();
        let detail = maintenance::before_migrate(
            t,
            progress.printer(),
            &mut state.maintenance,
            &state.id,
            nothing,
            serving,
            &about,
        )
        .await
        .map_err(at("maintenance"))?;
        progress.done("maintenance", s, true, detail);
    }
    let extended = state
        .maintenance
        .owned
        .map(|_| maintenance::extended_timeouts(&t.config));
    let migrate_ctx = TaskContext {
        config: extended.as_ref().unwrap_or(&t.config),
        ..ctx
    };

    // 7. migrate, with the new release's migrations, next to the database
    // (no container at all when nothing is pending).
    let mut migrations = json!(null);
    if let Some(Pending::Nothing { version }) = &pending {
        let s = Instant::now();
        state.migrations_run = Some(0);
        migrations = json!({
            "from": version, "to": version, "applied": [], "adopted": [],
            "skipped": "nothing pending",
        });
        progress.done(
            "migrate",
            s,
            true,
            format!("nothing to apply, at version {}", show_version(*version)),
        );
    } else if pending.is_some() {
        let s = Instant::now();
        let report = tasks::migrate(
            &migrate_ctx,
            &tools_image,
            &migrations_dir,
            MigrateAction::Up { limit: None },
            Some(&release.id),
        )
        .await;
        match report {
            Ok(r) => {
                let applied = r
                    .get("applied")
                    .and_then(|a| a.as_array())
                    .map_or(0, |a| a.len());
                state.migrations_run = Some(applied as u32);
                progress.done(
                    "migrate",
                    s,
                    true,
                    format!(
                        "{applied} applied, now at version {}",
                        r.get("to").map(|v| v.to_string()).unwrap_or_default()
                    ),
                );
                migrations = r;
            }
            Err(e) => {
                let mut err: StepError = e.into();
                if let Some(path) = &snapshot {
                    let name = std::path::Path::new(path)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    err = err.hint(format!(
                        "traffic stays on the current release. The database was snapshotted before migrating: {path}\n  restore it with: slipway snapshot restore {} {name} --yes",
                        t.config.environment
                    ));
                }
                return Err(("migrate".to_string(), err));
            }
        }
    }

    // 8. start the idle slot.
    let s = Instant::now();
    slot::start(t, idle, &release.id, &state.id)
        .await
        .map_err(at("start"))?;
    state.started_slot = Some(idle);
    progress.done(
        "start",
        s,
        true,
        format!("{} from {image}", t.names.slot(idle)),
    );

    // 9. The operator's pre-switch hook, inside the new slot once it is
    // healthy (smoke tests, cache warm-up); failing removes the slot.
    hooks::pre_switch(t, &facts, idle, progress)
        .await
        .map_err(at(HookPoint::PreSwitch.step()))?;

    // 9b. HTTPS: the host's shared entry point runs, reaches this
    // environment, and holds a certificate for every hostname before any
    // traffic moves.
    if gateway::is_used(t) {
        let s = Instant::now();
        let certs = gateway::prepare(t, &tools_image)
            .await
            .map_err(at("https"))?;
        progress.done(
            "https",
            s,
            true,
            match certs.as_slice() {
                [] => "entry point ready (tls: off)".to_string(),
                certs => certs
                    .iter()
                    .map(|c| format!("{} ({})", c.host, c.source))
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        );
    }

    // 10. switch through the agent (it health-checks the slot first), then confirm.
    let client = http_probe::client();
    let baseline = watch::baseline(t, &client).await;
    let s = Instant::now();
    let analysis_spec = analysis::spec(t, &state.id);
    let report = slot::switch_when_healthy(t, idle, &release.id, analysis_spec.clone())
        .await
        .map_err(at("switch"))?;
    state.switched = true;
    let switched_after = command_started.elapsed();
    let lift = Instant::now();
    if let Some(secs) =
        maintenance::lift_owned(t, progress.printer(), &mut state.maintenance, &about)
            .await
            .map_err(at("switch"))?
    {
        let detail = format!("lifted at the switch, after {secs:.1}s: the new release serves");
        progress.done("maintenance", lift, true, detail);
    }
    if state.maintenance.kept {
        progress.note("maintenance mode stays on: the public port answers its page, so only the agent's health check confirmed the release");
    } else {
        watch::confirm(t, &client, &release.id)
            .await
            .map_err(at("switch"))?;
    }
    if gateway::is_used(t) {
        gateway::route(t).await.map_err(at("switch"))?;
    }
    progress.done(
        "switch",
        s,
        true,
        format!(
            "{} → {} after {} health checks",
            report.previous_release.as_deref().unwrap_or("(none)"),
            release.id,
            report.health_attempts
        ),
    );

    // Services whose background jobs must not run twice: stop the old slot now.
    if t.config.settings.app.exclusive_jobs
        && let Some(old) = active
    {
        retire::old_slot(t, old).await.map_err(at("switch"))?;
        state.stopped_old_slot = Some(old);
    }

    // 11. watch: the agent analyses the release from the switch on; show it
    // live for `watch_window`, then leave it to the agent.
    let s = Instant::now();
    let stay = t.config.settings.deployment.watch_window.0;
    let mut analysis_report = None;
    if let Some(spec) = &analysis_spec {
        let printer = progress.printer();
        let seen = analysis::follow(t, &state.id, stay, Duration::from_secs(5), &|l: &str| {
            printer.note(&format!("    {l}"))
        })
        .await
        .map_err(at("watch"))?;
        state.analysis = seen.clone();
        if let Some(r) = &seen
            && r.state == AnalysisState::Failed
        {
            let reason = r
                .reason
                .clone()
                .unwrap_or_else(|| "the analysis failed".into());
            match &r.action {
                Some(AnalysisAction::SwitchedBack {
                    detection_to_switch_ms,
                    to_release,
                    ..
                }) => {
                    state.switched_back_by_agent = true;
                    return Err((
                        "watch".to_string(),
                        StepError::new(format!(
                            "the host's analysis failed the release: {reason}; traffic was switched back to {to_release} {:.1} s after the problem started",
                            *detection_to_switch_ms as f64 / 1000.0
                        ))
                        .hint(format!(
                            "see `slipway status {env}` and `slipway logs {env} --deploy {}`; fix the release and deploy again",
                            state.id,
                            env = t.config.environment
                        )),
                    ));
                }
                Some(AnalysisAction::Alerted) => progress.note(&format!(
                    "warning: the analysis failed ({reason}); on_failure is `alert`, so traffic stays on {}. `slipway rollback {}` switches back",
                    release.id, t.config.environment
                )),
                // The agent could not switch back (the old slot was stopped,
                // e.g. exclusive_jobs): this command's undo does it.
                _ => {
                    return Err(("watch".to_string(), StepError::new(format!(
                        "the host's analysis failed the release: {reason}"
                    ))));
                }
            }
        }
        let detail = match &seen {
            Some(r) if r.state.is_final() => {
                format!("analysis {}: {}", r.state, analysis::progress_line(r))
            }
            Some(r) => format!(
                "{}; the agent carries on for {} more (window {}): `slipway watch {}`",
                analysis::progress_line(r),
                analysis::clock(r.spec.window_ms.saturating_sub(r.elapsed_ms)),
                analysis::clock(spec.window_ms),
                t.config.environment
            ),
            None => "the agent reported no analysis (an older agent?)".to_string(),
        };
        progress.done("watch", s, true, detail);
        analysis_report = seen;
    } else if state.maintenance.kept {
        progress.done(
            "watch",
            s,
            true,
            "skipped: maintenance mode is on, the public port answers its page",
        );
    } else {
        let client = http_probe::client();
        let outcome = watch::watch(t, &client, &release.id, stay, baseline)
            .await
            .map_err(at("watch"))?;
        progress.done(
            "watch",
            s,
            true,
            format!(
                "{}s, {} probes, {} failed, p50 {} (deployment.analysis.window is 0s: no host analysis)",
                stay.as_secs(),
                outcome.probes,
                outcome.failures,
                outcome
                    .p50
                    .map_or("-".to_string(), |d| format!("{}ms", d.as_millis()))
            ),
        );
    }
    // The old slot stays warm while the agent may still switch back to it.
    let analysis_running = analysis_report
        .as_ref()
        .is_some_and(|r| !r.state.is_final());

    // 12. retire, prune, record, unlock.
    let s = Instant::now();
    if let Some(old) = active
        && !t.config.settings.app.exclusive_jobs
        && !analysis_running
    {
        retire::old_slot(t, old).await.map_err(at("retire"))?;
    }
    let pruned = retire::prune_images(t).await.map_err(at("retire"))?;
    let mut extra = BTreeMap::new();
    extra.insert("image".into(), json!(image));
    if let Some(to) = migrations.get("to").filter(|v| !v.is_null()) {
        extra.insert(rollback::SCHEMA_VERSION.into(), to.clone());
    }
    if let Some(snap) = &snapshot {
        extra.insert("snapshot".into(), json!(snap));
    }
    if let Some(a) = &analysis_report {
        extra.insert("analysis".into(), json!(a));
    }
    if let Some(ci) = &state.ci {
        extra.insert("ci".into(), ci.clone());
    }
    record::record(
        t,
        record::deployment(
            &state.id,
            &release,
            record::Outcome {
                status: "active",
                health: "healthy",
                slot: Some(idle.to_string()),
                migrations_run: state.migrations_run,
                error: None,
                duration_ms: Some(progress.elapsed().as_millis() as u64),
                extra,
            },
        ),
    )
    .await
    .map_err(at("retire"))?;
    if let Some(h) = state.heartbeat.take() {
        h.abort();
    }
    if let Some(lock_id) = state.lock_id.take() {
        lock::release(t, &lock_id).await.map_err(at("retire"))?;
    }
    release.cleanup(&t.config.root);
    progress.done(
        "retire",
        s,
        true,
        format!(
            "{}; {} old image(s) pruned",
            match active {
                None => "no old slot".to_string(),
                Some(a) if analysis_running && !t.config.settings.app.exclusive_jobs => format!(
                    "{} kept running (warm) while the analysis may switch back to it",
                    t.names.slot(a)
                ),
                Some(a) => format!("{} stopped and kept for rollback", t.names.slot(a)),
            },
            pruned.len()
        ),
    );
    let done = events::event(
        t,
        EventKind::DeploySucceeded,
        Severity::Info,
        &about,
        format!("{}: {} deployed", events::subject(t), release.id),
        match &analysis_report {
            Some(r) if !r.state.is_final() => format!(
                "{} serves {} (was {}). The host's analysis carries on for {}; its verdict is notified",
                t.config.environment,
                release.id,
                state.previous.as_deref().unwrap_or("nothing"),
                analysis::clock(r.spec.window_ms.saturating_sub(r.elapsed_ms))
            ),
            Some(r) => format!(
                "{} serves {} (was {}); analysis {}",
                t.config.environment,
                release.id,
                state.previous.as_deref().unwrap_or("nothing"),
                r.state
            ),
            None => format!(
                "{} serves {} (was {})",
                t.config.environment,
                release.id,
                state.previous.as_deref().unwrap_or("nothing")
            ),
        },
        json!({ "duration_ms": progress.elapsed().as_millis() as u64, "url": t.public_url("/") }),
    );
    events::raise(t, progress.printer(), done).await;

    Ok(DeployReport {
        deployment_id: state.id.clone(),
        environment: t.config.environment.clone(),
        image,
        slot: idle.to_string(),
        previous_release: state.previous.clone(),
        url: t.public_url("/"),
        snapshot,
        snapshot_skipped,
        migrations,
        steps: progress.steps.clone(),
        total_ms: command_started.elapsed().as_millis() as u64,
        switched_after_ms: Some(switched_after.as_millis() as u64),
        analysis: analysis_report,
        ci: state.ci.clone(),
        release,
    })
}

/// The event of a failed deploy: failed, or rolled back (traffic is on the
/// previous release again). A switch-back by the agent's analysis is
/// notified by the agent itself.
async fn raise_failure(
    t: &Target,
    progress: &Progress<'_>,
    state: &Run,
    failure: &Failed,
    rolled_back: bool,
) {
    let about = events::About {
        release: state.release.as_ref().map(|r| r.id.clone()),
        previous_release: state.previous.clone(),
        deployment_id: Some(state.id.clone()),
    };
    let release = about.release.clone().unwrap_or_else(|| "?".into());
    let (kind, title) = if rolled_back && !state.switched_back_by_agent {
        (
            EventKind::DeployRolledBack,
            format!(
                "{}: {release} failed at {} and traffic went back to {}",
                events::subject(t),
                failure.0,
                state.previous.as_deref().unwrap_or("the previous release")
            ),
        )
    } else {
        (
            EventKind::DeployFailed,
            format!(
                "{}: deploy of {release} failed at {}",
                events::subject(t),
                failure.0
            ),
        )
    };
    let mut message = failure.1.message.clone();
    if let Some(hint) = &failure.1.hint {
        message.push_str("\nNext: ");
        message.push_str(hint);
    }
    let e = events::event(
        t,
        kind,
        Severity::Critical,
        &about,
        title,
        message,
        json!({ "step": failure.0, "rolled_back": rolled_back, "by": "deploy" }),
    );
    events::raise(t, progress.printer(), e).await;
}

/// The `pending` step's detail.
fn describe_pending(p: &Pending) -> String {
    match p {
        Pending::Nothing { version } => format!(
            "none: the database is at version {}, as the release",
            show_version(*version)
        ),
        Pending::Some { from, versions } => format!(
            "{} to apply ({}) over version {}",
            versions.len(),
            versions
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            show_version(*from)
        ),
        Pending::Unknown { reason } => format!("left to the migrate step: {reason}"),
    }
}

fn show_version(v: Option<u64>) -> String {
    v.map_or("none".into(), |v| v.to_string())
}
