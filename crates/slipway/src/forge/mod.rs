//! The forges Slipway asks whether a commit passed CI (`deployment.require_ci`).
//! Only GitHub today ([`github`]); the decisions themselves are pure and live
//! in `slipway_core::ci`.

pub mod github;

use crate::exit::Exit;

/// A forge request that did not get an answer the gate can use: what
/// failed, why, and what to do. Never carries the token.
#[derive(Debug)]
pub struct ForgeError {
    pub message: String,
    pub hint: String,
    pub exit: Exit,
}

impl ForgeError {
    pub fn new(exit: Exit, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
            exit,
        }
    }
}

/// `12:34:56 UTC (in 3m 20s)`: when a wait ends, for messages.
pub fn until(wait: std::time::Duration) -> String {
    let at = time::OffsetDateTime::now_utc() + wait;
    let clock = at
        .format(time::macros::format_description!(
            "[hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_default();
    format!("{clock} (in {})", human(wait))
}

/// `3m 20s`, `45s`, `1h 2m`.
pub fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{}s", s.max(u64::from(d.as_millis() > 0 && s == 0))),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}
