//! `slipway rollback <env> [--to <release>]`.

use super::{block_on, connect, step_error};
use crate::cli::{GlobalArgs, RollbackArgs};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::progress::Progress;
use crate::pipeline::rollback::{self, RollbackError};
use slipway_core::config::SecretsNeed;

pub fn run(args: &RollbackArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    block_on(async {
        let t = connect(global, &args.env, SecretsNeed::Required, printer).await?;
        let mut progress = Progress::new(printer);
        match rollback::rollback(&t, args.to.as_deref(), args.yes, &mut progress).await {
            Ok(report) => {
                use crate::pipeline::events;
                use slipway_core::notify::{EventKind, Severity};
                let about = events::About {
                    release: Some(report.to_release.clone()),
                    previous_release: report.from_release.clone(),
                    deployment_id: Some(report.deployment_id.clone()),
                };
                let event = events::event(
                    &t,
                    EventKind::DeployRolledBack,
                    Severity::Warning,
                    &about,
                    format!(
                        "{}: rolled back to {}",
                        events::subject(&t),
                        report.to_release
                    ),
                    format!(
                        "`slipway rollback` switched {} from {} to {}",
                        t.config.environment,
                        report.from_release.as_deref().unwrap_or("(none)"),
                        report.to_release
                    ),
                    serde_json::json!({ "by": "command", "slot": report.slot }),
                );
                events::raise(&t, printer, event).await;
                if printer.json() {
                    printer.json_value(&report);
                } else {
                    printer.success(&format!(
                        "rolled back {} from {} to {} ({} slot) in {:.1}s",
                        t.config.environment,
                        report.from_release.as_deref().unwrap_or("(none)"),
                        report.to_release,
                        report.slot,
                        report.total_ms as f64 / 1000.0
                    ));
                }
                Ok(())
            }
            Err(RollbackError::Confirm(c)) => Err(CliError::new(Exit::Conflict, c.message)),
            Err(RollbackError::Step(e)) => {
                let exit = if e.message.contains("holds the lock") {
                    Exit::Conflict
                } else {
                    Exit::Failed
                };
                Err(step_error(exit, e))
            }
        }
    })
}
