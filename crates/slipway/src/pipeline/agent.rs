//! The host's agent: provisioning it, upgrading it without a traffic gap,
//! and reading what `slipway agent status` shows.
//!
//! Two containers per environment:
//! - the *edge* (`<app>-<env>-edge`, `slipway-agent hold`) joins the
//!   environment's network and publishes the public port. It does nothing
//!   and never changes, so the port and the network namespace outlive every
//!   agent;
//! - the *agent* (`<app>-<env>-agent`) shares the edge's network namespace
//!   and listens on the port there.
//!
//! An upgrade starts the new agent beside the old one (`<…>-agent-next`,
//! `serve --take-over`): it takes the old agent's listening sockets, routes
//! and ledger over the state volume's handover socket and accepts on the
//! same sockets. Once it has the same routes, the old agent is stopped: it
//! stops accepting, finishes its requests and exits, and the new one owns
//! everything. If the new agent does not come up right, it is removed and
//! the old one carries on. See `slipway_agent::handover` for the protocol.

use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_core::admin::{
    AdminRequest, AdminResult, AgentRole, AppArgs, RouteStatus, VersionInfo,
};

use super::context::{StepError, Target};
use crate::providers::docker::names::LABEL_ROLE;
use crate::providers::docker::{AgentClient, AgentError, ContainerInfo, ContainerSpec, Engine};

/// Port the agent listens on inside the shared network namespace.
pub const AGENT_PORT: u16 = 8080;
const AGENT_STATE_DIR: &str = "/var/lib/slipway-agent";
/// A stopped agent's budget to finish its requests (its own shutdown
/// timeout is 30 s) before the engine kills it.
const AGENT_STOP_TIMEOUT: Duration = Duration::from_secs(40);
/// How long a new agent may take to answer.
const AGENT_START_WITHIN: Duration = Duration::from_secs(30);

/// Where one agent pair lives and how it is run: an environment's own
/// agent (see [`Target::agent_site`]) or the host's shared entry point
/// (see [`super::gateway`]). Everything below works on either.
pub struct AgentSite<'a> {
    pub engine: &'a Engine,
    /// The serving agent's container.
    pub agent: String,
    /// The container holding the ports and the network namespace.
    pub edge: String,
    /// The successor during an upgrade, and the replaced agent after it.
    pub next: String,
    pub leaving: String,
    /// The state volume (ledger, certificates).
    pub volume: String,
    /// The network the edge joins, under its own name as an alias.
    pub network: String,
    /// Published ports: (host address, host port, port in the namespace).
    pub ports: Vec<(String, u16, u16)>,
    /// `serve` arguments after the listen address and the state directory.
    pub serve_args: Vec<String>,
    /// Labels of the site's resources, by role.
    pub labels: std::collections::HashMap<String, String>,
    /// The route whose ledger must survive an upgrade, if the site keeps one.
    pub ledger_route: Option<String>,
    /// The command that creates the site when it is missing.
    pub create_with: String,
    /// `NAME=value` for the agent's container.
    pub env: Vec<String>,
    /// /etc/hosts entries of the edge (the agent shares its namespace).
    pub extra_hosts: Vec<String>,
}

impl AgentSite<'_> {
    fn labels(&self, role: &str) -> std::collections::HashMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(LABEL_ROLE.to_string(), role.to_string());
        labels
    }
}

impl Target {
    /// This environment's own agent pair.
    pub fn agent_site(&self) -> AgentSite<'_> {
        let n = &self.names;
        AgentSite {
            engine: &self.engine,
            agent: n.agent(),
            edge: n.edge(),
            next: n.agent_next(),
            leaving: n.agent_leaving(),
            volume: n.agent_volume(),
            network: n.network(),
            // Behind the host's shared entry point, the environment's own
            // port is for this machine's checks only.
            ports: vec![(
                if self.config.settings.deployment.all_hostnames().is_empty() {
                    "0.0.0.0".into()
                } else {
                    "127.0.0.1".into()
                },
                self.config.settings.deployment.public_port,
                AGENT_PORT,
            )],
            // Behind the entry point only it reaches this agent, and it says
            // whether the client came over HTTPS.
            serve_args: if self.config.settings.deployment.all_hostnames().is_empty() {
                Vec::new()
            } else {
                vec!["--forwarded-proto".into(), "keep".into()]
            },
            labels: n.labels("agent"),
            ledger_route: Some(n.route()),
            create_with: format!("slipway deploy {}", self.config.environment),
            env: Vec::new(),
            // Notification receivers on this machine (a self-hosted ntfy,
            // a relay) are reached from the agent as host.docker.internal.
            extra_hosts: vec!["host.docker.internal:host-gateway".into()],
        }
    }
}

fn agent_spec(site: &AgentSite<'_>, image: &str, name: &str, take_over: bool) -> ContainerSpec {
    let mut cmd = vec![
        "slipway-agent".to_string(),
        "serve".into(),
        "--listen".into(),
        format!("0.0.0.0:{AGENT_PORT}"),
        "--state-dir".into(),
        AGENT_STATE_DIR.into(),
    ];
    cmd.extend(site.serve_args.iter().cloned());
    if take_over {
        cmd.push("--take-over".into());
    }
    ContainerSpec {
        name: name.to_string(),
        image: image.to_string(),
        cmd: Some(cmd),
        labels: site.labels("agent"),
        env: site.env.clone(),
        network_of: Some(site.edge.clone()),
        volumes: vec![(site.volume.clone(), AGENT_STATE_DIR.into())],
        // A successor gets its restart policy once it has taken over: a
        // failed take-over must not be retried by the engine.
        restart: !take_over,
        stop_timeout: Some(AGENT_STOP_TIMEOUT.as_secs() as i64),
        ..Default::default()
    }
}

fn edge_spec(site: &AgentSite<'_>, image: &str) -> ContainerSpec {
    ContainerSpec {
        name: site.edge.clone(),
        image: image.to_string(),
        cmd: Some(vec!["slipway-agent".into(), "hold".into()]),
        labels: site.labels("edge"),
        network: Some(site.network.clone()),
        aliases: vec![site.edge.clone()],
        ports: site.ports.clone(),
        extra_hosts: site.extra_hosts.clone(),
        restart: true,
        stop_timeout: Some(5),
        ..Default::default()
    }
}

/// Whether `agent` shares the namespace of this very `edge` container (an
/// edge recreated since leaves the agent in a namespace nobody publishes).
pub fn is_joined(agent: &ContainerInfo, edge: &ContainerInfo) -> bool {
    agent.network_mode == format!("container:{}", edge.id)
        || agent.network_mode == format!("container:{}", edge.name)
}

/// An agent that publishes the port itself (made before edges existed): it
/// cannot be replaced without closing the port once.
pub fn is_legacy(agent: &ContainerInfo) -> bool {
    !agent.network_mode.starts_with("container:")
}

/// What [`ensure`] found or did.
pub struct Provisioned {
    /// The agent (and perhaps the edge) was created by this call.
    pub created: bool,
    /// The image the agent runs.
    pub image: String,
    /// It publishes the port itself (see [`is_legacy`]).
    pub legacy: bool,
    /// What the agent says of itself.
    pub version: VersionInfo,
}

/// What a deploy does about the running agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployAgentPlan {
    /// It runs this Slipway's image.
    Keep,
    /// It runs another build: replace it by this one's, without a gap.
    Upgrade,
    /// It is a newer version than this Slipway's: kept (two operators with
    /// two Slipway versions must not downgrade each other's agent on every
    /// deploy; `slipway agent upgrade` still can).
    KeepNewer,
    /// It publishes the port itself: only `agent upgrade --allow-gap` moves it.
    Legacy,
}

pub fn deploy_agent_plan(p: &Provisioned, own_image: &str, own_version: &str) -> DeployAgentPlan {
    if p.legacy {
        DeployAgentPlan::Legacy
    } else if p.image == own_image {
        DeployAgentPlan::Keep
    } else if is_newer(&p.version.agent_version, own_version) {
        DeployAgentPlan::KeepNewer
    } else {
        DeployAgentPlan::Upgrade
    }
}

/// `a > b` for dotted numeric versions (`0.10.0 > 0.9.3`); anything after a
/// `-` or `+` is ignored.
fn is_newer(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split(['-', '+'])
            .next()
            .unwrap_or_default()
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    parts(a) > parts(b)
}

/// This environment's edge and agent: see [`ensure_site`].
pub async fn ensure(t: &Target, tools_image: &str) -> Result<Provisioned, StepError> {
    ensure_site(&t.agent_site(), tools_image).await
}

/// The edge and the agent, created or started when missing or stopped,
/// then waited for until the agent answers. Leftovers of an interrupted
/// upgrade are settled first.
pub async fn ensure_site(
    site: &AgentSite<'_>,
    tools_image: &str,
) -> Result<Provisioned, StepError> {
    let engine = site.engine;
    settle_interrupted_upgrade(site).await?;
    let name = site.agent.clone();
    let mut agent = engine.inspect(&name).await;
    if let Some(a) = &agent
        && is_legacy(a)
    {
        if !a.running {
            engine.start(&name).await?;
        }
        let version = wait_answering(&AgentClient::new(engine, &name)).await?;
        return Ok(Provisioned {
            created: false,
            image: a.image.clone(),
            legacy: true,
            version,
        });
    }
    let mut created = false;
    let edge = match engine.inspect(&site.edge.clone()).await {
        Some(e) if e.running => e,
        Some(_) => {
            engine.start(&site.edge.clone()).await?;
            inspect_required(engine, &site.edge).await?
        }
        None => {
            engine.run(&edge_spec(site, tools_image)).await?;
            inspect_required(engine, &site.edge).await?
        }
    };
    // An agent in the namespace of an edge that has since been recreated or
    // restarted serves nobody: start it again inside the current one.
    if let Some(a) = &agent {
        let stale = !is_joined(a, &edge) || (a.running && a.started_at < edge.started_at);
        if stale {
            engine.remove(&name).await?;
            agent = None;
        }
    }
    let image = match agent {
        Some(a) => {
            if !a.running {
                engine.start(&name).await?;
            }
            a.image
        }
        None => {
            engine
                .ensure_volume(&site.volume.clone(), &site.labels("agent"))
                .await?;
            engine
                .run(&agent_spec(site, tools_image, &name, false))
                .await?;
            created = true;
            tools_image.to_string()
        }
    };
    let version = wait_answering(&AgentClient::new(engine, &name)).await?;
    Ok(Provisioned {
        created,
        image,
        legacy: false,
        version,
    })
}

async fn inspect_required(engine: &Engine, name: &str) -> Result<ContainerInfo, StepError> {
    engine
        .inspect(name)
        .await
        .ok_or_else(|| StepError::new(format!("container {name} vanished right after its start")))
}

/// Poll the agent's `version` until `wanted` holds of it, for at most
/// [`AGENT_START_WITHIN`]; `what` names the awaited state in the error.
async fn wait_version(
    agent: &AgentClient<'_>,
    what: &str,
    wanted: impl Fn(&VersionInfo) -> bool,
) -> Result<VersionInfo, StepError> {
    let started = Instant::now();
    loop {
        let last = version_of(agent).await;
        if let Ok(v) = &last
            && wanted(v)
        {
            return last.map_err(StepError::from);
        }
        if started.elapsed() > AGENT_START_WITHIN {
            let error = match last {
                Err(e) => StepError::from(e),
                Ok(_) => StepError::new(format!(
                    "the agent in {} did not become {what} within {} s",
                    agent.container(),
                    AGENT_START_WITHIN.as_secs()
                )),
            };
            return Err(error.hint(format!("see `docker logs {}`", agent.container())));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Until the agent answers at all.
async fn wait_answering(agent: &AgentClient<'_>) -> Result<VersionInfo, StepError> {
    wait_version(agent, "reachable", |_| true).await
}

/// An upgrade interrupted (the CLI killed) leaves `-agent-next` and perhaps
/// `-agent-leaving` behind. If the old agent is gone, the next one is the
/// agent; otherwise it is removed (the old agent then serves alone again).
async fn settle_interrupted_upgrade(site: &AgentSite<'_>) -> Result<(), StepError> {
    let engine = site.engine;
    if let Some(leaving) = engine.inspect(&site.leaving.clone()).await {
        engine.stop(&leaving.name, AGENT_STOP_TIMEOUT).await?;
        engine.remove(&leaving.name).await?;
    }
    let Some(next) = engine.inspect(&site.next.clone()).await else {
        return Ok(());
    };
    let current = engine.inspect(&site.agent.clone()).await;
    if next.running && current.as_ref().is_none_or(|c| !c.running) {
        if let Some(c) = current {
            engine.remove(&c.name).await?;
        }
        engine.rename(&next.name, &site.agent.clone()).await?;
        engine.set_restart(&site.agent.clone(), true).await?;
        tracing::warn!(
            "an interrupted agent upgrade had finished its take-over; kept the new agent"
        );
    } else {
        engine.stop(&next.name, AGENT_STOP_TIMEOUT).await?;
        engine.remove(&next.name).await?;
        tracing::warn!("removed the agent of an interrupted upgrade; the old agent serves");
    }
    Ok(())
}

/// What an upgrade did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpgradeReport {
    pub from_image: String,
    pub to_image: String,
    pub from_version: String,
    pub to_version: String,
    /// Both agents accepted on the port for this long.
    pub beside_ms: u64,
    pub total_ms: u64,
    /// Routes and ledger read back from the new agent equal the old one's.
    pub routes_kept: bool,
    pub ledger_kept: bool,
    /// It was an agent without an edge, replaced with a short gap.
    pub gap: bool,
}

fn version_text(v: &VersionInfo) -> String {
    if v.build.is_empty() {
        v.agent_version.clone()
    } else {
        format!("{} ({})", v.agent_version, v.build)
    }
}

/// What must survive an upgrade of each route: where traffic goes, where it
/// went before, and whether it is paused or in maintenance (not the
/// in-flight counts or drains of one agent).
pub fn route_essentials(routes: &[RouteStatus]) -> Vec<Value> {
    let target = |t: &Option<slipway_core::admin::TargetStatus>| {
        t.as_ref()
            .map(|t| serde_json::json!([t.target, t.release, t.slot]))
    };
    let mut out: Vec<Value> = routes
        .iter()
        .map(|r| {
            serde_json::json!({
                "app": r.app, "hosts": r.hosts, "active": target(&r.active),
                "previous": target(&r.previous), "paused": r.paused,
                "maintenance": r.maintenance.is_some(),
            })
        })
        .collect();
    out.sort_by_key(|v| v["app"].to_string());
    out
}

/// The app's ledger without the lock's expiry, which a heartbeat may
/// legitimately renew while an upgrade runs inside a deploy.
pub fn ledger_essentials(state: &Value) -> Value {
    let mut state = state.clone();
    if let Some(lock) = state.get_mut("lock").and_then(Value::as_object_mut) {
        lock.remove("lock_expires_at");
    }
    state
}

/// The agent's `version` answer.
pub async fn version_of(agent: &AgentClient<'_>) -> Result<VersionInfo, AgentError> {
    match agent.call(&AdminRequest::Version).await? {
        AdminResult::Version(v) => Ok(v),
        other => Err(AgentError::Unreachable {
            container: agent.container().to_string(),
            reason: format!("unexpected answer {other:?}"),
        }),
    }
}

async fn routes_of(agent: &AgentClient<'_>) -> Result<Vec<Value>, StepError> {
    match agent.call(&AdminRequest::Routes).await? {
        AdminResult::Routes { routes } => Ok(route_essentials(&routes)),
        other => Err(StepError::new(format!(
            "unexpected agent answer: {other:?}"
        ))),
    }
}

async fn ledger_of(site: &AgentSite<'_>, agent: &AgentClient<'_>) -> Result<Value, StepError> {
    let Some(route) = &site.ledger_route else {
        return Ok(Value::Null);
    };
    match agent
        .call(&AdminRequest::State(AppArgs { app: route.clone() }))
        .await?
    {
        AdminResult::State { state } => Ok(ledger_essentials(
            &serde_json::to_value(&state).unwrap_or_default(),
        )),
        other => Err(StepError::new(format!(
            "unexpected agent answer: {other:?}"
        ))),
    }
}

/// Replace the running agent by one from `image` without closing the port.
/// `allow_gap` permits replacing an agent without an edge (made by an older
/// Slipway) by stopping it first: a gap of about a second, once.
/// `note` receives progress lines.
pub async fn upgrade(
    t: &Target,
    image: &str,
    allow_gap: bool,
    note: &dyn Fn(&str),
) -> Result<UpgradeReport, StepError> {
    upgrade_site(&t.agent_site(), image, allow_gap, note).await
}

/// [`upgrade`] of any agent site.
pub async fn upgrade_site(
    site: &AgentSite<'_>,
    image: &str,
    allow_gap: bool,
    note: &dyn Fn(&str),
) -> Result<UpgradeReport, StepError> {
    let engine = site.engine;
    let started = Instant::now();
    settle_interrupted_upgrade(site).await?;
    let name = site.agent.clone();
    let Some(current) = engine.inspect(&name).await.filter(|c| c.running) else {
        return Err(
            StepError::new(format!("the agent {name} is not running")).hint(format!(
                "`{}` starts it; there is nothing to upgrade without a gap",
                site.create_with
            )),
        );
    };
    let old = AgentClient::new(engine, &name);
    let from = version_of(&old).await?;
    if is_legacy(&current) {
        if !allow_gap {
            return Err(StepError::new(format!(
                "the agent {name} publishes the port itself (made by an older Slipway), so it \
                 cannot hand over without closing the port once"
            ))
            .hint(
                "run `slipway agent upgrade <env> --allow-gap` at a quiet moment (about a second \
                 without service); later upgrades have no gap",
            ));
        }
        return replace_with_gap(site, image, &current, &from, started, note).await;
    }
    let routes_before = routes_of(&old).await?;
    let ledger_before = ledger_of(site, &old).await?;

    // 1. The successor, beside the old agent.
    let next = site.next.clone();
    note(&format!("starting {next} from {image} beside {name}"));
    if let Err(e) = engine.run(&agent_spec(site, image, &next, true)).await {
        return Err(abandon(site, &old, StepError::from(e)).await);
    }
    let new = AgentClient::new(engine, &next);
    let beside_since = Instant::now();
    let to = match wait_taking_over(engine, &new).await {
        Ok(v) => v,
        Err(e) => return Err(abandon(site, &old, e).await),
    };
    // 2. It must serve what the old one serves.
    let routes_after = match routes_of(&new).await {
        Ok(r) => r,
        Err(e) => return Err(abandon(site, &old, e).await),
    };
    if routes_after != routes_before {
        let e = StepError::new(format!(
            "the new agent restored other routes than the old one serves: {} instead of {}",
            Value::from(routes_after),
            Value::from(routes_before.clone())
        ));
        return Err(abandon(site, &old, e).await);
    }
    // 3. Stop the old agent: it stops accepting, finishes its requests and
    // exits; the new one then owns the ledger.
    note(&format!(
        "{} serves beside {}; stopping the old agent",
        version_text(&to),
        version_text(&from)
    ));
    engine.stop(&name, AGENT_STOP_TIMEOUT).await?;
    let beside_ms = beside_since.elapsed().as_millis() as u64;
    wait_role(&new, AgentRole::Serving).await?;
    engine.rename(&name, &site.leaving.clone()).await?;
    engine.rename(&next, &name).await?;
    engine.set_restart(&name, true).await?;
    engine.remove(&site.leaving.clone()).await?;
    let new = AgentClient::new(engine, &name);
    let ledger_after = ledger_of(site, &new).await?;
    let routes_final = routes_of(&new).await?;
    Ok(UpgradeReport {
        from_image: current.image,
        to_image: image.to_string(),
        from_version: version_text(&from),
        to_version: version_text(&to),
        beside_ms,
        total_ms: started.elapsed().as_millis() as u64,
        routes_kept: routes_final == routes_before,
        ledger_kept: ledger_after == ledger_before,
        gap: false,
    })
}

/// Wait until the successor serves beside its predecessor. If it exits
/// instead, say why (its exit code and last log lines).
async fn wait_taking_over(
    engine: &Engine,
    new: &AgentClient<'_>,
) -> Result<VersionInfo, StepError> {
    let started = Instant::now();
    loop {
        if let Ok(v) = version_of(new).await
            && v.role == AgentRole::TakingOver
        {
            return Ok(v);
        }
        match engine.inspect(new.container()).await {
            Some(c) if !c.running => {
                let (out, err) = engine
                    .logs(new.container(), Some(5))
                    .await
                    .unwrap_or_default();
                let why = format!("{out}{err}").trim().to_string();
                let code = c.exit_code.unwrap_or(-1);
                let reason = if code == 6 {
                    format!("it cannot read this host's ledger, written in a newer format ({why})")
                } else {
                    format!("it exited with code {code}: {why}")
                };
                return Err(StepError::new(format!(
                    "the new agent did not take over: {reason}"
                )));
            }
            None => return Err(StepError::new("the new agent's container vanished")),
            Some(_) => {}
        }
        if started.elapsed() > AGENT_START_WITHIN {
            return Err(StepError::new(format!(
                "the new agent did not take over within {} s",
                AGENT_START_WITHIN.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_role(agent: &AgentClient<'_>, role: AgentRole) -> Result<(), StepError> {
    wait_version(agent, &role.to_string(), |v| v.role == role)
        .await
        .map(drop)
}

/// Remove the successor (stopping it lets its requests finish) and confirm
/// the old agent serves alone again. Returns the error to report.
async fn abandon(site: &AgentSite<'_>, old: &AgentClient<'_>, why: StepError) -> StepError {
    let engine = site.engine;
    let next = site.next.clone();
    let _ = engine.stop(&next, AGENT_STOP_TIMEOUT).await;
    let _ = engine.remove(&next).await;
    let fallback = match wait_role(old, AgentRole::Serving).await {
        Ok(()) => "the old agent still serves, unchanged".to_string(),
        Err(e) => format!("and the old agent did not confirm it serves alone: {e}"),
    };
    let hint = why.hint.clone().unwrap_or_default();
    StepError::new(format!("agent upgrade failed: {}; {fallback}", why.message)).hint(
        if hint.is_empty() {
            "nothing changed; fix the cause above and run the upgrade again".to_string()
        } else {
            hint
        },
    )
}

/// The one-time replacement of an agent that publishes the port itself.
async fn replace_with_gap(
    site: &AgentSite<'_>,
    image: &str,
    current: &ContainerInfo,
    from: &VersionInfo,
    started: Instant,
    note: &dyn Fn(&str),
) -> Result<UpgradeReport, StepError> {
    let engine = site.engine;
    let old = AgentClient::new(engine, &current.name);
    let routes_before = routes_of(&old).await?;
    let ledger_before = ledger_of(site, &old).await?;
    note(&format!(
        "stopping {} (it publishes the port itself); the port is closed until the edge starts",
        current.name
    ));
    engine.stop(&current.name, AGENT_STOP_TIMEOUT).await?;
    engine.remove(&current.name).await?;
    let provisioned = ensure_site(site, image).await?;
    let new = AgentClient::new(engine, site.agent.clone());
    let to = version_of(&new).await?;
    Ok(UpgradeReport {
        from_image: current.image.clone(),
        to_image: provisioned.image,
        from_version: version_text(from),
        to_version: version_text(&to),
        beside_ms: 0,
        total_ms: started.elapsed().as_millis() as u64,
        routes_kept: routes_of(&new).await? == routes_before,
        ledger_kept: ledger_of(site, &new).await? == ledger_before,
        gap: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_core::admin::TargetStatus;

    fn container(name: &str, id: &str, network_mode: &str) -> ContainerInfo {
        ContainerInfo {
            name: name.into(),
            image: "slipway-tools:abc".into(),
            running: true,
            crashing: false,
            exit_code: None,
            labels: Default::default(),
            id: id.into(),
            network_mode: network_mode.into(),
            started_at: String::new(),
        }
    }

    #[test]
    fn deploys_upgrade_other_builds_but_never_downgrade_a_newer_version() {
        let provisioned = |image: &str, version: &str, legacy: bool| Provisioned {
            created: false,
            image: image.into(),
            legacy,
            version: VersionInfo {
                agent_version: version.into(),
                build: "dev".into(),
                ledger_format_version: 1,
                uptime_secs: 0,
                pid: 1,
                role: AgentRole::Serving,
                peer_pid: None,
            },
        };
        let own = "slipway-tools:new";
        assert_eq!(
            deploy_agent_plan(
                &provisioned("slipway-tools:old", "0.1.0", false),
                own,
                "0.1.0"
            ),
            DeployAgentPlan::Upgrade
        );
        assert_eq!(
            deploy_agent_plan(
                &provisioned("slipway-tools:old", "0.1.0", false),
                own,
                "0.2.0"
            ),
            DeployAgentPlan::Upgrade
        );
        assert_eq!(
            deploy_agent_plan(&provisioned(own, "0.1.0", false), own, "0.1.0"),
            DeployAgentPlan::Keep
        );
        assert_eq!(
            deploy_agent_plan(
                &provisioned("slipway-tools:old", "0.10.0", false),
                own,
                "0.9.3"
            ),
            DeployAgentPlan::KeepNewer
        );
        assert_eq!(
            deploy_agent_plan(
                &provisioned("slipway-tools:old", "0.1.0", true),
                own,
                "0.1.0"
            ),
            DeployAgentPlan::Legacy
        );
        assert!(is_newer("1.0.0", "0.99.99"));
        assert!(!is_newer("0.1.0-rc1", "0.1.0"));
    }

    #[test]
    fn an_agent_is_joined_only_to_the_edge_it_names() {
        let edge = container("e-edge", "abc123", "e-net");
        assert!(is_joined(
            &container("e-agent", "1", "container:abc123"),
            &edge
        ));
        assert!(is_joined(
            &container("e-agent", "1", "container:e-edge"),
            &edge
        ));
        assert!(!is_joined(
            &container("e-agent", "1", "container:old999"),
            &edge
        ));
        assert!(is_legacy(&container("e-agent", "1", "e-net")));
        assert!(!is_legacy(&container("e-agent", "1", "container:abc123")));
    }

    fn route(active: Option<(&str, &str)>, in_flight: u64, draining: usize) -> RouteStatus {
        let status = |(target, release): (&str, &str)| TargetStatus {
            target: target.into(),
            release: release.into(),
            slot: Some("blue".into()),
            in_flight,
        };
        RouteStatus {
            app: "web".into(),
            hosts: vec![],
            active: active.map(status),
            previous: None,
            draining: (0..draining).map(|_| status(("old:8080", "r0"))).collect(),
            paused: false,
            held: 0,
            is_default: true,
            maintenance: None,
        }
    }

    #[test]
    fn routes_compare_by_where_traffic_goes_not_by_load() {
        let a = route_essentials(&[route(Some(("blue:8080", "r1")), 5, 1)]);
        let b = route_essentials(&[route(Some(("blue:8080", "r1")), 0, 0)]);
        assert_eq!(a, b);
        let c = route_essentials(&[route(Some(("green:8080", "r2")), 0, 0)]);
        assert_ne!(a, c);
        assert_ne!(a, route_essentials(&[route(None, 0, 0)]));
    }

    #[test]
    fn ledgers_compare_without_the_lock_expiry() {
        let a =
            serde_json::json!({"lock": {"locked": true, "lock_id": "l1", "lock_expires_at": "x"}});
        let b =
            serde_json::json!({"lock": {"locked": true, "lock_id": "l1", "lock_expires_at": "y"}});
        let c =
            serde_json::json!({"lock": {"locked": true, "lock_id": "l2", "lock_expires_at": "y"}});
        assert_eq!(ledger_essentials(&a), ledger_essentials(&b));
        assert_ne!(ledger_essentials(&a), ledger_essentials(&c));
    }
}
