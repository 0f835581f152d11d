//! `slipway deploy <env>`: the whole pipeline (see `pipeline/mod.rs`), or
//! with `--dry-run` the plan only.

use serde_json::json;
use slipway_core::config::SecretsNeed;

use super::{block_on, connect, step_error};
use crate::cli::{DeployArgs, GlobalArgs};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::context::Target;
use crate::pipeline::progress::Progress;
use crate::pipeline::{self, DeployOptions, release};
use crate::providers::docker::names::Slot;

pub fn run(args: &DeployArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    block_on(async {
        let t = connect(global, &args.env, SecretsNeed::Required, printer).await?;
        if args.dry_run {
            return dry_run(&t, args, printer).await;
        }
        printer.note(&format!(
            "deploying {} to {} on {}",
            t.config.settings.app.name, t.config.environment, t.engine.host
        ));
        let mut progress = Progress::new(printer);
        let opts = DeployOptions {
            git_ref: args.git_ref.clone(),
            skip_migrations: args.skip_migrations,
            maintenance: args.maintenance,
            ci: crate::pipeline::ci_gate::GateOptions {
                skip_reason: skip_reason(args)?,
                explicit_ref: args.git_ref.is_some(),
            },
        };
        match pipeline::deploy(&t, &opts, &mut progress).await {
            Ok(report) => {
                if printer.json() {
                    printer.json_value(&report);
                } else {
                    printer.success(&format!(
                        "{} {} is live in {} ({} slot) after {:.1}s; serving on {}",
                        t.config.settings.app.name,
                        report.release.id,
                        report.environment,
                        report.slot,
                        report.total_ms as f64 / 1000.0,
                        report.url
                    ));
                    printer.line(format!(
                        "  curl -s {}",
                        t.public_url(&t.config.settings.health.path)
                    ));
                }
                Ok(())
            }
            Err(failure) => {
                if printer.json() {
                    printer.json_value(&json!({
                        "ok": false, "failed_step": failure.step, "error": failure.error.message,
                        "hint": failure.error.hint, "rolled_back": failure.rolled_back, "steps": failure.steps,
                    }));
                }
                let held = (failure.step == "lock"
                    && failure.error.message.contains("holds the lock"))
                    || (failure.step == "preflight"
                        && failure.error.message.contains("holds the migration lock"));
                let exit = if held { Exit::Conflict } else { Exit::Failed };
                let mut err = step_error(exit, failure.error);
                err.message = format!("deploy failed at step `{}`: {}", failure.step, err.message);
                if failure.rolled_back {
                    err.message
                        .push_str("\n  traffic was switched back to the previous release");
                }
                Err(err)
            }
        }
    })
}

async fn dry_run(t: &Target, args: &DeployArgs, printer: &Printer) -> Result<(), CliError> {
    let release = release::resolve(&t.config.root, args.git_ref.as_deref())
        .map_err(|e| CliError::new(Exit::BadInput, e.message).hint(e.hint))?;
    release.cleanup(&t.config.root);
    let ledger = t
        .ledger()
        .await
        .map_err(|e| step_error(Exit::Unavailable, e))?;
    let active = Target::active_slot(ledger.as_ref());
    let idle = active.map_or(Slot::Blue, Slot::other);
    let s = &t.config.settings;
    let migrations_dir = t.config.path(&s.database.migrations);
    let migration_files = fs_err::read_dir(&migrations_dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".up.sql"))
                .count()
        })
        .unwrap_or(0);
    let plan = json!({
        "environment": t.config.environment,
        "engine": t.engine.host,
        "release": release,
        "image": t.names.image(&release.id),
        "current_release": ledger.as_ref().and_then(|l| l.current_deployment.as_ref().map(|d| d.version.clone())),
        "active_slot": active.map(|s| s.to_string()),
        "new_slot": idle.to_string(),
        "container": t.names.slot(idle),
        "network": t.names.network(),
        "database": { "mode": s.database.mode, "container": t.names.database(), "image": s.database.image, "extensions": s.database.extensions },
        "migrations": { "dir": migrations_dir, "files": migration_files, "skipped": args.skip_migrations },
        "snapshot_dir": s.database.snapshots.dir,
        "health": { "path": s.health.path, "healthy_threshold": s.health.healthy_threshold, "start_timeout": String::from(s.health.start_timeout.clone()) },
        "watch_window": String::from(s.deployment.watch_window.clone()),
        "analysis": crate::pipeline::analysis::spec(t, "(at deploy)"),
        "notifications": notification_channels(t),
        "hooks": crate::pipeline::hooks::plan(t)
            .into_iter()
            .map(|(point, what)| (point.key().to_string(), json!(what)))
            .collect::<serde_json::Map<_, _>>(),
        "ci": ci_plan(t, args),
        "maintenance": args.maintenance.then(|| json!({
            "migration_timeout": String::from(s.deployment.maintenance.migration_timeout.clone()),
            "retry_after": String::from(s.deployment.maintenance.retry_after.clone()),
        })),
        "url": t.public_url("/"),
    });
    if printer.json() {
        printer.json_value(&plan);
    } else {
        printer.line(format!(
            "plan for {} (dry run: nothing changes)",
            t.config.environment
        ));
        printer.line(format!(
            "  engine      {} (Docker {})",
            t.engine.host, t.engine.server_version
        ));
        printer.line(format!(
            "  release     {} ({}, {} @ {})",
            release.id,
            release.version,
            release.git_ref,
            &release.commit[..12.min(release.commit.len())]
        ));
        printer.line(format!("  image       {}", t.names.image(&release.id)));
        printer.line(format!(
            "  slots       {} → {} ({})",
            active.map_or("none".to_string(), |a| a.to_string()),
            idle,
            t.names.slot(idle)
        ));
        printer.line(format!(
            "  database    {:?} {} ({}), extensions {:?}",
            s.database.mode,
            t.names.database(),
            s.database.image,
            s.database.extensions
        ));
        printer.line(format!(
            "  migrations  {} ({} up files){}",
            migrations_dir.display(),
            migration_files,
            if args.skip_migrations {
                ", skipped"
            } else {
                ", after a snapshot"
            }
        ));
        if args.maintenance {
            printer.line(format!(
                "  maintenance on before the migration (statement/lock timeout {}), lifted after the switch",
                String::from(s.deployment.maintenance.migration_timeout.clone())
            ));
        }
        printer.line(format!(
            "  switch      when {} passes {}× through the agent, then watch {}",
            s.health.path,
            s.health.healthy_threshold,
            String::from(s.deployment.watch_window.clone())
        ));
        match crate::pipeline::analysis::spec(t, "") {
            Some(a) => printer.line(format!(
                "  analysis    by the agent for {} after the switch: health {}× failing, 5xx > {:.1} %, p95 > {}× before and > {} ms over {}; on failure: {}",
                crate::pipeline::analysis::clock(a.window_ms),
                a.health_failures,
                a.max_error_ratio * 100.0,
                a.p95_factor,
                a.p95_floor_ms,
                crate::pipeline::analysis::clock(a.interval_ms),
                a.on_failure
            )),
            None => printer.line("  analysis    off (deployment.analysis.window: 0s)"),
        }
        let channels = notification_channels(t);
        printer.line(format!(
            "  notify      {}",
            if channels.is_empty() {
                "the agent's log only (no notifications configured)".to_string()
            } else {
                channels.join(", ")
            }
        ));
        let hooks = crate::pipeline::hooks::plan(t);
        if hooks.is_empty() {
            printer.line("  hooks       none");
        }
        for (point, what) in hooks {
            printer.line(format!("  hook        {}: {what}", point.key()));
        }
        printer.line(format!(
            "  ci gate     {}",
            match ci_plan(t, args) {
                serde_json::Value::Null => "off (no deployment.require_ci)".to_string(),
                v if args.skip_ci_check =>
                    format!("skipped: {}", v["skipped"].as_str().unwrap_or_default()),
                v => format!(
                    "{} on {}: {} must have passed (`slipway ci check {}` asks now)",
                    v["provider"].as_str().unwrap_or_default(),
                    v["repository"].as_str().unwrap_or("the remote `origin`"),
                    v["checks"]
                        .as_array()
                        .map(|c| c
                            .iter()
                            .filter_map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default(),
                    t.config.environment
                ),
            }
        ));
        printer.line(format!("  serves      {}", t.public_url("/")));
    }
    Ok(())
}

/// What the CI gate would check (the dry run does not ask the forge).
fn ci_plan(t: &Target, args: &DeployArgs) -> serde_json::Value {
    match &t.config.settings.deployment.require_ci {
        None if !args.skip_ci_check => serde_json::Value::Null,
        require => json!({
            "provider": require.as_ref().map(|r| r.provider),
            "repository": require.as_ref().and_then(|r| r.repository.clone()),
            "checks": require.as_ref().map(|r| r.checks.clone()),
            "wait": require.as_ref().map(|r| String::from(r.wait.clone())),
            "skipped": args.skip_ci_check.then(|| args.reason.clone()),
        }),
    }
}

/// `--skip-ci-check --reason <text>` (clap makes each require the other).
fn skip_reason(args: &DeployArgs) -> Result<Option<String>, CliError> {
    if !args.skip_ci_check {
        return Ok(None);
    }
    match args.reason.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => Ok(Some(r.to_string())),
        _ => Err(
            CliError::bad_input("--skip-ci-check needs a --reason that says why")
                .hint("e.g. --skip-ci-check --reason \"GitHub outage; tests passed locally\""),
        ),
    }
}

/// The configured channels, by name (never their URLs: they carry tokens).
fn notification_channels(t: &Target) -> Vec<&'static str> {
    let n = &t.config.settings.notifications;
    [
        n.webhook.as_ref().map(|_| "webhook"),
        n.ntfy.as_ref().map(|_| "ntfy"),
    ]
    .into_iter()
    .flatten()
    .collect()
}
