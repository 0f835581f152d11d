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
    /// Build, migrate (after a snapshot), start beside the old release, switch when healthy, watch
    Deploy(DeployArgs),
    /// Switch back to the previous release (or --to a kept one)
    Rollback(RollbackArgs),
    /// Current and previous release, slot, health, lock (--json: the deployment-state shape)
    Status(EnvArg),
    /// Deployments of an environment, newest first
    History(HistoryArgs),
    /// Follow the host's post-deploy analysis of the serving release live, to its verdict
    Watch(WatchArgs),
    /// Notifications (webhook, ntfy): send a test event, show the delivery queue
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Logs of the running release (--app) or of the agent's access log
    Logs(LogsArgs),
    /// The deploy lock
    #[command(subcommand)]
    Lock(LockCommand),
    /// The host's agent: status, and upgrades without a traffic gap
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Database migrations (golang-migrate layout): status, up, down, force
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Database snapshots (verified pg_dump archives): create, list, restore, prune
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Maintenance mode: the public gets a 503 maintenance page until you lift it
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// Run a one-off command in the serving release's image, with its environment and secrets
    #[command(after_help = "Examples:\n  \
slipway exec production -- events-server admin reindex\n  \
slipway exec staging -- sh            (an interactive shell, if the image has one)\n\
The command runs in a new container (removed afterwards) from the image of the release that \
serves now, on the environment's network, with the app's environment; the first word replaces \
the image's entrypoint. Interactive when stdin and stdout are terminals.\n\
Exit codes: the command's own; 1, 2, 4 as for every command when it could not start.")]
    Exec(ExecArgs),
    /// The environment's database: an interactive psql, or its URL for tools
    #[command(subcommand)]
    Db(DbCommand),
    /// The CI gate: did the commit pass the checks deployment.require_ci names?
    #[command(subcommand)]
    Ci(CiCommand),
    /// Remove everything the environment runs on the host (keeps the database and snapshots)
    #[command(
        after_help = "Removes the app's slots, the agent and its edge, one-off task \
containers, the agent's state (lock, history, notification queue), the network and the \
database container. Keeps the database volume and the snapshots, so the next \
`slipway deploy` finds the data again, unless --delete-data. Images are kept (the app's \
other environments may use them). On a host's shared entry point (deployment.hostnames), \
its hostnames are no longer routed and their certificates no longer renewed. Refuses while a \
deploy holds the lock.\n\
Exit codes: 0 removed; 1 failed; 2 bad input; 3 lock held or not confirmed; 4 engine unreachable."
    )]
    Destroy(DestroyArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "Install:\n  \
bash: slipway completions bash > ~/.local/share/bash-completion/completions/slipway\n  \
zsh:  slipway completions zsh > ~/.zfunc/_slipway   (with fpath+=~/.zfunc before compinit)\n  \
fish: slipway completions fish > ~/.config/fish/completions/slipway.fish")]
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one page per command with --dir
    #[command(after_help = "Read it: slipway man | man -l -\n\
Install: slipway man --dir ~/.local/share/man/man1 (then `man slipway-deploy`)")]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Environment name (e.g. production)
    pub env: String,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// psql into the environment's database (next to it, so versions match)
    #[command(after_help = "Examples:\n  \
slipway db shell production\n  \
slipway db shell production -- -c 'select count(*) from events'\n  \
slipway db shell staging < fix.sql")]
    Shell(DbShellArgs),
    /// Print the database URL (password redacted unless --show-password)
    Url(DbUrlArgs),
}

#[derive(Debug, Args)]
pub struct DbShellArgs {
    /// Environment name (e.g. production)
    pub env: String,
    /// More psql arguments, after `--`
    #[arg(last = true, value_name = "PSQL_ARGS")]
    pub psql_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DbUrlArgs {
    /// Environment name (e.g. production)
    pub env: String,
    /// Print the real password (for a tool that needs it; keep it out of shell history and logs)
    #[arg(long)]
    pub show_password: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Environment name (e.g. staging)
    pub env: String,
    /// Also delete the database volume and this environment's snapshots (cannot be undone)
    #[arg(long)]
    pub delete_data: bool,
    /// Do not ask to type the environment's name (required when stdin is not a terminal)
    #[arg(long, short)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write slipway.1 and a slipway-<command>.1 page for every command into this directory
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Steps: preflight (with the CI gate of deployment.require_ci), provision + lock, build, database, snapshot, (maintenance with --maintenance,) migrate, start, switch, watch, retire.\n\
On failure, what the deploy did is undone and traffic stays on (or returns to) the previous release.\n\
Exit codes: 0 deployed; 1 failed (see the step and hint); 2 bad configuration; 3 lock held; 4 engine unreachable."
)]
pub struct DeployArgs {
    /// Environment name (e.g. production)
    pub env: String,
    /// Git branch, tag or commit to deploy (default: the checked-out commit, with uncommitted changes)
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not snapshot or migrate the database
    #[arg(long)]
    pub skip_migrations: bool,
    /// Put the environment in maintenance mode for the migration (which gets
    /// deployment.maintenance.migration_timeout) and lift it after the switch
    #[arg(long, conflicts_with = "skip_migrations")]
    pub maintenance: bool,
    /// Answer yes to confirmations
    #[arg(long, short)]
    pub yes: bool,
    /// Deploy without asking the forge whether the commit passed CI
    /// (deployment.require_ci); needs --reason, which the history keeps
    #[arg(long, requires = "reason")]
    pub skip_ci_check: bool,
    /// Why the CI gate is skipped (recorded in the deployment's history entry)
    #[arg(long, value_name = "TEXT", requires = "skip_ci_check")]
    pub reason: Option<String>,
}

#[derive(Debug, Subcommand)]
#[command(
    after_help = "While it is on, the host's agent answers every public request for the \
environment itself: 503 with Retry-After and Cache-Control: no-store, an HTML page for browsers and \
{\"error\": \"maintenance\"} JSON for the rest; the release sees no traffic. The agent's own health \
checks still reach the slots, so deploys and rollbacks work meanwhile. It survives agent restarts and \
upgrades, and stays on until lifted.\n\n\
`slipway deploy <env> --maintenance` puts it on just before a long migration and lifts it after \
the switch (or once a failed deploy's undo has traffic on a healthy release).\n\n\
Examples:\n  \
slipway maintenance on production --message \"Database upgrade, back at 10:00 UTC\" --retry-after 10m\n  \
slipway maintenance on production --hold --hold-max 20s   # hold requests briefly instead\n  \
slipway maintenance off production\n\
Exit codes: 0 ok; 1 failed (nothing deployed, agent refused); 2 bad input; \
3 a running deploy put it on (off without --force); 4 engine unreachable."
)]
pub enum MaintenanceCommand {
    /// Answer every request with 503 and the maintenance page (or --hold requests briefly first)
    On(MaintenanceOnFlags),
    /// Lift it: the serving release gets the requests again
    Off(MaintenanceOffFlags),
    /// Whether it is on, since when, by whom (also in `slipway status`)
    Status(EnvArg),
}

#[derive(Debug, Args)]
pub struct MaintenanceOnFlags {
    /// Environment name (e.g. production)
    pub env: String,
    /// Hold new requests (up to --hold-max) instead of answering at once; those still held then get the page
    #[arg(long)]
    pub hold: bool,
    /// How long --hold holds a request (default 30s, at most 10m)
    #[arg(long, value_name = "DURATION", requires = "hold")]
    pub hold_max: Option<String>,
    /// Retry-After sent to clients (default: deployment.maintenance.retry_after, 60s)
    #[arg(long, value_name = "DURATION")]
    pub retry_after: Option<String>,
    /// Plain text shown on the page (default: deployment.maintenance.message)
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct MaintenanceOffFlags {
    /// Environment name (e.g. production)
    pub env: String,
    /// Lift it although the running deploy that put it on has not finished its migration
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    pub env: String,
    /// Release id to return to (default: the previous release); see `slipway history`
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    /// Roll back even when the database holds newer migrations than the release expects
    #[arg(long, short)]
    pub yes: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The agent on the host runs the analysis after every switch \
(deployment.analysis), whether or not a CLI watches. This follows it until its verdict; \
once it passed, the old slot (kept warm for a switch-back) is stopped.\n\
Exit codes: 0 passed, inconclusive or nothing to watch; 1 failed (traffic was switched back \
unless on_failure is alert); 4 agent unreachable."
)]
pub struct WatchArgs {
    pub env: String,
    /// Keep the old slot running after a passed analysis
    #[arg(long)]
    pub keep_old_slot: bool,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test event to every configured channel now and print each result (exit 1 if one failed)
    Test(EnvArg),
    /// The channels, the deliveries waiting on the host, and the last outcomes
    Status(EnvArg),
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub env: String,
    /// How many deployments to show
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub env: String,
    /// The running release's own output (default)
    #[arg(long, conflicts_with = "deploy")]
    pub app: bool,
    /// The agent's access log and events
    #[arg(long, conflicts_with_all = ["app", "deploy"])]
    pub agent: bool,
    /// The logs of the container a given deployment started (id from `slipway history`)
    #[arg(long, value_name = "DEPLOYMENT_ID")]
    pub deploy: Option<String>,
    /// Keep printing new lines
    #[arg(long, short)]
    pub follow: bool,
    /// Lines from the end to start with
    #[arg(long, default_value = "200")]
    pub tail: String,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Who holds the deploy lock, since when, from where
    Status(EnvArg),
    /// Release the lock (only yours, or anyone's with --force)
    Release {
        env: String,
        /// Release a lock another deploy holds (when you know it is dead)
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Version, build, uptime, image, routes and ledger summary of the environment's agent
    Status(EnvArg),
    /// Replace the agent by this Slipway's build (or --image) while the public port keeps serving
    #[command(
        after_help = "The new agent starts beside the old one and takes over its listening \
sockets, routes and ledger; the old one then stops accepting, finishes its requests and exits. \
If the new agent does not come up with the same routes, it is removed and the old one serves on. \
Holds the deploy lock meanwhile. A deploy with a newer Slipway upgrades the agent the same way.\n\n\
Downgrade: --image slipway-tools:<tag> (see `docker images slipway-tools`)."
    )]
    Upgrade(AgentUpgradeArgs),
}

#[derive(Debug, Args)]
pub struct AgentUpgradeArgs {
    /// Environment name, as under `environments:` in deployment.yml
    pub env: String,
    /// Tools image to run the agent from (default: this Slipway's, built if missing)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Replace the agent even if it already runs that image
    #[arg(long)]
    pub force: bool,
    /// Allow the one-time replacement of an agent made by an older Slipway
    /// (one that publishes the port itself): about a second without service
    #[arg(long)]
    pub allow_gap: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Application name (lower-case; used for images, containers and volumes). Default: the directory's name
    #[arg(long)]
    pub name: Option<String>,
    /// Repository to initialise
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Also write CI/CD workflows for this forge: tests on pull requests,
    /// deploy staging on merge to main, production by hand with approval.
    /// In a repository already initialised, writes only the workflows
    #[arg(long, value_enum, value_name = "FORGE")]
    pub ci: Option<CiForge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CiForge {
    /// GitHub Actions: .github/workflows/{test,deploy-staging,deploy-production}.yml
    Github,
}

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Ask the forge now, as `slipway deploy` does before building (no engine needed)
    #[command(
        after_help = "The gate asks GitHub's check-runs API about the commit to deploy and passes \
when every check in deployment.require_ci.checks concluded success (or neutral/skipped). It refuses \
a failed or missing check and a dirty work tree, waits for pending checks up to \
deployment.require_ci.wait, and waits out GitHub's rate limits within the same bound. Inside GitHub \
Actions the checked-out commit must be GITHUB_SHA unless --ref names another. The token comes from \
GITHUB_TOKEN (process environment, else .env.<env>); public repositories work without one (60 \
requests per hour).\n\n\
Examples:\n  \
slipway ci check staging\n  \
slipway ci check production --ref v1.4.0 --json\n\
Exit codes: 0 passed (or no gate configured); 1 refused (failed, missing, pending too long, \
dirty tree, not the workflow's commit, unknown commit); 2 bad input (configuration, token refused); \
4 GitHub unreachable or rate limited past the wait."
    )]
    Check(CiCheckArgs),
}

#[derive(Debug, Args)]
pub struct CiCheckArgs {
    /// Environment name (e.g. production)
    pub env: String,
    /// Git branch, tag or commit (default: the checked-out commit, with uncommitted changes)
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
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

#[derive(Debug, Subcommand)]
#[command(after_help = "Two forms:\n  \
slipway migrate up production\n      \
the environment's database, migrated next to it (a one-off container on its network)\n  \
slipway migrate up --dir migrations --database-url URL\n      \
any database this machine reaches; no deploy/ needed (like golang-migrate's -path/-database)\n\
--database-url may come from DATABASE_URL instead; the password is never printed.\n\
Exit codes: 0 ok; 1 failed (a dirty database prints its recovery steps); 2 bad input; \
3 confirmation refused or migration lock held; 4 database or engine unreachable.")]
pub enum MigrateCommand {
    /// Where the database stands: current version, dirty flag, pending, applied and edited files
    Status(MigrateTarget),
    /// Apply pending migrations in order, each in its own transaction
    Up(MigrateUpArgs),
    /// Revert the N most recent migrations with their down files (asks for confirmation)
    Down(MigrateDownArgs),
    /// Set the version and clear the dirty flag without running anything (asks for confirmation)
    Force(MigrateForceArgs),
}

/// Which database and which migration files.
#[derive(Debug, Args)]
pub struct MigrateTarget {
    /// Environment whose database to migrate (omit it and give --dir and --database-url instead)
    #[arg(value_name = "ENV")]
    pub env: Option<String>,
    /// Migrations directory, golang-migrate layout (ad-hoc form; with ENV: instead of database.migrations)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Database URL for the ad-hoc form, postgres://USER:PASSWORD@HOST:PORT/DB; the password is never printed
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// How long to wait for another runner's migration lock (default: database.migration.lock_wait, or 60s)
    #[arg(long, value_name = "DURATION")]
    pub lock_wait: Option<String>,
    /// PostgreSQL statement_timeout for the migration session (default: none)
    #[arg(long, value_name = "DURATION")]
    pub statement_timeout: Option<String>,
    /// PostgreSQL lock_timeout for the migration session (default: none)
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// Release recorded with each applied file (the deploy pipeline passes its release id)
    #[arg(long, value_name = "RELEASE")]
    pub release: Option<String>,
}

#[derive(Debug, Args)]
pub struct MigrateUpArgs {
    /// Apply at most this many pending migrations
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub target: MigrateTarget,
}

#[derive(Debug, Args)]
pub struct MigrateDownArgs {
    /// How many of the most recent migrations to revert
    #[arg(value_name = "N")]
    pub n: usize,
    #[command(flatten)]
    pub target: MigrateTarget,
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct MigrateForceArgs {
    /// The version the schema really is at; -1 for "no version" (golang-migrate's convention)
    #[arg(
        id = "forced_version",
        value_name = "VERSION",
        allow_negative_numbers = true
    )]
    pub version: i64,
    #[command(flatten)]
    pub target: MigrateTarget,
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
#[command(
    after_help = "Snapshots are taken next to the database (pg_dump inside the database container, or a one-off \
container of database.image for an external database) and streamed to database.snapshots.dir on the machine \
running slipway (for a remote engine: this machine, not the server), in <dir>/<app>/<environment>/, files mode 600 in \
directories mode 700. Each environment lists, prunes and restores only its own snapshots; snapshots from before \
snapshots had owners (directly in <dir>) are shown as unowned and never picked as `latest`.\n\
Exit codes: 0 ok; 1 failed; 2 bad input; 3 confirmation refused; 4 database or engine unreachable."
)]
pub enum SnapshotCommand {
    /// Take a verified snapshot now, then delete snapshots past the retention (never the newest)
    Create(SnapshotCreateArgs),
    /// This environment's snapshots, newest first (and any without an owner)
    List(SnapshotListArgs),
    /// Restore a snapshot into the environment's database, in one transaction (asks for confirmation)
    Restore(SnapshotRestoreArgs),
    /// Delete snapshots past the retention (database.snapshots.retention_days), never the newest
    Prune(EnvArg),
}

#[derive(Debug, Args)]
pub struct SnapshotCreateArgs {
    /// Environment name (e.g. production)
    pub env: String,
    /// Why the snapshot is taken (recorded in its sidecar)
    #[arg(long, default_value = "manual")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct SnapshotListArgs {
    /// Environment name (e.g. production)
    pub env: String,
    /// Every snapshot in database.snapshots.dir, of every app and environment
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
slipway snapshot restore production latest\n  \
slipway snapshot restore production events_production_events_20250301T120000Z_a1b2c3d4e5f6.dump\n  \
slipway snapshot restore staging latest --from-environment production   # production's data into staging")]
pub struct SnapshotRestoreArgs {
    /// Environment name (e.g. production): the database that is replaced
    #[arg(value_name = "ENV")]
    pub env: String,
    /// Snapshot file name from `slipway snapshot list` (or a path, or `latest`); the two may come in either order
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,
    /// Restore a snapshot of this other environment (of the same app, unless --from-app); without it, a snapshot
    /// of another environment is refused
    #[arg(long, value_name = "ENV")]
    pub from_environment: Option<String>,
    /// Restore a snapshot of this other app (with --from-environment, or its environment of the same name)
    #[arg(long, value_name = "APP")]
    pub from_app: Option<String>,
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short)]
    pub yes: bool,
}
