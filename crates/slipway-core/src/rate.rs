//! Bytes and rate of a transfer in progress (a dump, a restore, a build
//! context on its way to the engine), reported every few
//! seconds as a tracing event under [`TARGET`], which the CLI shows live on
//! a terminal (and drops in a log).

use std::time::{Duration, Instant};

/// The tracing target of rate lines.
pub const TARGET: &str = "slipway_core::rate";
/// How often a line is reported.
const EVERY: Duration = Duration::from_secs(2);

/// Counts bytes for one transfer and reports now and then.
pub struct Rate {
    what: &'static str,
    started: Instant,
    last: Instant,
    bytes: u64,
}

impl Rate {
    pub fn new(what: &'static str) -> Self {
        let now = Instant::now();
        Self {
            what,
            started: now,
            last: now,
            bytes: 0,
        }
    }

    pub fn add(&mut self, n: usize) {
        self.bytes += n as u64;
        if self.last.elapsed() >= EVERY {
            self.last = Instant::now();
            tracing::info!(target: TARGET, "{}", describe(self.what, self.bytes, self.started.elapsed()));
        }
    }
}

/// `dumped 12.3 MB in 4 s (3.1 MB/s)`.
pub fn describe(what: &str, bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
    format!(
        "{what} {} in {:.0} s ({}/s)",
        size(bytes as f64),
        secs,
        size(rate)
    )
}

fn size(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rates_read_naturally() {
        assert_eq!(
            describe("dumped", 999, Duration::from_secs(1)),
            "dumped 999 B in 1 s (999 B/s)"
        );
        assert_eq!(
            describe("restored", 12_300_000, Duration::from_secs(4)),
            "restored 12.3 MB in 4 s (3.1 MB/s)"
        );
        assert_eq!(
            describe("dumped", 0, Duration::ZERO),
            "dumped 0 B in 0 s (0 B/s)"
        );
        assert_eq!(
            describe("dumped", 2_500_000_000_000_000, Duration::from_secs(1)),
            "dumped 2500.0 TB in 1 s (2500.0 TB/s)"
        );
    }
}
