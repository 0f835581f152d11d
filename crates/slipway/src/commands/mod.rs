//! One file per verb. [`run`] dispatches; [`load_config`] is the one way a
//! command gets its configuration (discovery, process environment, `--set`).

mod agent;
mod ci;
mod completions;
mod config;
mod db;
mod deploy;
mod destroy;
mod exec;
mod history;
mod init;
mod init_ci;
mod lock;
mod logs;
mod maintenance;
mod man;
mod migrate;
mod notify;
mod rollback;
mod snapshot;
mod status;
mod watch;

use std::path::PathBuf;

use slipway_core::config::{LoadOptions, ResolvedConfig, SecretsNeed, discover};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::exit::CliError;
use crate::output::Printer;

pub fn run(cli: Cli, printer: &Printer) -> Result<(), CliError> {
    match cli.command {
        Command::Init(args) => init::run(&args, printer),
        Command::Config(cmd) => config::run(&cmd, &cli.global, printer),
        Command::Deploy(args) => deploy::run(&args, &cli.global, printer),
        Command::Rollback(args) => rollback::run(&args, &cli.global, printer),
        Command::Status(args) => status::run(&args.env, &cli.global, printer),
        Command::History(args) => history::run(&args, &cli.global, printer),
        Command::Watch(args) => watch::run(&args, &cli.global, printer),
        Command::Notify(cmd) => notify::run(&cmd, &cli.global, printer),
        Command::Logs(args) => logs::run(&args, &cli.global, printer),
        Command::Lock(cmd) => lock::run(&cmd, &cli.global, printer),
        Command::Agent(cmd) => agent::run(&cmd, &cli.global, printer),
        Command::Migrate(cmd) => migrate::run(&cmd, &cli.global, printer),
        Command::Snapshot(cmd) => snapshot::run(&cmd, &cli.global, printer),
        Command::Exec(args) => exec::run(&args, &cli.global, printer),
        Command::Db(cmd) => db::run(&cmd, &cli.global, printer),
        Command::Ci(cmd) => ci::run(&cmd, &cli.global, printer),
        Command::Destroy(args) => destroy::run(&args, &cli.global, printer),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args, printer),
        Command::Maintenance(cmd) => maintenance::run(&cmd, &cli.global, printer),
    }
}

/// `--config`, or `deploy/config/deployment.yml` found upwards from here.
pub fn config_path(global: &GlobalArgs) -> Result<PathBuf, CliError> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::bad_input(format!("cannot read the current directory: {e}")))?;
    if let Some(path) = &global.config {
        // Absolute, so the repository root derived from it is a real
        // directory (`--config deploy/config/x.yml` would give an empty one).
        return Ok(cwd.join(path));
    }
    discover::find_config(&cwd).ok_or_else(|| {
        CliError::bad_input(format!(
            "no {} found in {} or any parent directory",
            discover::CONFIG_RELATIVE,
            cwd.display()
        ))
        .hint("run `slipway init` in your repository, or pass --config <path to deployment.yml>")
    })
}

/// What to load for `env`: the configuration file, this process's
/// environment and the `--set` flags; `.env.<env>` unless the command only
/// reads (`SecretsNeed::NotNeeded`).
pub fn load_options(
    global: &GlobalArgs,
    env: &str,
    secrets: SecretsNeed,
) -> Result<LoadOptions, CliError> {
    Ok(LoadOptions {
        config_path: config_path(global)?,
        environment: env.to_string(),
        process_env: std::env::vars().collect(),
        cli_overrides: global.overrides.clone(),
        secrets,
    })
}

/// Loads and validates one environment, printing every problem (and
/// warnings) on stderr. Fails with exit code 2 when any problem is an error.
pub fn load_config(
    global: &GlobalArgs,
    env: &str,
    secrets: SecretsNeed,
    printer: &Printer,
) -> Result<ResolvedConfig, CliError> {
    match slipway_core::config::load(&load_options(global, env, secrets)?) {
        Ok(config) => {
            config.warnings.iter().for_each(|w| printer.problem(w));
            Ok(config)
        }
        Err(problems) => {
            problems.0.iter().for_each(|p| printer.problem(p));
            let count = problems.errors().count();
            Err(CliError::bad_input(format!(
                "the configuration for `{env}` has {count} error{}",
                if count == 1 { "" } else { "s" }
            ))
            .hint("fix the problems above (each names file:line:column), then run `slipway config validate` again"))
        }
    }
}

/// Runs an async command body on a fresh runtime.
pub fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CliError::new(
                crate::exit::Exit::Failed,
                format!("cannot start the async runtime: {e}"),
            )
        })?;
    runtime.block_on(future)
}

/// Loads the configuration and connects to the environment's engine.
pub async fn connect(
    global: &GlobalArgs,
    env: &str,
    secrets: SecretsNeed,
    printer: &Printer,
) -> Result<crate::pipeline::context::Target, CliError> {
    let config = load_config(global, env, secrets, printer)?;
    crate::pipeline::context::Target::connect(config)
        .await
        .map_err(|e| step_error(crate::exit::Exit::Unavailable, e))
}

/// [`connect`], refusing an environment whose agent does not exist yet
/// (nothing was ever deployed there).
pub async fn connect_deployed(
    global: &GlobalArgs,
    env: &str,
    secrets: SecretsNeed,
    printer: &Printer,
) -> Result<crate::pipeline::context::Target, CliError> {
    let t = connect(global, env, secrets, printer).await?;
    if t.engine.inspect(&t.names.agent()).await.is_none() {
        return Err(CliError::new(
            crate::exit::Exit::Failed,
            format!("nothing deployed to `{env}` yet (no agent runs for it)"),
        )
        .hint(format!("deploy first: slipway deploy {env}")));
    }
    Ok(t)
}

pub fn step_error(exit: crate::exit::Exit, e: crate::pipeline::context::StepError) -> CliError {
    let mut err = CliError::new(exit, e.message);
    err.hint = e.hint;
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_config_flag_gives_a_real_repository_root() {
        let global = GlobalArgs {
            config: Some(PathBuf::from("deploy/config/deployment.yml")),
            json: false,
            log_format: crate::cli::LogFormat::Human,
            verbose: 0,
            overrides: Vec::new(),
        };
        let path = config_path(&global).expect("a path");
        assert!(path.is_absolute(), "{}", path.display());
        let root = slipway_core::config::load::repository_root(&path);
        assert_eq!(root, std::env::current_dir().expect("cwd"));
    }
}
