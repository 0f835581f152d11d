//! When to renew, and how long to wait after a failure. Pure functions of
//! times (unix seconds) and a random draw in `[0, 1)`, so they are tested
//! without clocks or a CA.

use std::time::Duration;

/// First wait after a failed renewal; doubles per failure up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// When to renew a certificate valid from `not_before` to `not_after` by
/// our own rule: once a third of its lifetime remains, moved earlier by up
/// to a thirtieth of the lifetime (`draw` in `[0, 1)`) so that many hosts
/// issued together do not all renew in the same second.
pub fn own_renewal(not_before: i64, not_after: i64, draw: f64) -> i64 {
    let life = (not_after - not_before).max(1);
    let jitter = (life as f64 / 30.0 * draw.clamp(0.0, 1.0)) as i64;
    not_after - life / 3 - jitter
}

/// The renewal time: a uniform pick in the CA's ARI window when it offers
/// one (RFC 9773: the CA knows of revocations and incidents), else our own.
pub fn renewal_time(not_before: i64, not_after: i64, ari: Option<(i64, i64)>, draw: f64) -> i64 {
    match ari {
        Some((start, end)) if end >= start => {
            start + ((end - start) as f64 * draw.clamp(0.0, 1.0)) as i64
        }
        _ => own_renewal(not_before, not_after, draw),
    }
}

/// Wait after the `failures`-th failure in a row (1 = the first), never
/// later than half the time left before `not_after` allows, so a failing
/// renewal still gets several tries before the certificate expires.
pub fn backoff(failures: u32, now: i64, not_after: Option<i64>) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    let wait = BACKOFF_FIRST.saturating_mul(1u32 << shift).min(BACKOFF_MAX);
    match not_after {
        Some(end) if end > now => {
            let half_left = Duration::from_secs(((end - now) / 2).max(1) as u64);
            wait.min(half_left).max(Duration::from_secs(1))
        }
        _ => wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_starts_when_a_third_of_the_lifetime_remains() {
        // 90 days: renew at day 60 without jitter, up to 3 days earlier with.
        let day = 86_400;
        assert_eq!(own_renewal(0, 90 * day, 0.0), 60 * day);
        let early = own_renewal(0, 90 * day, 0.999);
        assert!(early < 60 * day && early > 57 * day, "{early}");
        // Short test certificates (60 s) renew after 40 s at the latest.
        assert_eq!(own_renewal(1000, 1060, 0.0), 1040);
        assert!(own_renewal(1000, 1060, 0.99) >= 1038);
    }

    #[test]
    fn the_ari_window_wins_when_offered() {
        assert_eq!(renewal_time(0, 900, Some((100, 200)), 0.5), 150);
        assert_eq!(renewal_time(0, 900, Some((100, 100)), 0.9), 100);
        // A window that ends before it starts is ignored.
        assert_eq!(renewal_time(0, 900, Some((200, 100)), 0.0), 600);
        assert_eq!(renewal_time(0, 900, None, 0.0), 600);
    }

    #[test]
    fn failures_back_off_exponentially_up_to_an_hour() {
        assert_eq!(backoff(1, 0, None), Duration::from_secs(10));
        assert_eq!(backoff(2, 0, None), Duration::from_secs(20));
        assert_eq!(backoff(5, 0, None), Duration::from_secs(160));
        assert_eq!(backoff(30, 0, None), BACKOFF_MAX);
    }

    #[test]
    fn backoff_leaves_tries_before_expiry() {
        // 30 s left: wait at most 15 s, however many failures.
        assert_eq!(backoff(10, 1000, Some(1030)), Duration::from_secs(15));
        // Already expired: plain backoff.
        assert_eq!(backoff(2, 1000, Some(900)), Duration::from_secs(20));
        // Never a busy loop.
        assert_eq!(backoff(1, 1000, Some(1001)), Duration::from_secs(1));
    }
}
