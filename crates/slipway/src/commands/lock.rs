//! `slipway lock status|release <env>`.

use serde_json::json;
use slipway_core::admin::{AdminRequest, AdminResult, AppArgs};
use slipway_core::config::SecretsNeed;

use super::{block_on, connect, step_error};
use crate::cli::{GlobalArgs, LockCommand};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::lock;

pub fn run(cmd: &LockCommand, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let env = match cmd {
        LockCommand::Status(a) => a.env.clone(),
        LockCommand::Release { env, .. } => env.clone(),
    };
    block_on(async {
        let secrets = match cmd {
            LockCommand::Status(_) => SecretsNeed::NotNeeded,
            LockCommand::Release { .. } => SecretsNeed::Required,
        };
        let t = connect(global, &env, secrets, printer).await?;
        if t.engine.inspect(&t.names.agent()).await.is_none() {
            printer.line("lock free (nothing deployed yet)");
            return Ok(());
        }
        let current = match t
            .agent_call(AdminRequest::LockStatus(AppArgs {
                app: t.names.route(),
            }))
            .await
        {
            Ok(AdminResult::Lock(report)) => report.lock,
            Ok(_) => None,
            Err(e) => return Err(CliError::new(Exit::Unavailable, e.to_string())),
        };
        match cmd {
            LockCommand::Status(_) => {
                if printer.json() {
                    printer.json_value(&match &current {
                        Some(l) => {
                            let mut v = serde_json::to_value(l).unwrap_or_default();
                            v["locked"] = json!(true);
                            v["orphaned"] = json!(lock::is_orphaned(l));
                            v
                        }
                        None => json!({"locked": false}),
                    });
                } else {
                    match &current {
                        Some(l) => printer.line(format!(
                            "locked by {}{}",
                            lock::describe(l),
                            if lock::is_orphaned(l) {
                                " — its process is gone; the next deploy or status repairs it"
                            } else {
                                ""
                            }
                        )),
                        None => printer.line("lock free"),
                    }
                }
                Ok(())
            }
            LockCommand::Release { force, .. } => {
                let Some(l) = current else {
                    printer.line("lock free; nothing to release");
                    return Ok(());
                };
                if !force && !lock::is_orphaned(&l) {
                    return Err(CliError::new(
                        Exit::Conflict,
                        format!("the lock is held by a live deploy: {}", lock::describe(&l)),
                    )
                    .hint("wait for it, or pass --force if you know it is dead"));
                }
                lock::release_force(&t, &l.lock_id)
                    .await
                    .map_err(|e| step_error(Exit::Failed, e))?;
                printer.success(&format!("released the lock of {}", l.locked_by));
                Ok(())
            }
        }
    })
}
