//! When to try a delivery again: how a receiver's answer is classified,
//! exponential backoff with full jitter, the receiver's `Retry-After`, and
//! the channel's total budget (`give_up_after_ms`).

use std::time::{Duration, SystemTime};

/// The longest wait between two attempts, whatever the attempt number.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// What one attempt's outcome means for the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Delivered,
    /// 410 Gone: the receiver is gone for good; stop sending to the
    /// channel until it is configured again.
    Gone,
    /// 408, 429, 5xx, no connection, timeout: try again (not before
    /// `retry_after` when the receiver said so).
    Retry { retry_after: Option<Duration> },
    /// Any other 4xx (or 1xx/3xx): the request itself is refused; retrying
    /// would get the same answer.
    Fail,
}

/// The verdict for an HTTP status; `retry_after` is the parsed header.
pub fn classify(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone,
        408 | 429 | 500..=599 => Verdict::Retry { retry_after },
        _ => Verdict::Fail,
    }
}

/// `Retry-After`: delta-seconds or an HTTP-date (then relative to `now`; a
/// date in the past means "now"). `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with full jitter: attempt `n` (1 = the first retry)
/// waits a uniformly random time in `[0, min(cap, base * 2^(n-1))]`, so
/// many agents failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub fn new(base: Duration) -> Self {
        Self {
            base,
            cap: BACKOFF_CAP,
        }
    }

    /// The ceiling of retry `n`'s wait.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Retry `n`'s wait for a `jitter` drawn uniformly from `[0, 1)`.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        self.ceiling(retry).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// When the next attempt is due, or `None` to give up.
///
/// `elapsed` is the time since the event was queued, `budget` the channel's
/// `give_up_after_ms`, `retry` the number of the retry being scheduled (1
/// after the first failed attempt). The wait is the jittered backoff, but
/// never less than the receiver's `Retry-After`; a wait that would end past
/// the budget gives up now rather than sleeping only to give up later.
pub fn next_delay(
    backoff: &Backoff,
    retry: u32,
    jitter: f64,
    retry_after: Option<Duration>,
    elapsed: Duration,
    budget: Duration,
) -> Option<Duration> {
    let wait = backoff
        .delay(retry, jitter)
        .max(retry_after.unwrap_or(Duration::ZERO));
    (elapsed.saturating_add(wait) <= budget).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(200, None), Verdict::Delivered);
        assert_eq!(classify(204, None), Verdict::Delivered);
        assert_eq!(classify(410, None), Verdict::Gone);
        for s in [408, 429, 500, 502, 503, 599] {
            assert!(matches!(classify(s, None), Verdict::Retry { .. }), "{s}");
        }
        let two = Some(Duration::from_secs(2));
        assert_eq!(classify(429, two), Verdict::Retry { retry_after: two });
        for s in [400, 401, 403, 404, 413, 422, 301, 100] {
            assert_eq!(classify(s, None), Verdict::Fail, "{s}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_full_jitter() {
        let b = Backoff::new(Duration::from_secs(1));
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(2), Duration::from_secs(2));
        assert_eq!(b.ceiling(5), Duration::from_secs(16));
        assert_eq!(b.ceiling(9), Duration::from_secs(256));
        assert_eq!(b.ceiling(10), BACKOFF_CAP);
        assert_eq!(b.ceiling(u32::MAX), BACKOFF_CAP);
        assert_eq!(b.delay(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay(3, 0.5), Duration::from_secs(2));
        assert!(b.delay(3, 0.999_999) < Duration::from_secs(4));
    }

    #[test]
    fn retry_after_is_a_floor_and_the_budget_a_ceiling() {
        let b = Backoff::new(Duration::from_millis(100));
        let budget = Duration::from_secs(10);
        assert_eq!(
            next_delay(&b, 1, 0.5, None, Duration::ZERO, budget),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            next_delay(
                &b,
                1,
                0.5,
                Some(Duration::from_secs(2)),
                Duration::ZERO,
                budget
            ),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            next_delay(
                &b,
                1,
                0.5,
                Some(Duration::from_secs(20)),
                Duration::ZERO,
                budget
            ),
            None
        );
        assert_eq!(
            next_delay(&b, 1, 0.0, None, Duration::from_secs(11), budget),
            None
        );
    }
}
