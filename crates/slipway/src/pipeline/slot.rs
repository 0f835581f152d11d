//! Starting a release in a slot and switching traffic to it through the
//! agent, which health-checks the slot itself before the atomic swap. The
//! CLI asks in short rounds so that a container that dies (e.g. a release
//! with a bad secret) is noticed at once, not at the end of the timeout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use slipway_core::admin::{AdminErrorKind, AdminRequest, AdminResult, DeployArgs, SwitchReport};
use slipway_core::analysis::AnalysisSpec;
use slipway_core::config::schema::DatabaseMode;

use super::context::{StepError, Target};
use crate::providers::docker::names::{LABEL_DEPLOYMENT, LABEL_RELEASE, LABEL_SLOT, Slot};
use crate::providers::docker::{AgentError, ContainerSpec};

/// The service's environment inside its container (secrets exposed here
/// only, on their way into the engine).
pub fn container_env(t: &Target, slot: Slot, release: &str) -> Result<Vec<String>, StepError> {
    let mut env: Vec<String> = t
        .config
        .app_env
        .iter()
        .filter(|(k, _)| k.as_str() != "POSTGRES_PASSWORD")
        .map(|(k, v)| format!("{k}={}", v.value.expose()))
        .collect();
    if t.config.settings.database.mode == DatabaseMode::Container
        && !t.config.app_env.contains_key("DATABASE_URL")
    {
        let url = crate::tasks::database_url(&t.config, &t.names)?;
        env.push(format!("DATABASE_URL={}", url.expose()));
    }
    env.push(format!("PORT={}", t.config.settings.app.port));
    env.push(format!("SLOT={slot}"));
    env.push(format!("SLIPWAY_RELEASE={release}"));
    env.push(format!("SLIPWAY_ENVIRONMENT={}", t.config.environment));
    Ok(env)
}

/// Creates and starts `slot` from `<app>:<release>` (replacing whatever
/// stopped container had that slot's name).
pub async fn start(
    t: &Target,
    slot: Slot,
    release: &str,
    deployment_id: &str,
) -> Result<(), StepError> {
    let name = t.names.slot(slot);
    // Never replace the container serving traffic, whatever the caller thinks.
    let ledger = t.ledger().await?;
    let route = ledger.as_ref().and_then(|l| l.route.as_ref());
    if route
        .and_then(|r| r.active.as_ref())
        .is_some_and(|a| a.target == t.slot_target(slot))
    {
        return Err(
            StepError::new(format!("refusing to replace {name}: it is serving traffic"))
                .hint("this is a bug in slot selection; run `slipway status` and report it"),
        );
    }
    // The slot kept warm for the running analysis' switch-back is about to
    // hold another release: that analysis must not switch back to it.
    if route
        .and_then(|r| r.previous.as_ref())
        .is_some_and(|p| p.target == t.slot_target(slot))
        && ledger
            .as_ref()
            .and_then(|l| l.analysis.as_ref())
            .is_some_and(|a| !a.state.is_final())
    {
        super::analysis::cancel(
            t,
            format!("deployment {deployment_id} replaces {name}, the slot it would switch back to"),
        )
        .await?;
    }
    let mut labels: HashMap<String, String> = t.names.labels("app");
    labels.insert(LABEL_SLOT.into(), slot.to_string());
    labels.insert(LABEL_RELEASE.into(), release.into());
    labels.insert(LABEL_DEPLOYMENT.into(), deployment_id.into());
    let spec = ContainerSpec {
        name: name.clone(),
        image: t.names.image(release),
        env: container_env(t, slot, release)?,
        labels,
        network: Some(t.names.network()),
        aliases: vec![name],
        restart: true,
        stop_timeout: Some(t.config.settings.deployment.drain_timeout.0.as_secs() as i64 + 5),
        ..Default::default()
    };
    t.engine.run(&spec).await?;
    Ok(())
}

/// Asks the agent to switch to `slot` once it is healthy, in rounds of a
/// few seconds up to `health.start_timeout`, failing early when the
/// container stops. With `analysis`, the agent analyses the slot from the
/// moment of the switch.
pub async fn switch_when_healthy(
    t: &Target,
    slot: Slot,
    release: &str,
    analysis: Option<AnalysisSpec>,
) -> Result<SwitchReport, StepError> {
    let limit = t.config.settings.health.start_timeout.0;
    let round = Duration::from_secs(5).max(
        t.config.settings.health.interval.0 * (t.config.settings.health.healthy_threshold + 2),
    );
    let started = Instant::now();
    let name = t.names.slot(slot);
    let hosts = t.config.settings.deployment.all_hostnames();
    let mut last_failure = String::new();
    loop {
        if let Some(e) = exited(t, &name).await {
            return Err(e);
        }
        let remaining = limit.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(StepError::new(format!(
                "the new release in {name} did not become healthy within {}s: {last_failure}",
                limit.as_secs()
            ))
            .hint(format!("see `slipway logs {} --app` and the service's {} endpoint; traffic stayed on the current release", t.config.environment, t.config.settings.health.path)));
        }
        let request = AdminRequest::Deploy(DeployArgs {
            app: t.names.route(),
            target: t.slot_target(slot),
            release: release.to_string(),
            slot: Some(slot.to_string()),
            hosts: Vec::clone(&hosts),
            health: t.health_check(round.min(remaining)),
            drain_timeout_ms: t.config.settings.deployment.drain_timeout.0.as_millis() as u64,
            analysis: analysis.clone(),
        });
        match t.agent_call(request).await {
            Ok(AdminResult::Switched(report)) => return Ok(report),
            Ok(other) => {
                return Err(StepError::new(format!(
                    "unexpected agent answer: {other:?}"
                )));
            }
            Err(AgentError::Refused(e)) if e.kind == AdminErrorKind::HealthCheckFailed => {
                last_failure = match &e.health {
                    Some(h) => format!(
                        "{} attempts on {}{}, saw [{}]{}",
                        h.attempts,
                        h.target,
                        h.path,
                        h.seen
                            .iter()
                            .rev()
                            .take(5)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                        h.last_body
                            .as_deref()
                            .map(|b| format!(
                                ", last body: {}",
                                b.chars().take(200).collect::<String>()
                            ))
                            .unwrap_or_default()
                    ),
                    None => e.message.clone(),
                };
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The error of a slot's container that stopped (or restarts in a loop)
/// before becoming healthy, with its last log lines; `None` while it runs.
async fn exited(t: &Target, name: &str) -> Option<StepError> {
    let c = t.engine.inspect(name).await?;
    if c.running && !c.crashing {
        return None;
    }
    let (out, err) = t.engine.logs(name, Some(15)).await.unwrap_or_default();
    let logs = format!("{}{}", out, err);
    Some(StepError::new(format!(
        "the new release's container {name} exited (code {}) before becoming healthy; last log lines:\n{}",
        c.exit_code.unwrap_or(-1),
        indent(logs.trim())
    ))
    .hint("fix the release or its configuration (`slipway config validate`); traffic stayed on the current release"))
}

/// Waits until `slot` passes the health check the switch will make (the
/// agent probes it from its network, changing nothing), in rounds up to
/// `health.start_timeout`, failing early when the container stops.
/// `Ok(None)`: the agent is too old to probe (the switch still checks).
pub async fn wait_healthy(t: &Target, slot: Slot) -> Result<Option<u32>, StepError> {
    let h = &t.config.settings.health;
    let limit = h.start_timeout.0;
    let round = Duration::from_secs(5).max(h.interval.0 * (h.healthy_threshold + 2));
    let started = Instant::now();
    let name = t.names.slot(slot);
    let target = t.slot_target(slot);
    let mut last_failure = String::new();
    loop {
        if let Some(e) = exited(t, &name).await {
            return Err(e);
        }
        let remaining = limit.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(StepError::new(format!(
                "the new release in {name} did not become healthy within {}s: {last_failure}",
                limit.as_secs()
            ))
            .hint(format!("see `slipway logs {} --app` and the service's {} endpoint; traffic stayed on the current release", t.config.environment, h.path)));
        }
        let check = t.health_check(round.min(remaining));
        let args = [
            "slipway-agent".to_string(),
            "ctl".into(),
            "probe".into(),
            target.clone(),
            "--health-path".into(),
            check.path.clone(),
            "--health-passes".into(),
            check.passes.to_string(),
            "--health-interval-ms".into(),
            check.interval_ms.to_string(),
            "--health-timeout-ms".into(),
            check.timeout_ms.to_string(),
            "--health-deadline-ms".into(),
            check.deadline_ms.to_string(),
        ];
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = t.engine.exec(&t.names.agent(), &argv, None).await?;
        let stdout = out.stdout_text();
        let answer = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
        match answer {
            Some(a) if a["ok"] == true => return Ok(a["attempts"].as_u64().map(|n| n as u32)),
            Some(a) => {
                let f = &a["failure"];
                last_failure = format!(
                    "{} attempts on {}{}, saw [{}]",
                    f["attempts"],
                    target,
                    check.path,
                    f["seen"]
                        .as_array()
                        .map(|s| s
                            .iter()
                            .rev()
                            .take(5)
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default()
                );
            }
            // An agent built before `ctl probe` (usage error).
            None if out.code == 2 => return Ok(None),
            None => {
                return Err(StepError::new(format!(
                    "the agent could not probe {target} (exit {}): {}",
                    out.code,
                    out.stderr_text().trim()
                ))
                .hint(format!(
                    "check the agent: `docker logs {}`",
                    t.names.agent()
                )));
            }
        }
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
