//! `slipway logs <env> [--app | --agent | --deploy <id>] [--follow]`.

use super::{block_on, connect};
use crate::cli::{GlobalArgs, LogsArgs};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::context::Target;
use crate::providers::docker::names::{LABEL_DEPLOYMENT, Slot};
use slipway_core::config::SecretsNeed;

pub fn run(args: &LogsArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    block_on(async {
        let t = connect(global, &args.env, SecretsNeed::NotNeeded, printer).await?;
        let container = if args.agent {
            t.names.agent()
        } else if let Some(id) = &args.deploy {
            let mut found = None;
            for slot in [Slot::Blue, Slot::Green] {
                if let Some(c) = t.engine.inspect(&t.names.slot(slot)).await
                    && c.labels.get(LABEL_DEPLOYMENT) == Some(id)
                {
                    found = Some(c.name);
                }
            }
            found.ok_or_else(|| {
                CliError::new(Exit::Failed, format!("no container of deployment {id} is kept"))
                    .hint("only the current and previous releases' containers are kept; `slipway history` shows each deployment's error")
            })?
        } else {
            let ledger = t
                .ledger()
                .await
                .map_err(|e| super::step_error(Exit::Unavailable, e))?;
            let slot = Target::active_slot(ledger.as_ref()).ok_or_else(|| {
                CliError::new(Exit::Failed, format!("no release serves `{}`", args.env))
                    .hint(format!("deploy first: slipway deploy {}", args.env))
            })?;
            t.names.slot(slot)
        };
        printer.note(&format!("logs of {container}"));
        t.engine
            .stream_logs(&container, args.follow, &args.tail, |chunk| {
                printer.line(chunk.trim_end_matches('\n'))
            })
            .await
            .map_err(|e| CliError::new(Exit::Unavailable, e.to_string()))
    })
}
