//! Maintenance mode: while it is on, the agent answers every public request
//! for the app itself (503, `Retry-After`, a small page) instead of
//! forwarding it, or holds requests briefly and then answers so. Set by
//! `slipway maintenance on`, or by `slipway deploy --maintenance` around a
//! long migration. It is part of the app's route in the ledger, so it
//! survives an agent restart and an agent upgrade, and a deploy killed in
//! the middle leaves it on (visibly) rather than lifting it blindly.
//!
//! Health checks the agent runs itself (the switch gate, the analysis'
//! probes) go to the slots directly and are not affected.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `Retry-After` sent while maintenance is on, when none is given.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 60;
/// The longest `Retry-After` accepted (a day).
pub const MAX_RETRY_AFTER_SECS: u64 = 86_400;
/// The longest operator message shown on the page, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Milliseconds a `hold` maintenance holds a request before answering it
/// with the page (the pause verb's bound).
pub const DEFAULT_HOLD_MAX_WAIT_MS: u64 = 30_000;
/// The longest hold (ten minutes): clients and load balancers give up sooner.
pub const MAX_HOLD_MAX_WAIT_MS: u64 = 600_000;

/// How the agent answers while maintenance is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceMode {
    /// Answer at once: 503, `Retry-After`, the maintenance page.
    #[default]
    Page,
    /// Hold new requests (as the pause verb does) up to `hold_max_wait_ms`;
    /// those still held then get the page. Lifting releases them to the app.
    Hold,
}

impl std::fmt::Display for MaintenanceMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Page => "page",
            Self::Hold => "hold",
        })
    }
}

/// Maintenance mode as the ledger keeps it and the admin API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    #[serde(default)]
    pub mode: MaintenanceMode,
    pub retry_after_secs: u64,
    /// The operator's words on the page (plain text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it went on (kept when it is set again while on).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Who put it on (`user@host`, as the deploy lock names people).
    pub by: String,
    /// The deployment that put it on (`deploy --maintenance`), if any: a
    /// deploy killed while it was on is recognised by this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// `hold` only: how long a request is held before the page answers it.
    #[serde(default = "default_hold_max_wait_ms")]
    pub hold_max_wait_ms: u64,
}

fn default_hold_max_wait_ms() -> u64 {
    DEFAULT_HOLD_MAX_WAIT_MS
}

fn default_retry_after_secs() -> u64 {
    DEFAULT_RETRY_AFTER_SECS
}

impl Maintenance {
    /// `page since 2026-01-28T10:30:00Z by alice@laptop (deployment dep_…)`.
    pub fn describe(&self) -> String {
        let since = self
            .since
            .replace_nanosecond(0)
            .unwrap_or(self.since)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| self.since.to_string());
        let mut out = format!("{} mode since {since} by {}", self.mode, self.by);
        if let Some(d) = &self.deployment_id {
            out.push_str(&format!(" (deployment {d})"));
        }
        out.push_str(&format!(", Retry-After {}s", self.retry_after_secs));
        if self.mode == MaintenanceMode::Hold {
            out.push_str(&format!(
                ", requests held up to {} ms",
                self.hold_max_wait_ms
            ));
        }
        out
    }
}

/// `maintenance_on`: put the app in maintenance (or change how it answers
/// while it already is; `since` is kept then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceOnArgs {
    pub app: String,
    #[serde(default)]
    pub mode: MaintenanceMode,
    #[serde(default = "default_retry_after_secs")]
    pub retry_after_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who asks, for `status`.
    #[serde(default)]
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(default = "default_hold_max_wait_ms")]
    pub hold_max_wait_ms: u64,
}

impl MaintenanceOnArgs {
    /// What is wrong with the request, in words an operator can act on.
    pub fn problem(&self) -> Option<String> {
        if self.retry_after_secs == 0 || self.retry_after_secs > MAX_RETRY_AFTER_SECS {
            return Some(format!(
                "retry_after_secs {} is outside 1..={MAX_RETRY_AFTER_SECS} (a second to a day)",
                self.retry_after_secs
            ));
        }
        if self.mode == MaintenanceMode::Hold
            && (self.hold_max_wait_ms == 0 || self.hold_max_wait_ms > MAX_HOLD_MAX_WAIT_MS)
        {
            return Some(format!(
                "hold_max_wait_ms {} is outside 1..={MAX_HOLD_MAX_WAIT_MS} (ten minutes at most)",
                self.hold_max_wait_ms
            ));
        }
        if let Some(m) = &self.message {
            if m.chars().count() > MAX_MESSAGE_CHARS {
                return Some(format!(
                    "the message has {} characters; at most {MAX_MESSAGE_CHARS} are shown",
                    m.chars().count()
                ));
            }
            if m.chars().any(|c| c.is_control() && c != '\n') {
                return Some("the message holds control characters; use plain text".into());
            }
        }
        None
    }

    /// The record to keep, at `now`; `since` is `earlier`'s when it was on.
    pub fn record(&self, now: OffsetDateTime, earlier: Option<&Maintenance>) -> Maintenance {
        Maintenance {
            mode: self.mode,
            retry_after_secs: self.retry_after_secs,
            message: self
                .message
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            since: earlier.map_or(now, |e| e.since),
            by: if self.by.trim().is_empty() {
                "unknown".into()
            } else {
                self.by.clone()
            },
            deployment_id: self.deployment_id.clone(),
            hold_max_wait_ms: self.hold_max_wait_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> MaintenanceOnArgs {
        serde_json::from_str(r#"{"app":"web"}"#).expect("parses")
    }

    #[test]
    fn defaults_are_a_page_with_a_minute_retry_after() {
        let a = args();
        assert_eq!(a.mode, MaintenanceMode::Page);
        assert_eq!(a.retry_after_secs, DEFAULT_RETRY_AFTER_SECS);
        assert_eq!(a.hold_max_wait_ms, DEFAULT_HOLD_MAX_WAIT_MS);
        assert_eq!(a.problem(), None);
    }

    #[test]
    fn out_of_range_values_and_control_characters_are_refused() {
        let mut a = args();
        a.retry_after_secs = 0;
        assert!(a.problem().expect("refused").contains("retry_after_secs 0"));
        let mut a = args();
        a.mode = MaintenanceMode::Hold;
        a.hold_max_wait_ms = MAX_HOLD_MAX_WAIT_MS + 1;
        assert!(a.problem().expect("refused").contains("hold_max_wait_ms"));
        let mut a = args();
        a.message = Some("x".repeat(MAX_MESSAGE_CHARS + 1));
        assert!(a.problem().expect("refused").contains("characters"));
        a.message = Some("bell\u{7}".into());
        assert!(a.problem().expect("refused").contains("control"));
        a.message = Some("two\nlines".into());
        assert_eq!(a.problem(), None);
    }

    #[test]
    fn setting_it_again_keeps_since_and_trims_the_message() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let t1 = OffsetDateTime::from_unix_timestamp(1_800_000_600).expect("time");
        let mut a = args();
        a.by = "alice@laptop".into();
        a.message = Some("  back soon \n".into());
        let first = a.record(t0, None);
        assert_eq!(first.since, t0);
        assert_eq!(first.message.as_deref(), Some("back soon"));
        a.message = Some("   ".into());
        let again = a.record(t1, Some(&first));
        assert_eq!(again.since, t0);
        assert_eq!(again.message, None);
        let text = serde_json::to_string(&again).expect("serialises");
        let back: Maintenance = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, again);
        assert!(
            again
                .describe()
                .starts_with("page mode since 2027-01-15T08:00:00Z by alice@laptop"),
            "{}",
            again.describe()
        );
    }
}
