//! Build-time metadata for `/version`, `/health` and `--version`: the release
//! version, git commit, build date and rustc version, plus the newest migration
//! version in `migrations/` (what the migrations health check compares the
//! database against).
//!
//! Each value can be overridden from the environment so a build without a git
//! checkout (a Docker build context, a source tarball) is still labelled, and so
//! builds are reproducible: `EVENTS_SERVER_VERSION`, `EVENTS_SERVER_GIT_COMMIT`,
//! `EVENTS_SERVER_BUILD_DATE` (`SOURCE_DATE_EPOCH` is honoured for the date).
//! Without an override and without git, the value is `unknown`.

use std::path::{Path, PathBuf};
use std::process::Command;

const UNKNOWN: &str = "unknown";

fn main() {
    for var in [
        "EVENTS_SERVER_VERSION",
        "EVENTS_SERVER_GIT_COMMIT",
        "EVENTS_SERVER_BUILD_DATE",
        "SOURCE_DATE_EPOCH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    watch_git(&manifest_dir);

    let version = override_of("EVENTS_SERVER_VERSION")
        .or_else(|| std::env::var("CARGO_PKG_VERSION").ok())
        .unwrap_or_else(|| UNKNOWN.to_owned());
    let commit = override_of("EVENTS_SERVER_GIT_COMMIT")
        .or_else(|| git(&manifest_dir, &["rev-parse", "HEAD"]))
        .unwrap_or_else(|| UNKNOWN.to_owned());
    // The commit's date rather than the wall clock: the same commit then gives
    // the same binary, and the build script need not rerun on every build.
    let build_date = override_of("EVENTS_SERVER_BUILD_DATE")
        .or_else(source_date_epoch)
        .or_else(|| git(&manifest_dir, &["log", "-1", "--format=%cI"]))
        .unwrap_or_else(|| UNKNOWN.to_owned());
    let rustc = rustc_version().unwrap_or_else(|| UNKNOWN.to_owned());

    println!("cargo:rustc-env=EVENTS_SERVER_BUILD_VERSION={version}");
    println!("cargo:rustc-env=EVENTS_SERVER_BUILD_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=EVENTS_SERVER_BUILD_DATE_VALUE={build_date}");
    println!("cargo:rustc-env=EVENTS_SERVER_BUILD_RUSTC={rustc}");

    let migrations = manifest_dir.join("migrations");
    println!("cargo:rerun-if-changed={}", migrations.display());
    let latest = latest_migration(&migrations);
    println!("cargo:rustc-env=EVENTS_SERVER_LATEST_MIGRATION={latest}");
}

/// A non-empty override from the environment.
fn override_of(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org) as an RFC 3339 UTC date.
fn source_date_epoch() -> Option<String> {
    let secs: i64 = std::env::var("SOURCE_DATE_EPOCH")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm), so the build script needs no date crate.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Rerun when HEAD moves (a checkout or a commit), so the embedded commit is
/// never stale. Only existing paths are watched: cargo reruns the script on
/// every build for a path that does not exist.
fn watch_git(dir: &Path) {
    let mut paths = Vec::new();
    if let Some(head) = git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-path", "HEAD"],
    ) {
        paths.push(PathBuf::from(head));
    }
    if let Some(reference) = git(dir, &["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(
            dir,
            &[
                "rev-parse",
                "--path-format=absolute",
                "--git-path",
                &reference,
            ],
        )
    {
        paths.push(PathBuf::from(path));
    }
    if let Some(packed) = git(
        dir,
        &[
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            "packed-refs",
        ],
    ) {
        paths.push(PathBuf::from(packed));
    }
    for path in paths.into_iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn rustc_version() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The highest `NNNN` among `NNNN_name.up.sql` files; 0 when there are none.
fn latest_migration(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".up.sql"))
        .filter_map(|name| name.split('_').next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}
