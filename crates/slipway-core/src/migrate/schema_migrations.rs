//! The two bookkeeping tables and every query on them.
//!
//! `schema_migrations(version bigint not null primary key, dirty boolean not
//! null)` is golang-migrate's, kept exactly: at most one row, "no version"
//! written as no row (or `-1` when dirty), so either tool can continue what
//! the other did. `slipway_migrations` sits beside it with one row per applied
//! version (name, checksum, duration, time, release), which is what lets
//! Slipway notice an applied file that was edited afterwards.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;
use tokio_postgres::GenericClient;

/// golang-migrate's default table name.
pub const SCHEMA_MIGRATIONS: &str = "schema_migrations";
/// Slipway's table beside it.
pub const SLIPWAY_MIGRATIONS: &str = "slipway_migrations";

/// What `schema_migrations` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbVersion {
    pub version: Option<u64>,
    pub dirty: bool,
}

/// One `slipway_migrations` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub version: u64,
    pub name: String,
    pub checksum: String,
    pub duration_ms: Option<u64>,
    pub applied_at: Option<OffsetDateTime>,
    pub release: Option<String>,
}

/// Schema-qualified, quoted table names for one schema.
#[derive(Debug, Clone)]
pub struct Tables {
    schema_migrations: String,
    slipway: String,
    schema: String,
}

/// `"name"` with embedded quotes doubled: PostgreSQL identifier quoting.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Tables {
    pub fn new(schema: &str) -> Self {
        let q = quote_ident(schema);
        Self {
            schema_migrations: format!("{q}.{}", quote_ident(SCHEMA_MIGRATIONS)),
            slipway: format!("{q}.{}", quote_ident(SLIPWAY_MIGRATIONS)),
            schema: schema.to_string(),
        }
    }

    /// Creates both tables if missing (golang-migrate's DDL for its own).
    pub async fn ensure<C: GenericClient>(&self, c: &C) -> Result<(), tokio_postgres::Error> {
        c.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (version bigint not null primary key, dirty boolean not null);
             CREATE TABLE IF NOT EXISTS {} (
                 version     bigint PRIMARY KEY,
                 name        text NOT NULL,
                 checksum    text NOT NULL,
                 duration_ms bigint,
                 applied_at  timestamptz NOT NULL DEFAULT now(),
                 release     text,
                 adopted     boolean NOT NULL DEFAULT false
             );",
            self.schema_migrations, self.slipway
        ))
        .await
    }

    /// Whether (schema_migrations, slipway_migrations) exist, without
    /// creating them: `status` must not write.
    pub async fn exist<C: GenericClient>(
        &self,
        c: &C,
    ) -> Result<(bool, bool), tokio_postgres::Error> {
        let row = c
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
                &[&self.schema_migrations, &self.slipway],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    pub async fn read_version<C: GenericClient>(
        &self,
        c: &C,
    ) -> Result<DbVersion, tokio_postgres::Error> {
        // golang-migrate reads the first row only; so do we.
        let row = c
            .query_opt(
                &format!(
                    "SELECT version, dirty FROM {} LIMIT 1",
                    self.schema_migrations
                ),
                &[],
            )
            .await?;
        Ok(match row {
            None => DbVersion {
                version: None,
                dirty: false,
            },
            Some(row) => {
                let version: i64 = row.get(0);
                DbVersion {
                    // -1 is golang-migrate's "no version" (kept when dirty).
                    version: u64::try_from(version).ok(),
                    dirty: row.get(1),
                }
            }
        })
    }

    /// golang-migrate's `SetVersion`: replace the one row. DELETE rather
    /// than its TRUNCATE, so an application reading the version (health
    /// checks) is not blocked for the length of a migration transaction.
    pub async fn set_version<C: GenericClient>(
        &self,
        c: &C,
        version: Option<u64>,
        dirty: bool,
    ) -> Result<(), tokio_postgres::Error> {
        c.execute(&format!("DELETE FROM {}", self.schema_migrations), &[])
            .await?;
        if version.is_some() || dirty {
            let v: i64 = version.and_then(|v| i64::try_from(v).ok()).unwrap_or(-1);
            c.execute(
                &format!(
                    "INSERT INTO {} (version, dirty) VALUES ($1, $2)",
                    self.schema_migrations
                ),
                &[&v, &dirty],
            )
            .await?;
        }
        Ok(())
    }

    pub async fn records<C: GenericClient>(
        &self,
        c: &C,
    ) -> Result<BTreeMap<u64, Record>, tokio_postgres::Error> {
        let rows = c
            .query(
                &format!(
                    "SELECT version, name, checksum, duration_ms,
                            (extract(epoch FROM applied_at) * 1000)::bigint, release
                       FROM {} ORDER BY version",
                    self.slipway
                ),
                &[],
            )
            .await?;
        let mut out = BTreeMap::new();
        for row in rows {
            let version: i64 = row.get(0);
            let Ok(version) = u64::try_from(version) else {
                continue;
            };
            let duration_ms: Option<i64> = row.get(3);
            let applied_ms: Option<i64> = row.get(4);
            out.insert(
                version,
                Record {
                    version,
                    name: row.get(1),
                    checksum: row.get(2),
                    duration_ms: duration_ms.and_then(|d| u64::try_from(d).ok()),
                    applied_at: applied_ms.and_then(|ms| {
                        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
                    }),
                    release: row.get(5),
                },
            );
        }
        Ok(out)
    }

    /// Records an applied file (or adopts one golang-migrate applied:
    /// `duration` unknown, `adopted` true).
    #[allow(clippy::too_many_arguments)]
    pub async fn record<C: GenericClient>(
        &self,
        c: &C,
        version: u64,
        name: &str,
        checksum: &str,
        duration: Option<Duration>,
        release: Option<&str>,
        adopted: bool,
    ) -> Result<(), tokio_postgres::Error> {
        let v = i64::try_from(version).unwrap_or(i64::MAX);
        let ms: Option<i64> = duration.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        c.execute(
            &format!(
                "INSERT INTO {} (version, name, checksum, duration_ms, release, adopted)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, checksum = EXCLUDED.checksum,
                   duration_ms = EXCLUDED.duration_ms, applied_at = now(), release = EXCLUDED.release,
                   adopted = EXCLUDED.adopted",
                self.slipway
            ),
            &[&v, &name, &checksum, &ms, &release, &adopted],
        )
        .await?;
        Ok(())
    }

    /// The bookkeeping after a file ran, in the caller's transaction: the
    /// version is now `to` and clean; an applied file is recorded, a reverted
    /// one (and anything above `to`) forgotten. Both runner paths (in a
    /// transaction, and dirty-bracketed) end with exactly this.
    pub async fn settle<C: GenericClient>(
        &self,
        c: &C,
        m: &super::source::Migration,
        to: Option<u64>,
        applied: Option<(Duration, Option<&str>)>,
    ) -> Result<(), tokio_postgres::Error> {
        self.set_version(c, to, false).await?;
        match applied {
            Some((duration, release)) => {
                self.record(
                    c,
                    m.version,
                    &m.name,
                    &m.up.checksum,
                    Some(duration),
                    release,
                    false,
                )
                .await
            }
            None => self.forget_above(c, to).await,
        }
    }

    /// Forgets the rows of versions above `version` (all rows for `None`):
    /// those versions are no longer applied.
    pub async fn forget_above<C: GenericClient>(
        &self,
        c: &C,
        version: Option<u64>,
    ) -> Result<(), tokio_postgres::Error> {
        let v: i64 = version.and_then(|v| i64::try_from(v).ok()).unwrap_or(-1);
        c.execute(
            &format!("DELETE FROM {} WHERE version > $1", self.slipway),
            &[&v],
        )
        .await?;
        Ok(())
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("public"), "\"public\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        let t = Tables::new("app");
        assert_eq!(t.schema_migrations, "\"app\".\"schema_migrations\"");
        assert_eq!(t.schema(), "app");
    }
}
