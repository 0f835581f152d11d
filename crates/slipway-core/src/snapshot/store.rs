//! The snapshot directory: listing what is there (newest first) and pruning
//! what retention says to remove, dump and sidecar together. Files that are
//! not snapshots are left alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;

use super::error::SnapshotError;
use super::naming::{DUMP_EXTENSION, PARTIAL_SUFFIX, SnapshotName};
use super::retention;
use super::sidecar::Sidecar;

/// One snapshot in the directory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotEntry {
    pub name: SnapshotName,
    pub file: String,
    pub path: PathBuf,
    pub size_bytes: u64,
    pub sidecar: Option<Sidecar>,
    /// Why the sidecar could not be read, if it exists but is broken.
    pub sidecar_error: Option<String>,
}

/// What `prune` removed and kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
    /// Leftovers of interrupted snapshots (`.dump.partial`) past retention.
    pub partial_removed: Vec<String>,
}

/// Snapshots in `dir`, newest first. A missing directory has none.
pub fn list(dir: &Path) -> Result<Vec<SnapshotEntry>, SnapshotError> {
    let mut out = Vec::new();
    for (name, path) in scan(dir, DUMP_EXTENSION)? {
        let size_bytes = fs_err::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let sidecar_path = dir.join(name.sidecar_name());
        let (sidecar, sidecar_error) = if sidecar_path.is_file() {
            match Sidecar::read(&sidecar_path) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, None)
        };
        out.push(SnapshotEntry {
            file: name.file_name(),
            name,
            path,
            size_bytes,
            sidecar,
            sidecar_error,
        });
    }
    out.sort_by(|a, b| {
        b.name
            .taken_at
            .cmp(&a.name.taken_at)
            .then_with(|| b.file.cmp(&a.file))
    });
    Ok(out)
}

/// The newest snapshot of `database`, if any.
pub fn latest(dir: &Path, database: &str) -> Result<Option<SnapshotEntry>, SnapshotError> {
    Ok(list(dir)?.into_iter().find(|e| e.name.database == database))
}

/// Deletes snapshots past `retention` at `now`, never the newest of each
/// database. Interrupted `.dump.partial` files past retention go too.
pub fn prune(
    dir: &Path,
    now: OffsetDateTime,
    retention: Duration,
) -> Result<PruneReport, SnapshotError> {
    let entries = list(dir)?;
    let names: Vec<SnapshotName> = entries.iter().map(|e| e.name.clone()).collect();
    let expired = retention::expired(&names, now, retention);
    let mut report = PruneReport::default();
    for entry in &entries {
        if !expired.contains(&&entry.name) {
            report.kept.push(entry.file.clone());
            continue;
        }
        remove(&entry.path)?;
        let sidecar = dir.join(entry.name.sidecar_name());
        if sidecar.exists() {
            remove(&sidecar)?;
        }
        tracing::info!(file = %entry.file, "pruned snapshot past retention");
        report.deleted.push(entry.file.clone());
    }
    for (name, path) in scan(dir, &format!("{DUMP_EXTENSION}{PARTIAL_SUFFIX}"))? {
        // A partial younger than retention may belong to a dump in progress.
        if retention::expires_at(name.taken_at, retention) < now {
            remove(&path)?;
            report.partial_removed.push(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    Ok(report)
}

/// (name, path) of files in `dir` ending in `suffix` whose names parse.
fn scan(dir: &Path, suffix: &str) -> Result<Vec<(SnapshotName, PathBuf)>, SnapshotError> {
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SnapshotError::Io {
                doing: "listing the snapshot directory".into(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file_name.strip_suffix(suffix) else {
            continue;
        };
        match SnapshotName::parse(&format!("{stem}{DUMP_EXTENSION}")) {
            Ok(name) => out.push((name, entry.path())),
            Err(e) => {
                tracing::debug!(file = %file_name, error = %e, "not a snapshot name; ignored")
            }
        }
    }
    Ok(out)
}

fn remove(path: &Path) -> Result<(), SnapshotError> {
    fs_err::remove_file(path).map_err(|source| SnapshotError::Io {
        doing: "deleting an expired snapshot".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn touch(dir: &Path, name: &str) {
        fs_err::write(dir.join(name), b"x").expect("write");
    }

    #[test]
    fn list_is_newest_first_and_ignores_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(dir.path(), "app_20250101T000000Z_a.dump");
        touch(dir.path(), "app_20250301T000000Z_c.dump");
        touch(dir.path(), "app_20250201T000000Z_b.dump");
        touch(dir.path(), "app_20250401T000000Z_d.dump.partial");
        touch(dir.path(), "notes.txt");
        touch(dir.path(), "app_20250301T000000Z_c.json");
        let files: Vec<_> = list(dir.path())
            .expect("list")
            .into_iter()
            .map(|e| e.file)
            .collect();
        assert_eq!(
            files,
            vec![
                "app_20250301T000000Z_c.dump",
                "app_20250201T000000Z_b.dump",
                "app_20250101T000000Z_a.dump"
            ]
        );
        let newest = latest(dir.path(), "app").expect("list").expect("one");
        assert!(
            newest.sidecar_error.is_some(),
            "a sidecar of `x` is broken JSON"
        );
        assert!(
            list(&dir.path().join("missing"))
                .expect("missing dir")
                .is_empty()
        );
    }

    #[test]
    fn prune_deletes_dump_and_sidecar_but_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [
            "app_20250101T000000Z_a.dump",
            "app_20250101T000000Z_a.json",
            "app_20250102T000000Z_b.dump",
            "app_20250102T000000Z_b.dump.partial",
            "keep.txt",
        ] {
            touch(dir.path(), f);
        }
        let now = datetime!(2025-03-01 00:00:00 UTC);
        let report = prune(dir.path(), now, retention::DEFAULT_RETENTION).expect("prune");
        assert_eq!(report.deleted, vec!["app_20250101T000000Z_a.dump"]);
        assert_eq!(report.kept, vec!["app_20250102T000000Z_b.dump"]);
        assert_eq!(
            report.partial_removed,
            vec!["app_20250102T000000Z_b.dump.partial"]
        );
        assert!(!dir.path().join("app_20250101T000000Z_a.json").exists());
        assert!(dir.path().join("app_20250102T000000Z_b.dump").exists());
        assert!(dir.path().join("keep.txt").exists());
    }
}
