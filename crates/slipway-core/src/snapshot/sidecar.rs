//! The JSON sidecar beside each dump (`{name}.json`): why and from what the
//! snapshot was taken, and what it must hash to. Written atomically (temp
//! file, fsync, rename, fsync of the directory) so a crash never leaves a
//! half-written sidecar that looks valid.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::SnapshotError;
use super::format::ArchiveFormat;
use super::owner::Owner;
use super::private_dir;

/// Version of the sidecar's shape, for readers of older files. 2 added the
/// owner (`app`, `environment`).
pub const SIDECAR_FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    pub format: u32,
    /// The dump file this describes (its name, not a path).
    pub file: String,
    /// The app and environment whose database this is; absent in sidecars
    /// written before snapshots had owners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub database: String,
    /// Why it was taken: `pre-deploy`, `manual`, ...
    pub reason: String,
    pub release: Option<String>,
    pub commit: String,
    /// golang-migrate version in the database at dump time.
    pub schema_version: Option<u64>,
    #[serde(default)]
    pub schema_dirty: bool,
    pub size_bytes: u64,
    /// Hex SHA-256 of the dump file.
    pub sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// `pg_dump --version` as run at the dump site.
    #[serde(default)]
    pub pg_dump_version: Option<String>,
    /// `custom` or `directory` (a tar of `pg_dump -Fd`); older sidecars are custom.
    #[serde(default)]
    pub archive_format: ArchiveFormat,
    /// The compression used, as `method:level` (`zstd:1`, `gzip:1`, `none`);
    /// `None` in sidecars older than this field (pg_dump's default, gzip 6).
    #[serde(default)]
    pub compression: Option<String>,
    /// Parallel pg_dump jobs (directory format only).
    #[serde(default)]
    pub jobs: Option<u32>,
}

impl Sidecar {
    /// The owner it records, if it records a valid one.
    pub fn owner(&self) -> Option<Owner> {
        Owner::new(self.app.as_deref()?, self.environment.as_deref()?).ok()
    }

    pub fn read(path: &Path) -> Result<Self, SnapshotError> {
        let text = fs_err::read_to_string(path).map_err(|source| SnapshotError::Io {
            doing: "reading the snapshot sidecar".into(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| SnapshotError::BadSidecar {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    pub fn write_atomic(&self, path: &Path) -> Result<(), SnapshotError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| SnapshotError::BadSidecar {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        json.push(b'\n');
        write_atomic(path, &json)
    }
}

/// Writes `bytes` to `path` so that readers see either the old file or the
/// whole new one: a temp file in the same directory, fsync, rename, then
/// fsync of the directory so the rename itself survives a crash.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let io = |doing: &str| {
        let doing = doing.to_string();
        move |source| SnapshotError::Io { doing, source }
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sidecar".into());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = private_dir::new_file_options()
            .open(&tmp)
            .map_err(io("creating a temporary sidecar"))?;
        f.write_all(bytes).map_err(io("writing the sidecar"))?;
        f.sync_all().map_err(io("syncing the sidecar"))?;
        drop(f);
        fs_err::rename(&tmp, path).map_err(io("moving the sidecar into place"))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs_err::remove_file(&tmp);
    }
    result
}

/// fsync of a directory, so renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    fs_err::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SnapshotError::Io {
            doing: "syncing the snapshot directory".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sample() -> Sidecar {
        Sidecar {
            format: SIDECAR_FORMAT,
            file: "app_20250101T000000Z_abc.dump".into(),
            app: Some("events".into()),
            environment: Some("staging".into()),
            database: "app".into(),
            reason: "pre-deploy".into(),
            release: Some("v1.2.0".into()),
            commit: "abc".into(),
            schema_version: Some(12),
            schema_dirty: false,
            size_bytes: 1234,
            sha256: "00".repeat(32),
            created_at: datetime!(2025-01-01 00:00:00 UTC),
            expires_at: datetime!(2025-01-08 00:00:00 UTC),
            pg_dump_version: Some("pg_dump (PostgreSQL) 17.2".into()),
            archive_format: ArchiveFormat::Directory,
            compression: Some("zstd:1".into()),
            jobs: Some(2),
        }
    }

    #[test]
    fn sidecar_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app_20250101T000000Z_abc.json");
        sample().write_atomic(&path).expect("write");
        assert_eq!(Sidecar::read(&path).expect("read"), sample());
        let text = fs_err::read_to_string(&path).expect("read text");
        assert!(
            text.contains("\"expires_at\": \"2025-01-08T00:00:00Z\""),
            "{text}"
        );
        let names: Vec<_> = fs_err::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["app_20250101T000000Z_abc.json".to_string()]);
    }

    #[test]
    fn sidecars_without_an_owner_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.json");
        let mut old = serde_json::to_value(sample()).expect("json");
        let map = old.as_object_mut().expect("object");
        map.remove("app");
        map.remove("environment");
        map.insert("format".into(), 1.into());
        write_atomic(&path, old.to_string().as_bytes()).expect("write");
        let read = Sidecar::read(&path).expect("format 1 reads");
        assert_eq!(read.owner(), None);
        assert_eq!(
            sample().owner(),
            Some(Owner::new("events", "staging").expect("valid"))
        );
    }

    #[test]
    fn a_sidecar_from_before_formats_reads_as_custom_with_unknown_compression() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.json");
        let mut old = serde_json::to_value(sample()).expect("json");
        for key in ["archive_format", "compression", "jobs"] {
            old.as_object_mut().expect("object").remove(key);
        }
        fs_err::write(&path, old.to_string()).expect("write");
        let read = Sidecar::read(&path).expect("old sidecar reads");
        assert_eq!(read.archive_format, ArchiveFormat::Custom);
        assert_eq!(read.compression, None);
        assert_eq!(read.jobs, None);
    }

    #[test]
    fn overwrite_replaces_whole_file_and_bad_json_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.json");
        write_atomic(&path, b"{ not json").expect("write");
        let err = Sidecar::read(&path).expect_err("bad json");
        assert!(err.to_string().contains("x.json"), "{err}");
        sample().write_atomic(&path).expect("overwrite");
        assert_eq!(Sidecar::read(&path).expect("read").schema_version, Some(12));
    }
}
