//! What this binary is: version, git commit, build date, rustc version and the
//! newest migration it was built with, all fixed at build time by `build.rs`.
//! `/version`, `/health`, `app_version_info` and `--version` read them here.

use serde::Serialize;

/// The release version (`EVENTS_SERVER_VERSION`, else the crate version).
pub const VERSION: &str = env!("EVENTS_SERVER_BUILD_VERSION");
/// The full git commit (`EVENTS_SERVER_GIT_COMMIT`, else `git rev-parse HEAD`).
pub const GIT_COMMIT: &str = env!("EVENTS_SERVER_BUILD_GIT_COMMIT");
/// RFC 3339 (`EVENTS_SERVER_BUILD_DATE`, `SOURCE_DATE_EPOCH`, else the commit date).
pub const BUILD_DATE: &str = env!("EVENTS_SERVER_BUILD_DATE_VALUE");
/// `rustc --version` of the compiler that built this binary.
pub const RUSTC_VERSION: &str = env!("EVENTS_SERVER_BUILD_RUSTC");

/// The highest migration version in `migrations/` when this binary was built;
/// the schema version this release expects.
pub fn latest_migration() -> u64 {
    // build.rs always emits a number; 0 if it could not read one.
    env!("EVENTS_SERVER_LATEST_MIGRATION").parse().unwrap_or(0)
}

/// The `/version` body.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: &'static str,
    pub git_commit: &'static str,
    pub build_date: &'static str,
    pub rustc_version: &'static str,
    pub schema_version: u64,
}

pub fn info() -> VersionInfo {
    VersionInfo {
        version: VERSION,
        git_commit: GIT_COMMIT,
        build_date: BUILD_DATE,
        rustc_version: RUSTC_VERSION,
        schema_version: latest_migration(),
    }
}

/// The `--version` line.
pub fn long_version() -> String {
    format!(
        "events-server {VERSION} (commit {GIT_COMMIT}, built {BUILD_DATE}, schema {}, {RUSTC_VERSION})",
        latest_migration()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_migration_matches_the_migrations_directory() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let newest = std::fs::read_dir(dir)
            .expect("migrations dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".up.sql"))
            .filter_map(|n| n.split('_').next()?.parse::<u64>().ok())
            .max()
            .expect("at least one migration");
        assert_eq!(latest_migration(), newest);
        assert!(newest >= 3);
    }

    #[test]
    fn version_fields_are_never_empty() {
        let info = info();
        for field in [
            info.version,
            info.git_commit,
            info.build_date,
            info.rustc_version,
        ] {
            assert!(!field.is_empty());
        }
        assert!(long_version().starts_with("events-server "));
    }
}
