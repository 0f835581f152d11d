//! After the switch: confirm through the public port that the new release
//! answers, then watch it for the configured window. Failures in a row
//! (or a latency far above the old release's) mean: switch back.

use std::time::{Duration, Instant};

use super::context::{StepError, Target};
use super::http_probe::{self, HttpClient};

/// Consecutive failed probes that end the watch.
pub const FAILURES_TO_ROLL_BACK: u32 = 3;

/// p50 latency of a few probes of the health path through the public port,
/// taken before the switch as the baseline (None if nothing answers).
pub async fn baseline(t: &Target, client: &HttpClient) -> Option<Duration> {
    if !t.engine.is_local() {
        return None;
    }
    let url = t.public_url(&t.config.settings.health.path);
    let mut samples = Vec::new();
    for _ in 0..5 {
        if let Ok(p) = http_probe::get(client, &url, t.config.settings.health.timeout.0).await
            && (200..300).contains(&p.status)
        {
            samples.push(p.latency);
        }
    }
    samples.sort();
    samples.get(samples.len() / 2).copied()
}

/// The public port serves `release` (the agent's release header says so).
pub async fn confirm(t: &Target, client: &HttpClient, release: &str) -> Result<(), StepError> {
    if !t.engine.is_local() {
        return Ok(());
    }
    let url = t.public_url(&t.config.settings.health.path);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        match http_probe::get(client, &url, t.config.settings.health.timeout.0).await {
            Ok(p) if p.release.as_deref() == Some(release) && (200..300).contains(&p.status) => {
                return Ok(());
            }
            Ok(p) => last = format!("HTTP {} from release {:?}", p.status, p.release),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(StepError::new(format!(
        "the public port {url} does not serve release {release}: {last}"
    )))
}

pub struct WatchOutcome {
    pub probes: u32,
    pub failures: u32,
    pub p50: Option<Duration>,
}

/// Watches for `window`; `Err` carries why the release must be rolled back.
pub async fn watch(
    t: &Target,
    client: &HttpClient,
    release: &str,
    window: Duration,
    baseline: Option<Duration>,
) -> Result<WatchOutcome, StepError> {
    let mut outcome = WatchOutcome {
        probes: 0,
        failures: 0,
        p50: None,
    };
    if !t.engine.is_local() || window.is_zero() {
        tokio::time::sleep(window).await;
        return Ok(outcome);
    }
    let url = t.public_url(&t.config.settings.health.path);
    let interval = t
        .config
        .settings
        .health
        .interval
        .0
        .max(Duration::from_millis(200));
    let end = Instant::now() + window;
    let mut in_a_row = 0;
    let mut latencies = Vec::new();
    let mut last = String::new();
    while Instant::now() < end {
        outcome.probes += 1;
        let ok = match http_probe::get(client, &url, t.config.settings.health.timeout.0).await {
            Ok(p) if (200..300).contains(&p.status) && p.release.as_deref() == Some(release) => {
                latencies.push(p.latency);
                true
            }
            Ok(p) => {
                last = format!(
                    "HTTP {} ({})",
                    p.status,
                    p.body.chars().take(160).collect::<String>()
                );
                false
            }
            Err(e) => {
                last = e;
                false
            }
        };
        if ok {
            in_a_row = 0;
        } else {
            outcome.failures += 1;
            in_a_row += 1;
            if in_a_row >= FAILURES_TO_ROLL_BACK {
                return Err(StepError::new(format!(
                    "the new release failed {in_a_row} health checks in a row during the watch window: {last}"
                )));
            }
        }
        tokio::time::sleep(interval).await;
    }
    latencies.sort();
    outcome.p50 = latencies.get(latencies.len() / 2).copied();
    if let (Some(p50), Some(base)) = (outcome.p50, baseline)
        && p50 > base * 10 + Duration::from_millis(500)
    {
        return Err(StepError::new(format!(
            "the new release is much slower: p50 {}ms against {}ms before the switch",
            p50.as_millis(),
            base.as_millis()
        )));
    }
    Ok(outcome)
}
