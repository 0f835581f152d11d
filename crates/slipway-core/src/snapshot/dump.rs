//! Taking a snapshot: `pg_dump -Fc` (or `-Fd -j N` as one tar, see
//! [`super::directory`]) at the dump site, compressed as [`super::format`]
//! chooses for that pg_dump, streamed to disk while hashing (a fixed buffer,
//! never the whole dump in memory), verified with `pg_restore --list`, then
//! published by rename and described by an atomically written sidecar.
//!
//! The dump is written as `{name}.dump.partial` and renamed only once it is
//! complete, synced and readable, so a `.dump` file is always a whole dump.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::directory;
use super::error::SnapshotError;
use super::format::{self, ArchiveFormat, Compression};
use super::naming::{PARTIAL_SUFFIX, SnapshotName};
use super::owner::Owner;
use super::private_dir;
use super::probe;
use super::retention::{DEFAULT_RETENTION, expires_at};
use super::sidecar::{SIDECAR_FORMAT, Sidecar, sync_dir};
use super::site::{DumpSite, PgConn, collect_stderr, spawn};
use crate::secret::Secret;

/// Size of the one buffer a dump streams through.
pub const CHUNK: usize = 256 * 1024;

/// `auto`: zstd:1 where pg_dump has it (16+), gzip:1 before (see [`format::choose`]).
pub const DEFAULT_COMPRESSION: Compression = Compression::Auto;

/// Parallel jobs of a directory-format dump or restore unless told.
pub const DEFAULT_JOBS: u32 = 2;

/// How to take a snapshot.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Directory the dump and its sidecar go to (created 700 if missing,
    /// tightened or refused if others may read it): the owner's directory
    /// (see [`Owner::dir`]) when there is an owner.
    pub dir: PathBuf,
    /// Whose database this is: recorded in the file name and the sidecar.
    pub owner: Option<Owner>,
    /// Commit label in the file name (see [`super::naming::commit_label`]).
    pub commit: String,
    /// Why: `pre-deploy`, `manual`, ...
    pub reason: String,
    pub release: Option<String>,
    /// Sets the sidecar's `expires_at`.
    pub retention: Duration,
    /// What to compress with; [`format::choose`] turns it into pg_dump's `-Z`.
    pub compression: Compression,
    /// `custom` (`-Fc`) or `directory` (`-Fd -j jobs`, kept as one tar).
    pub format: ArchiveFormat,
    /// Parallel pg_dump jobs for the directory format (ignored for custom).
    pub jobs: u32,
    /// The time in the name; `None` = now. Tests inject it.
    pub now: Option<OffsetDateTime>,
}

impl CreateOptions {
    pub fn new(
        dir: impl Into<PathBuf>,
        commit: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            dir: dir.into(),
            owner: None,
            commit: commit.into(),
            reason: reason.into(),
            release: None,
            retention: DEFAULT_RETENTION,
            compression: DEFAULT_COMPRESSION,
            format: ArchiveFormat::Custom,
            jobs: DEFAULT_JOBS,
            now: None,
        }
    }
}

/// A snapshot just taken.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    pub name: SnapshotName,
    pub path: PathBuf,
    pub sidecar_path: PathBuf,
    pub sidecar: Sidecar,
    /// Entries in the archive's table of contents, as `pg_restore --list` saw.
    pub toc_entries: usize,
    #[serde(rename = "duration_ms", serialize_with = "ser_ms")]
    pub duration: Duration,
}

/// Takes a snapshot of the database at `url`, running the tools at `site`.
pub async fn create(
    site: &DumpSite,
    url: &Secret,
    opts: &CreateOptions,
) -> Result<Snapshot, SnapshotError> {
    let started = Instant::now();
    let conn = PgConn::from_url(url)?;
    let taken_at = opts.now.unwrap_or_else(OffsetDateTime::now_utc);
    let mut name = SnapshotName::new(&conn.dbname, taken_at, &opts.commit)?;
    if let Some(owner) = &opts.owner {
        name = name.owned_by(owner.clone());
    }
    private_dir::ensure(&opts.dir)?;
    let path = opts.dir.join(name.file_name());
    let sidecar_path = opts.dir.join(name.sidecar_name());
    if path.exists() {
        return Err(SnapshotError::Exists { path });
    }
    let pg_dump_version = probe::pg_dump_version(site, &conn).await?;
    let (schema_version, schema_dirty) = probe::schema_version(site, &conn).await?;
    let chosen = format::choose(opts.compression, &pg_dump_version);
    if let Some(note) = &chosen.note {
        tracing::warn!("{note}");
    }
    let jobs = match opts.format {
        ArchiveFormat::Custom => None,
        ArchiveFormat::Directory => Some(opts.jobs.max(1)),
    };
    tracing::info!(
        database = %conn.dbname,
        site = %site.describe(),
        file = %name.file_name(),
        "taking snapshot with {pg_dump_version}: {} format{}, {}",
        opts.format,
        jobs.map(|j| format!(" with {j} parallel jobs")).unwrap_or_default(),
        chosen.label
    );

    let partial = PartialFile::new(
        opts.dir
            .join(format!("{}{PARTIAL_SUFFIX}", name.file_name())),
    );
    let dump_started = Instant::now();
    let command = match opts.format {
        ArchiveFormat::Custom => site.command(
            &conn,
            "pg_dump",
            &["-Fc", "-Z", &chosen.arg, "--no-password"],
            false,
        ),
        ArchiveFormat::Directory => directory::dump_command(site, &conn, &chosen.arg, opts.jobs),
    };
    let (size_bytes, sha256) = dump_to(site, &conn, command, partial.path()).await?;
    tracing::debug!(
        size_bytes,
        ms = dump_started.elapsed().as_millis() as u64,
        "pg_dump streamed to disk"
    );
    let verify_started = Instant::now();
    let toc_entries = match opts.format {
        ArchiveFormat::Custom => verify(site, &conn, partial.path()).await?,
        ArchiveFormat::Directory => directory::verify(site, &conn, partial.path()).await?,
    };
    tracing::debug!(
        toc_entries,
        ms = verify_started.elapsed().as_millis() as u64,
        "pg_restore --list verified the dump"
    );
    fs_err::rename(partial.path(), &path).map_err(|source| SnapshotError::Io {
        doing: "moving the finished dump into place".into(),
        source,
    })?;
    partial.disarm();
    sync_dir(&opts.dir)?;

    let sidecar = Sidecar {
        format: SIDECAR_FORMAT,
        file: name.file_name(),
        app: opts.owner.as_ref().map(|o| o.app.clone()),
        environment: opts.owner.as_ref().map(|o| o.environment.clone()),
        database: conn.dbname.clone(),
        reason: opts.reason.clone(),
        release: opts.release.clone(),
        commit: name.commit.clone(),
        schema_version,
        schema_dirty,
        size_bytes,
        sha256,
        created_at: name.taken_at,
        expires_at: expires_at(name.taken_at, opts.retention),
        pg_dump_version: Some(pg_dump_version),
        archive_format: opts.format,
        compression: Some(chosen.label),
        jobs,
    };
    sidecar.write_atomic(&sidecar_path)?;
    let duration = started.elapsed();
    tracing::info!(
        file = %name.file_name(),
        size_bytes,
        duration_ms = duration.as_millis() as u64,
        "snapshot written and verified"
    );
    Ok(Snapshot {
        name,
        path,
        sidecar_path,
        sidecar,
        toc_entries,
        duration,
    })
}

/// Runs the dump `command` and streams its stdout into a new file at `path`,
/// hashing as it goes. Returns (size, hex sha256). The file is synced before returning.
///
/// The copy runs on one blocking thread with plain reads and writes: a
/// multi-gigabyte dump is tens of thousands of chunks, and an async file
/// would hand each write to the blocking pool and back.
async fn dump_to(
    site: &DumpSite,
    conn: &PgConn,
    command: tokio::process::Command,
    path: &Path,
) -> Result<(u64, String), SnapshotError> {
    let io = |doing: &'static str| {
        move |source| SnapshotError::Io {
            doing: doing.to_string(),
            source,
        }
    };
    let file = private_dir::new_file_options()
        .open(path)
        .map_err(io("creating the dump file"))?;
    let mut child = spawn(command)?;
    let stderr = collect_stderr(&mut child);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout pipe"))
        .and_then(|s| s.into_owned_fd())
        .map_err(io("reading pg_dump's output"))?;
    // The blocking thread reports through this task's subscriber.
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let copied = tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || copy_hashing(stdout, file))
    })
    .await
    .unwrap_or_else(|e| Err(("copying the dump", std::io::Error::other(e))));
    // The copy has closed its end of the pipe, so a pg_dump still writing
    // (we stopped on a disk error) got EPIPE and finish() does not wait
    // forever. The tool's own failure explains more than a broken pipe, so
    // check it first.
    site.finish(conn, "pg_dump", child, stderr).await?;
    copied.map_err(|(doing, source)| SnapshotError::Io {
        doing: doing.to_string(),
        source,
    })
}

/// Blocking copy of `from` into `to` through one [`CHUNK`] buffer, hashing;
/// syncs `to`. Errors carry what was being done.
fn copy_hashing(
    from: std::os::fd::OwnedFd,
    mut to: std::fs::File,
) -> Result<(u64, String), (&'static str, std::io::Error)> {
    use std::io::{Read as _, Write as _};
    let mut from = std::fs::File::from(from);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size: u64 = 0;
    let mut rate = crate::rate::Rate::new("dumped");
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(("reading pg_dump's output", e)),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])
            .map_err(|e| ("writing the dump file", e))?;
        size += n as u64;
        rate.add(n);
    }
    to.sync_all().map_err(|e| ("syncing the dump file", e))?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// `pg_restore --list` on the written file, streamed into the site. Returns
/// the number of TOC entries.
async fn verify(site: &DumpSite, conn: &PgConn, path: &Path) -> Result<usize, SnapshotError> {
    let mut child = spawn(site.command(conn, "pg_restore", &["--list"], true))?;
    let stderr = collect_stderr(&mut child);
    let stdin = child.stdin.take();
    let feeder = tokio::spawn(feed_file(path.to_path_buf(), stdin, None));
    let mut listing = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        // The listing is one line per object: small even for big databases.
        out.read_to_end(&mut listing)
            .await
            .map_err(|source| SnapshotError::Io {
                doing: "reading pg_restore --list output".into(),
                source,
            })?;
    }
    let listing = String::from_utf8_lossy(&listing);
    let finished = site.finish(conn, "pg_restore", child, stderr).await;
    let fed = feeder
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    if let Err(e) = finished {
        let stderr = match e {
            SnapshotError::ToolFailed { stderr, status, .. } => format!("{status}: {stderr}"),
            other => other.to_string(),
        };
        return Err(SnapshotError::Verify {
            path: path.to_path_buf(),
            stderr,
        });
    }
    fed.map_err(|source| SnapshotError::Io {
        doing: "streaming the dump into pg_restore --list".into(),
        source,
    })?;
    Ok(directory::toc_entries(&listing))
}

/// Streams a file into a child's stdin through one [`CHUNK`] buffer, then
/// closes it. A reader that stops early (`pg_restore --list` reads only the
/// table of contents) is not an error: its exit status decides.
pub async fn feed_file(
    path: PathBuf,
    stdin: Option<tokio::process::ChildStdin>,
    mut rate: Option<crate::rate::Rate>,
) -> std::io::Result<()> {
    let Some(mut stdin) = stdin else {
        return Ok(());
    };
    let mut file = tokio::fs::File::open(&path).await?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        match stdin.write_all(&buf[..n]).await {
            Ok(()) => {
                if let Some(r) = rate.as_mut() {
                    r.add(n);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    match stdin.shutdown().await {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// Hex SHA-256 of a file, read through one [`CHUNK`] buffer.
pub async fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Removes a half-written dump on every early return (and on cancellation).
struct PartialFile {
    path: PathBuf,
    armed: bool,
}

impl PartialFile {
    fn new(path: PathBuf) -> Self {
        Self { path, armed: true }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sha256_file_streams_and_matches_the_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        // Larger than one chunk, so the loop runs several times.
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        fs_err::write(&path, &data).expect("write");
        let got = sha256_file(&path).await.expect("hash");
        assert_eq!(got, hex::encode(Sha256::digest(&data)));
    }

    #[test]
    fn partial_file_is_removed_unless_disarmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.partial");
        let b = dir.path().join("b.partial");
        fs_err::write(&a, b"x").expect("write");
        fs_err::write(&b, b"x").expect("write");
        drop(PartialFile::new(a.clone()));
        PartialFile::new(b.clone()).disarm();
        assert!(!a.exists());
        assert!(b.exists());
    }

    #[tokio::test]
    async fn feed_file_tolerates_a_reader_that_stops_early() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        fs_err::write(&path, vec![7u8; CHUNK * 8]).expect("write");
        // `head -c 10` reads ten bytes and exits: the rest hits a closed pipe.
        let mut child = tokio::process::Command::new("head")
            .args(["-c", "10"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn head");
        let stdin = child.stdin.take();
        feed_file(path, stdin, None)
            .await
            .expect("early close is not an error");
        assert!(child.wait().await.expect("wait").success());
    }
}
