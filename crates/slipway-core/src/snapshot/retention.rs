//! Which snapshots retention removes: those older than the retention period,
//! except the newest snapshot of each database, which is never removed (an
//! old snapshot beats none when deploys have paused for a while).
//!
//! Pure: the caller passes `now`, so tests inject the clock.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use super::naming::SnapshotName;

/// Default retention: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The snapshots to delete, in the order given. A snapshot exactly
/// `retention` old is kept; snapshots dated in the future (clock skew) are
/// kept.
pub fn expired(
    snapshots: &[SnapshotName],
    now: OffsetDateTime,
    retention: Duration,
) -> Vec<&SnapshotName> {
    let mut newest: BTreeMap<&str, OffsetDateTime> = BTreeMap::new();
    for s in snapshots {
        let entry = newest.entry(s.database.as_str()).or_insert(s.taken_at);
        if s.taken_at > *entry {
            *entry = s.taken_at;
        }
    }
    snapshots
        .iter()
        .filter(|s| newest.get(s.database.as_str()) != Some(&s.taken_at))
        .filter(|s| is_older_than(s.taken_at, now, retention))
        .collect()
}

/// When a snapshot taken at `taken_at` expires under `retention`.
pub fn expires_at(taken_at: OffsetDateTime, retention: Duration) -> OffsetDateTime {
    taken_at.saturating_add(time::Duration::try_from(retention).unwrap_or(time::Duration::MAX))
}

fn is_older_than(taken_at: OffsetDateTime, now: OffsetDateTime, retention: Duration) -> bool {
    expires_at(taken_at, retention) < now
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn snap(db: &str, t: OffsetDateTime) -> SnapshotName {
        SnapshotName::new(db, t, "abc").expect("valid name")
    }

    #[test]
    fn prunes_only_snapshots_past_retention() {
        let now = datetime!(2025-06-10 12:00:00 UTC);
        let snaps = vec![
            snap("app", datetime!(2025-06-10 11:00:00 UTC)),
            snap("app", datetime!(2025-06-03 12:00:00 UTC)), // exactly 7 days: kept
            snap("app", datetime!(2025-06-03 11:59:59 UTC)), // 7 days + 1 s: pruned
            snap("app", datetime!(2025-05-01 00:00:00 UTC)),
        ];
        let gone: Vec<_> = expired(&snaps, now, DEFAULT_RETENTION)
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(gone, vec![snaps[2].clone(), snaps[3].clone()]);
    }

    #[test]
    fn never_prunes_the_newest_snapshot_of_each_database() {
        let now = datetime!(2026-01-01 00:00:00 UTC);
        let snaps = vec![
            snap("app", datetime!(2025-01-01 00:00:00 UTC)),
            snap("app", datetime!(2025-02-01 00:00:00 UTC)),
            snap("other", datetime!(2025-01-15 00:00:00 UTC)),
        ];
        let gone: Vec<_> = expired(&snaps, now, DEFAULT_RETENTION)
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(gone, vec![snaps[0].clone()]);
    }

    #[test]
    fn injected_clock_moves_snapshots_into_expiry() {
        let snaps = vec![
            snap("app", datetime!(2025-06-01 00:00:00 UTC)),
            snap("app", datetime!(2025-06-02 00:00:00 UTC)),
        ];
        let retention = Duration::from_secs(24 * 3600);
        assert!(expired(&snaps, datetime!(2025-06-01 23:00:00 UTC), retention).is_empty());
        assert!(expired(&snaps, datetime!(2025-06-02 00:00:00 UTC), retention).is_empty());
        assert_eq!(
            expired(&snaps, datetime!(2025-06-02 00:00:01 UTC), retention).len(),
            1
        );
        // However far the clock moves, the newest survives.
        assert_eq!(
            expired(&snaps, datetime!(2030-01-01 00:00:00 UTC), retention).len(),
            1
        );
    }

    #[test]
    fn future_dated_snapshots_are_kept_and_expiry_saturates() {
        let now = datetime!(2025-06-01 00:00:00 UTC);
        let snaps = vec![
            snap("app", datetime!(2025-07-01 00:00:00 UTC)),
            snap("app", datetime!(2025-08-01 00:00:00 UTC)),
        ];
        assert!(expired(&snaps, now, DEFAULT_RETENTION).is_empty());
        let t = datetime!(2025-06-01 00:00:00 UTC);
        assert_eq!(
            expires_at(t, DEFAULT_RETENTION),
            datetime!(2025-06-08 00:00:00 UTC)
        );
        assert!(expires_at(t, Duration::MAX) > t);
    }
}
