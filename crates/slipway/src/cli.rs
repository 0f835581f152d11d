//! The command line, as clap types. Each subcommand's arguments live here;
//! its behaviour lives in `commands/<verb>.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Deploy a Postgres-backed web service to any server with one command and zero downtime.
///
/// Slipway reads deploy/config/deployment.yml (found from the current
/// directory upwards) and deploy/config/environments/.env.<env>.
#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit codes: 0 success, 1 operation failed, 2 bad input or configuration, \
3 conflict (lock held, confirmation refused), 4 engine/database unreachable.\n\
Start with `slipway init`, then `slipway config validate development`."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Path of deployment.yml (default: deploy/config/deployment.yml, searched upwards from the current directory)
    #[arg(long, global = true, env = "SLIPWAY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Format of log lines on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// More log detail on stderr (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Override a configuration key, most specific of all (repeatable): --set deployment.drain_timeout=45s
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold deploy/ in an application repository (never overwrites a file)
    Init(InitArgs),
    /// Check and inspect the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Application name (lower-case; used for images, containers and volumes). Default: the directory's name
    #[arg(long)]
    pub name: Option<String>,
    /// Repository to initialise
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate one environment's configuration; reports every problem as file:line:column
    Validate(EnvArg),
    /// Print the merged configuration with secrets redacted and where each value came from
    Show(EnvArg),
    /// Print the JSON Schema of deployment.yml (for editors)
    Schema,
}

#[derive(Debug, Args)]
pub struct EnvArg {
    /// Environment name, as under `environments:` in deployment.yml (e.g. development, staging, production)
    pub env: String,
}
