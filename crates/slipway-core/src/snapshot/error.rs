//! What can go wrong taking, listing, pruning or restoring snapshots. Tool
//! failures carry the tool's stderr (scrubbed of the password), and every
//! message says what to do next.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("`{name}` is not a valid snapshot name part: {reason}")]
    InvalidName { name: String, reason: String },

    #[error("the database URL `{url}` cannot be used for a snapshot: {reason}")]
    Url { url: String, reason: String },

    #[error("I/O error while {doing}: {source}")]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "cannot run `docker` to reach the database: {source}. Install the Docker CLI and make sure it is on PATH and can reach the engine"
    )]
    Spawn {
        #[source]
        source: std::io::Error,
    },

    #[error("`{tool}` {site} failed ({status}): {stderr}{hint}")]
    ToolFailed {
        tool: String,
        site: String,
        status: String,
        stderr: String,
        hint: String,
    },

    #[error(
        "the dump `{}` was written but `pg_restore --list` cannot read it ({stderr}). It was removed; check disk space and run the snapshot again",
        path.display()
    )]
    Verify { path: PathBuf, stderr: String },

    #[error(
        "snapshot `{}` does not match its sidecar: sha256 is {actual}, the sidecar recorded {expected}. The file is corrupt or was changed; restore a different snapshot",
        path.display()
    )]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("snapshot sidecar `{}` is unreadable: {reason}", path.display())]
    BadSidecar { path: PathBuf, reason: String },

    #[error(
        "snapshot file `{}` already exists; two snapshots in the same second for the same commit? Wait a second and retry",
        path.display()
    )]
    Exists { path: PathBuf },

    #[error(
        "snapshot directory `{}` can be read or written by other users (mode {mode}) and this user cannot tighten it. Snapshots hold the whole database: run `chmod 700 {}` as its owner, or set database.snapshots.dir to a directory of your own",
        path.display(), path.display()
    )]
    UnsafeDirectory { path: PathBuf, mode: String },

    #[error(
        "`{}` is not a snapshot archive (neither a pg_dump custom-format file nor a tar of a directory-format one); restore a `.dump` file that `slipway snapshot list` shows",
        path.display()
    )]
    NotAnArchive { path: PathBuf },

    #[error("snapshot file `{}` does not exist. `slipway snapshot list` shows the available ones", path.display())]
    NotFound { path: PathBuf },
}

/// Hints for common tool failures, from their stderr.
pub fn hint_for(stderr: &str) -> &'static str {
    if stderr.contains("No such container") {
        ". Is the database container running? `docker ps` lists them"
    } else if stderr.contains("executable file not found") || stderr.contains("not found in $PATH")
    {
        ". The image has no PostgreSQL client tools; use the database image (it ships pg_dump/pg_restore/psql)"
    } else if stderr.contains("password authentication failed") {
        ". Check the database URL's user and password"
    } else if stderr.contains("server version") && stderr.contains("mismatch") {
        ". Run the dump next to the database (DumpSite::Container) or use the database's own image for the one-off container"
    } else if stderr.contains("Connection refused") || stderr.contains("could not connect") {
        ". Is the database running and reachable from where pg_dump runs (the container's network)?"
    } else {
        ""
    }
}
