//! `slipway status <env>`: what runs where, in the deployment-state shape
//! (`current_deployment`, `previous_deployment`, `deployment_history`,
//! `lock`) plus the live route, health and maintenance mode. Repairs an
//! interrupted deploy first, like `deploy` does.

use serde_json::{Value, json};
use slipway_core::config::SecretsNeed;

use super::{block_on, connect, step_error};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::context::Target;
use crate::pipeline::{http_probe, lock, recover};
use crate::tasks::StillRunning;

pub fn run(env: &str, global: &crate::cli::GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    block_on(async {
        let t = connect(global, env, SecretsNeed::NotNeeded, printer).await?;
        recover::recover(&t, StillRunning::Report, &|note: &str| {
            printer.note(&format!("repair: {note}"))
        })
        .await
        .map_err(|e| step_error(Exit::Failed, e))?;
        let ledger = t
            .ledger()
            .await
            .map_err(|e| step_error(Exit::Unavailable, e))?;
        let maintenance = crate::pipeline::maintenance::current(ledger.as_ref()).cloned();
        let mut health = live_health(&t).await;
        if let (Some(m), Some((status, detail))) = (&maintenance, health.as_mut()) {
            // The public port answers the page, whatever the release's health.
            *status = "maintenance".into();
            *detail = format!(
                "the public port answers 503 with the maintenance page, Retry-After {}s",
                m.retry_after_secs
            );
        }
        let lock_json = match ledger.as_ref().and_then(|l| l.lock.clone()) {
            Some(l) => {
                let mut v = serde_json::to_value(&l).unwrap_or(Value::Null);
                v["locked"] = json!(true);
                v
            }
            None => json!({ "locked": false }),
        };
        let mut current = ledger
            .as_ref()
            .and_then(|l| l.current_deployment.clone())
            .map(|d| serde_json::to_value(d).unwrap_or(Value::Null));
        if let (Some(c), Some((status, _))) = (current.as_mut(), &health) {
            c["health_status"] = json!(status);
        }
        let certs = if crate::pipeline::gateway::is_used(&t) {
            Some(
                crate::pipeline::gateway::certs(&t)
                    .await
                    .unwrap_or_default(),
            )
        } else {
            None
        };
        let analysis = match &ledger {
            Some(_) => crate::pipeline::analysis::current(&t).await.ok().flatten(),
            None => None,
        };
        let state = json!({
            "environment": t.config.environment,
            "hostnames": t.config.settings.deployment.all_hostnames(),
            "certificates": certs,
            "current_deployment": current,
            "previous_deployment": ledger.as_ref().and_then(|l| l.previous_deployment.clone()),
            "deployment_history": ledger.as_ref().map(|l| l.deployment_history.clone()).unwrap_or_default(),
            "lock": lock_json,
            "route": ledger.as_ref().and_then(|l| l.route.clone()),
            "analysis": analysis,
            "maintenance": maintenance.as_ref().map(|m| {
                let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
                v["on"] = json!(true);
                v["left_by_interrupted_deploy"] = json!(ledger
                    .as_ref()
                    .and_then(crate::pipeline::maintenance::left_by_interrupted_deploy));
                v
            }).unwrap_or_else(|| json!({ "on": false })),
            "url": t.public_url("/"),
        });
        if printer.json() {
            printer.json_value(&state);
            return Ok(());
        }
        let Some(ledger) = ledger else {
            printer.line(format!(
                "{}: nothing deployed yet (no agent on {})",
                t.config.environment, t.engine.host
            ));
            printer.line(format!(
                "  deploy with: slipway deploy {}",
                t.config.environment
            ));
            return Ok(());
        };
        printer.line(format!(
            "{} {} on {}",
            t.config.settings.app.name, t.config.environment, t.engine.host
        ));
        for (i, line) in crate::pipeline::maintenance::describe(&t, &ledger)
            .iter()
            .enumerate()
        {
            let label = if i == 0 { "MAINTENANCE" } else { "" };
            printer.line(format!("  {label:<11} {line}"));
        }
        match &ledger.current_deployment {
            Some(d) => printer.line(format!(
                "  current   {} ({} slot), deployed {} by {}",
                d.version,
                d.active_slot.as_deref().unwrap_or("?"),
                d.deployed_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                d.deployed_by
            )),
            None => printer.line("  current   none"),
        }
        if let Some(d) = &ledger.previous_deployment {
            printer.line(format!(
                "  previous  {} ({} slot, kept for rollback)",
                d.version,
                d.active_slot.as_deref().unwrap_or("?")
            ));
        }
        match &health {
            Some((status, detail)) => printer.line(format!("  health    {status} ({detail})")),
            None => {
                printer.line("  health    unknown (remote engine: check the service's health URL)")
            }
        }
        match &ledger.lock {
            Some(l) => printer.line(format!("  lock      held by {}", lock::describe(l))),
            None => printer.line("  lock      free"),
        }
        if let Some(r) = &analysis {
            for (i, line) in crate::pipeline::analysis::describe(r).iter().enumerate() {
                let label = if i == 0 { "analysis" } else { "" };
                printer.line(format!("  {label:<9} {line}"));
            }
        }
        for host in t.config.settings.deployment.all_hostnames() {
            let cert = certs.iter().flatten().find(|c| c.host == host);
            printer.line(format!(
                "  https     {host}: {}",
                crate::pipeline::gateway::describe_cert(cert)
            ));
        }
        printer.line(format!("  url       {}", t.public_url("/")));
        Ok(())
    })
}

/// `healthy|degraded|unhealthy` from the service's own health endpoint
/// through the public port (local engine only).
async fn live_health(t: &Target) -> Option<(String, String)> {
    if !t.engine.is_local() {
        return None;
    }
    let client = http_probe::client();
    let url = t.public_url(&t.config.settings.health.path);
    Some(
        match http_probe::get(&client, &url, t.config.settings.health.timeout.0).await {
            Ok(p) => {
                let reported = serde_json::from_str::<Value>(&p.body)
                    .ok()
                    .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(String::from));
                let status = match (p.status, reported.as_deref()) {
                    (200..=299, Some("degraded")) => "degraded",
                    (200..=299, _) => "healthy",
                    _ => "unhealthy",
                };
                (
                    status.to_string(),
                    format!(
                        "HTTP {} from release {}",
                        p.status,
                        p.release.unwrap_or_else(|| "?".into())
                    ),
                )
            }
            Err(e) => ("unhealthy".to_string(), e),
        },
    )
}
