//! What the runner reports back: plain serialisable values for the CLI's
//! human and `--json` output. Durations serialise as milliseconds and times
//! as RFC 3339, so the JSON reads without a Rust-specific shape.

use std::time::Duration;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

/// A migration that has not run yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingMigration {
    pub version: u64,
    pub name: String,
    pub file: String,
}

/// A migration the database has applied (its version is at or below the
/// current one), with Slipway's bookkeeping when there is some.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedMigration {
    pub version: u64,
    pub name: String,
    /// The up file's checksum as recorded; `None` for versions applied before
    /// Slipway (by golang-migrate) and not yet seen by `up`.
    pub checksum: Option<String>,
    #[serde(serialize_with = "ser_opt_rfc3339")]
    pub applied_at: Option<OffsetDateTime>,
    pub duration_ms: Option<u64>,
    pub release: Option<String>,
    /// Whether a file with this version is still in the directory.
    pub file_present: bool,
}

/// An applied migration whose file no longer matches what was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModifiedMigration {
    pub version: u64,
    pub file: String,
    pub recorded_checksum: String,
    pub file_checksum: String,
}

/// `migrate status`: where the database is relative to the files.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// golang-migrate's version; `None` before the first migration.
    pub current: Option<u64>,
    pub dirty: bool,
    pub latest: Option<u64>,
    pub pending: Vec<PendingMigration>,
    pub applied: Vec<AppliedMigration>,
    pub modified: Vec<ModifiedMigration>,
    /// The current version has no file in the directory (the database is
    /// ahead of these files, e.g. after a rollback of the application).
    pub current_file_missing: bool,
}

/// One migration run by `up` or `down`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationStep {
    pub version: u64,
    pub name: String,
    pub file: String,
    #[serde(rename = "duration_ms", serialize_with = "ser_ms")]
    pub duration: Duration,
}

/// `migrate up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpReport {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub applied: Vec<MigrationStep>,
    /// Versions applied before Slipway whose checksums were recorded now.
    pub adopted: Vec<u64>,
    /// How long this runner waited for another to release the lock.
    #[serde(rename = "lock_waited_ms", serialize_with = "ser_ms")]
    pub lock_waited: Duration,
}

/// `migrate down`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownReport {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub reverted: Vec<MigrationStep>,
    #[serde(rename = "lock_waited_ms", serialize_with = "ser_ms")]
    pub lock_waited: Duration,
}

/// `migrate force`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForceReport {
    pub from: Option<u64>,
    pub was_dirty: bool,
    pub to: Option<u64>,
}

fn ser_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ser_opt_rfc3339<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => time::serde::rfc3339::serialize(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_report_serialises_durations_as_milliseconds() {
        let report = UpReport {
            from: None,
            to: Some(2),
            applied: vec![MigrationStep {
                version: 2,
                name: "b".into(),
                file: "0002_b.up.sql".into(),
                duration: Duration::from_millis(1500),
            }],
            adopted: vec![],
            lock_waited: Duration::from_millis(20),
        };
        let json = serde_json::to_value(&report).expect("serialise");
        assert_eq!(json["applied"][0]["duration_ms"], 1500);
        assert_eq!(json["lock_waited_ms"], 20);
        assert_eq!(json["from"], serde_json::Value::Null);
    }
}
