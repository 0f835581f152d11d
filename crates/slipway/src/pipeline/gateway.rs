//! The host's shared entry point: one per engine, on ports 80 and 443
//! (`providers.docker.entry_point`), for every app and environment deployed
//! there with `deployment.hostnames`.
//!
//! It is the same agent binary as an environment's, run as its own pair of
//! containers (`slipway-gateway-edge` holds the ports, `slipway-gateway`
//! serves; see [`super::agent`]), so it is provisioned and upgraded without
//! a gap the same way. It terminates TLS (certificates per hostname, from
//! ACME or the operator's files), answers ACME challenges and redirects
//! plain HTTP on port 80, and routes by SNI and `Host` to each
//! environment's own edge over the `slipway-gateway-net` network. Each
//! environment keeps its own agent, lock, history and blue/green switch:
//! the gateway's route to an environment never changes on a deploy or a
//! rollback, so one environment's deploy cannot drop another's requests.

use std::collections::HashMap;

use slipway_core::admin::{
    AdminRequest, AdminResult, CertEnsureArgs, CertInfo, CertSource, DeployArgs, HealthCheck,
};
use slipway_core::config::schema::{EntryPoint, Tls, TlsMode};

use super::agent::{self, AGENT_PORT, AgentSite, Provisioned};
use super::context::{StepError, Target};
use crate::providers::docker::names::{LABEL_APP, LABEL_MANAGED};
use crate::providers::docker::{AgentClient, AgentError, ContainerInfo};

/// Names of the entry point's containers, network and volume, from
/// `providers.docker.entry_point.name` (default `slipway-gateway`).
pub struct GatewayNames {
    pub agent: String,
    pub edge: String,
    pub network: String,
    pub volume: String,
}

impl GatewayNames {
    pub fn of(t: &Target) -> Self {
        let name = entry_point(t).name;
        Self {
            edge: format!("{name}-edge"),
            network: format!("{name}-net"),
            volume: format!("{name}-state"),
            agent: name,
        }
    }
}

fn entry_point(t: &Target) -> EntryPoint {
    t.config
        .settings
        .providers
        .docker
        .as_ref()
        .map(|d| d.entry_point.clone())
        .unwrap_or_default()
}
/// Ports inside the gateway's network namespace.
pub const GATEWAY_HTTP_PORT: u16 = AGENT_PORT;
pub const GATEWAY_HTTPS_PORT: u16 = 8443;
/// The gateway reads the operator's ACME test root (`acme.ca_root`) from
/// this variable: a file on the operator's machine, put in the container
/// where an upgrade's successor gets it too.
const CA_ROOT_ENV: &str = "SLIPWAY_AGENT_ACME_CA_ROOT_PEM";

/// Whether this environment is served through the shared entry point.
pub fn is_used(t: &Target) -> bool {
    !t.config.settings.deployment.all_hostnames().is_empty()
}

/// The gateway's agent site, with this environment's ACME settings.
pub fn site(t: &Target) -> Result<AgentSite<'_>, StepError> {
    let settings = &t.config.settings;
    let entry = entry_point(t);
    let n = GatewayNames::of(t);
    let mut serve_args = vec![
        "--tls-listen".to_string(),
        format!("0.0.0.0:{GATEWAY_HTTPS_PORT}"),
        // Redirects name the port the public reaches, not the inner one.
        "--redirect-https-port".into(),
        entry.https_port.to_string(),
        "--acme-directory".into(),
        settings.acme.directory_url().to_string(),
    ];
    if let Some(email) = &settings.acme.email {
        serve_args.extend(["--acme-email".into(), email.clone()]);
    }
    let mut env = Vec::new();
    if let Some(relative) = &settings.acme.ca_root {
        let path = t.config.path(relative);
        let pem = fs_err::read_to_string(&path).map_err(|e| {
            StepError::new(format!("cannot read acme.ca_root {}: {e}", path.display()))
        })?;
        env.push(format!("{CA_ROOT_ENV}={pem}"));
    }
    Ok(AgentSite {
        engine: &t.engine,
        next: format!("{}-next", n.agent),
        leaving: format!("{}-leaving", n.agent),
        agent: n.agent.clone(),
        edge: n.edge,
        volume: n.volume,
        network: n.network,
        ports: vec![
            ("0.0.0.0".into(), entry.http_port, GATEWAY_HTTP_PORT),
            ("0.0.0.0".into(), entry.https_port, GATEWAY_HTTPS_PORT),
        ],
        serve_args,
        labels: HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_APP.to_string(), n.agent),
            (
                LABEL_SETTINGS.to_string(),
                settings_label(
                    entry.http_port,
                    entry.https_port,
                    settings.acme.directory_url(),
                ),
            ),
        ]),
        ledger_route: None,
        create_with: format!("slipway deploy {}", t.config.environment),
        env,
        // A CA or other service on this machine is reachable from the entry
        // point as `host.docker.internal`.
        extra_hosts: vec!["host.docker.internal:host-gateway".into()],
    })
}

/// What every environment sharing the entry point must agree on, recorded
/// on its containers.
const LABEL_SETTINGS: &str = "slipway.entry-point";

fn settings_label(http_port: u16, https_port: u16, directory: &str) -> String {
    format!("http={http_port} https={https_port} acme={directory}")
}

/// Refuses to use an entry point made with other ports or another ACME
/// directory: it is one per engine, and silently changing it would move
/// every other environment's traffic or certificates.
fn check_agreement(existing: &ContainerInfo, wanted: &str, env: &str) -> Result<(), StepError> {
    match existing.labels.get(LABEL_SETTINGS) {
        Some(have) if have != wanted => Err(StepError::new(format!(
            "the host's shared entry point {} runs with {have}, but `{env}` asks for {wanted}",
            existing.name
        ))
        .hint(
            "the entry point is one per engine: give every environment on this host the same \
             providers.docker.entry_point and acme.directory",
        )),
        _ => Ok(()),
    }
}

/// The gateway's client.
pub fn client(t: &Target) -> AgentClient<'_> {
    AgentClient::new(&t.engine, GatewayNames::of(t).agent)
}

/// Before the switch: the gateway runs, reaches this environment's edge,
/// and holds a valid certificate for every hostname (so the first request
/// already has one). A certificate that cannot be obtained stops the deploy
/// here, with the CA's reason; nothing has moved.
pub async fn prepare(t: &Target, tools_image: &str) -> Result<Vec<CertInfo>, StepError> {
    let names = GatewayNames::of(t);
    let site = site(t)?;
    t.engine
        .ensure_network(&names.network, &site.labels)
        .await?;
    let provisioned = ensure(t, &site, tools_image).await?;
    if provisioned.created {
        tracing::info!("started the host's shared entry point {}", names.agent);
    }
    t.engine
        .ensure_connected(&names.network, &t.names.edge())
        .await?;
    let source = match &t.config.settings.deployment.tls {
        Tls::Mode(TlsMode::Off) => return Ok(Vec::new()),
        Tls::Mode(TlsMode::Auto) => CertSource::Acme,
        Tls::Custom(files) => {
            let read = |relative: &str, what: &str| {
                let path = t.config.path(relative);
                fs_err::read_to_string(&path).map_err(|e| {
                    StepError::new(format!("cannot read {what} {}: {e}", path.display()))
                        .hint("deployment.tls names files relative to the repository root")
                })
            };
            CertSource::Custom {
                cert_pem: read(&files.cert, "the certificate")?,
                key_pem: read(&files.key, "the private key")?,
            }
        }
    };
    let mut certs = Vec::new();
    for host in t.config.settings.deployment.all_hostnames() {
        let request = AdminRequest::CertEnsure(CertEnsureArgs {
            host: host.clone(),
            source: source.clone(),
            redirect_http: t.config.settings.deployment.redirect_http,
            hsts_max_age_secs: t
                .config
                .settings
                .deployment
                .hsts
                .as_ref()
                .map(|d| d.0.as_secs()),
        });
        match client(t).call(&request).await {
            Ok(AdminResult::Certs { certs: got }) => certs.extend(got),
            Ok(other) => {
                return Err(StepError::new(format!(
                    "unexpected answer from the entry point: {other:?}"
                )));
            }
            Err(AgentError::Refused(e)) => {
                return Err(StepError::new(format!(
                    "no certificate for {host}: {}",
                    e.message
                ))
                .hint(
                    "traffic stayed where it was. For ACME the name must resolve to this host and \
                     its port 80 (or 443) must be reachable from the internet; \
                     `slipway status <env>` shows each certificate's last error",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(certs)
}

/// The gateway's containers, created or started; upgraded (without a gap)
/// when they run another build of Slipway, as an environment's agent is.
async fn ensure(
    t: &Target,
    site: &AgentSite<'_>,
    tools_image: &str,
) -> Result<Provisioned, StepError> {
    let wanted = site.labels.get(LABEL_SETTINGS).cloned().unwrap_or_default();
    for name in [&site.edge, &site.agent] {
        if let Some(existing) = t.engine.inspect(name).await {
            check_agreement(&existing, &wanted, &t.config.environment)?;
        }
    }
    let provisioned = agent::ensure_site(site, tools_image).await?;
    if agent::deploy_agent_plan(&provisioned, tools_image, env!("CARGO_PKG_VERSION"))
        == agent::DeployAgentPlan::Upgrade
    {
        agent::upgrade_site(site, tools_image, false, &|l: &str| {
            tracing::info!("entry point: {l}")
        })
        .await?;
    }
    Ok(provisioned)
}

/// After this environment's own switch: the gateway routes its hostnames
/// to its edge. Only when that route is missing or names other hostnames:
/// the route never changes on a deploy or a rollback.
pub async fn route(t: &Target) -> Result<bool, StepError> {
    let hosts = t.config.settings.deployment.all_hostnames();
    let route_name = t.names.route();
    let target = format!("{}:{AGENT_PORT}", t.names.edge());
    let current = match client(t).call(&AdminRequest::Routes).await? {
        AdminResult::Routes { routes } => routes.into_iter().find(|r| r.app == route_name),
        other => {
            return Err(StepError::new(format!(
                "unexpected answer from the entry point: {other:?}"
            )));
        }
    };
    let same = current
        .as_ref()
        .is_some_and(|r| r.hosts == hosts && r.active.as_ref().is_some_and(|a| a.target == target));
    if same {
        return Ok(false);
    }
    let settings = &t.config.settings;
    let request = AdminRequest::Deploy(DeployArgs {
        app: route_name,
        target,
        release: "edge".into(),
        slot: None,
        hosts,
        health: HealthCheck {
            path: settings.health.path.clone(),
            ..HealthCheck::default()
        },
        drain_timeout_ms: settings.deployment.drain_timeout.0.as_millis() as u64,
        analysis: None,
    });
    client(t).call(&request).await?;
    Ok(true)
}

/// The environment is destroyed: the gateway stops routing its hostnames
/// (they get the unknown-host answer, not a 502 from a missing edge) and
/// stops serving and renewing their certificates. Returns the hostnames
/// let go; none when there is no gateway on this engine.
pub async fn forget(t: &Target) -> Result<Vec<String>, StepError> {
    if t.engine.inspect(&GatewayNames::of(t).agent).await.is_none() {
        return Ok(Vec::new());
    }
    let gateway = client(t);
    gateway
        .call(&AdminRequest::RouteForget(slipway_core::admin::AppArgs {
            app: t.names.route(),
        }))
        .await?;
    let hosts = t.config.settings.deployment.all_hostnames();
    for host in &hosts {
        gateway
            .call(&AdminRequest::CertForget(slipway_core::admin::HostArgs {
                host: host.clone(),
            }))
            .await?;
    }
    Ok(hosts)
}

/// Certificates of this environment's hostnames, as the gateway serves them.
pub async fn certs(t: &Target) -> Result<Vec<CertInfo>, StepError> {
    let hosts = t.config.settings.deployment.all_hostnames();
    match client(t).call(&AdminRequest::Certs).await? {
        AdminResult::Certs { certs } => Ok(certs
            .into_iter()
            .filter(|c| hosts.contains(&c.host))
            .collect()),
        other => Err(StepError::new(format!(
            "unexpected answer from the entry point: {other:?}"
        ))),
    }
}

/// One hostname's certificate, an expired one or a failing renewal first.
pub fn describe_cert(cert: Option<&slipway_core::admin::CertInfo>) -> String {
    let Some(c) = cert else {
        return "no certificate yet (the next deploy obtains it)".to_string();
    };
    let date = |unix: i64| {
        time::OffsetDateTime::from_unix_timestamp(unix)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| unix.to_string())
    };
    let mut parts = Vec::new();
    if c.expired {
        parts.push("EXPIRED".to_string());
    }
    if let Some(e) = &c.last_error {
        parts.push(format!("last error: {e}"));
    }
    parts.push(c.source.clone());
    if let Some(issuer) = &c.issuer {
        parts.push(format!("issuer {issuer}"));
    }
    if let Some(t) = c.not_after {
        parts.push(format!("expires {}", date(t)));
    }
    if let Some(t) = c.next_renewal {
        parts.push(format!("renews from {}", date(t)));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            name: "slipway-gateway".into(),
            image: "slipway-tools:abc".into(),
            running: true,
            crashing: false,
            exit_code: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            id: "id".into(),
            network_mode: String::new(),
            started_at: String::new(),
        }
    }

    #[test]
    fn environments_must_agree_on_the_shared_entry_point() {
        let wanted = settings_label(80, 443, "https://acme.example/dir");
        let same = container(&[(LABEL_SETTINGS, &wanted)]);
        assert!(check_agreement(&same, &wanted, "production").is_ok());
        let other = settings_label(8080, 8443, "https://acme.example/dir");
        let err = check_agreement(&container(&[(LABEL_SETTINGS, &other)]), &wanted, "staging")
            .expect_err("other ports");
        assert!(err.message.contains("http=8080"), "{}", err.message);
        assert!(err.message.contains("`staging`"), "{}", err.message);
        // An entry point without the label (made by hand) is not judged.
        assert!(check_agreement(&container(&[]), &wanted, "production").is_ok());
    }
}
