//! The migration runner: `status`, `up`, `down` and `force` against one
//! database, golang-migrate-compatible.
//!
//! Every writing operation takes the advisory lock first (see
//! [`super::advisory_lock`]) and releases it on every return path. Each file
//! runs in its own transaction together with its bookkeeping, so a failure
//! leaves the database exactly as before that file; files that cannot run in
//! a transaction (first line `-- slipway:no-transaction`, or their own
//! `BEGIN`/`COMMIT`) are bracketed by golang-migrate's dirty flag instead.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::advisory_lock::{MigrationLock, lock_key};
use super::connection::{Target, sql_failure};
use super::error::{MigrateError, dirty_recovery};
use super::report::{
    AppliedMigration, DownReport, ForceReport, MigrationStep, ModifiedMigration, PendingMigration,
    Status, UpReport,
};
use super::schema_migrations::{DbVersion, Record, SCHEMA_MIGRATIONS, Tables};
use super::source::{Migration, MigrationFile, MigrationSet, TransactionMode};
use super::sql_text;
use crate::secret::Secret;

/// How long a runner waits for another runner's lock by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

/// How a runner behaves. The defaults never kill a long migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerOptions {
    /// How long to wait for another runner to finish (default 60 s).
    pub lock_timeout_wait: Duration,
    /// PostgreSQL `statement_timeout` for the migration session. `None` sets
    /// it to 0 (no limit), overriding any role or database default, because
    /// a migration over a large table may legitimately take long.
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL `lock_timeout` for the migration session; `None` = 0.
    pub lock_timeout: Option<Duration>,
    /// The release recorded with each applied file (e.g. the git commit).
    pub release: Option<String>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            lock_timeout_wait: DEFAULT_LOCK_WAIT,
            statement_timeout: None,
            lock_timeout: None,
            release: None,
        }
    }
}

/// A connection to one database, ready to migrate it.
pub struct Runner {
    target: Target,
    client: Client,
    task: JoinHandle<()>,
    database: String,
    tables: Tables,
    key: i64,
    options: RunnerOptions,
}

impl Drop for Runner {
    fn drop(&mut self) {
        // The client is dropped right after; ending the task closes the socket.
        self.task.abort();
    }
}

impl Runner {
    /// Connects and prepares the session (timeouts, application name). The
    /// URL stays secret: errors show it with the password redacted.
    pub async fn connect(url: &Secret, options: RunnerOptions) -> Result<Self, MigrateError> {
        let target = Target::parse(url)?;
        let (client, task) = target.connect("slipway migrate").await?;
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET lock_timeout = {};",
                millis(options.statement_timeout),
                millis(options.lock_timeout)
            ))
            .await
            .map_err(|e| target.db_error("setting statement_timeout and lock_timeout", &e))?;
        let row = client
            .query_one(
                "SELECT current_database()::text, current_schema()::text",
                &[],
            )
            .await
            .map_err(|e| target.db_error("reading the current database and schema", &e))?;
        let database: String = row.get(0);
        let schema: Option<String> = row.get(1);
        let Some(schema) = schema else {
            return Err(MigrateError::Database {
                doing: "choosing the schema for schema_migrations".into(),
                url: target.redacted.clone(),
                reason: "the search_path names no existing schema. Set a search_path (e.g. `?options=-csearch_path%3Dpublic` in the URL) or create the schema".into(),
            });
        };
        let key = lock_key(&database, &schema, SCHEMA_MIGRATIONS);
        Ok(Self {
            tables: Tables::new(&schema),
            target,
            client,
            task,
            database,
            key,
            options,
        })
    }

    /// The database's name (`current_database()`).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The schema holding `schema_migrations` (`current_schema()`).
    pub fn schema(&self) -> &str {
        self.tables.schema()
    }

    /// The URL with its password redacted, for messages.
    pub fn redacted_url(&self) -> &str {
        &self.target.redacted
    }

    /// The advisory lock key (golang-migrate's) this runner takes.
    pub fn lock_key(&self) -> i64 {
        self.key
    }

    /// The version `schema_migrations` holds, without creating anything.
    pub async fn version(&self) -> Result<DbVersion, MigrateError> {
        let (has_table, _) = self
            .tables
            .exist(&self.client)
            .await
            .map_err(|e| self.target.db_error("looking for schema_migrations", &e))?;
        if !has_table {
            return Ok(DbVersion {
                version: None,
                dirty: false,
            });
        }
        self.tables
            .read_version(&self.client)
            .await
            .map_err(|e| self.target.db_error("reading schema_migrations", &e))
    }

    /// Where the database stands relative to `set`. Read-only: takes no lock
    /// and creates no table.
    pub async fn status(&self, set: &MigrationSet) -> Result<Status, MigrateError> {
        let (_, has_records) = self
            .tables
            .exist(&self.client)
            .await
            .map_err(|e| self.target.db_error("looking for the migration tables", &e))?;
        let version = self.version().await?;
        let records = if has_records {
            self.tables
                .records(&self.client)
                .await
                .map_err(|e| self.target.db_error("reading slipway_migrations", &e))?
        } else {
            BTreeMap::new()
        };
        Ok(build_status(set, version, &records))
    }

    /// Applies pending migrations in order, at most `limit` of them.
    pub async fn up(
        &mut self,
        set: &MigrationSet,
        limit: Option<usize>,
    ) -> Result<UpReport, MigrateError> {
        let (lock, waited) = self.lock().await?;
        let result = self.up_locked(set, limit, waited).await;
        lock.release().await;
        result
    }

    /// Reverts the `n` most recent migrations with their down files.
    pub async fn down(&mut self, set: &MigrationSet, n: usize) -> Result<DownReport, MigrateError> {
        let (lock, waited) = self.lock().await?;
        let result = self.down_locked(set, n, waited).await;
        lock.release().await;
        result
    }

    /// Sets the version and clears the dirty flag without running anything
    /// (golang-migrate's `force`; `None` is its `-1`). The operator asserts the
    /// schema matches `version`; bookkeeping of versions above it is dropped.
    pub async fn force(&mut self, version: Option<u64>) -> Result<ForceReport, MigrateError> {
        let (lock, _) = self.lock().await?;
        let result = self.force_locked(version).await;
        lock.release().await;
        result
    }

    async fn lock(&self) -> Result<(MigrationLock, Duration), MigrateError> {
        MigrationLock::acquire(
            &self.target,
            &self.database,
            self.key,
            self.options.lock_timeout_wait,
        )
        .await
    }

    /// Creates the tables if needed and reads the version, refusing a dirty
    /// database.
    async fn prepare(
        &self,
        set: &MigrationSet,
    ) -> Result<(DbVersion, BTreeMap<u64, Record>), MigrateError> {
        self.tables.ensure(&self.client).await.map_err(|e| {
            self.target
                .db_error("creating schema_migrations and slipway_migrations", &e)
        })?;
        let version = self
            .tables
            .read_version(&self.client)
            .await
            .map_err(|e| self.target.db_error("reading schema_migrations", &e))?;
        if version.dirty {
            let file = version
                .version
                .and_then(|v| set.get(v))
                .map(|m| m.up.file_name.clone());
            return Err(MigrateError::Dirty {
                database: self.database.clone(),
                version: version.version,
                recovery: dirty_recovery(
                    version.version,
                    version.version.and_then(|v| set.previous_version(v)),
                    file.as_deref(),
                ),
            });
        }
        let records = self
            .tables
            .records(&self.client)
            .await
            .map_err(|e| self.target.db_error("reading slipway_migrations", &e))?;
        Ok((version, records))
    }

    async fn up_locked(
        &mut self,
        set: &MigrationSet,
        limit: Option<usize>,
        lock_waited: Duration,
    ) -> Result<UpReport, MigrateError> {
        let (version, records) = self.prepare(set).await?;
        let modified = find_modified(set, &records);
        if !modified.is_empty() {
            return Err(MigrateError::Modified { files: modified });
        }
        let from = version.version;
        // Files golang-migrate applied before Slipway: trust them as they are
        // now and record their checksum, so later edits are caught.
        let mut adopted = Vec::new();
        for m in set.migrations() {
            if from.is_some_and(|c| m.version <= c) && !records.contains_key(&m.version) {
                self.tables
                    .record(
                        &self.client,
                        m.version,
                        &m.name,
                        &m.up.checksum,
                        None,
                        None,
                        true,
                    )
                    .await
                    .map_err(|e| {
                        self.target
                            .db_error("recording checksums of earlier migrations", &e)
                    })?;
                adopted.push(m.version);
            }
        }
        if !adopted.is_empty() {
            tracing::info!(versions = ?adopted, "recorded checksums of migrations applied before Slipway");
        }
        if let Some(c) = from
            && set.get(c).is_none()
            && set.latest_version().is_some_and(|l| l < c)
        {
            tracing::warn!(
                current = c,
                latest = set.latest_version(),
                "the database is ahead of these migration files; nothing to apply"
            );
        }
        let pending: Vec<&Migration> = set
            .pending_after(from)
            .take(limit.unwrap_or(usize::MAX))
            .collect();
        if pending.is_empty() {
            tracing::info!(database = %self.database, version = ?from, "no pending migrations");
        }
        let mut current = from;
        let mut applied = Vec::new();
        for m in pending {
            let step = self.apply(m, &m.up, current, Some(m.version), set).await?;
            current = Some(m.version);
            applied.push(step);
        }
        Ok(UpReport {
            from,
            to: current,
            applied,
            adopted,
            lock_waited,
        })
    }

    async fn down_locked(
        &mut self,
        set: &MigrationSet,
        n: usize,
        lock_waited: Duration,
    ) -> Result<DownReport, MigrateError> {
        let (version, _) = self.prepare(set).await?;
        let from = version.version;
        // Check every step before running any, so a missing down file does
        // not leave the database half-way through a multi-step down.
        let mut plan = Vec::new();
        let mut cursor = from;
        while plan.len() < n {
            let Some(c) = cursor else { break };
            let m = set
                .get(c)
                .ok_or_else(|| MigrateError::UnknownCurrentVersion {
                    version: c,
                    dir: set.dir.clone(),
                })?;
            let down = m.down.as_ref().ok_or_else(|| MigrateError::NoDownFile {
                version: c,
                up_file: m.up.file_name.clone(),
            })?;
            let previous = set.previous_version(c);
            plan.push((m, down, previous));
            cursor = previous;
        }
        let mut current = from;
        let mut reverted = Vec::new();
        for (m, down, previous) in plan {
            let step = self.apply(m, down, current, previous, set).await?;
            current = previous;
            reverted.push(step);
        }
        Ok(DownReport {
            from,
            to: current,
            reverted,
            lock_waited,
        })
    }

    async fn force_locked(&mut self, version: Option<u64>) -> Result<ForceReport, MigrateError> {
        self.tables.ensure(&self.client).await.map_err(|e| {
            self.target
                .db_error("creating schema_migrations and slipway_migrations", &e)
        })?;
        let before = self
            .tables
            .read_version(&self.client)
            .await
            .map_err(|e| self.target.db_error("reading schema_migrations", &e))?;
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| self.target.db_error("starting the force transaction", &e))?;
        let result = async {
            self.tables.set_version(&tx, version, false).await?;
            self.tables.forget_above(&tx, version).await?;
            tx.commit().await
        }
        .await;
        result.map_err(|e| self.target.db_error("forcing the version", &e))?;
        tracing::info!(database = %self.database, from = ?before.version, to = ?version, "forced migration version");
        Ok(ForceReport {
            from: before.version,
            was_dirty: before.dirty,
            to: version,
        })
    }

    /// Runs one file (`m`'s up file, or its down file) and moves the version
    /// from `current` to `to`, in the file's transaction mode.
    async fn apply(
        &mut self,
        m: &Migration,
        file: &MigrationFile,
        current: Option<u64>,
        to: Option<u64>,
        set: &MigrationSet,
    ) -> Result<MigrationStep, MigrateError> {
        let is_up = to == Some(m.version);
        tracing::info!(
            file = %file.file_name,
            mode = ?file.mode,
            "{} migration {}",
            if is_up { "applying" } else { "reverting" },
            file.file_name
        );
        let started = Instant::now();
        let duration = match file.mode {
            TransactionMode::Transaction => {
                self.run_in_transaction(m, file, current, to, is_up).await?
            }
            TransactionMode::NoTransaction | TransactionMode::FileManaged => {
                self.run_dirty_bracketed(m, file, to, is_up, set).await?
            }
        };
        tracing::info!(
            file = %file.file_name,
            duration_ms = duration.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "{} {} in {:.2?}",
            if is_up { "applied" } else { "reverted" },
            file.file_name,
            duration
        );
        Ok(MigrationStep {
            version: m.version,
            name: m.name.clone(),
            file: file.file_name.clone(),
            duration,
        })
    }

    async fn run_in_transaction(
        &mut self,
        m: &Migration,
        file: &MigrationFile,
        current: Option<u64>,
        to: Option<u64>,
        is_up: bool,
    ) -> Result<Duration, MigrateError> {
        let target = &self.target;
        let tables = &self.tables;
        let release = self.options.release.as_deref();
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| target.db_error("starting a migration transaction", &e))?;
        let started = Instant::now();
        if let Err(e) = tx.batch_execute(&file.sql).await {
            let failure = sql_failure(target, &e, &file.sql, 0, None);
            // Best effort: if the connection is gone the server rolls back.
            let _ = tx.rollback().await;
            return Err(MigrateError::Failed {
                file: file.path.clone(),
                version: m.version,
                current,
                failure: Box::new(failure),
            });
        }
        let duration = started.elapsed();
        let bookkeeping = async {
            let applied = is_up.then_some((duration, release));
            tables.settle(&tx, m, to, applied).await?;
            tx.commit().await
        }
        .await;
        bookkeeping.map_err(|e| {
            target.db_error(&format!("recording migration `{}`", file.file_name), &e)
        })?;
        Ok(duration)
    }

    /// golang-migrate's way: mark dirty, run, clear. Slipway marks the version
    /// of the file being run (for down too), so recovery is one rule: force
    /// that version if its changes are in place, the one before if not.
    async fn run_dirty_bracketed(
        &mut self,
        m: &Migration,
        file: &MigrationFile,
        to: Option<u64>,
        is_up: bool,
        set: &MigrationSet,
    ) -> Result<Duration, MigrateError> {
        let target = self.target.clone();
        let tables = self.tables.clone();
        {
            let tx = self
                .client
                .transaction()
                .await
                .map_err(|e| target.db_error("marking the version dirty", &e))?;
            let mark = async {
                tables.set_version(&tx, Some(m.version), true).await?;
                tx.commit().await
            }
            .await;
            mark.map_err(|e| target.db_error("marking the version dirty", &e))?;
        }
        let started = Instant::now();
        let outcome = match file.mode {
            TransactionMode::NoTransaction => {
                // One statement per query: a multi-statement query would be an
                // implicit transaction, which CONCURRENTLY refuses.
                let mut outcome = Ok(());
                for (i, statement) in sql_text::split_statements(&file.sql).iter().enumerate() {
                    if let Err(e) = self.client.batch_execute(statement.text).await {
                        outcome = Err(sql_failure(
                            &target,
                            &e,
                            &file.sql,
                            statement.offset,
                            Some(i + 1),
                        ));
                        break;
                    }
                }
                outcome
            }
            _ => self
                .client
                .batch_execute(&file.sql)
                .await
                .map_err(|e| sql_failure(&target, &e, &file.sql, 0, None)),
        };
        if let Err(failure) = outcome {
            // A file with its own BEGIN may have left a failed transaction
            // open on this session; close it so later queries work. Harmless
            // (a warning) when none is open.
            let _ = self.client.batch_execute("ROLLBACK").await;
            return Err(MigrateError::FailedDirty {
                file: file.path.clone(),
                version: m.version,
                recovery: dirty_recovery(
                    Some(m.version),
                    set.previous_version(m.version),
                    Some(&m.up.file_name),
                ),
                failure: Box::new(failure),
            });
        }
        let duration = started.elapsed();
        let release = self.options.release.clone();
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| target.db_error("clearing the dirty mark", &e))?;
        let clear = async {
            let applied = is_up.then_some((duration, release.as_deref()));
            tables.settle(&tx, m, to, applied).await?;
            tx.commit().await
        }
        .await;
        clear.map_err(|e| {
            target.db_error(&format!("recording migration `{}`", file.file_name), &e)
        })?;
        Ok(duration)
    }
}

/// Applied files whose checksum no longer matches the recorded one.
pub fn find_modified(
    set: &MigrationSet,
    records: &BTreeMap<u64, Record>,
) -> Vec<ModifiedMigration> {
    records
        .values()
        .filter_map(|r| {
            let m = set.get(r.version)?;
            (m.up.checksum != r.checksum).then(|| ModifiedMigration {
                version: r.version,
                file: m.up.file_name.clone(),
                recorded_checksum: r.checksum.clone(),
                file_checksum: m.up.checksum.clone(),
            })
        })
        .collect()
}

/// Combines the files, the version and the bookkeeping into a [`Status`].
pub fn build_status(
    set: &MigrationSet,
    version: DbVersion,
    records: &BTreeMap<u64, Record>,
) -> Status {
    let current = version.version;
    let is_applied = |v: u64| current.is_some_and(|c| v <= c);
    let mut applied: BTreeMap<u64, AppliedMigration> = BTreeMap::new();
    for m in set.migrations().iter().filter(|m| is_applied(m.version)) {
        let record = records.get(&m.version);
        applied.insert(
            m.version,
            AppliedMigration {
                version: m.version,
                name: m.name.clone(),
                checksum: record.map(|r| r.checksum.clone()),
                applied_at: record.and_then(|r| r.applied_at),
                duration_ms: record.and_then(|r| r.duration_ms),
                release: record.and_then(|r| r.release.clone()),
                file_present: true,
            },
        );
    }
    for r in records.values().filter(|r| is_applied(r.version)) {
        applied
            .entry(r.version)
            .or_insert_with(|| AppliedMigration {
                version: r.version,
                name: r.name.clone(),
                checksum: Some(r.checksum.clone()),
                applied_at: r.applied_at,
                duration_ms: r.duration_ms,
                release: r.release.clone(),
                file_present: false,
            });
    }
    Status {
        current,
        dirty: version.dirty,
        latest: set.latest_version(),
        pending: set
            .pending_after(current)
            .map(|m| PendingMigration {
                version: m.version,
                name: m.name.clone(),
                file: m.up.file_name.clone(),
            })
            .collect(),
        applied: applied.into_values().collect(),
        modified: find_modified(set, records),
        current_file_missing: current.is_some_and(|c| set.get(c).is_none()),
    }
}

/// A duration as the integer milliseconds `SET ..._timeout` takes; 0 = none.
fn millis(d: Option<Duration>) -> u128 {
    d.map_or(0, |d| d.as_millis().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::source::checksum;

    fn set_with(files: &[(&str, &str)]) -> (tempfile::TempDir, MigrationSet) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, body) in files {
            fs_err::write(dir.path().join(name), body).expect("write");
        }
        let set = MigrationSet::load(dir.path()).expect("valid set");
        (dir, set)
    }

    fn record(version: u64, body: &str) -> Record {
        Record {
            version,
            name: format!("m{version}"),
            checksum: checksum(body.as_bytes()),
            duration_ms: Some(5),
            applied_at: None,
            release: Some("abc123".into()),
        }
    }

    #[test]
    fn status_splits_applied_pending_and_modified() {
        let (_d, set) = set_with(&[
            ("0001_a.up.sql", "SELECT 1;"),
            ("0002_b.up.sql", "SELECT 2; -- edited"),
            ("0003_c.up.sql", "SELECT 3;"),
        ]);
        let records = BTreeMap::from([(1, record(1, "SELECT 1;")), (2, record(2, "SELECT 2;"))]);
        let status = build_status(
            &set,
            DbVersion {
                version: Some(2),
                dirty: false,
            },
            &records,
        );
        assert_eq!(status.current, Some(2));
        assert_eq!(status.latest, Some(3));
        assert_eq!(
            status.applied.iter().map(|a| a.version).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(
            status.pending.iter().map(|p| p.version).collect::<Vec<_>>(),
            vec![3]
        );
        assert_eq!(status.modified.len(), 1);
        assert_eq!(status.modified[0].file, "0002_b.up.sql");
        assert!(!status.current_file_missing);
    }

    #[test]
    fn status_of_golang_migrate_database_has_unrecorded_checksums() {
        let (_d, set) = set_with(&[
            ("0001_a.up.sql", "SELECT 1;"),
            ("0002_b.up.sql", "SELECT 2;"),
        ]);
        let status = build_status(
            &set,
            DbVersion {
                version: Some(1),
                dirty: false,
            },
            &BTreeMap::new(),
        );
        assert_eq!(status.applied.len(), 1);
        assert_eq!(status.applied[0].checksum, None);
        assert!(status.modified.is_empty());
        assert_eq!(status.pending.len(), 1);
    }

    #[test]
    fn status_notices_a_database_ahead_of_the_files() {
        let (_d, set) = set_with(&[("0001_a.up.sql", "SELECT 1;")]);
        let records = BTreeMap::from([(1, record(1, "SELECT 1;")), (5, record(5, "SELECT 5;"))]);
        let status = build_status(
            &set,
            DbVersion {
                version: Some(5),
                dirty: false,
            },
            &records,
        );
        assert!(status.current_file_missing);
        assert!(status.pending.is_empty());
        let ghost = status
            .applied
            .iter()
            .find(|a| a.version == 5)
            .expect("recorded version listed");
        assert!(!ghost.file_present);
    }

    #[test]
    fn timeouts_default_to_zero_meaning_none() {
        assert_eq!(millis(None), 0);
        assert_eq!(millis(Some(Duration::from_secs(3))), 3000);
        assert_eq!(millis(Some(Duration::from_micros(10))), 1);
        let o = RunnerOptions::default();
        assert_eq!(o.lock_timeout_wait, Duration::from_secs(60));
        assert_eq!(o.statement_timeout, None);
    }
}
