//! Who a snapshot belongs to: one app's one environment.
//!
//! Every environment of every app on a machine shares the default snapshot
//! directory, and two environments often share a database name (`events`
//! for staging and production), so the database name alone cannot say whose
//! data a dump holds. The owner is recorded three times, so that losing or
//! moving one record never makes a snapshot look like another's:
//! - the directory: `<snapshots.dir>/<app>/<environment>/`;
//! - the file name: `<app>_<environment>_<db>_<time>_<commit>.dump`;
//! - the sidecar: `app` and `environment`.
//!
//! Neither part may contain `_`, so a name splits unambiguously from the
//! left (owner) and from the right (time, commit), whatever the database
//! name holds.

use std::fmt;
use std::path::{Path, PathBuf};

use super::error::SnapshotError;

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub app: String,
    pub environment: String,
}

impl Owner {
    /// Validates both parts: non-empty `A-Z a-z 0-9 - .`, not starting with `.`.
    pub fn new(app: &str, environment: &str) -> Result<Self, SnapshotError> {
        check_part("app name", app)?;
        check_part("environment name", environment)?;
        Ok(Self {
            app: app.to_string(),
            environment: environment.to_string(),
        })
    }

    /// This owner's directory under the snapshot root.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(&self.app).join(&self.environment)
    }

    /// `<app>_<environment>_`, the start of every file name it owns.
    pub fn name_prefix(&self) -> String {
        format!("{}_{}_", self.app, self.environment)
    }

    /// Splits `<app>_<environment>_<rest>` into the owner and the rest.
    pub fn split_prefix(text: &str) -> Option<(Owner, &str)> {
        let (app, rest) = text.split_once('_')?;
        let (environment, rest) = rest.split_once('_')?;
        Owner::new(app, environment).ok().map(|o| (o, rest))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.environment)
    }
}

fn check_part(what: &str, value: &str) -> Result<(), SnapshotError> {
    let reason = if value.is_empty() {
        Some(format!("the {what} is empty"))
    } else if value.starts_with('.') {
        Some(format!("the {what} starts with `.`"))
    } else {
        value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.')))
            .map(|c| {
                format!(
                    "the {what} contains `{c}`; snapshots need A-Z a-z 0-9 - . so their file names say whose they are"
                )
            })
    };
    match reason {
        Some(reason) => Err(SnapshotError::InvalidName {
            name: value.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_lays_out_its_directory_and_prefix() {
        let o = Owner::new("events", "staging").expect("valid");
        assert_eq!(
            o.dir(Path::new("/var/lib/slipway/snapshots")),
            Path::new("/var/lib/slipway/snapshots/events/staging")
        );
        assert_eq!(o.name_prefix(), "events_staging_");
        assert_eq!(o.to_string(), "events/staging");
    }

    #[test]
    fn prefix_splits_back_and_bad_parts_are_refused() {
        let (o, rest) = Owner::split_prefix("events_production_togather_db_x").expect("splits");
        assert_eq!(o, Owner::new("events", "production").expect("valid"));
        assert_eq!(rest, "togather_db_x");
        assert!(Owner::split_prefix("events_production").is_none());
        for (app, env) in [
            ("", "prod"),
            ("app", ""),
            ("my_app", "prod"),
            ("app", "prod_eu"),
            ("../x", "prod"),
            ("app", ".hidden"),
            ("app", "a/b"),
        ] {
            assert!(
                Owner::new(app, env).is_err(),
                "{app}/{env} should be refused"
            );
        }
    }
}
