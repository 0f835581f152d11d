//! `slipway destroy <env>`: removes what the environment runs on the host
//! after a typed confirmation, under the deploy lock so no deploy starts
//! meanwhile; keeps the database and snapshots unless `--delete-data`.

use std::io::{BufRead, IsTerminal};

use serde_json::json;
use slipway_core::config::SecretsNeed;

use super::{block_on, connect, step_error};
use crate::cli::{DestroyArgs, GlobalArgs};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::{gateway, lock, record, teardown};
use crate::tasks;

pub fn run(args: &DestroyArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    block_on(async {
        let t = connect(global, &args.env, SecretsNeed::NotNeeded, printer).await?;
        let (snapshot_root, owner) = tasks::snapshot_owner(&t.config)?;
        let plan = teardown::plan(
            &t.names,
            t.config.settings.database.mode,
            args.delete_data,
            owner.dir(&snapshot_root),
        );
        let agent = t.engine.inspect(&t.names.agent()).await;
        // Under the lock: a deploy running now (or starting while we work)
        // is refused, not cut off mid-switch.
        let mut lock_id = None;
        if agent.as_ref().is_some_and(|a| a.running) {
            let id = record::new_deployment_id();
            let held = lock::acquire(&t, &id).await.map_err(|e| {
                let exit = if e.message.starts_with("another deploy holds the lock") {
                    Exit::Conflict
                } else {
                    Exit::Unavailable
                };
                let mut err = step_error(exit, e);
                err.message = format!("not destroying `{}`: {}", args.env, err.message);
                err
            })?;
            lock_id = Some(held.lock.lock_id);
        }
        if let Err(refused) = confirm(&args.env, &plan, args.yes, printer) {
            if let Some(id) = &lock_id {
                let _ = lock::release(&t, id).await;
            }
            return Err(refused);
        }
        // The host's entry point lets go of the hostnames first, so they
        // never route to an edge that is gone.
        let entry_point = if gateway::is_used(&t) {
            match gateway::forget(&t).await {
                Ok(hosts) if hosts.is_empty() => None,
                Ok(hosts) => Some(format!(
                    "the host's entry point no longer routes {} (their certificates are no longer served or renewed)",
                    hosts.join(", ")
                )),
                Err(e) => Some(format!(
                    "warning: the host's entry point still routes {} ({}); it answers 502 for them until `{}` is deployed again",
                    t.config.settings.deployment.all_hostnames().join(", "),
                    e.message,
                    args.env
                )),
            }
        } else {
            None
        };
        let removed = teardown::apply(&t, &plan).await;
        if removed.is_err()
            && let Some(id) = &lock_id
        {
            // The agent may still be there (it goes late): free the lock.
            let _ = lock::release(&t, id).await;
        }
        let removed = removed.map_err(|(removed, e)| {
            let mut err = step_error(Exit::Failed, e);
            err.message = format!(
                "destroying `{}` stopped: {} (removed before that: {})",
                args.env,
                err.message,
                describe(&removed)
            );
            err.hint = Some(format!(
                "fix the cause, then run `slipway destroy {}` again: it carries on from what is left",
                args.env
            ));
            err
        })?;
        if printer.json() {
            printer.json_value(&json!({
                "environment": args.env,
                "removed": removed,
                "kept": plan.kept,
                "entry_point": entry_point,
            }));
            return Ok(());
        }
        if removed.is_empty() {
            printer.success(&format!("nothing of `{}` was left on the engine", args.env));
        } else {
            printer.success(&format!(
                "destroyed `{}`: removed {}",
                args.env,
                describe(&removed)
            ));
        }
        for k in &plan.kept {
            printer.line(format!("  kept: {k}"));
        }
        if let Some(note) = entry_point {
            printer.note(&note);
        }
        Ok(())
    })
}

fn describe(r: &teardown::Removed) -> String {
    let mut parts = Vec::new();
    if !r.containers.is_empty() {
        parts.push(format!("containers {}", r.containers.join(", ")));
    }
    if !r.volumes.is_empty() {
        parts.push(format!("volumes {}", r.volumes.join(", ")));
    }
    if let Some(n) = &r.network {
        parts.push(format!("network {n}"));
    }
    if let Some(d) = &r.snapshots {
        parts.push(format!("snapshots {}", d.display()));
    }
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join("; ")
    }
}

/// The operator types the environment's name; `--yes` skips it, and
/// without a terminal nothing is removed unless `--yes`.
fn confirm(
    env: &str,
    plan: &teardown::TeardownPlan,
    yes: bool,
    printer: &Printer,
) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    let what = if plan.snapshots.is_some() {
        "its containers, its network, its DATABASE and its SNAPSHOTS (this cannot be undone)"
    } else {
        "its containers and network (the database volume and snapshots are kept)"
    };
    if !std::io::stdin().is_terminal() {
        return Err(CliError::new(
            Exit::Conflict,
            format!("not confirmed: about to remove `{env}`: {what}, but stdin is not a terminal to ask on; nothing was changed"),
        )
        .hint("pass --yes to confirm"));
    }
    printer.note(&format!(
        "About to remove `{env}`: {what}.\nType the environment's name to confirm:"
    ));
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::new(Exit::Conflict, format!("cannot read the answer: {e}")))?;
    if answer.trim() == env {
        Ok(())
    } else {
        Err(
            CliError::new(Exit::Conflict, "not confirmed; nothing was changed")
                .hint(format!("type `{env}` exactly, or pass --yes")),
        )
    }
}
