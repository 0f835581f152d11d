//! Benchmark driver for `benches/database/run.sh`: takes a snapshot, or runs
//! migrations, through the library exactly as the CLI will, and prints one
//! JSON line with the timings and this process's peak memory (`VmHWM`).
//!
//! ```text
//! SLIPWAY_BENCH_DATABASE_URL=postgres://... snapshot_bench snapshot <container> <dir> [custom|directory] [jobs]
//! SLIPWAY_BENCH_DATABASE_URL=postgres://... snapshot_bench restore <container> <file> [jobs]
//! SLIPWAY_BENCH_DATABASE_URL=postgres://... snapshot_bench migrate <migrations-dir>
//! ```
//!
//! The URL comes from the environment so its password never sits on a
//! command line.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use slipway_core::migrate::{MigrationSet, Runner, RunnerOptions};
use slipway_core::secret::Secret;
use slipway_core::snapshot::{self, ArchiveFormat, CreateOptions, DumpSite, RestoreOptions};

const URL_VAR: &str = "SLIPWAY_BENCH_DATABASE_URL";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "slipway_core=info".into()),
        )
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("error: set {URL_VAR} to the database URL");
        return ExitCode::from(2);
    };
    let url = Secret::new(url);
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["snapshot", container, dir] => {
            snapshot(&url, container, Path::new(dir), ArchiveFormat::Custom, 1).await
        }
        ["snapshot", container, dir, format, rest @ ..] => {
            let format = match *format {
                "custom" => ArchiveFormat::Custom,
                "directory" => ArchiveFormat::Directory,
                other => return usage(&format!("unknown format `{other}`")),
            };
            let jobs = rest.first().and_then(|j| j.parse().ok()).unwrap_or(2);
            snapshot(&url, container, Path::new(dir), format, jobs).await
        }
        ["restore", container, file, rest @ ..] => {
            let jobs = rest.first().and_then(|j| j.parse().ok()).unwrap_or(2);
            restore(&url, container, Path::new(file), jobs).await
        }
        ["migrate", dir] => migrate(&url, Path::new(dir)).await,
        _ => return usage("wrong arguments"),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "error: {problem}\nusage: snapshot_bench snapshot <container> <dir> [custom|directory] [jobs] | restore <container> <file> [jobs] | migrate <migrations-dir>"
    );
    ExitCode::from(2)
}

async fn snapshot(
    url: &Secret,
    container: &str,
    dir: &Path,
    format: ArchiveFormat,
    jobs: u32,
) -> Result<serde_json::Value, String> {
    let started = Instant::now();
    let site = DumpSite::container(container);
    let mut opts = CreateOptions::new(dir, "bench", "benchmark");
    opts.format = format;
    opts.jobs = jobs;
    let snap = snapshot::create(&site, url, &opts)
        .await
        .map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "op": "snapshot",
        "seconds": started.elapsed().as_secs_f64(),
        "format": snap.sidecar.archive_format,
        "compression": snap.sidecar.compression,
        "size_bytes": snap.sidecar.size_bytes,
        "sha256": snap.sidecar.sha256,
        "path": snap.path,
        "toc_entries": snap.toc_entries,
        "vm_hwm_kb": vm_hwm_kb(),
    }))
}

async fn restore(
    url: &Secret,
    container: &str,
    file: &Path,
    jobs: u32,
) -> Result<serde_json::Value, String> {
    let started = Instant::now();
    let site = DumpSite::container(container);
    let opts = RestoreOptions {
        jobs,
        ..RestoreOptions::default()
    };
    let report = snapshot::restore(&site, url, file, &opts)
        .await
        .map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "op": "restore",
        "seconds": started.elapsed().as_secs_f64(),
        "method": report.method,
        "jobs": report.jobs,
        "vm_hwm_kb": vm_hwm_kb(),
    }))
}

async fn migrate(url: &Secret, dir: &Path) -> Result<serde_json::Value, String> {
    let started = Instant::now();
    let set = MigrationSet::load(dir).map_err(|e| e.to_string())?;
    let mut runner = Runner::connect(url, RunnerOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let report = runner.up(&set, None).await.map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "op": "migrate",
        "seconds": started.elapsed().as_secs_f64(),
        "steps": report.applied,
        "vm_hwm_kb": vm_hwm_kb(),
    }))
}

/// This process's peak resident set (`VmHWM` in /proc/self/status), in KiB.
fn vm_hwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
