//! One-off database tasks run next to an environment's database: migrations
//! in a throwaway container of the tools image on the environment's network,
//! snapshots with `pg_dump` inside the database container (or a one-off
//! container of the database image for an external database). The deploy
//! pipeline and the `migrate`/`snapshot` commands both call these, so a
//! migration runs the same way whether an operator or a deploy starts it.

mod migrate;
mod migrate_leftover;
mod pending;
mod progress;
mod snapshot;
mod tools_image;

use std::fmt;

use slipway_core::config::ResolvedConfig;
use slipway_core::config::schema::DatabaseMode;
use slipway_core::secret::Secret;

use crate::exit::{CliError, Exit};
use crate::providers::docker::names::Names;
use crate::providers::docker::{Engine, EngineError};

pub use migrate::{MigrateAction, PROGRESS_ENV, PROGRESS_MARKER, migrate};
pub use migrate_leftover::{StillRunning, settle_leftover_migrations};
pub use pending::{Pending, pending_migrations};
pub use progress::with_progress;
pub use snapshot::{database_has_schema, snapshot_create, snapshot_owner, snapshot_restore};
pub use tools_image::{ensure_tools_image, tools_image_tag};

/// The port PostgreSQL listens on inside the database container.
pub const DATABASE_PORT: u16 = 5432;

/// What a task needs about one environment on one engine.
pub struct TaskContext<'a> {
    pub engine: &'a Engine,
    pub names: &'a Names,
    pub config: &'a ResolvedConfig,
}

/// A task that failed: what failed and why (`message`), what to do next
/// (`hint`), and the exit code the CLI should use. Never carries a secret.
#[derive(Debug, Clone)]
pub struct TaskError {
    pub message: String,
    pub hint: Option<String>,
    pub exit: Exit,
}

impl TaskError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            exit,
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Exit::Failed, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for TaskError {}

impl From<EngineError> for TaskError {
    fn from(e: EngineError) -> Self {
        let exit = match e {
            EngineError::Unreachable { .. } => Exit::Unavailable,
            EngineError::Operation { .. } => Exit::Failed,
        };
        let hint = e.hint();
        TaskError::new(exit, e.to_string()).hint(hint)
    }
}

impl From<TaskError> for CliError {
    fn from(e: TaskError) -> Self {
        CliError {
            message: e.message,
            hint: e.hint,
            exit: e.exit,
        }
    }
}

/// The database URL as seen from inside the environment's network.
///
/// Container mode: `postgres://{user}:{POSTGRES_PASSWORD}@{names.database()}:5432/{name}`
/// (user, password and name percent-encoded by the `url` crate). External
/// mode: `DATABASE_URL` from the environment's `.env` file.
pub fn database_url(config: &ResolvedConfig, names: &Names) -> Result<Secret, TaskError> {
    let db = &config.settings.database;
    match db.mode {
        DatabaseMode::External => config
            .app_env
            .get("DATABASE_URL")
            .map(|v| Secret::new(v.value.expose()))
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                TaskError::new(
                    Exit::BadInput,
                    format!(
                        "database.mode is `external` but DATABASE_URL is not set for `{}`",
                        config.environment
                    ),
                )
                .hint(format!(
                    "set DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DB in {}",
                    config.env_file.display()
                ))
            }),
        DatabaseMode::Container => {
            let password = config
                .app_env
                .get("POSTGRES_PASSWORD")
                .map(|v| v.value.expose())
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    TaskError::new(
                        Exit::BadInput,
                        format!(
                            "database.mode is `container` but POSTGRES_PASSWORD is not set for `{}`",
                            config.environment
                        ),
                    )
                    .hint(format!(
                        "set POSTGRES_PASSWORD in {}",
                        config.env_file.display()
                    ))
                })?;
            container_url(&names.database(), &db.user, password, &db.name)
        }
    }
}

/// In container mode, fails (exit 4) unless the database container runs, with
/// the command that provisions it; external databases are not checked here.
pub async fn require_database(ctx: &TaskContext<'_>) -> Result<(), TaskError> {
    if ctx.config.settings.database.mode != DatabaseMode::Container {
        return Ok(());
    }
    let db = ctx.names.database();
    if ctx.engine.inspect(&db).await.is_some_and(|c| c.running) {
        return Ok(());
    }
    Err(TaskError::new(
        Exit::Unavailable,
        format!("the database container {db} is not running"),
    )
    .hint(format!(
        "`slipway deploy {env}` provisions it; if it exists but stopped, `docker start {db}`",
        env = ctx.config.environment
    )))
}

/// `postgres://user:password@host:5432/db`, every part percent-encoded.
///
/// The encoding is done here, byte by byte, rather than by `url`'s setters:
/// those leave `%` as is (WHATWG userinfo rules), so a password holding
/// `%41` would reach the server as `A`.
fn container_url(host: &str, user: &str, password: &str, db: &str) -> Result<Secret, TaskError> {
    let text = format!(
        "postgres://{}:{}@{host}:{DATABASE_PORT}/{}",
        encode(user),
        encode(password),
        encode(db)
    );
    // A check that the container name is a valid host (the other parts are
    // encoded and cannot break the URL).
    url::Url::parse(&text).map_err(|_| {
        TaskError::new(
            Exit::BadInput,
            format!("cannot build the database URL: `{host}` is not a valid host name"),
        )
        .hint("check app.name and the environment name (they make the container name)")
    })?;
    Ok(Secret::new(text))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_url_percent_encodes_every_part() {
        let url = container_url("app-prod-db", "app user", "p@ss:w/rd#%canary", "events db")
            .expect("valid");
        let text = url.expose();
        assert_eq!(
            text,
            "postgres://app%20user:p%40ss%3Aw%2Frd%23%25canary@app-prod-db:5432/events%20db"
        );
        let parsed = url::Url::parse(text).expect("parses back");
        assert_eq!(parsed.host_str(), Some("app-prod-db"));
        assert_eq!(parsed.port(), Some(5432));
        // The snapshot tools decode it back to the exact password.
        let conn = slipway_core::snapshot::site::PgConn::from_url(&url).expect("valid");
        assert_eq!(conn.user, "app user");
        assert_eq!(conn.dbname, "events db");
        assert!(!format!("{url}").contains("canary"));
    }
}
