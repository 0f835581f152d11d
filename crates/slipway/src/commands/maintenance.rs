//! `slipway maintenance on|off|status <env>`: the host's agent answers the
//! environment's public requests itself (503, `Retry-After`, a small page)
//! until lifted; see `pipeline::maintenance`.

use slipway_core::config::SecretsNeed;
use std::time::Duration;

use serde_json::json;
use slipway_core::config::schema::parse_duration;
use slipway_core::maintenance::MaintenanceMode;

use super::{block_on, connect_deployed, step_error};
use crate::cli::{GlobalArgs, MaintenanceCommand};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::events::About;
use crate::pipeline::maintenance::{self, Request};

pub fn run(
    cmd: &MaintenanceCommand,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<(), CliError> {
    let env = match cmd {
        MaintenanceCommand::On(a) => &a.env,
        MaintenanceCommand::Off(a) => &a.env,
        MaintenanceCommand::Status(a) => &a.env,
    };
    block_on(async {
        let secrets = match cmd {
            MaintenanceCommand::Status(_) => SecretsNeed::NotNeeded,
            MaintenanceCommand::On(_) | MaintenanceCommand::Off(_) => SecretsNeed::Required,
        };
        let t = connect_deployed(global, env, secrets, printer).await?;
        let ledger = t
            .ledger()
            .await
            .map_err(|e| step_error(Exit::Unavailable, e))?;
        let Some(ledger) = ledger.filter(|l| l.route.is_some()) else {
            return Err(CliError::new(
                Exit::Failed,
                format!("nothing serves `{env}` yet, so there is nothing to put in maintenance"),
            )
            .hint(format!("deploy first: slipway deploy {env}")));
        };
        let about = About {
            release: ledger
                .route
                .as_ref()
                .and_then(|r| r.active.as_ref().map(|a| a.release.clone())),
            ..About::default()
        };
        match cmd {
            MaintenanceCommand::On(a) => {
                let mut r = Request::configured(&t);
                if a.hold {
                    r.mode = MaintenanceMode::Hold;
                }
                if let Some(text) = &a.retry_after {
                    r.retry_after = duration_flag("--retry-after", text)?;
                }
                if let Some(text) = &a.hold_max {
                    r.hold_max_wait = duration_flag("--hold-max", text)?;
                }
                if a.message.is_some() {
                    r.message.clone_from(&a.message);
                }
                let (now, before) = maintenance::on(&t, printer, &r, &about)
                    .await
                    .map_err(|e| step_error(Exit::Failed, e))?;
                if printer.json() {
                    printer.json_value(&json!({
                        "environment": t.config.environment, "maintenance": now, "before": before,
                    }));
                } else {
                    printer.success(&format!(
                        "{} is in maintenance mode{}: {}",
                        t.config.environment,
                        if before.is_some() { " (updated)" } else { "" },
                        now.describe()
                    ));
                    printer.line(format!(
                        "  {} answers 503 with the maintenance page; lift it with: {}",
                        t.public_url("/"),
                        maintenance::lift_command(&t)
                    ));
                }
                Ok(())
            }
            MaintenanceCommand::Off(a) => {
                if let Some(m) = maintenance::current(Some(&ledger))
                    && let Some(id) = &m.deployment_id
                    && maintenance::left_by_interrupted_deploy(&ledger).is_none()
                    && !a.force
                {
                    return Err(CliError::new(
                        Exit::Conflict,
                        format!(
                            "deployment {id} is running and put maintenance on for its migration; \
                             lifting it now would send the public to the old release while the \
                             schema changes under it"
                        ),
                    )
                    .hint("the deploy lifts it itself after its switch; pass --force to lift it anyway"));
                }
                let lifted = maintenance::off(&t, printer, &about)
                    .await
                    .map_err(|e| step_error(Exit::Failed, e))?;
                if printer.json() {
                    printer.json_value(&json!({
                        "environment": t.config.environment, "maintenance": null, "lifted": lifted,
                    }));
                } else {
                    match &lifted {
                        Some(m) => printer.success(&format!(
                            "maintenance mode of {} lifted after {}; {} serves its release again",
                            t.config.environment,
                            maintenance::on_for(m),
                            t.public_url("/")
                        )),
                        None => printer.line(format!(
                            "{} was not in maintenance mode; nothing changed",
                            t.config.environment
                        )),
                    }
                }
                Ok(())
            }
            MaintenanceCommand::Status(_) => {
                let m = maintenance::current(Some(&ledger));
                if printer.json() {
                    printer.json_value(&json!({
                        "environment": t.config.environment,
                        "maintenance": m,
                        "left_by_interrupted_deploy": maintenance::left_by_interrupted_deploy(&ledger),
                    }));
                } else if m.is_some() {
                    for line in maintenance::describe(&t, &ledger) {
                        printer.line(format!("maintenance  {line}"));
                    }
                } else {
                    printer.line(format!(
                        "maintenance  off ({} serves its release)",
                        t.config.environment
                    ));
                }
                Ok(())
            }
        }
    })
}

fn duration_flag(flag: &str, text: &str) -> Result<Duration, CliError> {
    parse_duration(text).map_err(|e| {
        CliError::bad_input(format!("{flag}: {e}")).hint(format!("for example {flag} 60s"))
    })
}
