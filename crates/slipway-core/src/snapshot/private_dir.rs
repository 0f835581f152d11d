//! Snapshot files hold the whole database (password hashes, personal data),
//! so they get what `.env` files get: only their owner may read them. Dumps
//! and sidecars are created with mode 600, their directories with 700, and a
//! directory that other users can read, enter or write is tightened to 700
//! when it is ours to change, or refused when it is not.

use std::path::{Path, PathBuf};

use super::error::SnapshotError;

/// Mode of snapshot files.
pub const FILE_MODE: u32 = 0o600;
/// Mode of snapshot directories.
pub const DIR_MODE: u32 = 0o700;

/// A directory whose permissions were tightened, and what they were.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tightened {
    pub path: PathBuf,
    /// The mode before, e.g. `0755`.
    pub was: String,
}

/// Creates `dir` (and missing parents) with mode 700, or checks an existing
/// one: group or other permission bits are removed when this user may
/// change them, otherwise the directory is refused. Returns what was
/// tightened.
pub fn ensure(dir: &Path) -> Result<Option<Tightened>, SnapshotError> {
    create(dir)?;
    tighten(dir)
}

#[cfg(unix)]
fn create(dir: &Path) -> Result<(), SnapshotError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| SnapshotError::Io {
            doing: format!("creating the snapshot directory {}", dir.display()),
            source,
        })
}

#[cfg(not(unix))]
fn create(dir: &Path) -> Result<(), SnapshotError> {
    fs_err::create_dir_all(dir).map_err(|source| SnapshotError::Io {
        doing: "creating the snapshot directory".into(),
        source,
    })
}

#[cfg(unix)]
fn tighten(dir: &Path) -> Result<Option<Tightened>, SnapshotError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs_err::metadata(dir).map_err(|source| SnapshotError::Io {
        doing: "reading the snapshot directory's permissions".into(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    let was = format!("{mode:04o}");
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700)) {
        Ok(()) => {
            tracing::warn!(
                dir = %dir.display(),
                "the snapshot directory was readable by other users (mode {was}); tightened to {:04o}",
                mode & 0o700
            );
            Ok(Some(Tightened {
                path: dir.to_path_buf(),
                was,
            }))
        }
        Err(_) => Err(SnapshotError::UnsafeDirectory {
            path: dir.to_path_buf(),
            mode: was,
        }),
    }
}

#[cfg(not(unix))]
fn tighten(_: &Path) -> Result<Option<Tightened>, SnapshotError> {
    Ok(None)
}

/// Options that create a new file with [`FILE_MODE`], failing if it exists.
pub fn new_file_options() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    opts
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs_err::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn new_directories_are_private_and_open_ones_are_tightened() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let nested = tmp.path().join("snapshots/events/staging");
        assert_eq!(ensure(&nested).expect("create"), None);
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&tmp.path().join("snapshots")), 0o700);

        let open = tmp.path().join("open");
        fs_err::create_dir(&open).expect("mkdir");
        fs_err::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let t = ensure(&open).expect("tighten").expect("was open");
        assert_eq!(t.was, "0755");
        assert_eq!(mode(&open), 0o700);
        assert_eq!(
            ensure(&open).expect("again"),
            None,
            "a second run changes nothing"
        );
    }

    #[test]
    fn files_are_created_owner_only_whatever_the_umask() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("x.dump");
        new_file_options().open(&path).expect("create");
        assert_eq!(mode(&path), 0o600);
        assert!(new_file_options().open(&path).is_err(), "never overwrites");
    }
}
