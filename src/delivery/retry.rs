//! When to try a notification again: the backoff schedule with jitter and the retry
//! budget (docs/api.md §5).

use std::time::Duration;

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
