//! Restoring a snapshot: check the file against its sidecar's sha256, then
//! restore it so that a failure leaves the database as it was, and report
//! the schema version now in the database and how long it took.
//!
//! - A custom-format archive (`pg_dump -Fc`) streams into
//!   `pg_restore --clean --if-exists --no-owner --single-transaction` at the
//!   dump site: all or nothing, one job (pg_restore cannot combine
//!   `--single-transaction` with `-j`, and reads stdin with one job only).
//! - A directory-format archive (a tar of `pg_dump -Fd`) is unpacked at the
//!   site and restored with `pg_restore -j N` into a new database beside the
//!   live one; only when that succeeded are the two swapped by renaming in
//!   one transaction (open sessions on the live database are ended first)
//!   and the replaced one dropped. A failure drops the new database: the
//!   live one was never touched. Renaming needs a role that owns the
//!   database and may create databases (or a superuser); without that the
//!   archive is restored in place in one transaction, one job, with a
//!   warning.
//!
//! Asking the operator for confirmation is the CLI's job, not this module's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::directory;
use super::dump::{DEFAULT_JOBS, feed_file, sha256_file};
use super::error::SnapshotError;
use super::format::ArchiveFormat;
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
    /// Parallel pg_restore jobs for a directory-format archive.
    pub jobs: u32,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            verify_checksum: true,
            jobs: DEFAULT_JOBS,
        }
    }
}

/// How a restore kept its all-or-nothing promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreMethod {
    /// In place, `--single-transaction`: rolled back on failure.
    SingleTransaction,
    /// `-j N` into a new database, renamed over the live one on success.
    NewDatabaseSwapped,
}

impl RestoreMethod {
    fn describe(self, jobs: u32) -> String {
        match self {
            RestoreMethod::SingleTransaction => "in one transaction".into(),
            RestoreMethod::NewDatabaseSwapped => {
                format!("with {jobs} parallel jobs into a new database, swapped in")
            }
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
    /// The archive's format, read from the file itself.
    pub format: ArchiveFormat,
    pub method: RestoreMethod,
    /// pg_restore jobs used (1 for a single-transaction restore).
    pub jobs: u32,
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
    let format = sniff_format(dump).await?;
    tracing::info!(
        file = %dump.display(),
        database = %conn.dbname,
        site = %site.describe(),
        "restoring a {format}-format snapshot"
    );
    let dbname_arg = format!("--dbname={}", conn.dbname);
    let in_place_args = [
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        &dbname_arg,
    ];
    let (method, jobs) = match format {
        ArchiveFormat::Custom => {
            let cmd = site.command(&conn, "pg_restore", &in_place_args, true);
            run_in_place(site, &conn, cmd, dump).await?;
            (RestoreMethod::SingleTransaction, 1)
        }
        ArchiveFormat::Directory => match can_swap(site, &conn).await {
            Ok(()) => {
                let jobs = opts.jobs.max(1);
                restore_swapped(site, &conn, dump, jobs).await?;
                (RestoreMethod::NewDatabaseSwapped, jobs)
            }
            Err(reason) => {
                tracing::warn!(
                    "restoring in place in one transaction with one job, not in parallel: {reason}"
                );
                let mut args = vec!["-Fd"];
                args.extend_from_slice(&in_place_args);
                let cmd = directory::restore_command(site, &conn, &args);
                run_in_place(site, &conn, cmd, dump).await?;
                (RestoreMethod::SingleTransaction, 1)
            }
        },
    };
    let (schema_version, schema_dirty) = probe::schema_version(site, &conn).await?;
    let duration = started.elapsed();
    tracing::info!(
        file = %dump.display(),
        schema_version = ?schema_version,
        duration_ms = duration.as_millis() as u64,
        "snapshot restored in {:.1} s ({})",
        duration.as_secs_f64(),
        method.describe(jobs)
    );
    Ok(RestoreReport {
        file: dump.to_path_buf(),
        database: conn.dbname,
        checksum_verified,
        schema_version,
        schema_dirty,
        format,
        method,
        jobs,
        duration,
    })
}

/// The archive's format from its first bytes: `PGDMP` (custom) or a tar
/// header (directory).
async fn sniff_format(dump: &Path) -> Result<ArchiveFormat, SnapshotError> {
    use tokio::io::AsyncReadExt as _;
    let io = |doing: &str| {
        let doing = doing.to_string();
        move |source| SnapshotError::Io { doing, source }
    };
    let mut head = Vec::with_capacity(512);
    tokio::fs::File::open(dump)
        .await
        .map_err(io("opening the snapshot"))?
        .take(512)
        .read_to_end(&mut head)
        .await
        .map_err(io("reading the snapshot"))?;
    format_of(&head).ok_or_else(|| SnapshotError::NotAnArchive {
        path: dump.to_path_buf(),
    })
}

fn format_of(head: &[u8]) -> Option<ArchiveFormat> {
    if head.starts_with(b"PGDMP") {
        Some(ArchiveFormat::Custom)
    } else if head.get(257..262) == Some(b"ustar".as_slice()) {
        Some(ArchiveFormat::Directory)
    } else {
        None
    }
}

/// Streams `dump` into a restore `cmd` that runs in one transaction; on
/// failure says that nothing changed.
async fn run_in_place(
    site: &DumpSite,
    conn: &PgConn,
    cmd: tokio::process::Command,
    dump: &Path,
) -> Result<(), SnapshotError> {
    run_fed(site, conn, cmd, dump).await.map_err(|e| {
        with_hint(
            e,
            "The restore ran in one transaction and was rolled back: the database is unchanged",
        )
    })
}

/// Runs a pg_restore `cmd` with `dump` streamed into its stdin.
async fn run_fed(
    site: &DumpSite,
    conn: &PgConn,
    cmd: tokio::process::Command,
    dump: &Path,
) -> Result<(), SnapshotError> {
    let mut child = spawn(cmd)?;
    let stderr = collect_stderr(&mut child);
    let stdin = child.stdin.take();
    let feeder = tokio::spawn(
        tracing::instrument::WithSubscriber::with_current_subscriber(feed_file(
            dump.to_path_buf(),
            stdin,
            Some(crate::rate::Rate::new("restored")),
        )),
    );
    // pg_restore -d writes nothing to stdout; drain it anyway so it can
    // never block on a full pipe.
    let stdout = child.stdout.take();
    let drain = tokio::spawn(async move {
        if let Some(mut out) = stdout {
            let _ = tokio::io::copy(&mut out, &mut tokio::io::sink()).await;
        }
    });
    let finished = site.finish(conn, "pg_restore", child, stderr).await;
    let _ = drain.await;
    let fed = feeder
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    finished?;
    fed.map_err(|source| SnapshotError::Io {
        doing: "streaming the dump into pg_restore".into(),
        source,
    })
}

fn with_hint(e: SnapshotError, extra: &str) -> SnapshotError {
    match e {
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
            hint: format!("{hint}. {extra}"),
        },
        other => other,
    }
}

/// The database sessions connect to while the live one is renamed.
fn maintenance(conn: &PgConn) -> PgConn {
    let mut maint = conn.clone();
    maint.dbname = if conn.dbname == "postgres" {
        "template1".into()
    } else {
        "postgres".into()
    };
    maint
}

/// `{db}{suffix}`, within PostgreSQL's 63-byte identifiers.
fn side_name(db: &str, suffix: &str) -> String {
    let mut keep = 63usize.saturating_sub(suffix.len()).min(db.len());
    while !db.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &db[..keep])
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `psql -c` for each statement, in order, stopping at the first error;
/// returns the output.
async fn psql(
    site: &DumpSite,
    conn: &PgConn,
    statements: &[&str],
) -> Result<String, SnapshotError> {
    let mut args = vec!["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"];
    for s in statements {
        args.extend(["-c", s]);
    }
    site.run_small(conn, "psql", &args).await
}

/// Whether the URL's role may restore beside the live database and swap:
/// a superuser, or the database's owner with CREATEDB. `Err` says why not.
async fn can_swap(site: &DumpSite, conn: &PgConn) -> Result<(), String> {
    let maint = maintenance(conn);
    let sql = format!(
        "SELECT (r.rolsuper OR (r.rolcreatedb AND d.datdba = r.oid))::text FROM pg_roles r JOIN pg_database d ON d.datname = {} WHERE r.rolname = current_user",
        literal(&conn.dbname)
    );
    match psql(site, &maint, &[&sql]).await {
        Ok(out) if out.trim() == "true" => Ok(()),
        Ok(_) => Err(format!(
            "the role `{}` must own database `{}` and have CREATEDB (or be a superuser) to restore beside it and swap; grant it with `ALTER ROLE \"{}\" CREATEDB` for parallel restores",
            conn.user, conn.dbname, conn.user
        )),
        Err(e) => Err(format!(
            "cannot connect to the `{}` database to create and rename databases ({e})",
            maint.dbname
        )),
    }
}

/// Restores a directory-format `dump` with `jobs` parallel jobs into a new
/// database, then renames it over the live one (see the module docs).
async fn restore_swapped(
    site: &DumpSite,
    conn: &PgConn,
    dump: &Path,
    jobs: u32,
) -> Result<(), SnapshotError> {
    let maint = maintenance(conn);
    let live = conn.dbname.clone();
    let fresh = side_name(&live, "_slipway_restore");
    let replaced = side_name(&live, "_slipway_replaced");
    // The new database sorts and compares like the live one.
    let props = psql(
        site,
        &maint,
        &[&format!(
            "SELECT pg_encoding_to_char(encoding) || '|' || datcollate || '|' || datctype FROM pg_database WHERE datname = {}",
            literal(&live)
        )],
    )
    .await?;
    let props: Vec<&str> = props.trim().splitn(3, '|').collect();
    let create = match props.as_slice() {
        [enc, collate, ctype] => format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            ident(&fresh),
            literal(enc),
            literal(collate),
            literal(ctype)
        ),
        _ => format!("CREATE DATABASE {} TEMPLATE template0", ident(&fresh)),
    };
    // Leftovers of a restore killed half way are Slipway's own: cleared.
    psql(
        site,
        &maint,
        &[
            &format!("DROP DATABASE IF EXISTS {}", ident(&fresh)),
            &format!("DROP DATABASE IF EXISTS {}", ident(&replaced)),
            &create,
        ],
    )
    .await?;
    let drop_fresh = format!("DROP DATABASE IF EXISTS {}", ident(&fresh));
    let untouched = format!(
        "pg_restore ran into the new database `{fresh}`, which was dropped: the live database `{live}` was not touched"
    );

    let mut target = conn.clone();
    target.dbname = fresh.clone();
    let jobs_arg = jobs.to_string();
    let dbname_arg = format!("--dbname={fresh}");
    let cmd = directory::restore_command(
        site,
        &target,
        &[
            "-Fd",
            "-j",
            &jobs_arg,
            "--no-owner",
            "--exit-on-error",
            "--no-password",
            &dbname_arg,
        ],
    );
    if let Err(e) = run_fed(site, &target, cmd, dump).await {
        if let Err(drop) = psql(site, &maint, &[&drop_fresh]).await {
            tracing::warn!("could not drop the half-restored database `{fresh}`: {drop}");
        }
        return Err(with_hint(e, &untouched));
    }

    // Swap: end the live database's sessions, then both renames in one
    // transaction. A session that reconnects in between makes the rename
    // fail harmlessly; try again a few times.
    let terminate = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
        literal(&live)
    );
    let wait_gone = format!(
        "DO $slipway$ BEGIN FOR i IN 1..200 LOOP EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()); PERFORM pg_sleep(0.05); END LOOP; END $slipway$",
        literal(&live)
    );
    let rename = format!(
        "BEGIN; ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} RENAME TO {}; COMMIT;",
        ident(&live),
        ident(&replaced),
        ident(&fresh),
        ident(&live)
    );
    let mut attempt = 0;
    loop {
        attempt += 1;
        match psql(site, &maint, &[&terminate, &wait_gone, &rename]).await {
            Ok(_) => break,
            Err(SnapshotError::ToolFailed { stderr, .. })
                if attempt < 5 && stderr.contains("being accessed by other users") =>
            {
                tracing::info!("sessions reconnected to `{live}` during the swap; trying again");
            }
            Err(e) => {
                if let Err(drop) = psql(site, &maint, &[&drop_fresh]).await {
                    tracing::warn!("could not drop the restored database `{fresh}`: {drop}");
                }
                return Err(with_hint(
                    e,
                    &format!(
                        "The restored copy could not be swapped in and was dropped: the live database `{live}` is unchanged"
                    ),
                ));
            }
        }
    }
    if let Err(e) = psql(
        site,
        &maint,
        &[&format!("DROP DATABASE {}", ident(&replaced))],
    )
    .await
    {
        tracing::warn!(
            "the snapshot is restored, but the replaced database `{replaced}` could not be dropped ({e}); drop it with `DROP DATABASE \"{replaced}\"` once you no longer need it"
        );
    }
    Ok(())
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
    fn the_format_is_read_from_the_file_and_side_names_fit() {
        assert_eq!(format_of(b"PGDMP\x01\x0f"), Some(ArchiveFormat::Custom));
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(format_of(&tar), Some(ArchiveFormat::Directory));
        assert_eq!(format_of(b"-- plain SQL"), None);
        assert_eq!(
            side_name("events", "_slipway_restore"),
            "events_slipway_restore"
        );
        let long = "é".repeat(40);
        let name = side_name(&long, "_slipway_replaced");
        assert!(
            name.len() <= 63 && name.ends_with("_slipway_replaced"),
            "{name}"
        );
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

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
