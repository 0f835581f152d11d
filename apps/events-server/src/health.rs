//! The `/health` report: what is checked, how check results add up to one
//! status, and which HTTP code that status gets.
//!
//! Checks: `database` (a round trip through the pool) and `migrations` (the
//! database's schema version against the newest migration built into this
//! binary). A schema *behind* the binary fails: the code needs tables that are
//! not there. A schema *ahead* only warns: during blue/green the old release
//! keeps serving against the new, backward-compatible schema until the switch.
//!
//! Status: any `fail` → `unhealthy` (503), else any `warn` → `degraded` (200),
//! else `healthy` (200). After SIGTERM the status is `shutting_down` (503) so
//! a proxy stops routing here while in-flight requests finish.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::db::{self, SchemaVersion};
use crate::state::AppState;
use crate::version;

/// The bound on each check, so `/health` answers within a few seconds even
/// when the database host is gone (a stopped host drops packets, no RST).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub status: CheckStatus,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

impl Check {
    fn new(status: CheckStatus, message: impl Into<String>, latency: Option<Duration>) -> Self {
        Check {
            status,
            message: message.into(),
            latency_ms: latency.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
    ShuttingDown,
}

impl Status {
    /// 503 for anything a router must not send traffic to.
    pub fn http_status(self) -> StatusCode {
        match self {
            Status::Healthy | Status::Degraded => StatusCode::OK,
            Status::Unhealthy | Status::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The `/health` body.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub status: Status,
    pub version: &'static str,
    pub git_commit: &'static str,
    pub slot: Option<&'static str>,
    pub checks: BTreeMap<&'static str, Check>,
    pub timestamp: String,
}

/// Adds check results up to one status (see the module docs).
pub fn aggregate<'a>(checks: impl IntoIterator<Item = &'a Check>, shutting_down: bool) -> Status {
    if shutting_down {
        return Status::ShuttingDown;
    }
    let worst = checks
        .into_iter()
        .map(|c| c.status)
        .max_by_key(|s| match s {
            CheckStatus::Pass => 0,
            CheckStatus::Warn => 1,
            CheckStatus::Fail => 2,
        });
    match worst {
        Some(CheckStatus::Fail) => Status::Unhealthy,
        Some(CheckStatus::Warn) => Status::Degraded,
        Some(CheckStatus::Pass) | None => Status::Healthy,
    }
}

/// Judges the database's schema version against the one this binary expects.
pub fn migrations_check(found: Option<SchemaVersion>, expected: u64) -> Check {
    let Some(found) = found else {
        return if expected == 0 {
            Check::new(CheckStatus::Pass, "no migrations expected", None)
        } else {
            Check::new(
                CheckStatus::Fail,
                format!("no migrations applied; this release needs schema version {expected}"),
                None,
            )
        };
    };
    if found.dirty {
        return Check::new(
            CheckStatus::Fail,
            format!(
                "schema version {} is dirty (a migration failed part-way); repair it before serving",
                found.version
            ),
            None,
        );
    }
    // A negative version (golang-migrate's "nil" is -1) sorts below any real one.
    match i128::from(found.version).cmp(&i128::from(expected)) {
        std::cmp::Ordering::Equal => Check::new(
            CheckStatus::Pass,
            format!("schema version {expected}"),
            None,
        ),
        std::cmp::Ordering::Less => Check::new(
            CheckStatus::Fail,
            format!(
                "schema version {} is behind this release's {expected}; run the migrations",
                found.version
            ),
            None,
        ),
        std::cmp::Ordering::Greater => Check::new(
            CheckStatus::Warn,
            format!(
                "schema version {} is ahead of this release's {expected} (normal while a newer release rolls out)",
                found.version
            ),
            None,
        ),
    }
}

/// Runs every check and builds the report.
pub async fn report(state: &AppState) -> HealthReport {
    let mut checks = BTreeMap::new();

    let started = Instant::now();
    let probe = tokio::time::timeout(CHECK_TIMEOUT, db::probe(&state.pool)).await;
    let latency = started.elapsed();
    match probe {
        Ok(Ok(schema)) => {
            checks.insert(
                "database",
                Check::new(CheckStatus::Pass, "connected", Some(latency)),
            );
            checks.insert(
                "migrations",
                migrations_check(schema, version::latest_migration()),
            );
        }
        Ok(Err(err)) => {
            checks.insert(
                "database",
                Check::new(CheckStatus::Fail, err.describe(), Some(latency)),
            );
            checks.insert("migrations", unknown_schema());
        }
        Err(_) => {
            checks.insert(
                "database",
                Check::new(
                    CheckStatus::Fail,
                    format!("no answer within {} ms", CHECK_TIMEOUT.as_millis()),
                    Some(latency),
                ),
            );
            checks.insert("migrations", unknown_schema());
        }
    }

    if let Some(after) = state.fail_health_after
        && state.started_at.elapsed() >= after
    {
        checks.insert(
            "fault_injection",
            Check::new(
                CheckStatus::Fail,
                format!(
                    "EVENTS_SERVER_FAIL_HEALTH_AFTER={}s has elapsed (simulated broken release)",
                    after.as_secs()
                ),
                None,
            ),
        );
    }

    HealthReport {
        status: aggregate(checks.values(), state.is_shutting_down()),
        version: version::VERSION,
        git_commit: version::GIT_COMMIT,
        slot: state.slot.map(|s| s.as_str()),
        checks,
        timestamp: now_rfc3339(),
    }
}

fn unknown_schema() -> Check {
    Check::new(
        CheckStatus::Fail,
        "not checked: the database is unavailable",
        None,
    )
}

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: CheckStatus) -> Check {
        Check::new(status, "", None)
    }

    fn schema(version: i64, dirty: bool) -> Option<SchemaVersion> {
        Some(SchemaVersion { version, dirty })
    }

    #[test]
    fn worst_check_decides_the_status() {
        use CheckStatus::*;
        assert_eq!(aggregate(&[], false), Status::Healthy);
        assert_eq!(
            aggregate(&[check(Pass), check(Pass)], false),
            Status::Healthy
        );
        assert_eq!(
            aggregate(&[check(Pass), check(Warn)], false),
            Status::Degraded
        );
        assert_eq!(
            aggregate(&[check(Warn), check(Fail), check(Pass)], false),
            Status::Unhealthy
        );
    }

    #[test]
    fn shutting_down_overrides_everything_and_is_503() {
        let status = aggregate(&[check(CheckStatus::Pass)], true);
        assert_eq!(status, Status::ShuttingDown);
        assert_eq!(status.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            Status::Unhealthy.http_status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(Status::Degraded.http_status(), StatusCode::OK);
    }

    #[test]
    fn schema_behind_fails_ahead_warns_equal_passes() {
        assert_eq!(
            migrations_check(schema(3, false), 4).status,
            CheckStatus::Fail
        );
        assert_eq!(
            migrations_check(schema(5, false), 4).status,
            CheckStatus::Warn
        );
        assert_eq!(
            migrations_check(schema(4, false), 4).status,
            CheckStatus::Pass
        );
    }

    #[test]
    fn dirty_or_missing_schema_fails() {
        assert_eq!(
            migrations_check(schema(4, true), 4).status,
            CheckStatus::Fail
        );
        assert_eq!(migrations_check(None, 4).status, CheckStatus::Fail);
        assert_eq!(migrations_check(None, 0).status, CheckStatus::Pass);
    }

    #[test]
    fn report_serializes_in_the_documented_shape() {
        let mut checks = BTreeMap::new();
        checks.insert(
            "database",
            Check::new(
                CheckStatus::Pass,
                "connected",
                Some(Duration::from_millis(3)),
            ),
        );
        let report = HealthReport {
            status: Status::ShuttingDown,
            version: "1.2.3",
            git_commit: "abc",
            slot: Some("blue"),
            checks,
            timestamp: "2026-01-01T00:00:00Z".to_owned(),
        };
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(json["status"], "shutting_down");
        assert_eq!(json["slot"], "blue");
        assert_eq!(json["checks"]["database"]["status"], "pass");
        assert_eq!(json["checks"]["database"]["latency_ms"], 3);
    }
}
