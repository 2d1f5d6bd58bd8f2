//! Per-channel de-duplication and ordering checks (docs/api.md §1, §5, §11): delivery is at
//! least once and in order per channel, so a receiver sees a duplicate only after a
//! retry or a replay, and a number below the highest only if something went wrong.

use std::collections::HashMap;

use super::notification::Notification;

/// How a notification's message number relates to those seen before on its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Higher than every number seen on the channel (or the first one seen).
    New,
    /// A number already seen: a retry or a replay of a notification already handled.
    Duplicate,
    /// Lower than the highest number seen, and not remembered as seen. Numbers below
    /// the tracker's window are reported here, since whether they were seen is
    /// forgotten.
    OutOfOrder,
}

/// A new notification whose `X-Watchwire-Previous-Number` is not the last number seen:
/// the notifications in between never arrived (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// What the sender says came before this notification.
    pub previous_number: u64,
    /// What the tracker saw last on the channel.
    pub last_seen: u64,
}

/// The tracker's verdict on one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub arrival: Arrival,
    pub gap: Option<Gap>,
}

impl Observation {
    pub fn is_new(&self) -> bool {
        self.arrival == Arrival::New
    }
    pub fn is_duplicate(&self) -> bool {
        self.arrival == Arrival::Duplicate
    }
    pub fn is_out_of_order(&self) -> bool {
        self.arrival == Arrival::OutOfOrder
    }
}

/// Message numbers remembered per channel, by default.
pub const DEFAULT_WINDOW: usize = 256;
/// Channels remembered, by default.
pub const DEFAULT_MAX_CHANNELS: usize = 4096;

/// Classifies notifications per channel as new, duplicate or out of order, and flags
/// gaps. Memory is bounded: per channel the `window` highest message numbers seen, and
/// at most `max_channels` channels (the least recently seen is forgotten first).
///
/// Not synchronised: share one behind a `Mutex`. A channel id reused for a new channel
/// (after `channels.stop`) starts again at message number 1; call [`Tracker::forget`]
/// when creating it.
#[derive(Debug, Clone)]
pub struct Tracker {
    channels: HashMap<String, History>,
    window: usize,
    max_channels: usize,
    /// Counts observations; orders channels by when they were last seen.
    clock: u64,
}

#[derive(Debug, Clone)]
struct History {
    /// The highest numbers seen, ascending, at most `window` of them.
    recent: Vec<u64>,
    last_used: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::with_limits(DEFAULT_WINDOW, DEFAULT_MAX_CHANNELS)
    }

    /// A tracker remembering `window` numbers per channel and `max_channels` channels
    /// (each at least 1).
    pub fn with_limits(window: usize, max_channels: usize) -> Tracker {
        Tracker {
            channels: HashMap::new(),
            window: window.max(1),
            max_channels: max_channels.max(1),
            clock: 0,
        }
    }

    /// Records a notification and classifies it.
    pub fn observe(&mut self, notification: &Notification) -> Observation {
        self.observe_number(
            &notification.channel_id,
            notification.message_number,
            notification.previous_number,
        )
    }

    /// Records `number` on `channel_id`, with the sender's previous number if known.
    pub fn observe_number(
        &mut self,
        channel_id: &str,
        number: u64,
        previous_number: Option<u64>,
    ) -> Observation {
        self.clock += 1;
        if !self.channels.contains_key(channel_id) && self.channels.len() >= self.max_channels {
            self.evict_least_recently_seen();
        }
        let history = self
            .channels
            .entry(channel_id.to_string())
            .or_insert_with(|| History {
                recent: Vec::new(),
                last_used: 0,
            });
        history.last_used = self.clock;

        let observation = match history.recent.last().copied() {
            // With no history there is nothing to compare a previous number with.
            None => Observation {
                arrival: Arrival::New,
                gap: None,
            },
            Some(highest) if number > highest => Observation {
                arrival: Arrival::New,
                gap: previous_number.filter(|&previous| previous != highest).map(
                    |previous_number| Gap {
                        previous_number,
                        last_seen: highest,
                    },
                ),
            },
            Some(_) if history.recent.binary_search(&number).is_ok() => {
                return Observation {
                    arrival: Arrival::Duplicate,
                    gap: None,
                };
            }
            Some(_) => Observation {
                arrival: Arrival::OutOfOrder,
                gap: None,
            },
        };
        if let Err(at) = history.recent.binary_search(&number) {
            history.recent.insert(at, number);
        }
        if history.recent.len() > self.window {
            history.recent.remove(0);
        }
        observation
    }

    /// Takes back the record of `number` on `channel_id`, after handling a new or
    /// out-of-order notification failed and the sender is told to try again (`5xx`): its
    /// retry is then new again instead of a duplicate, and the last number seen (what a
    /// [`Gap`] compares with) is what it was before. Never retract a duplicate: its
    /// number was recorded by an earlier delivery. A number that pushed an older one out
    /// of the window does not bring it back. Does nothing for a number or channel not
    /// remembered, and does not count as seeing the channel.
    pub fn retract(&mut self, channel_id: &str, number: u64) {
        if let Some(history) = self.channels.get_mut(channel_id) {
            if let Ok(at) = history.recent.binary_search(&number) {
                history.recent.remove(at);
            }
        }
    }

    /// Forgets a channel's history.
    pub fn forget(&mut self, channel_id: &str) {
        self.channels.remove(channel_id);
    }

    /// How many channels are remembered.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    fn evict_least_recently_seen(&mut self) {
        let oldest = self
            .channels
            .iter()
            .min_by_key(|(_, h)| h.last_used)
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            self.channels.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrivals(tracker: &mut Tracker, numbers: &[u64]) -> Vec<Arrival> {
        numbers
            .iter()
            .map(|&n| tracker.observe_number("ch", n, None).arrival)
            .collect()
    }

    #[test]
    fn classifies_new_duplicate_and_out_of_order() {
        use Arrival::*;
        let mut tracker = Tracker::new();
        assert_eq!(
            arrivals(&mut tracker, &[1, 3, 3, 7, 5, 5, 1, 8]),
            [New, New, Duplicate, New, OutOfOrder, Duplicate, Duplicate, New]
        );
    }

    #[test]
    fn channels_are_independent() {
        let mut tracker = Tracker::new();
        assert!(tracker.observe_number("a", 5, None).is_new());
        assert!(tracker.observe_number("b", 1, None).is_new());
        assert!(tracker.observe_number("b", 5, None).is_new());
        assert!(tracker.observe_number("a", 5, None).is_duplicate());
    }

    #[test]
    fn flags_a_gap_when_the_previous_number_is_not_the_last_seen() {
        let mut tracker = Tracker::new();
        assert_eq!(tracker.observe_number("ch", 1, None).gap, None);
        assert_eq!(tracker.observe_number("ch", 4, Some(1)).gap, None);
        let skipped = tracker.observe_number("ch", 9, Some(6));
        assert!(skipped.is_new());
        assert_eq!(
            skipped.gap,
            Some(Gap {
                previous_number: 6,
                last_seen: 4
            })
        );
        // The late one is out of order, and no gap is reported for it.
        let late = tracker.observe_number("ch", 6, Some(4));
        assert_eq!(
            late,
            Observation {
                arrival: Arrival::OutOfOrder,
                gap: None
            }
        );
    }

    #[test]
    fn no_gap_without_history() {
        let mut tracker = Tracker::new();
        assert_eq!(
            tracker.observe_number("ch", 9, Some(6)),
            Observation {
                arrival: Arrival::New,
                gap: None
            }
        );
    }

    #[test]
    fn remembers_a_bounded_window_per_channel() {
        let mut tracker = Tracker::with_limits(3, 10);
        arrivals(&mut tracker, &[1, 2, 3, 4]);
        assert!(tracker.observe_number("ch", 2, None).is_duplicate());
        // 1 fell out of the window: it can only be reported as out of order.
        assert!(tracker.observe_number("ch", 1, None).is_out_of_order());
        assert_eq!(tracker.channels["ch"].recent, [2, 3, 4]);
    }

    #[test]
    fn forgets_the_least_recently_seen_channel_first() {
        let mut tracker = Tracker::with_limits(8, 2);
        tracker.observe_number("a", 1, None);
        tracker.observe_number("b", 1, None);
        tracker.observe_number("a", 2, None);
        tracker.observe_number("c", 1, None); // evicts b
        assert_eq!(tracker.channel_count(), 2);
        assert!(tracker.observe_number("a", 2, None).is_duplicate());
        assert!(
            tracker.observe_number("b", 1, None).is_new(),
            "b was forgotten"
        );
    }

    #[test]
    fn retract_makes_the_retry_of_an_unhandled_notification_new_again() {
        let mut tracker = Tracker::new();
        tracker.observe_number("ch", 1, None);
        assert!(tracker.observe_number("ch", 2, Some(1)).is_new());
        tracker.retract("ch", 2);
        assert_eq!(tracker.channels["ch"].recent, [1]);
        // 1 is the last number seen again: the retry is new, and no gap precedes it.
        assert_eq!(
            tracker.observe_number("ch", 2, Some(1)),
            Observation {
                arrival: Arrival::New,
                gap: None
            }
        );
        tracker.retract("nobody", 1);
        tracker.retract("ch", 99);
        assert_eq!(tracker.channels["ch"].recent, [1, 2]);
        assert_eq!(tracker.channel_count(), 1, "retract creates no channel");
    }

    #[test]
    fn retract_of_an_out_of_order_number_keeps_it_out_of_order() {
        let mut tracker = Tracker::new();
        arrivals(&mut tracker, &[1, 2, 3]);
        tracker.retract("ch", 3);
        assert_eq!(
            tracker.observe_number("ch", 3, Some(2)),
            Observation {
                arrival: Arrival::New,
                gap: None
            }
        );
        tracker.retract("ch", 2);
        assert!(tracker.observe_number("ch", 2, None).is_out_of_order());
        assert!(tracker.observe_number("ch", 2, None).is_duplicate());
        assert_eq!(tracker.channels["ch"].recent, [1, 2, 3]);
    }

    #[test]
    fn retract_of_the_only_number_leaves_no_history_to_compare_with() {
        let mut tracker = Tracker::new();
        tracker.observe_number("ch", 5, None);
        tracker.retract("ch", 5);
        assert_eq!(tracker.channel_count(), 1);
        assert_eq!(
            tracker.observe_number("ch", 5, Some(4)),
            Observation {
                arrival: Arrival::New,
                gap: None
            }
        );
    }

    #[test]
    fn retract_does_not_bring_back_what_fell_out_of_the_window() {
        let mut tracker = Tracker::with_limits(2, 10);
        arrivals(&mut tracker, &[1, 2, 3]);
        tracker.retract("ch", 3);
        assert_eq!(tracker.channels["ch"].recent, [2]);
        // 1 was pushed out by 3 and stays forgotten: out of order, not a duplicate.
        assert!(tracker.observe_number("ch", 1, None).is_out_of_order());
    }

    #[test]
    fn retract_does_not_count_as_seeing_the_channel() {
        let mut tracker = Tracker::with_limits(8, 2);
        tracker.observe_number("a", 1, None);
        tracker.observe_number("b", 1, None);
        tracker.retract("a", 1);
        tracker.observe_number("c", 1, None); // evicts a, the least recently seen
        assert!(!tracker.channels.contains_key("a"));
        assert!(tracker.channels.contains_key("b"));
    }

    #[test]
    fn forget_starts_a_channel_over() {
        let mut tracker = Tracker::new();
        tracker.observe_number("ch", 5, None);
        tracker.forget("ch");
        assert!(tracker.observe_number("ch", 1, None).is_new());
    }
}
