//! The notifier's files on the state volume:
//!
//! ```text
//! <state-dir>/notify/            0700 (channel configs hold credentials)
//!   deliver.lock                 flock: held by the one agent that delivers
//!   channels/<app>.json          0600: the app's channels, and which are disabled (410)
//!   outbox/<entry>.json          0600: one pending delivery (event × channel)
//!   results/<app>.json           0600: the app's last 50 outcomes, newest first
//! ```
//!
//! Every file is written whole (temp file, fsync, rename, fsync directory),
//! so a crash leaves an entry queued or delivered, never half-written. An
//! entry is removed only once its delivery has ended (delivered, given up,
//! refused): delivery is at-least-once across crashes and restarts.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use slipway_core::notify::{Channels, DeliveryResult, Event};

use crate::tls::store::write_atomic;

/// How many outcomes `results/<app>.json` keeps.
pub const RECENT_RESULTS: usize = 50;

/// `channels/<app>.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppChannels {
    pub channels: Channels,
    /// Channel name → why it is disabled (a 410 Gone), until configured again.
    #[serde(default)]
    pub disabled: BTreeMap<String, String>,
}

/// One event to deliver to one channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// `<ulid>`: the file name; sorts by queue time.
    pub id: String,
    pub app: String,
    /// `webhook` or `ntfy`.
    pub channel: String,
    pub event: Event,
    pub queued_unix_ms: u64,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    pub next_attempt_unix_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

pub struct Store {
    root: PathBuf,
    /// Serialises read-modify-writes of channel files (a 410 disabling a
    /// channel while `notify_configure` replaces it) and of results files.
    channels_lock: Mutex<()>,
    results_lock: Mutex<()>,
}

/// An app name as a file name: route names are `<app>-<env>`, so this only
/// refuses what could escape the directory or hide the file.
pub fn app_file_name(app: &str) -> Result<String, String> {
    let ok = !app.is_empty()
        && app.len() <= 200
        && !app.starts_with('.')
        && app
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(format!("{app}.json"))
    } else {
        Err(format!(
            "`{app}` is not a valid app name for notifications: use letters, digits, `-`, `_` and \
             `.` (not first), at most 200 characters"
        ))
    }
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs_err::create_dir_all(dir)?;
    fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn invalid(path: &Path, e: serde_json::Error) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{} is not valid: {e}", path.display()),
    )
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match fs_err::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| invalid(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

impl Store {
    /// `<state-dir>/notify` and its directories, created 0700 (tightened if
    /// they exist).
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        let root = state_dir.join("notify");
        private_dir(&root)?;
        for sub in ["channels", "outbox", "results"] {
            private_dir(&root.join(sub))?;
        }
        Ok(Self {
            root,
            channels_lock: Mutex::new(()),
            results_lock: Mutex::new(()),
        })
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join("deliver.lock")
    }

    fn channels_path(&self, app: &str) -> Result<PathBuf, String> {
        Ok(self.root.join("channels").join(app_file_name(app)?))
    }

    /// The app's channels; `None` when never configured.
    pub fn channels(&self, app: &str) -> std::io::Result<Option<AppChannels>> {
        let path = self
            .channels_path(app)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        read_json(&path)
    }

    /// Replace the app's channels (clearing every disable); no channel at
    /// all removes the file.
    pub fn save_channels(&self, app: &str, channels: &Channels) -> std::io::Result<()> {
        let path = self
            .channels_path(app)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let _guard = self.channels_lock.lock().unwrap_or_else(|p| p.into_inner());
        if channels.webhook.is_none() && channels.ntfy.is_none() {
            return match fs_err::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        write_json(
            &path,
            &AppChannels {
                channels: channels.clone(),
                disabled: BTreeMap::new(),
            },
        )
    }

    /// Mark one channel of the app disabled (it answered 410 Gone).
    pub fn disable(&self, app: &str, channel: &str, reason: String) -> std::io::Result<()> {
        let path = self
            .channels_path(app)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let _guard = self.channels_lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut current) = read_json::<AppChannels>(&path)? else {
            return Ok(());
        };
        current.disabled.insert(channel.to_owned(), reason);
        write_json(&path, &current)
    }

    fn entry_path(&self, id: &str) -> PathBuf {
        self.root.join("outbox").join(format!("{id}.json"))
    }

    /// Write (or rewrite, after an attempt) one outbox entry.
    pub fn save_entry(&self, entry: &OutboxEntry) -> std::io::Result<()> {
        write_json(&self.entry_path(&entry.id), entry)
    }

    pub fn remove_entry(&self, id: &str) -> std::io::Result<()> {
        match fs_err::remove_file(self.entry_path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every queued entry, oldest first. An unreadable file is logged and
    /// skipped (kept for a person to look at), not fatal to the others.
    pub fn entries(&self) -> Vec<OutboxEntry> {
        let dir = self.root.join("outbox");
        let listing = match fs_err::read_dir(&dir) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the notification outbox");
                return Vec::new();
            }
        };
        let mut entries = Vec::new();
        for item in listing.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            // Temp files of a write in progress (or of a crash) start with a dot.
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            match read_json::<OutboxEntry>(&item.path()) {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable outbox entry"),
            }
        }
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        entries
    }

    fn results_path(&self, app: &str) -> Result<PathBuf, String> {
        Ok(self.root.join("results").join(app_file_name(app)?))
    }

    /// The app's last outcomes, newest first.
    pub fn results(&self, app: &str) -> std::io::Result<Vec<DeliveryResult>> {
        let path = self
            .results_path(app)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        Ok(read_json(&path)?.unwrap_or_default())
    }

    /// Record one outcome, keeping the last [`RECENT_RESULTS`].
    pub fn push_result(&self, app: &str, result: DeliveryResult) -> std::io::Result<()> {
        let path = self
            .results_path(app)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let _guard = self.results_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut results: Vec<DeliveryResult> = read_json(&path)?.unwrap_or_default();
        results.insert(0, result);
        results.truncate(RECENT_RESULTS);
        write_json(&path, &results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_cannot_escape_the_directory() {
        assert_eq!(
            app_file_name("events-production").unwrap(),
            "events-production.json"
        );
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(app_file_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_are_private_and_results_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mode = |p: &Path| fs_err::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("notify")), 0o700);
        for i in 0..(RECENT_RESULTS + 5) {
            store
                .push_result(
                    "app",
                    DeliveryResult {
                        channel: "webhook".into(),
                        event_id: format!("evt_{i}"),
                        event: "notify.test".into(),
                        outcome: "delivered".into(),
                        attempts: 1,
                        status: Some(200),
                        error: None,
                        next_attempt_unix_ms: None,
                    },
                )
                .unwrap();
        }
        let results = store.results("app").unwrap();
        assert_eq!(results.len(), RECENT_RESULTS);
        assert_eq!(results[0].event_id, format!("evt_{}", RECENT_RESULTS + 4));
        assert_eq!(mode(&dir.path().join("notify/results/app.json")), 0o600);
    }
}
