//! A count per wall-clock minute over the last hour, kept in memory: a ring of
//! [`MINUTES`] buckets, each a minute's number and its count packed into one atomic
//! word, so that counting is one compare-and-swap and never waits on a lock (it runs
//! on every delivery attempt). A bucket is reused for the same minute of the next
//! hour: the first count of that minute starts it again from zero, and a reader
//! shows a bucket only for the minute it was filled in, so a minute nobody counted
//! in reads 0 whatever its bucket last held.

use std::sync::atomic::{AtomicU64, Ordering};

/// Minutes kept: the last hour, the current (still filling) minute included.
pub const MINUTES: usize = 60;
/// A minute in milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// The minute (since the Unix epoch) that a time in ms since the epoch falls in:
/// minutes begin on the wall clock's whole minutes.
pub fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS)
}

/// Counts per minute of the last hour.
#[derive(Debug)]
pub struct MinuteCounts {
    /// Bucket `minute % MINUTES`: the minute's number (high 32 bits) and its count
    /// (low 32 bits; more than four billion in one minute saturates).
    buckets: [AtomicU64; MINUTES],
}

impl Default for MinuteCounts {
    fn default() -> Self {
        MinuteCounts {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn pack(minute: u32, count: u32) -> u64 {
    (u64::from(minute) << 32) | u64::from(count)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// The bucket a minute goes in.
fn slot(minute: i64) -> usize {
    minute.rem_euclid(MINUTES as i64) as usize
}

/// A minute's number as a bucket holds it; a time before 1970 (a broken clock) is
/// minute 0, and a time past the year 10000 the last one a bucket can name.
fn tag(minute: i64) -> u32 {
    minute.clamp(0, i64::from(u32::MAX)) as u32
}

impl MinuteCounts {
    /// Adds `n` to the minute `at_ms` falls in. A count for a minute older than the one
    /// its bucket holds (the clock stepped back a whole hour) is dropped.
    pub fn add(&self, at_ms: i64, n: u64) {
        let minute = minute_of(at_ms);
        let (tag, n) = (tag(minute), u32::try_from(n).unwrap_or(u32::MAX));
        let bucket = &self.buckets[slot(minute)];
        let mut word = bucket.load(Ordering::Relaxed);
        loop {
            let (held, count) = unpack(word);
            let next = match held.cmp(&tag) {
                std::cmp::Ordering::Equal => pack(tag, count.saturating_add(n)),
                std::cmp::Ordering::Less => pack(tag, n),
                std::cmp::Ordering::Greater => return,
            };
            match bucket.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(current) => word = current,
            }
        }
    }

    /// The count of each of the [`MINUTES`] minutes up to and including the one `now_ms`
    /// falls in, oldest first.
    pub fn last_hour(&self, now_ms: i64) -> [u64; MINUTES] {
        let current = minute_of(now_ms);
        std::array::from_fn(|i| {
            let minute = current - (MINUTES - 1 - i) as i64;
            let (held, count) = unpack(self.buckets[slot(minute)].load(Ordering::Relaxed));
            if held == tag(minute) {
                u64::from(count)
            } else {
                0
            }
        })
    }
}

/// The start, in ms since the epoch, of each of the [`MINUTES`] minutes up to and
/// including the one `now_ms` falls in, oldest first: what [`MinuteCounts::last_hour`]
/// counts.
pub fn last_hour_starts(now_ms: i64) -> [i64; MINUTES] {
    let current = minute_of(now_ms);
    std::array::from_fn(|i| (current - (MINUTES - 1 - i) as i64) * MINUTE_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T12:00:00Z, a whole minute.
    const NOON: i64 = 1_796_040_000_000;

    #[test]
    fn minutes_begin_on_the_wall_clocks_whole_minutes() {
        assert_eq!(NOON % MINUTE_MS, 0);
        let counts = MinuteCounts::default();
        counts.add(NOON - 1, 1); // 11:59:59.999
        counts.add(NOON, 10); // 12:00:00.000
        counts.add(NOON + MINUTE_MS - 1, 100); // 12:00:59.999
        let hour = counts.last_hour(NOON + 30_000);
        assert_eq!(hour[MINUTES - 1], 110, "12:00 holds its own two counts");
        assert_eq!(hour[MINUTES - 2], 1, "11:59 holds the one before");
        assert_eq!(hour[..MINUTES - 2].iter().sum::<u64>(), 0);
        let starts = last_hour_starts(NOON + 30_000);
        assert_eq!(starts[MINUTES - 1], NOON);
        assert_eq!(starts[0], NOON - 59 * MINUTE_MS);
        assert!(starts.windows(2).all(|w| w[1] - w[0] == MINUTE_MS));
        assert_eq!(
            last_hour_starts(NOON),
            last_hour_starts(NOON + MINUTE_MS - 1)
        );
    }

    #[test]
    fn a_minute_with_nothing_reads_zero_between_minutes_that_counted() {
        let counts = MinuteCounts::default();
        counts.add(NOON, 3);
        counts.add(NOON + 2 * MINUTE_MS, 5);
        let hour = counts.last_hour(NOON + 2 * MINUTE_MS + 1);
        assert_eq!(&hour[MINUTES - 3..], &[3, 0, 5]);
        assert_eq!(MinuteCounts::default().last_hour(NOON), [0; MINUTES]);
    }

    #[test]
    fn a_bucket_starts_again_from_zero_an_hour_later() {
        let counts = MinuteCounts::default();
        counts.add(NOON, 7);
        counts.add(NOON + 59 * MINUTE_MS, 2);
        // 12:00 is still the oldest minute of the hour up to 12:59.
        let hour = counts.last_hour(NOON + 59 * MINUTE_MS);
        assert_eq!((hour[0], hour[MINUTES - 1]), (7, 2));
        // At 13:00 it has left the hour: its bucket is not shown for 13:00...
        let later = NOON + 60 * MINUTE_MS;
        assert_eq!(counts.last_hour(later)[MINUTES - 1], 0);
        // ...and the first count of 13:00 replaces what 12:00 left in it.
        counts.add(later, 1);
        let hour = counts.last_hour(later);
        assert_eq!(hour[MINUTES - 1], 1);
        assert_eq!(hour.iter().sum::<u64>(), 3, "12:59's 2 and 13:00's 1");
        // Long after, nothing of that hour shows.
        assert_eq!(counts.last_hour(later + 3 * 60 * MINUTE_MS), [0; MINUTES]);
    }

    #[test]
    fn a_count_for_an_hour_its_bucket_has_left_behind_is_dropped() {
        let counts = MinuteCounts::default();
        counts.add(NOON + 60 * MINUTE_MS, 4);
        counts.add(NOON, 9); // the clock stepped back an hour
        assert_eq!(counts.last_hour(NOON + 60 * MINUTE_MS)[MINUTES - 1], 4);
        assert_eq!(counts.last_hour(NOON)[MINUTES - 1], 0);
    }

    #[test]
    fn counts_from_many_threads_all_land() {
        let counts = std::sync::Arc::new(MinuteCounts::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counts = counts.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| counts.add(NOON, 1)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counts.last_hour(NOON)[MINUTES - 1], 40_000);
    }
}
