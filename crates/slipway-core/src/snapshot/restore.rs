//! Restoring a snapshot: check the file against its sidecar's sha256, then
//! stream it into `pg_restore --clean --if-exists --no-owner` at the dump
//! site, in one transaction, and report the schema version now in the
//! database.
//!
//! `--single-transaction` (which implies `--exit-on-error`) makes a restore
//! all or nothing: if any object fails, the database is left as it was
//! rather than half dropped. Asking the operator for confirmation is the
//! CLI's job, not this module's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::dump::{feed_file, sha256_file};
use super::error::SnapshotError;
use super::naming::{DUMP_EXTENSION, SIDECAR_EXTENSION};
use super::probe;
use super::sidecar::Sidecar;
use super::site::{DumpSite, PgConn, collect_stderr, spawn};
use crate::secret::Secret;

/// How to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Refuse a file whose sha256 differs from its sidecar's (default true).
    /// A dump without a sidecar is restored with a warning.
    pub verify_checksum: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            verify_checksum: true,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    pub file: PathBuf,
    pub database: String,
    /// Whether the file's sha256 was checked against its sidecar.
    pub checksum_verified: bool,
    /// golang-migrate's version in the database after the restore.
    pub schema_version: Option<u64>,
    pub schema_dirty: bool,
    #[serde(rename = "duration_ms", serialize_with = "ser_ms")]
    pub duration: Duration,
}

/// The sidecar path for a dump path (`x.dump` → `x.json`).
pub fn sidecar_path_for(dump: &Path) -> PathBuf {
    let name = dump
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(DUMP_EXTENSION).unwrap_or(&name);
    dump.with_file_name(format!("{stem}{SIDECAR_EXTENSION}"))
}

/// Restores `dump` into the database at `url`, running pg_restore at `site`.
pub async fn restore(
    site: &DumpSite,
    url: &Secret,
    dump: &Path,
    opts: &RestoreOptions,
) -> Result<RestoreReport, SnapshotError> {
    let started = Instant::now();
    let conn = PgConn::from_url(url)?;
    if !dump.is_file() {
        return Err(SnapshotError::NotFound {
            path: dump.to_path_buf(),
        });
    }
    let checksum_verified = if opts.verify_checksum {
        check_against_sidecar(dump).await?
    } else {
        false
    };
    tracing::info!(
        file = %dump.display(),
        database = %conn.dbname,
        site = %site.describe(),
        "restoring snapshot (single transaction)"
    );
    let dbname_arg = format!("--dbname={}", conn.dbname);
    let mut child = spawn(site.command(
        &conn,
        "pg_restore",
        &[
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            &dbname_arg,
        ],
        true,
    ))?;
    let stderr = collect_stderr(&mut child);
    let stdin = child.stdin.take();
    let feeder = tokio::spawn(feed_file(dump.to_path_buf(), stdin));
    // pg_restore -d writes nothing to stdout; drain it anyway so it can
    // never block on a full pipe.
    let stdout = child.stdout.take();
    let drain = tokio::spawn(async move {
        if let Some(mut out) = stdout {
            let _ = tokio::io::copy(&mut out, &mut tokio::io::sink()).await;
        }
    });
    let finished = site.finish(&conn, "pg_restore", child, stderr).await;
    let _ = drain.await;
    let fed = feeder
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    if let Err(e) = finished {
        return Err(match e {
            SnapshotError::ToolFailed {
                tool,
                site,
                status,
                stderr,
                hint,
            } => SnapshotError::ToolFailed {
                tool,
                site,
                status,
                stderr,
                hint: format!(
                    "{hint}. The restore ran in one transaction and was rolled back: the database is unchanged"
                ),
            },
            other => other,
        });
    }
    fed.map_err(|source| SnapshotError::Io {
        doing: "streaming the dump into pg_restore".into(),
        source,
    })?;
    let (schema_version, schema_dirty) = probe::schema_version(site, &conn).await?;
    let duration = started.elapsed();
    tracing::info!(
        file = %dump.display(),
        schema_version = ?schema_version,
        duration_ms = duration.as_millis() as u64,
        "snapshot restored"
    );
    Ok(RestoreReport {
        file: dump.to_path_buf(),
        database: conn.dbname,
        checksum_verified,
        schema_version,
        schema_dirty,
        duration,
    })
}

/// Compares the file's sha256 with its sidecar's; `Ok(false)` when there is
/// no sidecar to compare with.
async fn check_against_sidecar(dump: &Path) -> Result<bool, SnapshotError> {
    let sidecar_path = sidecar_path_for(dump);
    if !sidecar_path.is_file() {
        tracing::warn!(file = %dump.display(), "snapshot has no sidecar; restoring without a checksum check");
        return Ok(false);
    }
    let sidecar = Sidecar::read(&sidecar_path)?;
    let actual = sha256_file(dump)
        .await
        .map_err(|source| SnapshotError::Io {
            doing: "hashing the snapshot".into(),
            source,
        })?;
    if actual != sidecar.sha256 {
        return Err(SnapshotError::ChecksumMismatch {
            path: dump.to_path_buf(),
            expected: sidecar.sha256,
            actual,
        });
    }
    Ok(true)
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_sits_beside_the_dump() {
        assert_eq!(
            sidecar_path_for(Path::new("/s/app_20250101T000000Z_abc.dump")),
            PathBuf::from("/s/app_20250101T000000Z_abc.json")
        );
    }

    #[tokio::test]
    async fn a_changed_file_is_refused_before_anything_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dump = dir.path().join("app_20250101T000000Z_abc.dump");
        fs_err::write(&dump, b"PGDMP tampered").expect("write");
        fs_err::write(
            sidecar_path_for(&dump),
            serde_json::json!({
                "format": 1, "file": "app_20250101T000000Z_abc.dump", "database": "app",
                "reason": "test", "release": null, "commit": "abc", "schema_version": null,
                "size_bytes": 5, "sha256": "00", "created_at": "2025-01-01T00:00:00Z",
                "expires_at": "2025-01-08T00:00:00Z"
            })
            .to_string(),
        )
        .expect("write sidecar");
        let err = check_against_sidecar(&dump).await.expect_err("mismatch");
        assert!(
            matches!(err, SnapshotError::ChecksumMismatch { .. }),
            "{err}"
        );
    }
}
