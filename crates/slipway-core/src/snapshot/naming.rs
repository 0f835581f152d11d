//! Snapshot file names, and back:
//! `{app}_{env}_{db}_{YYYYMMDDTHHMMSSZ}_{commit}.dump` for a snapshot with an
//! owner (see [`super::owner`]), `{db}_{YYYYMMDDTHHMMSSZ}_{commit}.dump` for
//! those taken before snapshots had owners.
//!
//! The name alone carries what listing and retention need (owner, database,
//! UTC time, commit), so a snapshot whose sidecar was lost is still usable.
//! Database names may contain `_`, so the database is what remains after the
//! owner is split off the left and the time and commit off the right (owner
//! parts and the commit label never contain `_`). Which of the two forms a
//! name is in is the caller's knowledge (where the file lies), not guessed:
//! `a_b_c_{time}_{commit}` is a valid name in both.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::error::SnapshotError;
use super::owner::Owner;

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
    /// `None` for snapshots taken before snapshots had owners.
    pub owner: Option<Owner>,
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
            owner: None,
            database: database.to_string(),
            taken_at,
            commit: commit.to_string(),
        })
    }

    /// The same name, owned by `owner`.
    pub fn owned_by(mut self, owner: Owner) -> Self {
        self.owner = Some(owner);
        self
    }

    /// `[{app}_{env}_]{db}_{timestamp}_{commit}` without extension.
    pub fn stem(&self) -> String {
        format!(
            "{}{}_{}_{}",
            self.owner
                .as_ref()
                .map(Owner::name_prefix)
                .unwrap_or_default(),
            self.database,
            format_timestamp(self.taken_at),
            self.commit
        )
    }

    /// The stem with `.dump`.
    pub fn file_name(&self) -> String {
        format!("{}{DUMP_EXTENSION}", self.stem())
    }

    /// The stem with `.json`.
    pub fn sidecar_name(&self) -> String {
        format!("{}{SIDECAR_EXTENSION}", self.stem())
    }

    /// Parses an owned `{app}_{env}_{db}_{timestamp}_{commit}.dump` name.
    pub fn parse_owned(file_name: &str) -> Result<Self, SnapshotError> {
        let (owner, rest) =
            Owner::split_prefix(file_name).ok_or_else(|| SnapshotError::InvalidName {
                name: file_name.to_string(),
                reason: "expected `{app}_{environment}_{db}_{YYYYMMDDTHHMMSSZ}_{commit}.dump`"
                    .into(),
            })?;
        let name = Self::parse(rest).map_err(|e| match e {
            SnapshotError::InvalidName { reason, .. } => SnapshotError::InvalidName {
                name: file_name.to_string(),
                reason,
            },
            other => other,
        })?;
        Ok(name.owned_by(owner))
    }

    /// Parses a `{db}_{timestamp}_{commit}.dump` name (no owner) back.
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
    fn owned_name_round_trips_and_carries_the_owner_first() {
        let owner = Owner::new("events", "staging").expect("valid");
        let n = SnapshotName::new("togather_db", datetime!(2025-03-09 07:05:03 UTC), "a1b2")
            .expect("valid")
            .owned_by(owner.clone());
        assert_eq!(
            n.file_name(),
            "events_staging_togather_db_20250309T070503Z_a1b2.dump"
        );
        assert_eq!(
            n.sidecar_name(),
            "events_staging_togather_db_20250309T070503Z_a1b2.json"
        );
        let back = SnapshotName::parse_owned(&n.file_name()).expect("parses back");
        assert_eq!(back, n);
        assert_eq!(back.owner, Some(owner));
        // The same text read as an unowned name is a different database.
        let legacy = SnapshotName::parse(&n.file_name()).expect("valid legacy form too");
        assert_eq!(legacy.owner, None);
        assert_eq!(legacy.database, "events_staging_togather_db");
        // An unowned name has no owner to split off.
        assert!(SnapshotName::parse_owned("events_20250309T070503Z_a1b2.dump").is_err());
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
