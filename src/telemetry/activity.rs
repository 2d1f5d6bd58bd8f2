//! What this node did in the last hour, per wall-clock minute (docs/api.md §12.2): the
//! notifications it delivered, its delivery attempts that failed, and the events
//! published through it. In memory only, per node and per gateway (not process-wide
//! like the Prometheus recorder): a restart starts from nothing, and a cluster's
//! figures are the sum of its nodes' (`api/overview.rs`).

use super::minutes::{last_hour_starts, MinuteCounts, MINUTES};
use crate::model::now_ms;

/// This node's counts of the last hour.
#[derive(Debug, Default)]
pub struct Activity {
    delivered: MinuteCounts,
    failed: MinuteCounts,
    published: MinuteCounts,
}

/// One minute of [`Activity`]: the minute's start (ms since the epoch) and its counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    pub start_ms: i64,
    pub delivered: u64,
    pub failed: u64,
    pub published: u64,
}

impl Activity {
    /// A delivery attempt ended: `delivered`, or failed (to be retried, failed for
    /// good, or `410 Gone`). A delivered notification is one attempt, so `delivered`
    /// counts notifications and `failed` counts attempts.
    pub fn attempted(&self, delivered: bool) {
        let series = if delivered {
            &self.delivered
        } else {
            &self.failed
        };
        series.add(now_ms(), 1);
    }

    /// Events appended to the log through this node.
    pub fn published(&self, events: usize) {
        self.published.add(now_ms(), events as u64);
    }

    /// The last hour up to the minute `now_ms` falls in, oldest first.
    pub fn last_hour(&self, now_ms: i64) -> [Minute; MINUTES] {
        let starts = last_hour_starts(now_ms);
        let delivered = self.delivered.last_hour(now_ms);
        let failed = self.failed.last_hour(now_ms);
        let published = self.published.last_hour(now_ms);
        std::array::from_fn(|i| Minute {
            start_ms: starts[i],
            delivered: delivered[i],
            failed: failed[i],
            published: published[i],
        })
    }
}

/// Adds another node's minutes into `hour`, each to the minute with the same start; a
/// minute `hour` does not hold (the other node's clock is a minute off) is left out.
pub fn add_minutes(hour: &mut [Minute], other: &[Minute]) {
    for theirs in other {
        if let Some(ours) = hour.iter_mut().find(|m| m.start_ms == theirs.start_ms) {
            ours.delivered += theirs.delivered;
            ours.failed += theirs.failed;
            ours.published += theirs.published;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::minutes::MINUTE_MS;

    #[test]
    fn each_series_counts_its_own_and_the_hour_ends_with_the_current_minute() {
        let activity = Activity::default();
        activity.attempted(true);
        activity.attempted(true);
        activity.attempted(false);
        activity.published(5);
        let now = now_ms();
        let hour = activity.last_hour(now);
        let last = hour[MINUTES - 1];
        assert!(last.start_ms <= now && now < last.start_ms + MINUTE_MS);
        // The counts went in this minute or, if it just turned, the one before.
        let total = |f: fn(&Minute) -> u64| hour.iter().map(f).sum::<u64>();
        assert_eq!(total(|m| m.delivered), 2);
        assert_eq!(total(|m| m.failed), 1);
        assert_eq!(total(|m| m.published), 5);
        assert!(hour[..MINUTES - 2].iter().all(|m| *m
            == Minute {
                start_ms: m.start_ms,
                ..Minute::default()
            }));
    }

    #[test]
    fn another_nodes_minutes_add_up_by_their_start() {
        let minute = |start_ms, delivered| Minute {
            start_ms,
            delivered,
            failed: 1,
            published: 2,
        };
        let mut ours = [minute(0, 1), minute(MINUTE_MS, 10)];
        add_minutes(
            &mut ours,
            &[minute(MINUTE_MS, 100), minute(2 * MINUTE_MS, 1000)],
        );
        assert_eq!(ours[0], minute(0, 1), "a minute the other did not send");
        assert_eq!(
            ours[1],
            Minute {
                start_ms: MINUTE_MS,
                delivered: 110,
                failed: 2,
                published: 4
            }
        );
    }
}
