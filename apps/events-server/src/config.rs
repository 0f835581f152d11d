//! Configuration from the environment, validated before anything is bound or
//! connected. A broken release must fail here, fast and with a message naming
//! the variable, so a deploy's health gate sees it die instead of serving.
//!
//! Values of secret variables (`DATABASE_URL`, `JWT_SECRET`) are never put in
//! an error or a `Debug` string: errors name the variable and what is wrong.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Every variable the server reads, with its default, in one place so the
/// README and `--help` agree with the code.
pub const ENV_VARS: &[(&str, &str, &str)] = &[
    (
        "DATABASE_URL",
        "required",
        "PostgreSQL connection string (postgres://user:password@host:5432/db)",
    ),
    (
        "JWT_SECRET",
        "required",
        "token signing secret, at least 32 bytes",
    ),
    ("PORT", "8080", "TCP port to listen on (0.0.0.0)"),
    ("SLOT", "unset", "blue or green; reported in /health"),
    (
        "DATABASE_POOL_MAX",
        "10",
        "maximum PostgreSQL connections in the pool",
    ),
    (
        "DRAIN_DELAY_SECS",
        "0",
        "after SIGTERM, keep accepting (with /health 503) this long",
    ),
    (
        "SHUTDOWN_TIMEOUT_SECS",
        "8",
        "after accepting stops, wait at most this long for in-flight requests",
    ),
    ("LOG_FORMAT", "text", "text or json"),
    (
        "EVENTS_SERVER_FAIL_HEALTH_AFTER",
        "unset",
        "testing: /health reports unhealthy this many seconds after start",
    ),
    (
        "EVENTS_SERVER_DELAY_MS",
        "0",
        "testing: add this delay to every request but the health and metrics endpoints",
    ),
    (
        "EVENTS_SERVER_ERROR_EVERY",
        "unset",
        "testing: answer every Nth request but the health and metrics endpoints with 500",
    ),
];

/// The minimum length of `JWT_SECRET`: 256 bits, what HS256 needs.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// A string that never prints (connection URL, signing key).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// The value, for the one place that hands it to its consumer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which blue/green slot this process serves, as told by the deployer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Blue,
    Green,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Blue => "blue",
            Slot::Green => "green",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: SecretString,
    /// Parsed form of `database_url`, what the pool connects with.
    pub database: tokio_postgres::Config,
    pub jwt_secret: SecretString,
    pub port: u16,
    pub slot: Option<Slot>,
    pub pool_max: usize,
    pub drain_delay: Duration,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub fail_health_after: Option<Duration>,
    /// Testing faults: see [`crate::fault`].
    pub faults: crate::fault::Faults,
}

/// Why the configuration was refused. Messages name the variable and never
/// include a secret's value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not set; it is required")]
    Missing(&'static str),
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

impl ConfigError {
    /// The variable at fault.
    pub fn var(&self) -> &'static str {
        match self {
            ConfigError::Missing(var) | ConfigError::Invalid { var, .. } => var,
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup` (the process environment, or a map in tests).
    /// An empty value counts as unset, as in most shells' `VAR= cmd`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let database_url = get("DATABASE_URL").ok_or(ConfigError::Missing("DATABASE_URL"))?;
        let database = parse_database_url(&database_url)?;

        let jwt_secret = get("JWT_SECRET").ok_or(ConfigError::Missing("JWT_SECRET"))?;
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                var: "JWT_SECRET",
                reason: format!(
                    "it is {} bytes long; at least {MIN_JWT_SECRET_BYTES} are required",
                    jwt_secret.len()
                ),
            });
        }

        let port = parse_or("PORT", get("PORT"), 8080u16)?;
        let slot = match get("SLOT").as_deref().map(str::trim) {
            None => None,
            Some("blue") => Some(Slot::Blue),
            Some("green") => Some(Slot::Green),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "SLOT",
                    reason: format!("`{other}` is neither `blue` nor `green`"),
                });
            }
        };
        let pool_max = parse_or("DATABASE_POOL_MAX", get("DATABASE_POOL_MAX"), 10usize)?;
        if pool_max == 0 {
            return Err(ConfigError::Invalid {
                var: "DATABASE_POOL_MAX",
                reason: "must be at least 1".to_owned(),
            });
        }
        let drain_delay = secs("DRAIN_DELAY_SECS", get("DRAIN_DELAY_SECS"), 0)?;
        let shutdown_timeout = secs("SHUTDOWN_TIMEOUT_SECS", get("SHUTDOWN_TIMEOUT_SECS"), 8)?;
        let log_format = match get("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "LOG_FORMAT",
                    reason: format!("`{other}` is neither `text` nor `json`"),
                });
            }
        };
        let fail_health_after = match get("EVENTS_SERVER_FAIL_HEALTH_AFTER") {
            None => None,
            value => Some(secs("EVENTS_SERVER_FAIL_HEALTH_AFTER", value, 0)?),
        };

        let delay = parse_or::<u64>("EVENTS_SERVER_DELAY_MS", get("EVENTS_SERVER_DELAY_MS"), 0)?;
        let error_every = match get("EVENTS_SERVER_ERROR_EVERY") {
            None => None,
            value => match parse_or::<u32>("EVENTS_SERVER_ERROR_EVERY", value, 0)? {
                0 => {
                    return Err(ConfigError::Invalid {
                        var: "EVENTS_SERVER_ERROR_EVERY",
                        reason: "must be 1 or more (1: every request fails)".into(),
                    });
                }
                n => Some(n),
            },
        };
        let faults = crate::fault::Faults {
            delay: Duration::from_millis(delay),
            error_every,
        };

        Ok(Config {
            database_url: SecretString(database_url),
            database,
            jwt_secret: SecretString(jwt_secret),
            port,
            slot,
            pool_max,
            drain_delay,
            shutdown_timeout,
            log_format,
            fail_health_after,
            faults,
        })
    }
}

/// Parses and checks a connection string. The parser's own message is not
/// passed on: for a malformed URL it could quote part of the password.
fn parse_database_url(url: &str) -> Result<tokio_postgres::Config, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        var: "DATABASE_URL",
        reason: reason.to_owned(),
    };
    let trimmed = url.trim();
    // tokio-postgres also accepts `key=value` strings; the deploy tooling and
    // the docs use URLs, so anything else is far more likely a mistake.
    if !(trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://")) {
        return Err(invalid(
            "it must be a URL starting with postgres:// or postgresql:// \
             (postgres://user:password@host:5432/dbname)",
        ));
    }
    let config = tokio_postgres::Config::from_str(trimmed).map_err(|_| {
        invalid("it is not a valid PostgreSQL URL (postgres://user:password@host:5432/dbname)")
    })?;
    if config.get_hosts().is_empty() {
        return Err(invalid("it names no host"));
    }
    if config.get_user().is_none_or(str::is_empty) {
        return Err(invalid("it names no user"));
    }
    Ok(config)
}

fn parse_or<T: FromStr>(
    var: &'static str,
    value: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
            var,
            reason: format!("`{}` is not a valid {}", v.trim(), short_type::<T>()),
        }),
    }
}

fn secs(var: &'static str, value: Option<String>, default: u64) -> Result<Duration, ConfigError> {
    parse_or::<u64>(var, value, default).map(Duration::from_secs)
}

fn short_type<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    match name {
        "u16" => "port number (0-65535)",
        "u64" | "usize" => "non-negative whole number",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const URL: &str = "postgres://app:pw-canary-123@db:5432/events";
    const JWT: &str = "0123456789abcdef0123456789abcdef";

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn minimal_valid_environment_gets_defaults() {
        let c = load(&[("DATABASE_URL", URL), ("JWT_SECRET", JWT)]).expect("valid");
        assert_eq!(c.port, 8080);
        assert_eq!(c.slot, None);
        assert_eq!(c.pool_max, 10);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(8));
        assert_eq!(c.fail_health_after, None);
        assert_eq!(c.database.get_user(), Some("app"));
    }

    #[test]
    fn missing_database_url_names_the_variable() {
        let err = load(&[("JWT_SECRET", JWT)]).unwrap_err();
        assert_eq!(err, ConfigError::Missing("DATABASE_URL"));
        assert!(err.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn empty_value_counts_as_missing() {
        let err = load(&[("DATABASE_URL", ""), ("JWT_SECRET", JWT)]).unwrap_err();
        assert_eq!(err, ConfigError::Missing("DATABASE_URL"));
    }

    #[test]
    fn malformed_database_url_is_refused_without_its_value() {
        for bad in [
            "not a url pw-canary-123",
            "mysql://app:pw-canary-123@db/events",
            "postgres://app:pw-canary-123@db:notaport/events",
            "postgres://:pw-canary-123@db/events",
        ] {
            let err = load(&[("DATABASE_URL", bad), ("JWT_SECRET", JWT)]).unwrap_err();
            assert_eq!(err.var(), "DATABASE_URL", "{bad}");
            let text = err.to_string();
            assert!(!text.contains("pw-canary"), "leaked in: {text}");
        }
    }

    #[test]
    fn short_jwt_secret_is_refused_without_its_value() {
        let err = load(&[("DATABASE_URL", URL), ("JWT_SECRET", "short-canary")]).unwrap_err();
        assert_eq!(err.var(), "JWT_SECRET");
        let text = err.to_string();
        assert!(text.contains("12 bytes"), "{text}");
        assert!(!text.contains("short-canary"), "{text}");
    }

    #[test]
    fn jwt_secret_of_exactly_32_bytes_is_accepted() {
        assert!(load(&[("DATABASE_URL", URL), ("JWT_SECRET", JWT)]).is_ok());
        let err = load(&[("DATABASE_URL", URL), ("JWT_SECRET", &JWT[1..])]).unwrap_err();
        assert_eq!(err.var(), "JWT_SECRET");
    }

    #[test]
    fn slot_port_and_knobs_are_parsed_and_checked() {
        let c = load(&[
            ("DATABASE_URL", URL),
            ("JWT_SECRET", JWT),
            ("PORT", "9090"),
            ("SLOT", "green"),
            ("EVENTS_SERVER_FAIL_HEALTH_AFTER", "5"),
        ])
        .expect("valid");
        assert_eq!((c.port, c.slot), (9090, Some(Slot::Green)));
        assert_eq!(c.fail_health_after, Some(Duration::from_secs(5)));

        for (var, value) in [
            ("PORT", "70000"),
            ("SLOT", "purple"),
            ("DATABASE_POOL_MAX", "0"),
            ("LOG_FORMAT", "xml"),
            ("SHUTDOWN_TIMEOUT_SECS", "-1"),
        ] {
            let err =
                load(&[("DATABASE_URL", URL), ("JWT_SECRET", JWT), (var, value)]).expect_err(var);
            assert_eq!(err.var(), var);
        }
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let c = load(&[("DATABASE_URL", URL), ("JWT_SECRET", JWT)]).expect("valid");
        let debug = format!("{c:?}");
        assert!(!debug.contains("pw-canary"), "{debug}");
        assert!(!debug.contains(JWT), "{debug}");
    }
}
