//! The snapshot directory: listing what is there (newest first) and pruning
//! what retention says to remove, dump and sidecar together. Files that are
//! not snapshots are left alone.
//!
//! The directory is shared by every app and environment on the machine;
//! each owner has its own subdirectory (`<root>/<app>/<environment>/`, see
//! [`super::owner`]). An owner's listing, `latest` and retention see only
//! its own snapshots. Dumps lying directly in the root were taken before
//! snapshots had owners: they are listed as unowned, never picked by
//! `latest` and never pruned by any owner's retention.

use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;

use super::error::SnapshotError;
use super::naming::{DUMP_EXTENSION, PARTIAL_SUFFIX, SnapshotName};
use super::owner::Owner;
use super::private_dir::{self, Tightened};
use super::retention;
use super::sidecar::Sidecar;

/// One snapshot in the directory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotEntry {
    pub name: SnapshotName,
    pub file: String,
    pub path: PathBuf,
    pub size_bytes: u64,
    /// Whose database it holds, from its sidecar or else its name; `None`
    /// for snapshots taken before snapshots had owners.
    pub owner: Option<Owner>,
    /// Why its ownership is in doubt (its name and sidecar disagree).
    pub owner_conflict: Option<String>,
    pub sidecar: Option<Sidecar>,
    /// Why the sidecar could not be read, if it exists but is broken.
    pub sidecar_error: Option<String>,
}

impl SnapshotEntry {
    /// Reads what a dump file says about itself: its name (owned when
    /// `owned_name`), its size and its sidecar.
    fn read(name: SnapshotName, path: PathBuf) -> Self {
        let size_bytes = fs_err::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let sidecar_path = path.with_file_name(name.sidecar_name());
        let (sidecar, sidecar_error) = if sidecar_path.is_file() {
            match Sidecar::read(&sidecar_path) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, None)
        };
        let recorded = sidecar.as_ref().and_then(Sidecar::owner);
        let owner_conflict = match (&name.owner, &recorded) {
            (Some(by_name), Some(by_sidecar)) if by_name != by_sidecar => Some(format!(
                "its name says {by_name} but its sidecar says {by_sidecar}"
            )),
            _ => None,
        };
        let owner = recorded.or_else(|| name.owner.clone());
        Self {
            file: name.file_name(),
            name,
            path,
            size_bytes,
            owner,
            owner_conflict,
            sidecar,
            sidecar_error,
        }
    }

    /// Whether it certainly belongs to `owner`.
    pub fn belongs_to(&self, owner: &Owner) -> bool {
        self.owner_conflict.is_none() && self.owner.as_ref() == Some(owner)
    }
}

/// One owner's view of the snapshot directory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listing {
    pub owner: Owner,
    /// The owner's directory.
    pub dir: PathBuf,
    /// Its snapshots, newest first.
    pub own: Vec<SnapshotEntry>,
    /// Snapshots from before snapshots had owners (in the root), newest first.
    pub unowned: Vec<SnapshotEntry>,
    /// Files in the owner's directory that do not belong to it (copied or
    /// moved there), newest first.
    pub misplaced: Vec<SnapshotEntry>,
}

/// What `prune` removed and kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
    /// Leftovers of interrupted snapshots (`.dump.partial`) past retention.
    pub partial_removed: Vec<String>,
    /// Snapshots without an owner in the root, which no owner prunes.
    pub unowned_left: usize,
}

/// Creates (or tightens) the root, the app's and the owner's directories,
/// mode 700, and returns the owner's directory and what was tightened.
pub fn prepare(root: &Path, owner: &Owner) -> Result<(PathBuf, Vec<Tightened>), SnapshotError> {
    let dir = owner.dir(root);
    let mut tightened = Vec::new();
    for d in [root.to_path_buf(), root.join(&owner.app), dir.clone()] {
        tightened.extend(private_dir::ensure(&d)?);
    }
    Ok((dir, tightened))
}

/// `owner`'s view of the snapshot directory `root`. A missing directory
/// has no snapshots.
pub fn list(root: &Path, owner: &Owner) -> Result<Listing, SnapshotError> {
    let dir = owner.dir(root);
    let (own, misplaced) = scan_owned_dir(&dir)?
        .into_iter()
        .partition(|e| e.belongs_to(owner));
    Ok(Listing {
        owner: owner.clone(),
        dir,
        own,
        unowned: scan_root(root)?,
        misplaced,
    })
}

/// Every snapshot under `root`, of every owner and none, newest first.
pub fn list_all(root: &Path) -> Result<Vec<SnapshotEntry>, SnapshotError> {
    let mut all = scan_root(root)?;
    for app in subdirs(root)? {
        for env in subdirs(&app)? {
            all.extend(scan_owned_dir(&env)?);
        }
    }
    sort_newest_first(&mut all);
    Ok(all)
}

/// The newest snapshot of `owner`, if any. Never an unowned or a
/// misplaced one.
pub fn latest(root: &Path, owner: &Owner) -> Result<Option<SnapshotEntry>, SnapshotError> {
    Ok(list(root, owner)?.own.into_iter().next())
}

/// What a dump file anywhere says about itself, for restoring a file named
/// by path. Its owner comes from its sidecar, else from its name: names
/// directly in `root` are in the old unowned form; anywhere else a name in
/// the owned form is read as one (a copy keeps the owner it was made with).
pub fn identify(root: &Path, path: &Path) -> Result<SnapshotEntry, SnapshotError> {
    if !path.is_file() {
        return Err(SnapshotError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let in_root = match (path.parent(), fs_err::canonicalize(root)) {
        (Some(parent), Ok(root)) => fs_err::canonicalize(parent).is_ok_and(|p| p == root),
        _ => false,
    };
    let name = if in_root {
        SnapshotName::parse(&file_name)?
    } else {
        SnapshotName::parse_owned(&file_name).or_else(|_| SnapshotName::parse(&file_name))?
    };
    Ok(SnapshotEntry::read(name, path.to_path_buf()))
}

/// Deletes `owner`'s snapshots past `retention` at `now`, never its newest
/// of each database. Its interrupted `.dump.partial` files past retention
/// go too. Nothing outside the owner's directory is touched.
pub fn prune(
    root: &Path,
    owner: &Owner,
    now: OffsetDateTime,
    retention: Duration,
) -> Result<PruneReport, SnapshotError> {
    let listing = list(root, owner)?;
    let names: Vec<SnapshotName> = listing.own.iter().map(|e| e.name.clone()).collect();
    let expired = retention::expired(&names, now, retention);
    let mut report = PruneReport {
        unowned_left: listing.unowned.len(),
        ..PruneReport::default()
    };
    for entry in &listing.own {
        if !expired.contains(&&entry.name) {
            report.kept.push(entry.file.clone());
            continue;
        }
        remove(&entry.path)?;
        let sidecar = listing.dir.join(entry.name.sidecar_name());
        if sidecar.exists() {
            remove(&sidecar)?;
        }
        tracing::info!(file = %entry.file, "pruned snapshot past retention");
        report.deleted.push(entry.file.clone());
    }
    let partial = format!("{DUMP_EXTENSION}{PARTIAL_SUFFIX}");
    for (name, path) in scan(&listing.dir, &partial, true)? {
        // A partial younger than retention may belong to a dump in progress.
        if name.owner.as_ref() == Some(owner)
            && retention::expires_at(name.taken_at, retention) < now
        {
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

/// Dumps in an owner's directory: owned names, and unowned ones moved there.
fn scan_owned_dir(dir: &Path) -> Result<Vec<SnapshotEntry>, SnapshotError> {
    let mut out: Vec<SnapshotEntry> = scan(dir, DUMP_EXTENSION, true)?
        .into_iter()
        .map(|(name, path)| SnapshotEntry::read(name, path))
        .collect();
    sort_newest_first(&mut out);
    Ok(out)
}

/// Dumps directly in the root: from before snapshots had owners.
fn scan_root(root: &Path) -> Result<Vec<SnapshotEntry>, SnapshotError> {
    let mut out: Vec<SnapshotEntry> = scan(root, DUMP_EXTENSION, false)?
        .into_iter()
        .map(|(name, path)| SnapshotEntry::read(name, path))
        .collect();
    sort_newest_first(&mut out);
    Ok(out)
}

fn sort_newest_first(entries: &mut [SnapshotEntry]) {
    entries.sort_by(|a, b| {
        b.name
            .taken_at
            .cmp(&a.name.taken_at)
            .then_with(|| b.file.cmp(&a.file))
    });
}

/// (name, path) of files in `dir` ending in `suffix` whose names parse: in
/// the owned form first when `owned`, else (or failing that) the old form.
fn scan(
    dir: &Path,
    suffix: &str,
    owned: bool,
) -> Result<Vec<(SnapshotName, PathBuf)>, SnapshotError> {
    let mut out = Vec::new();
    for entry in read_dir(dir)? {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file_name.strip_suffix(suffix) else {
            continue;
        };
        let dump_name = format!("{stem}{DUMP_EXTENSION}");
        let parsed = match owned {
            true => {
                SnapshotName::parse_owned(&dump_name).or_else(|_| SnapshotName::parse(&dump_name))
            }
            false => SnapshotName::parse(&dump_name),
        };
        match parsed {
            Ok(name) => out.push((name, entry.path())),
            Err(e) => {
                tracing::debug!(file = %file_name, error = %e, "not a snapshot name; ignored")
            }
        }
    }
    Ok(out)
}

/// Subdirectories of `dir` (none when it is missing).
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    Ok(read_dir(dir)?
        .into_iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

fn read_dir(dir: &Path) -> Result<Vec<fs_err::DirEntry>, SnapshotError> {
    match fs_err::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(SnapshotError::Io {
            doing: "listing the snapshot directory".into(),
            source,
        }),
    }
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
        fs_err::create_dir_all(dir).expect("mkdir");
        fs_err::write(dir.join(name), b"x").expect("write");
    }

    fn owner(app: &str, env: &str) -> Owner {
        Owner::new(app, env).expect("valid owner")
    }

    fn files(entries: &[SnapshotEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.file.as_str()).collect()
    }

    /// Two apps, two environments each sharing the database name `events`,
    /// and a snapshot from before owners, all in one root.
    fn shared_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        touch(
            &r.join("events/staging"),
            "events_staging_events_20250301T000000Z_s1.dump",
        );
        touch(
            &r.join("events/staging"),
            "events_staging_events_20250305T000000Z_s2.dump",
        );
        touch(
            &r.join("events/production"),
            "events_production_events_20250302T000000Z_p1.dump",
        );
        touch(
            &r.join("events/production"),
            "events_production_events_20250303T000000Z_p2.dump.partial",
        );
        touch(
            &r.join("other/production"),
            "other_production_events_20250306T000000Z_o1.dump",
        );
        touch(r, "events_20250307T000000Z_legacy.dump");
        touch(r, "notes.txt");
        root
    }

    #[test]
    fn each_owner_lists_only_its_own_and_sees_unowned_apart() {
        let root = shared_root();
        let staging = list(root.path(), &owner("events", "staging")).expect("list");
        assert_eq!(
            files(&staging.own),
            vec![
                "events_staging_events_20250305T000000Z_s2.dump",
                "events_staging_events_20250301T000000Z_s1.dump"
            ]
        );
        assert_eq!(
            files(&staging.unowned),
            vec!["events_20250307T000000Z_legacy.dump"]
        );
        assert!(staging.misplaced.is_empty());
        let production = list(root.path(), &owner("events", "production")).expect("list");
        assert_eq!(
            files(&production.own),
            vec!["events_production_events_20250302T000000Z_p1.dump"]
        );
        let newest = latest(root.path(), &owner("events", "production"))
            .expect("list")
            .expect("one");
        assert_eq!(
            newest.file,
            "events_production_events_20250302T000000Z_p1.dump"
        );
        // The newest file on disk is the unowned one, and another app's is
        // newer than production's: neither is production's latest.
        assert!(
            latest(root.path(), &owner("events", "development"))
                .expect("list")
                .is_none()
        );
        assert_eq!(list_all(root.path()).expect("all").len(), 5);
        assert!(
            list(&root.path().join("missing"), &owner("events", "staging"))
                .expect("missing dir")
                .own
                .is_empty()
        );
    }

    #[test]
    fn a_copy_into_another_owners_directory_stays_the_original_owners() {
        let root = shared_root();
        let prod_dir = root.path().join("events/production");
        // staging's dump copied by hand into production's directory.
        touch(&prod_dir, "events_staging_events_20250310T000000Z_s3.dump");
        // a dump whose sidecar names another owner than its name.
        touch(
            &prod_dir,
            "events_production_events_20250311T000000Z_p9.dump",
        );
        fs_err::write(
            prod_dir.join("events_production_events_20250311T000000Z_p9.json"),
            r#"{"format":2,"file":"x","app":"events","environment":"staging","database":"events","reason":"r","release":null,"commit":"p9","schema_version":null,"size_bytes":1,"sha256":"00","created_at":"2025-03-11T00:00:00Z","expires_at":"2025-03-18T00:00:00Z"}"#,
        )
        .expect("sidecar");
        let production = list(root.path(), &owner("events", "production")).expect("list");
        assert_eq!(
            files(&production.own),
            vec!["events_production_events_20250302T000000Z_p1.dump"]
        );
        assert_eq!(production.misplaced.len(), 2);
        let conflicted = &production.misplaced[0];
        assert!(
            conflicted
                .owner_conflict
                .as_deref()
                .is_some_and(|c| c.contains("events/production") && c.contains("events/staging")),
            "{conflicted:?}"
        );
        let copied = identify(
            root.path(),
            &prod_dir.join("events_staging_events_20250310T000000Z_s3.dump"),
        )
        .expect("identify");
        assert_eq!(copied.owner, Some(owner("events", "staging")));
        let legacy = identify(
            root.path(),
            &root.path().join("events_20250307T000000Z_legacy.dump"),
        )
        .expect("identify");
        assert_eq!(legacy.owner, None);
        assert_eq!(legacy.name.database, "events");
    }

    #[test]
    fn prune_counts_and_deletes_only_the_owners_snapshots() {
        let root = shared_root();
        let r = root.path();
        touch(
            &r.join("events/staging"),
            "events_staging_events_20250301T000000Z_s1.json",
        );
        let now = datetime!(2025-06-01 00:00:00 UTC);
        let report = prune(
            r,
            &owner("events", "staging"),
            now,
            retention::DEFAULT_RETENTION,
        )
        .expect("prune");
        assert_eq!(
            report.deleted,
            vec!["events_staging_events_20250301T000000Z_s1.dump"]
        );
        assert_eq!(
            report.kept,
            vec!["events_staging_events_20250305T000000Z_s2.dump"]
        );
        assert_eq!(report.unowned_left, 1);
        assert!(
            !r.join("events/staging/events_staging_events_20250301T000000Z_s1.json")
                .exists()
        );
        // Everyone else's files, all past retention, are untouched.
        for f in [
            "events/production/events_production_events_20250302T000000Z_p1.dump",
            "events/production/events_production_events_20250303T000000Z_p2.dump.partial",
            "other/production/other_production_events_20250306T000000Z_o1.dump",
            "events_20250307T000000Z_legacy.dump",
            "notes.txt",
        ] {
            assert!(r.join(f).exists(), "{f} must survive staging's prune");
        }
        let report = prune(
            r,
            &owner("events", "production"),
            now,
            retention::DEFAULT_RETENTION,
        )
        .expect("prune");
        assert!(report.deleted.is_empty(), "the newest is never pruned");
        assert_eq!(
            report.partial_removed,
            vec!["events_production_events_20250303T000000Z_p2.dump.partial"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn prepare_makes_and_tightens_every_level() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path().join("snapshots");
        fs_err::create_dir(&r).expect("mkdir");
        fs_err::set_permissions(&r, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let (dir, tightened) = prepare(&r, &owner("events", "staging")).expect("prepare");
        assert_eq!(dir, r.join("events/staging"));
        assert_eq!(tightened.len(), 1);
        assert_eq!(tightened[0].path, r);
        for d in [&r, &r.join("events"), &dir] {
            let mode = fs_err::metadata(d).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
    }
}
