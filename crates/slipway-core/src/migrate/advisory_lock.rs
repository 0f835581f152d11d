//! One migration runner at a time: a session-level PostgreSQL advisory lock
//! held on a dedicated connection.
//!
//! The key is golang-migrate's (`GenerateAdvisoryLockId(database, schema,
//! table)`), so Slipway and golang-migrate runners exclude each other too.
//! The lock is polled with `pg_try_advisory_lock` until a deadline rather than
//! waited for with `pg_advisory_lock`, so the runner can say how long it has
//! waited and who holds it. Because the lock belongs to the session, a runner
//! that dies (kill -9, lost network) loses it with its connection: nothing to
//! clean up by hand.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::connection::Target;
use super::error::MigrateError;

/// golang-migrate's salt (`advisoryLockIDSalt` in its `database/util.go`).
const LOCK_ID_SALT: u32 = 1_486_364_155;

/// How often progress is reported while waiting.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The advisory lock key golang-migrate's postgres driver uses for a
/// migrations table: CRC-32 (IEEE) of `schema\0table\0database`, times the
/// salt, modulo 2^32. Always non-negative.
pub fn lock_key(database: &str, schema: &str, table: &str) -> i64 {
    let joined = format!("{schema}\0{table}\0{database}");
    let sum = crc32_ieee(joined.as_bytes()).wrapping_mul(LOCK_ID_SALT);
    i64::from(sum)
}

/// CRC-32 with the IEEE polynomial (Go's `crc32.ChecksumIEEE`); bitwise is
/// fast enough for a few dozen bytes and saves a dependency.
fn crc32_ieee(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// A held migration lock. Release it with [`MigrationLock::release`]; if it is
/// dropped instead (panic, cancelled future), closing its connection releases
/// it on the server.
pub struct MigrationLock {
    client: Client,
    task: JoinHandle<()>,
    key: i64,
}

impl MigrationLock {
    /// Takes the lock on a new connection, polling until `wait` has passed.
    /// Returns the lock and how long it took.
    pub async fn acquire(
        target: &Target,
        database: &str,
        key: i64,
        wait: Duration,
    ) -> Result<(Self, Duration), MigrateError> {
        let (client, task) = target.connect("slipway migrate (lock)").await?;
        let started = Instant::now();
        let mut next_report = started + REPORT_EVERY;
        let mut pause = Duration::from_millis(50);
        loop {
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await
                .map_err(|e| target.db_error("trying the migration lock", &e))?;
            let got: bool = row.get(0);
            if got {
                let waited = started.elapsed();
                tracing::debug!(
                    key,
                    waited_ms = waited.as_millis() as u64,
                    "migration lock taken"
                );
                return Ok((Self { client, task, key }, waited));
            }
            let waited = started.elapsed();
            if waited >= wait {
                let holder = lock_holder(&client, key).await;
                task.abort();
                return Err(MigrateError::LockTimeout {
                    database: database.to_string(),
                    waited,
                    holder_pid: holder.as_ref().map(|h| h.pid),
                    holder: holder.map(|h| h.to_string()),
                });
            }
            if Instant::now() >= next_report {
                let holder = lock_holder(&client, key).await;
                tracing::info!(
                    database,
                    waited_s = waited.as_secs(),
                    deadline_s = wait.as_secs(),
                    holder = holder
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| "unknown".into()),
                    "waiting for the migration lock: another runner holds it ({}s of {}s)",
                    waited.as_secs(),
                    wait.as_secs()
                );
                next_report += REPORT_EVERY;
            }
            let remaining = wait.saturating_sub(waited);
            tokio::time::sleep(pause.min(remaining).max(Duration::from_millis(1))).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Releases the lock and closes its connection. Errors are logged, not
    /// returned: closing the connection releases the lock regardless.
    pub async fn release(self) {
        match self
            .client
            .query_one("SELECT pg_advisory_unlock($1)", &[&self.key])
            .await
        {
            Ok(row) if row.get::<_, bool>(0) => {
                tracing::debug!(key = self.key, "migration lock released")
            }
            Ok(_) => tracing::warn!(key = self.key, "migration lock was not held at release"),
            Err(e) => {
                tracing::warn!(error = %e, "releasing the migration lock failed; closing its connection releases it")
            }
        }
        drop(self.client);
        // The connection task ends once the client is gone; wait for it so the
        // session is closed when release returns.
        let _ = self.task.await;
    }
}

/// Who holds an advisory lock, from `pg_locks` + `pg_stat_activity`.
#[derive(Debug, Clone)]
pub struct LockHolder {
    pub pid: i32,
    pub application: String,
    pub client: String,
    pub held_for_s: i64,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let app = if self.application.is_empty() {
            "an unnamed client".to_string()
        } else {
            format!("`{}`", self.application)
        };
        write!(
            f,
            "PostgreSQL session pid {}, {app} from {}, in its current state for {}s",
            self.pid, self.client, self.held_for_s
        )
    }
}

/// Looks up the session holding `key`. Best effort: `None` if it cannot be
/// seen (permissions, or it was released meanwhile).
pub async fn lock_holder(client: &Client, key: i64) -> Option<LockHolder> {
    // A bigint advisory key shows in pg_locks as classid = high 32 bits,
    // objid = low 32 bits, objsubid = 1.
    let high = key >> 32;
    let low = key & 0xFFFF_FFFF;
    let row = client
        .query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'a local socket'),
                    coalesce(extract(epoch FROM now() - a.state_change)::bigint, 0)
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1
              LIMIT 1",
            &[&high, &low],
        )
        .await
        .ok()??;
    Some(LockHolder {
        pid: row.get(0),
        application: row.get(1),
        client: row.get(2),
        held_for_s: row.get(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32_ieee(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32_ieee(b""), 0);
    }

    #[test]
    fn lock_key_follows_golang_migrate() {
        // Go: uint32(crc32.ChecksumIEEE([]byte("public\x00schema_migrations\x00events")) * 1486364155),
        // computed independently (Python's zlib.crc32).
        assert_eq!(
            lock_key("events", "public", "schema_migrations"),
            2_444_209_251
        );
        assert_eq!(
            lock_key("postgres", "public", "schema_migrations"),
            143_310_882
        );
        assert!(lock_key("events", "public", "schema_migrations") >= 0);
        assert_ne!(
            lock_key("events", "public", "schema_migrations"),
            lock_key("events2", "public", "schema_migrations")
        );
    }
}
