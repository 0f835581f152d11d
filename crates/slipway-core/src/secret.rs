//! Values that must never appear in output, logs, labels or errors.
//!
//! [`Secret`] redacts itself in both `Display` and `Debug`; the only way to the
//! value is the explicit [`Secret::expose`], so a leak is visible in review.
//! [`redact_url`] hides the password of a connection URL for messages.
//!
//! ```
//! use slipway_core::secret::Secret;
//! let s = Secret::new("hunter2-canary");
//! assert_eq!(format!("{s}"), "[redacted]");
//! assert!(!format!("{s:?}").contains("hunter2"));
//! ```

use std::fmt;

/// The text shown wherever a secret would otherwise be printed.
pub const REDACTED: &str = "[redacted]";

/// A secret value (password, token, key, connection URL with credentials).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where the value leaves for its consumer
    /// (a container's environment, a database connection), never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// A connection URL with its password (if any) replaced by `[redacted]`,
/// for messages. Input that does not parse as a URL is redacted whole.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // set_password only fails for URLs that cannot carry one.
                let _ = parsed.set_password(Some("redacted"));
            }
            parsed.to_string()
        }
        Err(_) => REDACTED.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("canary-7f3a");
        assert!(!format!("{s}").contains("canary"));
        assert!(!format!("{s:?}").contains("canary"));
        assert!(!serde_json::to_string(&s).unwrap().contains("canary"));
        assert_eq!(s.expose(), "canary-7f3a");
    }

    #[test]
    fn redact_url_hides_password_only() {
        let r = redact_url("postgres://app:p4ss-canary@db:5432/events");
        assert_eq!(r, "postgres://app:redacted@db:5432/events");
        assert_eq!(redact_url("not a url p4ss"), REDACTED);
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
    }
}
