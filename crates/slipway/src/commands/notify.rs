//! `slipway notify test|status <env>`: try every channel now; show what the
//! host's agent has queued and delivered.

use slipway_core::admin::{AdminRequest, AdminResult, AppArgs};
use slipway_core::config::SecretsNeed;
use slipway_core::notify::DeliveryResult;

use super::{block_on, connect_deployed, step_error};
use crate::cli::{GlobalArgs, NotifyCommand};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::events;

pub fn run(cmd: &NotifyCommand, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let env = match cmd {
        NotifyCommand::Test(a) | NotifyCommand::Status(a) => a.env.as_str(),
    };
    block_on(async {
        // Notifications are sent by the host's agent.
        let secrets = match cmd {
            // The test sends with the channels' secrets as they are now.
            NotifyCommand::Test(_) => SecretsNeed::Required,
            NotifyCommand::Status(_) => SecretsNeed::NotNeeded,
        };
        let t = connect_deployed(global, env, secrets, printer).await?;
        let app = AppArgs {
            app: t.names.route(),
        };
        match cmd {
            NotifyCommand::Test(_) => {
                // The channels as deployment.yml and .env.<env> say now.
                let channels = events::configure(&t)
                    .await
                    .map_err(|e| step_error(Exit::Failed, e))?;
                if channels.is_empty() {
                    return Err(CliError::new(
                        Exit::BadInput,
                        format!("no notification channel is configured for `{env}`"),
                    )
                    .hint("add `notifications.webhook` (url, secret) or `notifications.ntfy` (topic) to deployment.yml; see the README's Notifications section"));
                }
                let answer = t
                    .agent_call(AdminRequest::NotifyTest(app))
                    .await
                    .map_err(|e| step_error(Exit::Failed, e.into()))?;
                let AdminResult::NotifyResults { results } = answer else {
                    return Err(CliError::new(
                        Exit::Failed,
                        "unexpected answer from the agent",
                    ));
                };
                if printer.json() {
                    printer.json_value(&results);
                } else {
                    for r in &results {
                        printer.line(describe(r));
                    }
                }
                let failed = results.iter().filter(|r| r.outcome != "delivered").count();
                if failed > 0 {
                    return Err(CliError::new(
                        Exit::Failed,
                        format!("{failed} of {} channel(s) did not take the test event", results.len()),
                    )
                    .hint("check the URL, token and secret in .env.<env>; the error above says what the channel answered"));
                }
                Ok(())
            }
            NotifyCommand::Status(_) => {
                let answer = t
                    .agent_call(AdminRequest::NotifyStatus(app))
                    .await
                    .map_err(|e| step_error(Exit::Unavailable, e.into()))?;
                let AdminResult::NotifyStatus(status) = answer else {
                    return Err(CliError::new(
                        Exit::Failed,
                        "unexpected answer from the agent",
                    ));
                };
                if printer.json() {
                    printer.json_value(&status);
                    return Ok(());
                }
                if status.channels.is_empty() {
                    printer.line("channels: none (events are only logged by the agent)");
                }
                for c in &status.channels {
                    printer.line(format!(
                        "channel  {:<8} {}{}",
                        c.channel,
                        c.destination,
                        if c.disabled {
                            format!(
                                "  DISABLED: {}",
                                c.disabled_reason.as_deref().unwrap_or("410 Gone")
                            )
                        } else {
                            String::new()
                        }
                    ));
                }
                printer.line(format!("pending  {}", status.pending.len()));
                for r in &status.pending {
                    printer.line(format!("  {}", describe(r)));
                }
                printer.line(format!("recent   {}", status.recent.len()));
                for r in status.recent.iter().take(20) {
                    printer.line(format!("  {}", describe(r)));
                }
                Ok(())
            }
        }
    })
}

fn describe(r: &DeliveryResult) -> String {
    format!(
        "{:<7} {:<28} {:<10} {} attempt(s){}{}",
        r.channel,
        r.event,
        r.outcome,
        r.attempts,
        r.status.map(|s| format!(", HTTP {s}")).unwrap_or_default(),
        r.error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    )
}
