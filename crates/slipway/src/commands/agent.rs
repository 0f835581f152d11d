//! `slipway agent status|upgrade <env>`.

use serde_json::{Value, json};
use slipway_core::admin::{AdminRequest, AdminResult, RouteStatus};
use slipway_core::config::SecretsNeed;

use super::{block_on, connect, step_error};
use crate::cli::{AgentCommand, AgentUpgradeArgs, GlobalArgs};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::context::Target;
use crate::pipeline::gateway;
use crate::pipeline::{agent, lock, record};
use crate::tasks;

pub fn run(cmd: &AgentCommand, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    match cmd {
        AgentCommand::Status(a) => status(&a.env, global, printer),
        AgentCommand::Upgrade(a) => upgrade(a, global, printer),
    }
}

fn no_agent(t: &Target) -> CliError {
    CliError::new(
        Exit::Failed,
        format!(
            "there is no agent for `{}` on this engine",
            t.config.environment
        ),
    )
    .hint(format!(
        "`slipway deploy {}` creates it",
        t.config.environment
    ))
}

fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn status(env: &str, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    block_on(async {
        let t = connect(global, env, SecretsNeed::NotNeeded, printer).await?;
        let name = t.names.agent();
        let Some(container) = t.engine.inspect(&name).await else {
            return Err(no_agent(&t));
        };
        let edge = t.engine.inspect(&t.names.edge()).await;
        let unavailable =
            |e: crate::providers::docker::AgentError| step_error(Exit::Unavailable, e.into());
        let version = agent::version_of(&t.agent()).await.map_err(unavailable)?;
        let routes: Vec<RouteStatus> = match t.agent_call(AdminRequest::Routes).await {
            Ok(AdminResult::Routes { routes }) => routes,
            Ok(_) => Vec::new(),
            Err(e) => return Err(unavailable(e)),
        };
        let ledger = t
            .ledger()
            .await
            .map_err(|e| step_error(Exit::Unavailable, e))?;
        // What this Slipway would run; unknown if its agent binary is missing.
        let expected = tasks::tools_image_tag().await.ok();
        let up_to_date = expected.as_deref().map(|e| e == container.image);
        let port = t.config.settings.deployment.public_port;
        let legacy = agent::is_legacy(&container);
        let current = ledger.as_ref().and_then(|l| l.current_deployment.as_ref());
        let previous = ledger.as_ref().and_then(|l| l.previous_deployment.as_ref());
        let lock = ledger.as_ref().and_then(|l| l.lock.as_ref());
        let history = ledger.as_ref().map_or(0, |l| l.deployment_history.len());

        // The host's shared entry point, for an environment served by it.
        let entry_point = if gateway::is_used(&t) {
            let names = gateway::GatewayNames::of(&t);
            let info = t.engine.inspect(&names.agent).await;
            let version = match &info {
                Some(_) => agent::version_of(&gateway::client(&t)).await.ok(),
                None => None,
            };
            let certs = match &info {
                Some(_) => gateway::certs(&t).await.unwrap_or_default(),
                None => Vec::new(),
            };
            Some((names.agent, info, version, certs))
        } else {
            None
        };
        if printer.json() {
            printer.json_value(&json!({
                "entry_point": entry_point.as_ref().map(|(name, info, version, certs)| json!({
                    "container": name,
                    "image": info.as_ref().map(|i| i.image.clone()),
                    "running": info.as_ref().is_some_and(|i| i.running),
                    "version": version,
                    "certificates": certs,
                })),
                "container": name,
                "image": container.image,
                "expected_image": expected,
                "up_to_date": up_to_date,
                "version": version,
                "edge": edge.as_ref().map(|e| json!({"container": e.name, "running": e.running})),
                "port": port,
                "legacy": legacy,
                "routes": routes,
                "ledger": {
                    "format_version": version.ledger_format_version,
                    "current_release": current.map(|d| d.version.clone()),
                    "previous_release": previous.map(|d| d.version.clone()),
                    "deployments": history,
                    "lock": lock,
                },
            }));
            return Ok(());
        }
        let build = if version.build.is_empty() {
            String::new()
        } else {
            format!(" ({})", version.build)
        };
        let peer = version
            .peer_pid
            .map(|p| format!(", beside pid {p}"))
            .unwrap_or_default();
        printer.line(format!(
            "agent    {name}: slipway-agent {}{build}, {}{peer}, up {}, pid {}",
            version.agent_version,
            version.role,
            uptime(version.uptime_secs),
            version.pid
        ));
        printer.line(format!(
            "image    {}{}",
            container.image,
            match (&expected, up_to_date) {
                (_, Some(true)) => " (this Slipway's)".to_string(),
                (Some(e), Some(false)) => format!(
                    " (this Slipway's is {e}: `slipway agent upgrade {env}` replaces it without a gap)"
                ),
                _ => String::new(),
            }
        ));
        printer.line(match (&edge, legacy) {
            (_, true) => format!(
                "port     {port}, published by the agent itself (made by an older Slipway; \
                 `slipway agent upgrade {env} --allow-gap` moves it to an edge once)"
            ),
            (Some(e), false) => format!(
                "port     {port}, held by {}{}",
                e.name,
                if e.running { "" } else { " (NOT running)" }
            ),
            (None, false) => format!("port     {port}, but its edge container is missing"),
        });
        for r in &routes {
            let target = |t: &Option<slipway_core::admin::TargetStatus>| match t {
                Some(t) => format!(
                    "{} (release {}{}, {} in flight)",
                    t.target,
                    t.release,
                    t.slot
                        .as_ref()
                        .map(|s| format!(", {s}"))
                        .unwrap_or_default(),
                    t.in_flight
                ),
                None => "none".to_string(),
            };
            printer.line(format!(
                "route    {} → {}; previous {}; draining {}{}",
                r.app,
                target(&r.active),
                target(&r.previous),
                r.draining.len(),
                if r.paused { "; PAUSED" } else { "" }
            ));
        }
        if routes.is_empty() {
            printer.line("route    none yet");
        }
        if let Some((name, info, version, certs)) = &entry_point {
            printer.line(match (info, version) {
                (None, _) => {
                    format!("entry    {name}: not running yet (`slipway deploy {env}` starts it)")
                }
                (Some(i), Some(v)) => format!(
                    "entry    {name}: slipway-agent {}, {}, up {}, image {}",
                    v.agent_version,
                    v.role,
                    uptime(v.uptime_secs),
                    i.image
                ),
                (Some(i), None) => format!("entry    {name}: not answering (image {})", i.image),
            });
            for host in t.config.settings.deployment.all_hostnames() {
                let cert = certs.iter().find(|c| c.host == host);
                printer.line(format!("https    {host}: {}", gateway::describe_cert(cert)));
            }
        }
        printer.line(format!(
            "ledger   format {}; current {}; previous {}; {history} deployment{} recorded; {}",
            version.ledger_format_version,
            current.map_or("none".to_string(), |d| d.version.clone()),
            previous.map_or("none".to_string(), |d| d.version.clone()),
            if history == 1 { "" } else { "s" },
            match lock {
                Some(l) => format!("locked by {}", lock::describe(l)),
                None => "lock free".to_string(),
            }
        ));
        Ok(())
    })
}

fn upgrade(
    args: &AgentUpgradeArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<(), CliError> {
    block_on(async {
        let t = connect(global, &args.env, SecretsNeed::Required, printer).await?;
        let Some(container) = t.engine.inspect(&t.names.agent()).await else {
            return Err(no_agent(&t));
        };
        let image = match &args.image {
            Some(image) => {
                if !t.engine.image_exists(image).await {
                    let known = t
                        .engine
                        .images_with_label("slipway.role=tools")
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(tag, _, _)| tag)
                        .collect::<Vec<_>>();
                    return Err(CliError::bad_input(format!(
                        "the image {image} is not on the engine"
                    ))
                    .hint(if known.is_empty() {
                        "omit --image to use this Slipway's tools image".to_string()
                    } else {
                        format!("tools images on the engine: {}", known.join(", "))
                    }));
                }
                image.clone()
            }
            None => tasks::ensure_tools_image(&t.engine, &|l: &str| printer.note(l))
                .await
                .map_err(|e| step_error(Exit::Failed, e.into()))?,
        };
        if container.image == image && !args.force && !agent::is_legacy(&container) {
            if printer.json() {
                printer.json_value(&json!({"upgraded": false, "image": image}));
            } else {
                printer.success(&format!(
                    "the agent already runs {image}; nothing to do (--force replaces it anyway)"
                ));
            }
            return Ok(());
        }
        let id = format!("upg_{}", &record::new_deployment_id()[4..]);
        let held = lock::acquire(&t, &id)
            .await
            .map_err(|e| step_error(Exit::Conflict, e))?;
        if let Some(w) = &held.warning {
            printer.note(w);
        }
        let result = agent::upgrade(&t, &image, args.allow_gap, &|l: &str| printer.note(l)).await;
        let _ = lock::release(&t, &held.lock.lock_id).await;
        let report = result.map_err(|e| step_error(Exit::Failed, e))?;
        if printer.json() {
            let mut v = serde_json::to_value(&report).unwrap_or(Value::Null);
            v["upgraded"] = json!(true);
            printer.json_value(&v);
            return Ok(());
        }
        printer.success(&format!(
            "agent upgraded: {} → {} ({} → {}) in {} ms; {}",
            report.from_version,
            report.to_version,
            report.from_image,
            report.to_image,
            report.total_ms,
            if report.gap {
                "the port was closed briefly (one-time move to an edge container)".to_string()
            } else {
                format!(
                    "both agents served for {} ms, the port never closed",
                    report.beside_ms
                )
            }
        ));
        if !report.routes_kept || !report.ledger_kept {
            printer.note(&format!(
                "warning: after the upgrade the {} read back differently; check `slipway agent status {}`",
                match (report.routes_kept, report.ledger_kept) {
                    (false, false) => "routes and the ledger",
                    (false, true) => "routes",
                    _ => "ledger",
                },
                args.env
            ));
        }
        Ok(())
    })
}
