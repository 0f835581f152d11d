//! Everything that can go wrong loading or running migrations, each message
//! saying what failed, why, and what to do next. Messages never contain a
//! database password: URLs are redacted before they get here, and driver
//! messages are scrubbed of the password (see [`scrub`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::report::ModifiedMigration;
use super::source::Direction;

/// A PostgreSQL error raised by a migration file, located in the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SqlFailure {
    /// PostgreSQL's primary message (`relation "x" does not exist`).
    pub message: String,
    /// SQLSTATE (`42P01`), when the server sent one.
    pub code: Option<String>,
    /// 1-based line and column in the file, when the server gave a position.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// 1-based index of the failing statement, for files run statement by
    /// statement (no-transaction mode).
    pub statement: Option<usize>,
}

impl fmt::Display for SqlFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "ERROR {code}: {}", self.message)?,
            None => write!(f, "{}", self.message)?,
        }
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " (at line {line}, column {column}")?,
            _ => write!(f, " (")?,
        }
        match self.statement {
            Some(n) if self.line.is_some() => write!(f, ", statement {n})")?,
            Some(n) => write!(f, "in statement {n})")?,
            None if self.line.is_some() => write!(f, ")")?,
            None => write!(f, "position unknown)")?,
        }
        if let Some(detail) = &self.detail {
            write!(f, "; detail: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; PostgreSQL hint: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    #[error(
        "cannot read the migrations directory `{}`: {source}. Check the path (`--dir`, or `migrations` in deployment.yml)",
        path.display()
    )]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot read migration file `{}`: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("migration file `{}` is not valid UTF-8. Save it as UTF-8", file.display())]
    NotUtf8 { file: PathBuf },

    #[error(
        "migration file `{}` is not named in the golang-migrate layout: {reason}. Rename it to `NNNN_name.up.sql` or `NNNN_name.down.sql` (e.g. `0001_create_events.up.sql`)",
        file.display()
    )]
    BadFileName { file: PathBuf, reason: String },

    #[error(
        "two {direction} migration files have version {version}: `{first}` and `{second}`. Each version has exactly one .up.sql and at most one .down.sql: renumber one of them"
    )]
    DuplicateVersion {
        version: u64,
        direction: Direction,
        first: String,
        second: String,
    },

    #[error(
        "migration version {version} has a down file `{down}` but no .up.sql file. Add the up file or remove the down file"
    )]
    MissingUp { version: u64, down: String },

    #[error(
        "`{}`: the `-- slipway:no-transaction` marker is on line {line}, but it only takes effect on the first line. Move it to line 1 (or delete it)",
        file.display()
    )]
    MisplacedMarker { file: PathBuf, line: usize },

    #[error(
        "cannot connect to PostgreSQL at `{url}`: {reason}. Check that the database is running and reachable from here and that the URL's user and password are right"
    )]
    Connect { url: String, reason: String },

    #[error("PostgreSQL failed while {doing} on `{url}`: {reason}")]
    Database {
        doing: String,
        url: String,
        reason: String,
    },

    #[error(
        "gave up after waiting {}s for the migration lock on database `{database}`{}. Another migration runner (Slipway or golang-migrate) holds it. Wait for it to finish and retry, or raise the wait (lock_timeout_wait / --lock-wait){}",
        waited.as_secs(),
        holder.as_ref().map(|h| format!(" (held by {h})")).unwrap_or_default(),
        holder_pid.map(|pid| format!("; if that runner is stuck, end its session with `SELECT pg_terminate_backend({pid});`")).unwrap_or_default()
    )]
    LockTimeout {
        database: String,
        waited: Duration,
        holder: Option<String>,
        holder_pid: Option<i32>,
    },

    #[error("database `{database}` is dirty at version {}: {recovery}", display_version(*version))]
    Dirty {
        database: String,
        version: Option<u64>,
        recovery: String,
    },

    #[error(
        "{} applied migration file(s) changed since they were applied:\n{}\nA migration that already ran must not change. Restore the applied content (see `git log -p -- <file>`) and put the change in a new migration file. If the edit is intentional and the database already matches it, accept it with `DELETE FROM slipway_migrations WHERE version = <version>;` and Slipway records the new checksum on its next run",
        files.len(),
        files.iter().map(|m| format!("  - `{}` (version {}): recorded sha256 {}, file now {}", m.file, m.version, short(&m.recorded_checksum), short(&m.file_checksum))).collect::<Vec<_>>().join("\n")
    )]
    Modified { files: Vec<ModifiedMigration> },

    #[error(
        "migration `{}` failed: {failure}. The whole file was rolled back; the database is still at version {}. Fix the file and run `up` again{}",
        file.display(),
        display_version(*current),
        concurrently_hint(failure)
    )]
    Failed {
        file: PathBuf,
        version: u64,
        current: Option<u64>,
        failure: Box<SqlFailure>,
    },

    #[error(
        "migration `{}` (no-transaction) failed: {failure}. Statements before the failing one stay applied and the database is now marked dirty at version {version}: {recovery}",
        file.display()
    )]
    FailedDirty {
        file: PathBuf,
        version: u64,
        failure: Box<SqlFailure>,
        recovery: String,
    },

    #[error(
        "the database is at version {version}, but no migration file in `{}` has that version, so Slipway cannot tell which down file to run. Use the migrations directory of the release that applied it",
        dir.display()
    )]
    UnknownCurrentVersion { version: u64, dir: PathBuf },

    #[error(
        "migration version {version} (`{up_file}`) has no .down.sql file, so it cannot be rolled back. Write the down file, or restore a snapshot instead"
    )]
    NoDownFile { version: u64, up_file: String },
}

impl MigrateError {
    /// Whether the error is about the files on disk (fix the files) rather
    /// than the database: lets the CLI pick an exit code.
    pub fn is_source_error(&self) -> bool {
        matches!(
            self,
            MigrateError::ReadDir { .. }
                | MigrateError::ReadFile { .. }
                | MigrateError::NotUtf8 { .. }
                | MigrateError::BadFileName { .. }
                | MigrateError::DuplicateVersion { .. }
                | MigrateError::MissingUp { .. }
                | MigrateError::MisplacedMarker { .. }
        )
    }
}

/// The exact steps out of a dirty state, used both when a no-transaction file
/// fails and when a later run finds the dirty mark.
///
/// Slipway marks dirty at the version whose file was running, for `up` and
/// `down` alike, so one rule works: force `version` if that migration's
/// changes are in the database, force the previous version if they are not.
pub fn dirty_recovery(version: Option<u64>, previous: Option<u64>, file: Option<&str>) -> String {
    let Some(version) = version else {
        return "a migration failed part-way before any version was recorded. Recovery: 1. inspect the database; 2. undo what the failed migration did; 3. run `slipway migrate force -1 <env>` (or `slipway migrate force -1 --dir <dir> --database-url <url>`) to mark it clean with no version; 4. run `slipway migrate up` again.".to_string();
    };
    let file = file.map_or_else(|| format!("migration {version}"), |f| format!("`{f}`"));
    let previous = display_version(previous);
    format!(
        "a migration to version {version} failed or was interrupted part-way, so the schema may be half-changed. Recovery: \
1. inspect the database (e.g. `\\d` in psql) and compare it with {file}; \
2. either finish its remaining statements by hand and run `slipway migrate force {version} <env>`, \
or undo what it did and run `slipway migrate force {previous} <env>` (the version before it); \
with `--dir <dir> --database-url <url>` instead of `<env>` for a database outside a deployment; \
3. run `slipway migrate up` again."
    )
}

/// A version for messages; golang-migrate writes "no version" as -1.
pub fn display_version(version: Option<u64>) -> String {
    version.map_or_else(|| "-1 (none)".to_string(), |v| v.to_string())
}

/// Replaces the password, wherever it appears, in a driver message. Driver
/// errors do not normally echo it, but a URL-parsing error could.
pub fn scrub(message: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() => message.replace(p, crate::secret::REDACTED),
        _ => message.to_string(),
    }
}

fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}

fn concurrently_hint(failure: &SqlFailure) -> &'static str {
    // 25001 active_sql_transaction: e.g. CREATE INDEX CONCURRENTLY in a transaction.
    if failure.code.as_deref() == Some("25001") {
        ". This statement cannot run inside a transaction: make `-- slipway:no-transaction` the file's first line"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_failure_names_code_position_and_hint() {
        let f = SqlFailure {
            message: "relation \"nope\" does not exist".into(),
            code: Some("42P01".into()),
            line: Some(3),
            column: Some(15),
            detail: None,
            hint: Some("check the name".into()),
            statement: None,
        };
        assert_eq!(
            f.to_string(),
            "ERROR 42P01: relation \"nope\" does not exist (at line 3, column 15); PostgreSQL hint: check the name"
        );
    }

    #[test]
    fn failed_message_suggests_marker_for_concurrently() {
        let err = MigrateError::Failed {
            file: "m/0002_idx.up.sql".into(),
            version: 2,
            current: Some(1),
            failure: Box::new(SqlFailure {
                message: "CREATE INDEX CONCURRENTLY cannot run inside a transaction block".into(),
                code: Some("25001".into()),
                line: None,
                column: None,
                detail: None,
                hint: None,
                statement: None,
            }),
        };
        let msg = err.to_string();
        assert!(msg.contains("0002_idx.up.sql"), "{msg}");
        assert!(msg.contains("still at version 1"), "{msg}");
        assert!(msg.contains("-- slipway:no-transaction"), "{msg}");
    }

    #[test]
    fn dirty_recovery_gives_both_force_commands() {
        let r = dirty_recovery(Some(3), Some(2), Some("0003_idx.up.sql"));
        assert!(r.contains("slipway migrate force 3 <env>"), "{r}");
        assert!(r.contains("slipway migrate force 2 <env>"), "{r}");
        assert!(r.contains("--database-url"), "{r}");
        assert!(r.contains("0003_idx.up.sql"), "{r}");
        let r = dirty_recovery(Some(1), None, None);
        assert!(r.contains("force -1"), "{r}");
    }

    #[test]
    fn scrub_removes_the_password() {
        assert_eq!(
            scrub("bad url postgres://u:s3cret@h/db", Some("s3cret")),
            "bad url postgres://u:[redacted]@h/db"
        );
        assert_eq!(scrub("no secret", Some("")), "no secret");
    }
}
