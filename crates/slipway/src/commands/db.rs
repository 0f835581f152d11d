//! `slipway db shell|url <env>`: the environment's database for a person
//! (psql next to the database, so client and server versions match) or for
//! a tool (the URL, password redacted unless asked).

use serde_json::json;
use slipway_core::config::SecretsNeed;
use slipway_core::config::schema::DatabaseMode;
use slipway_core::secret::{Secret, redact_url};
use slipway_core::snapshot::site::PgConn;

use super::{block_on, connect, load_config};
use crate::cli::{DbCommand, DbShellArgs, DbUrlArgs, GlobalArgs};
use crate::exit::CliError;
use crate::output::Printer;
use crate::providers::docker::cli::{DockerCli, interactive_flags};
use crate::tasks::{self, TaskContext};

pub fn run(cmd: &DbCommand, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    match cmd {
        DbCommand::Shell(args) => shell(args, global, printer),
        DbCommand::Url(args) => url(args, global, printer),
    }
}

fn shell(args: &DbShellArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let (mut command, describe) = block_on(async {
        let t = connect(global, &args.env, SecretsNeed::Required, printer).await?;
        let ctx = TaskContext {
            engine: &t.engine,
            names: &t.names,
            config: &t.config,
        };
        tasks::require_database(&ctx).await?;
        let url = tasks::database_url(&t.config, &t.names)?;
        let conn = PgConn::from_url(&url)
            .map_err(|e| CliError::bad_input(format!("the database URL cannot be used: {e}")))?;
        let mut env: Vec<(String, Secret)> = conn
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let mut docker = Vec::new();
        let describe = match t.config.settings.database.mode {
            DatabaseMode::Container => {
                // Inside the database container, over its loopback.
                env.retain(|(k, _)| k != "PGHOST" && k != "PGPORT");
                env.push(("PGHOST".into(), Secret::new("127.0.0.1".to_string())));
                env.push(("PGPORT".into(), Secret::new("5432".to_string())));
                docker.push("exec".to_string());
                docker.extend(interactive_flags());
                docker.extend([t.names.database(), "psql".into()]);
                format!("in {}", t.names.database())
            }
            DatabaseMode::External => {
                let image = t.config.settings.database.image.clone();
                docker.extend([
                    "run".into(),
                    "--rm".into(),
                    "--log-driver".into(),
                    "none".into(),
                ]);
                docker.extend(interactive_flags());
                docker.extend([
                    "--network".into(),
                    t.names.network(),
                    "--entrypoint".into(),
                    "psql".into(),
                    image.clone(),
                ]);
                format!("from a one-off container of {image}")
            }
        };
        docker.extend(args.psql_args.iter().cloned());
        Ok((
            DockerCli::new(&t.engine.host).command(&docker, &env),
            format!("psql {} as {} ({describe})", conn.dbname, conn.user),
        ))
    })?;
    printer.note(&describe);
    super::exec::run_attached(&mut command, "`slipway db shell`", printer)
}

fn url(args: &DbUrlArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let config = load_config(global, &args.env, SecretsNeed::Required, printer)?;
    let names =
        crate::providers::docker::names::Names::new(&config.settings.app.name, &config.environment);
    let url = tasks::database_url(&config, &names)?;
    let shown = if args.show_password {
        url.expose().to_string()
    } else {
        redact_url(url.expose())
    };
    let reach = match config.settings.database.mode {
        DatabaseMode::Container => format!(
            "reachable from containers on the network {} (the database publishes no port); from here: slipway db shell {}",
            names.network(),
            args.env
        ),
        DatabaseMode::External => "the external database of DATABASE_URL".to_string(),
    };
    if printer.json() {
        printer.json_value(&json!({
            "url": shown,
            "password_shown": args.show_password,
            "mode": config.settings.database.mode,
            "network": names.network(),
        }));
    } else {
        printer.line(&shown);
        printer.note(&reach);
        if !args.show_password {
            printer.note("the password is redacted; --show-password prints it");
        }
    }
    Ok(())
}
