//! `slipway ci check <env>`: the deploy's CI gate on its own, without an
//! engine: resolves the commit as `deploy` would and asks the forge.

use serde_json::json;
use slipway_core::ci::CheckState;
use slipway_core::config::SecretsNeed;

use super::{block_on, load_config};
use crate::cli::{CiCheckArgs, CiCommand, GlobalArgs};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::ci_gate::{self, GateOptions, GateOutcome};
use crate::pipeline::release;

pub fn run(cmd: &CiCommand, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    match cmd {
        CiCommand::Check(args) => check(args, global, printer),
    }
}

fn check(args: &CiCheckArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    // `.env.<env>` is read when present (it may hold GITHUB_TOKEN); the
    // app's secrets are not needed to ask the forge.
    let config = load_config(global, &args.env, SecretsNeed::NotNeeded, printer)?;
    let release = release::resolve(&config.root, args.git_ref.as_deref())
        .map_err(|e| CliError::new(Exit::BadInput, e.message).hint(e.hint))?;
    let opts = GateOptions {
        skip_reason: None,
        explicit_ref: args.git_ref.is_some(),
    };
    let outcome = block_on(async {
        Ok(ci_gate::check(
            &config,
            &release,
            &opts,
            &|name: &str| std::env::var(name).ok(),
            &|n: &str| printer.note(&format!("  {n}")),
        )
        .await)
    })?;
    release.cleanup(&config.root);
    match outcome {
        Ok(outcome) => {
            if printer.json() {
                printer.json_value(&json!({
                    "ok": true, "environment": config.environment, "commit": release.commit,
                    "release": release.id, "gate": outcome,
                }));
                return Ok(());
            }
            match &outcome {
                GateOutcome::Passed { checks, .. } => {
                    printer.success(&format!(
                        "commit {} ({}) may deploy to {}: {}",
                        &release.commit[..12.min(release.commit.len())],
                        release.version,
                        config.environment,
                        outcome.summary()
                    ));
                    for c in checks {
                        if let CheckState::Passed { conclusion } = &c.state {
                            printer.line(format!("  {:<24} {conclusion}", c.name));
                        }
                    }
                }
                _ => printer.success(&outcome.summary()),
            }
            Ok(())
        }
        Err(e) => {
            if printer.json() {
                printer.json_value(&json!({
                    "ok": false, "environment": config.environment, "commit": release.commit,
                    "release": release.id, "error": e.message, "hint": e.hint, "checks": e.checks,
                }));
            } else {
                for c in &e.checks {
                    let state = match &c.state {
                        CheckState::Passed { conclusion } | CheckState::Failed { conclusion } => {
                            conclusion.clone()
                        }
                        CheckState::Pending { status } => status.clone(),
                        CheckState::Missing => "missing".into(),
                    };
                    printer.line(format!(
                        "  {:<24} {state}{}",
                        c.name,
                        c.url.as_ref().map(|u| format!("  {u}")).unwrap_or_default()
                    ));
                }
            }
            Err(CliError::new(e.exit, e.message).hint(e.hint))
        }
    }
}
