//! `slipway watch <env>`: the host's post-deploy analysis, live, to its
//! verdict; then the old slot, kept warm for a switch-back, is stopped.

use slipway_core::config::SecretsNeed;
use std::time::Duration;

use slipway_core::analysis::AnalysisState;

use super::{block_on, connect_deployed, step_error};
use crate::cli::{GlobalArgs, WatchArgs};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::context::Target;
use crate::pipeline::{analysis, lock, retire};

pub fn run(args: &WatchArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    block_on(async {
        let t = connect_deployed(global, &args.env, SecretsNeed::NotNeeded, printer).await?;
        let first = analysis::current(&t)
            .await
            .map_err(|e| step_error(Exit::Unavailable, e))?;
        let Some(first) = first else {
            printer.note(&format!(
                "no analysis on record for `{}`: it starts at the next deploy's switch \
                 (deployment.analysis.window is not 0s)",
                args.env
            ));
            if printer.json() {
                printer.json_value(&serde_json::Value::Null);
            }
            return Ok(());
        };
        let report = if first.state.is_final() {
            first
        } else {
            printer.note(&format!(
                "following the analysis of {} ({}), {} left; Ctrl-C stops watching, not the analysis",
                first.release,
                first.spec.deployment_id,
                analysis::clock(first.spec.window_ms.saturating_sub(first.elapsed_ms))
            ));
            // Longer than what is left, so the verdict is seen.
            let stay = Duration::from_millis(first.spec.window_ms.saturating_sub(first.elapsed_ms))
                + Duration::from_secs(60);
            analysis::follow(
                &t,
                &first.spec.deployment_id,
                stay,
                Duration::from_secs(5),
                &|l: &str| printer.note(&format!("  {l}")),
            )
            .await
            .map_err(|e| step_error(Exit::Unavailable, e))?
            .unwrap_or(first)
        };
        if report.state.is_final()
            && matches!(
                report.state,
                AnalysisState::Passed | AnalysisState::Inconclusive
            )
            && !args.keep_old_slot
            && let Some(note) = retire_warm_slot(&t).await
        {
            printer.note(&note);
        }
        if printer.json() {
            printer.json_value(&report);
        } else {
            for line in analysis::describe(&report) {
                printer.line(line);
            }
        }
        if report.state == AnalysisState::Failed {
            return Err(CliError::new(
                Exit::Failed,
                format!(
                    "the analysis of {} failed: {}",
                    report.release,
                    report.reason.as_deref().unwrap_or("see above")
                ),
            )
            .hint(format!(
                "`slipway history {env}` records it; fix the release and deploy again{}",
                if report.action == Some(slipway_core::analysis::AnalysisAction::Alerted) {
                    format!(
                        ", or switch back now with `slipway rollback {env}`",
                        env = args.env
                    )
                } else {
                    String::new()
                },
                env = args.env
            )));
        }
        Ok(())
    })
}

/// Stop the slot that is not serving if it still runs: the deploy kept it
/// warm for the analysis. Under the deploy lock, so a deploy starting a
/// container in that slot is never touched; a held lock leaves it be.
async fn retire_warm_slot(t: &Target) -> Option<String> {
    let ledger = t.ledger().await.ok()??;
    let active = Target::active_slot(Some(&ledger))?;
    if t.config.settings.app.exclusive_jobs {
        return None;
    }
    let idle = active.other();
    let running = t.engine.inspect(&t.names.slot(idle)).await?.running;
    if !running {
        return None;
    }
    let id = format!("watch_{}", ulid::Ulid::new());
    let held = lock::acquire(t, &id).await.ok()?;
    let result = retire::old_slot(t, idle).await;
    let _ = lock::release(t, &held.lock.lock_id).await;
    Some(match result {
        Ok(()) => format!(
            "stopped {} (kept warm during the analysis; `slipway rollback {}` starts it again)",
            t.names.slot(idle),
            t.config.environment
        ),
        Err(e) => format!("could not stop {}: {}", t.names.slot(idle), e.message),
    })
}
