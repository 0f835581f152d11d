//! `slipway exec <env> -- <command>`: a one-off container of the serving
//! release's image, on the environment's network, with the app's
//! environment and secrets; its exit code becomes Slipway's.

use slipway_core::config::SecretsNeed;
use slipway_core::secret::Secret;

use super::{block_on, connect_deployed, step_error};
use crate::cli::{ExecArgs, GlobalArgs};
use crate::exit::{CliError, Exit};
use crate::output::Printer;
use crate::pipeline::context::Target;
use crate::providers::docker::cli::{DockerCli, describe_exit, interactive_flags};
use crate::providers::docker::names::{LABEL_RELEASE, Slot};

pub fn run(args: &ExecArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let (mut command, release) = block_on(async {
        let t = connect_deployed(global, &args.env, SecretsNeed::Required, printer).await?;
        let ledger = t
            .ledger()
            .await
            .map_err(|e| step_error(Exit::Unavailable, e))?;
        let serving = ledger
            .as_ref()
            .and_then(|l| l.route.as_ref()?.active.clone())
            .ok_or_else(|| {
                CliError::new(
                    Exit::Failed,
                    format!(
                        "no release serves `{}` yet, so there is no image to run",
                        args.env
                    ),
                )
                .hint(format!("deploy first: slipway deploy {}", args.env))
            })?;
        let slot = serving
            .slot
            .as_deref()
            .and_then(Slot::parse)
            .unwrap_or(Slot::Blue);
        let image = t.names.image(&serving.release);
        if !t.engine.image_exists(&image).await {
            return Err(CliError::new(
                Exit::Failed,
                format!("the serving release's image {image} is not on the engine"),
            )
            .hint(format!("`slipway deploy {}` builds it again", args.env)));
        }
        Ok((
            one_off(&t, &image, slot, &serving.release, &args.command)?,
            serving.release,
        ))
    })?;
    printer.note(&format!(
        "running `{}` in a one-off container of {release}",
        args.command.join(" ")
    ));
    run_attached(&mut command, "`slipway exec`", printer)
}

/// Runs a docker CLI command attached to this terminal and exits with its
/// exit code when it fails, as the operator's scripts expect of a command
/// run through Slipway (`exec`, `db shell`).
pub(super) fn run_attached(
    command: &mut std::process::Command,
    what: &str,
    printer: &Printer,
) -> Result<(), CliError> {
    let status = command.status().map_err(|e| {
        CliError::new(Exit::Failed, format!("cannot run the docker CLI: {e}")).hint(format!(
            "install the docker client (the `docker` command): {what} attaches your terminal through it"
        ))
    })?;
    match status.code().unwrap_or(1) {
        0 => Ok(()),
        code => {
            if let Some(why) = describe_exit(code) {
                printer.note(&format!("exit {code}: {why}"));
            }
            std::process::exit(code)
        }
    }
}

/// `docker run --rm` of `image` with the app's environment (passed by
/// name), labelled so a leftover is found and known for what it is.
fn one_off(
    t: &Target,
    image: &str,
    slot: Slot,
    release: &str,
    command: &[String],
) -> Result<std::process::Command, CliError> {
    let env = crate::pipeline::slot::container_env(t, slot, release)
        .map_err(|e| step_error(Exit::BadInput, e))?;
    let mut env: Vec<(String, Secret)> = env
        .into_iter()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), Secret::new(v.to_string())))
        })
        // Not a slot: the app must not think it serves.
        .filter(|(k, _)| k != "SLOT")
        .collect();
    env.push(("SLIPWAY_ONE_OFF".into(), Secret::new("1".to_string())));
    let name = format!(
        "{}-exec-{}",
        t.names.route(),
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let mut args = vec!["run".to_string(), "--rm".to_string()];
    args.extend(interactive_flags());
    args.extend(["--name".into(), name, "--network".into(), t.names.network()]);
    let mut labels = t.names.labels("exec");
    labels.insert(LABEL_RELEASE.into(), release.to_string());
    for (k, v) in labels {
        args.extend(["--label".into(), format!("{k}={v}")]);
    }
    let (program, rest) = command.split_first().ok_or_else(|| {
        CliError::bad_input("no command given").hint("slipway exec <env> -- <command> [args...]")
    })?;
    args.extend(["--entrypoint".into(), program.clone(), image.to_string()]);
    args.extend(rest.iter().cloned());
    Ok(DockerCli::new(&t.engine.host).command(&args, &env))
}
