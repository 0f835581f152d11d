//! Snapshot file names: `{db}_{YYYYMMDDTHHMMSSZ}_{commit}.dump`, and back.
//!
//! The name alone carries what listing and retention need (database, UTC
//! time, commit), so a snapshot whose sidecar was lost is still usable.
//! Database names may contain `_`, so parsing works from the right: the
//! commit label is restricted to characters without `_`.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::error::SnapshotError;

/// Extension of a finished dump.
pub const DUMP_EXTENSION: &str = ".dump";
/// Extension of a dump still being written (never listed or restored).
pub const PARTIAL_SUFFIX: &str = ".partial";
/// Extension of the JSON sidecar (`{name}.json`).
pub const SIDECAR_EXTENSION: &str = ".json";

const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// A snapshot's identity, as encoded in its file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct SnapshotName {
    pub database: String,
    /// UTC, whole seconds.
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    pub commit: String,
}

impl SnapshotName {
    /// Validates the parts; `taken_at` is converted to UTC and truncated to
    /// the second, as the name cannot hold more.
    pub fn new(
        database: &str,
        taken_at: OffsetDateTime,
        commit: &str,
    ) -> Result<Self, SnapshotError> {
        check_database(database)?;
        check_commit(commit)?;
        let utc = taken_at.to_offset(UtcOffset::UTC);
        let taken_at = utc.replace_nanosecond(0).unwrap_or(utc);
        Ok(Self {
            database: database.to_string(),
            taken_at,
            commit: commit.to_string(),
        })
    }

    /// `{db}_{timestamp}_{commit}` without extension.
    pub fn stem(&self) -> String {
        format!(
            "{}_{}_{}",
            self.database,
            format_timestamp(self.taken_at),
            self.commit
        )
    }

    /// `{db}_{timestamp}_{commit}.dump`.
    pub fn file_name(&self) -> String {
        format!("{}{DUMP_EXTENSION}", self.stem())
    }

    /// `{db}_{timestamp}_{commit}.json`.
    pub fn sidecar_name(&self) -> String {
        format!("{}{SIDECAR_EXTENSION}", self.stem())
    }

    /// Parses a `.dump` file name back.
    pub fn parse(file_name: &str) -> Result<Self, SnapshotError> {
        let invalid = |reason: &str| SnapshotError::InvalidName {
            name: file_name.to_string(),
            reason: reason.to_string(),
        };
        let stem = file_name
            .strip_suffix(DUMP_EXTENSION)
            .ok_or_else(|| invalid("it does not end in `.dump`"))?;
        let (rest, commit) = stem
            .rsplit_once('_')
            .ok_or_else(|| invalid("expected `{db}_{YYYYMMDDTHHMMSSZ}_{commit}.dump`"))?;
        let (database, timestamp) = rest
            .rsplit_once('_')
            .ok_or_else(|| invalid("expected `{db}_{YYYYMMDDTHHMMSSZ}_{commit}.dump`"))?;
        let taken_at = parse_timestamp(timestamp).ok_or_else(|| {
            invalid(&format!(
                "`{timestamp}` is not a UTC timestamp like 20250131T235959Z"
            ))
        })?;
        Self::new(database, taken_at, commit).map_err(|e| match e {
            SnapshotError::InvalidName { reason, .. } => invalid(&reason),
            other => other,
        })
    }
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let utc = t.to_offset(UtcOffset::UTC);
    // Formatting with a fixed numeric description cannot fail for years
    // 0..=9999; fall back to the unix time rather than panic.
    utc.format(TIMESTAMP)
        .unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

/// Parses `YYYYMMDDTHHMMSSZ` as UTC.
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(s, TIMESTAMP)
        .ok()
        .map(|p| p.assume_utc())
}

/// Makes a commit label out of anything (a git describe, a branch name):
/// characters outside `[A-Za-z0-9.-]` become `-`; empty becomes `unknown`.
pub fn commit_label(raw: &str) -> String {
    let label: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if label.is_empty() {
        "unknown".to_string()
    } else {
        label
    }
}

fn check_database(database: &str) -> Result<(), SnapshotError> {
    let reason = if database.is_empty() {
        Some("the database name is empty".to_string())
    } else if database.starts_with('.') {
        Some("the database name starts with `.`".to_string())
    } else {
        database
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .map(|c| {
                format!("the database name contains `{c}`; snapshot names allow A-Z a-z 0-9 _ - .")
            })
    };
    match reason {
        Some(reason) => Err(SnapshotError::InvalidName {
            name: database.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

fn check_commit(commit: &str) -> Result<(), SnapshotError> {
    let bad = commit.is_empty()
        || commit.starts_with('.')
        || !commit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if bad {
        return Err(SnapshotError::InvalidName {
            name: commit.to_string(),
            reason:
                "the commit label must be non-empty A-Z a-z 0-9 . - (see snapshot::commit_label)"
                    .into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn name_round_trips_with_underscores_in_the_database() {
        let n = SnapshotName::new(
            "togather_prod",
            datetime!(2025-03-09 07:05:03.75 UTC),
            "a1b2c3d",
        )
        .expect("valid");
        assert_eq!(n.file_name(), "togather_prod_20250309T070503Z_a1b2c3d.dump");
        assert_eq!(
            n.sidecar_name(),
            "togather_prod_20250309T070503Z_a1b2c3d.json"
        );
        let back = SnapshotName::parse(&n.file_name()).expect("parses back");
        assert_eq!(back, n);
        assert_eq!(back.taken_at, datetime!(2025-03-09 07:05:03 UTC));
    }

    #[test]
    fn name_is_in_utc_whatever_the_input_offset() {
        let n = SnapshotName::new("db", datetime!(2025-01-01 01:30:00 +02:00), "v1.4.0")
            .expect("valid");
        assert_eq!(n.file_name(), "db_20241231T233000Z_v1.4.0.dump");
    }

    #[test]
    fn parse_rejects_foreign_files() {
        for name in [
            "db_20250101T000000Z_abc.json",
            "db_abc.dump",
            "db_2025-01-01_abc.dump",
            "_20250101T000000Z_abc.dump",
            "db_20251301T000000Z_abc.dump",
            "db_20250101T000000Z_.dump",
        ] {
            assert!(
                SnapshotName::parse(name).is_err(),
                "{name} should not parse"
            );
        }
    }

    #[test]
    fn unsafe_parts_are_refused_and_labels_sanitised() {
        let t = datetime!(2025-01-01 00:00:00 UTC);
        assert!(SnapshotName::new("../etc", t, "abc").is_err());
        assert!(SnapshotName::new("my db", t, "abc").is_err());
        assert!(SnapshotName::new("db", t, "feature_x").is_err());
        assert_eq!(commit_label("feature/x_y"), "feature-x-y");
        assert_eq!(commit_label("  "), "unknown");
        assert!(SnapshotName::new("db", t, &commit_label("feature/x_y")).is_ok());
    }
}
