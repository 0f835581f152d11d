//! `slipway history <env>`: deployments, newest first, from the agent's ledger.

use slipway_core::admin::{AdminRequest, AdminResult, HistoryListArgs};
use slipway_core::config::SecretsNeed;

use super::{block_on, connect_deployed};
use crate::cli::{GlobalArgs, HistoryArgs};
use crate::exit::{CliError, Exit};
use crate::output::Printer;

pub fn run(args: &HistoryArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    block_on(async {
        let t = connect_deployed(global, &args.env, SecretsNeed::NotNeeded, printer).await?;
        let result = t
            .agent_call(AdminRequest::HistoryList(HistoryListArgs {
                app: t.names.route(),
                limit: Some(args.limit),
            }))
            .await
            .map_err(|e| CliError::new(Exit::Unavailable, e.to_string()))?;
        let AdminResult::History { deployments } = result else {
            return Err(CliError::new(
                Exit::Failed,
                "unexpected answer from the agent",
            ));
        };
        if printer.json() {
            printer.json_value(&deployments);
            return Ok(());
        }
        printer.line(format!(
            "{:<32} {:<26} {:<12} {:<13} {:<6} {:<8} {:<22} BY",
            "DEPLOYMENT", "RELEASE", "STATUS", "ANALYSIS", "SLOT", "SECONDS", "AT"
        ));
        for d in deployments {
            let analysis = d
                .extra
                .get("analysis")
                .and_then(|a| a.get("state"))
                .and_then(|s| s.as_str())
                .unwrap_or("-")
                .to_string();
            let reason = d
                .extra
                .get("analysis")
                .and_then(|a| a.get("reason"))
                .and_then(|s| s.as_str())
                .filter(|r| {
                    analysis != "passed" && !d.error.as_deref().is_some_and(|e| e.contains(*r))
                })
                .map(|r| format!("\n    analysis: {r}"))
                .unwrap_or_default();
            let ci = match d.extra.get("ci") {
                Some(ci) if ci.get("state").and_then(|s| s.as_str()) == Some("skipped") => format!(
                    "\n    ci: skipped: {}",
                    ci.get("reason").and_then(|r| r.as_str()).unwrap_or("-")
                ),
                _ => String::new(),
            };
            printer.line(format!(
                "{:<32} {:<26} {:<12} {:<13} {:<6} {:<8} {:<22} {}{}{reason}{ci}",
                d.id,
                d.version,
                d.status,
                analysis,
                d.active_slot.as_deref().unwrap_or("-"),
                d.duration_ms
                    .map_or("-".to_string(), |ms| format!("{:.1}", ms as f64 / 1000.0)),
                d.deployed_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                d.deployed_by,
                d.error
                    .map(|e| format!("\n    error: {e}"))
                    .unwrap_or_default()
            ));
        }
        Ok(())
    })
}
