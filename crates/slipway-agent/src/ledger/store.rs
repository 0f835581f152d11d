//! The ledger file on the agent's volume: read once at start (refusing a
//! newer format), then rewritten whole after every change, atomically: a temp
//! file in the same directory, fsync, rename over the old file, fsync the
//! directory. A crash at any point leaves either the old or the new ledger,
//! never a torn one (unlike an in-place write).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use slipway_core::ledger::{self, FORMAT_VERSION, LedgerError, LedgerFile};

/// File name of the ledger inside the state dir.
pub const LEDGER_FILE: &str = "ledger.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read ledger `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ledger `{path}`: {source}")]
    Parse { path: PathBuf, source: LedgerError },
    #[error("cannot write ledger `{path}`: {source}; the previous ledger is unchanged")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    pub fn is_too_new(&self) -> bool {
        matches!(
            self,
            Self::Parse {
                source: LedgerError::TooNew { .. },
                ..
            }
        )
    }
}

pub struct Store {
    path: PathBuf,
    agent_version: String,
    file: Mutex<LedgerFile>,
}

impl Store {
    /// Open (or start) the ledger in `state_dir`.
    pub fn open(state_dir: &Path, agent_version: &str) -> Result<Self, StoreError> {
        let path = state_dir.join(LEDGER_FILE);
        fs_err::create_dir_all(state_dir).map_err(|source| StoreError::Read {
            path: path.clone(),
            source,
        })?;
        let file = match fs_err::read(&path) {
            Ok(bytes) => ledger::parse(&bytes).map_err(|source| StoreError::Parse {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LedgerFile::new(agent_version),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        Ok(Self {
            path,
            agent_version: agent_version.to_owned(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read<R>(&self, f: impl FnOnce(&LedgerFile) -> R) -> R {
        let file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f(&file)
    }

    /// Apply `f` to a copy, persist the copy, and only then make it the
    /// ledger: a failed write leaves memory and disk as they were. `f` may
    /// refuse (its error is returned, nothing is written).
    pub fn update<R, E>(&self, f: impl FnOnce(&mut LedgerFile) -> Result<R, E>) -> Result<R, E>
    where
        E: From<StoreError>,
    {
        // fsync takes milliseconds; keep the tokio worker's siblings running.
        let run = || {
            let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            let mut next = file.clone();
            let out = f(&mut next)?;
            next.format_version = FORMAT_VERSION;
            next.written_by.clone_from(&self.agent_version);
            self.write(&next)?;
            *file = next;
            Ok(out)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run)
            }
            _ => run(),
        }
    }

    fn write(&self, file: &LedgerFile) -> Result<(), StoreError> {
        let err = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec_pretty(file).map_err(|e| err(e.into()))?;
        bytes.push(b'\n');
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".{LEDGER_FILE}.{}.tmp", std::process::id()));
        let mut out = fs_err::File::create(&tmp).map_err(err)?;
        out.write_all(&bytes).map_err(err)?;
        out.sync_all().map_err(err)?;
        drop(out);
        fs_err::rename(&tmp, &self.path).map_err(err)?;
        // The rename itself is durable only once the directory is synced.
        fs_err::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_persists_and_reopen_reads_it_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), "0.1.0").expect("open");
        store
            .update(|f| {
                f.app_mut("web");
                Ok::<_, StoreError>(())
            })
            .expect("update");
        let again = Store::open(dir.path(), "0.1.0").expect("reopen");
        assert!(again.read(|f| f.apps.contains_key("web")));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn refused_update_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), "0.1.0").expect("open");
        let r: Result<(), StoreError> = store.update(|f| {
            f.app_mut("web");
            Err(StoreError::Write {
                path: "x".into(),
                source: std::io::Error::other("no"),
            })
        });
        assert!(r.is_err());
        assert!(!dir.path().join(LEDGER_FILE).exists());
        assert!(store.read(|f| f.apps.is_empty()));
    }

    #[test]
    fn newer_format_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = r#"{"format_version": 99, "written_by": "9.0.0", "apps": {}}"#;
        std::fs::write(dir.path().join(LEDGER_FILE), text).expect("write");
        let err = Store::open(dir.path(), "0.1.0").err().expect("refused");
        assert!(err.is_too_new(), "{err}");
        let after = std::fs::read_to_string(dir.path().join(LEDGER_FILE)).expect("read");
        assert_eq!(after, text);
    }
}
