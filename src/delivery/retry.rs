//! What a receiver's answer means (docs/api.md §4 acknowledgement) and when to try again.

use std::time::Duration;

/// What to do after one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again later; `retry_after` is the receiver's own request (429/503).
    Retry {
        retry_after: Option<Duration>,
    },
    /// 410: the receiver unsubscribes; the channel is stopped.
    Gone,
    /// Any other status: this notification has failed for good; the channel moves on.
    Failed,
}

/// Classifies an HTTP status. Timeouts and connection failures are `Retry` too; the
/// caller decides those.
pub fn classify(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200 | 201 | 202 | 204 => Verdict::Delivered,
        429 | 503 => Verdict::Retry { retry_after },
        500 | 502 | 504 | 408 => Verdict::Retry { retry_after: None },
        410 => Verdict::Gone,
        _ => Verdict::Failed,
    }
}

/// Reads `Retry-After` as delay-seconds or an HTTP date, clamped to [1 s, 1 h].
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let seconds = match value.parse::<u64>() {
        Ok(s) => s,
        Err(_) => {
            let at = crate::protocol::httpdate::parse(value)?;
            (at - now).num_seconds().max(0) as u64
        }
    };
    Some(Duration::from_secs(seconds.clamp(1, 3600)))
}

/// Exponential backoff with jitter, and the retry budget (docs/api.md §5).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Delay before the 2nd, 3rd, ... attempt; the last entry repeats.
    pub schedule: Vec<Duration>,
    /// How long one notification may be retried before it fails for good.
    pub budget: Duration,
}

impl RetryPolicy {
    /// Delay after `failed_attempts` (≥ 1) failures: the schedule's entry ±20 %, or the
    /// receiver's `Retry-After` when it gave one.
    pub fn delay(&self, failed_attempts: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after;
        }
        let index = (failed_attempts.max(1) as usize - 1).min(self.schedule.len() - 1);
        let jitter = 0.8 + 0.4 * rand::random::<f64>();
        self.schedule[index].mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses_as_the_spec_says() {
        for s in [200, 201, 202, 204] {
            assert_eq!(classify(s, None), Verdict::Delivered);
        }
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(matches!(classify(s, None), Verdict::Retry { .. }), "{s}");
        }
        assert_eq!(classify(410, None), Verdict::Gone);
        for s in [203, 301, 302, 400, 401, 403, 404, 501] {
            assert_eq!(classify(s, None), Verdict::Failed, "{s}");
        }
        let wait = Some(Duration::from_secs(7));
        assert_eq!(classify(503, wait), Verdict::Retry { retry_after: wait });
        assert_eq!(classify(500, wait), Verdict::Retry { retry_after: None });
    }

    #[test]
    fn retry_after_is_clamped() {
        let now = chrono::Utc::now();
        assert_eq!(parse_retry_after("0", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(3600))
        );
        let later = crate::protocol::httpdate::format_ms(
            (now + chrono::Duration::seconds(30)).timestamp_millis(),
        )
        .unwrap();
        let got = parse_retry_after(&later, now).unwrap();
        assert!(
            (Duration::from_secs(29)..=Duration::from_secs(30)).contains(&got),
            "{got:?}"
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_follows_the_schedule_with_jitter() {
        let policy = RetryPolicy {
            schedule: vec![Duration::from_secs(1), Duration::from_secs(5)],
            budget: Duration::from_secs(60),
        };
        for _ in 0..100 {
            let d = policy.delay(1, None);
            assert!(
                d >= Duration::from_millis(800) && d <= Duration::from_millis(1200),
                "{d:?}"
            );
            let d = policy.delay(9, None);
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(6),
                "{d:?}"
            );
        }
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(42))),
            Duration::from_secs(42)
        );
    }
}
