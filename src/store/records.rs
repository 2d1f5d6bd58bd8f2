//! Delivery bookkeeping (progress, outcomes, endpoint health) waiting for a commit.
//!
//! Workers record after every attempt, so this is the hottest write path. Records go
//! into a shared buffer instead of through the writer's queue: adding one is a short
//! lock, with no thread wake-up, and only the first record after a commit nudges the
//! writer. The writer takes the whole buffer into its next transaction — a publish's,
//! or its own after at most `RECORDS_DELAY`. Losing uncommitted records in a crash
//! only means a redelivery with the same message numbers.

use std::collections::HashMap;
use std::mem;
use std::sync::Mutex;

use crate::model::{NewEvent, Outcome, Seq};

/// How far a channel has got: past every event up to `through`, the last it sent
/// (when this record sent one) at `sent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub through: Seq,
    pub sent: Option<Seq>,
}

#[derive(Default)]
pub struct Records {
    /// Progress per channel, coalesced to the highest.
    pub progress: HashMap<i64, Progress>,
    /// The latest outcome per notification.
    pub outcomes: HashMap<(i64, Seq), Outcome>,
    /// The latest health per channel: (failing since, disabled).
    pub health: HashMap<i64, (Option<i64>, bool)>,
    /// Operational events about channels (docs/api.md §18), in order: appended in the
    /// transaction that records the change they tell of, so both are stored or neither.
    pub events: Vec<NewEvent>,
}

impl Records {
    pub fn len(&self) -> usize {
        self.progress.len() + self.outcomes.len() + self.health.len() + self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add_progress(&mut self, pk: i64, progress: Progress) {
        let entry = self.progress.entry(pk).or_insert(progress);
        entry.through = entry.through.max(progress.through);
        entry.sent = entry.sent.max(progress.sent);
    }

    /// Puts back records whose commit failed, under any newer ones added meanwhile.
    fn restore(&mut self, older: Records) {
        for (pk, progress) in older.progress {
            self.add_progress(pk, progress);
        }
        for (key, outcome) in older.outcomes {
            self.outcomes.entry(key).or_insert(outcome);
        }
        for (pk, health) in older.health {
            self.health.entry(pk).or_insert(health);
        }
        let newer = mem::replace(&mut self.events, older.events);
        self.events.extend(newer);
    }
}

/// The buffer shared by the store's callers and its writer thread.
#[derive(Default)]
pub struct PendingRecords(Mutex<Records>);

impl PendingRecords {
    /// Adds a record; `true` when the buffer was empty, i.e. the writer needs a nudge.
    fn add(&self, add: impl FnOnce(&mut Records)) -> bool {
        let mut records = self.0.lock().unwrap();
        let was_empty = records.is_empty();
        add(&mut records);
        was_empty
    }

    pub fn progress(&self, pk: i64, progress: Progress) -> bool {
        self.add(|r| r.add_progress(pk, progress))
    }

    pub fn outcome(&self, outcome: Outcome) -> bool {
        self.add(|r| {
            r.outcomes
                .insert((outcome.channel_pk, outcome.seq), outcome);
        })
    }

    /// A channel's health, and the operational event its change makes, if any.
    pub fn health(
        &self,
        pk: i64,
        failing_since_ms: Option<i64>,
        disabled: bool,
        event: Option<NewEvent>,
    ) -> bool {
        self.add(|r| {
            r.health.insert(pk, (failing_since_ms, disabled));
            r.events.extend(event);
        })
    }

    /// An operational event that rides along with the next transaction.
    pub fn event(&self, event: NewEvent) -> bool {
        self.add(|r| r.events.push(event))
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn take(&self) -> Records {
        mem::take(&mut *self.0.lock().unwrap())
    }

    pub fn restore(&self, older: Records) {
        self.0.lock().unwrap().restore(older);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OutcomeStatus;

    fn outcome(pk: i64, seq: Seq, attempts: u32) -> Outcome {
        Outcome {
            channel_pk: pk,
            seq,
            message_number: seq + 1,
            state: crate::model::ResourceState::Exists,
            status: OutcomeStatus::Pending,
            attempts,
            last_status: Some(503),
            last_error: None,
            at_ms: 0,
            next_retry_ms: None,
            recent: vec![],
            first_attempt_ms: None,
        }
    }

    #[test]
    fn only_the_first_record_after_a_take_asks_for_a_nudge() {
        let pending = PendingRecords::default();
        assert!(pending.progress(1, sent(5)));
        assert!(!pending.outcome(outcome(1, 5, 1)));
        assert!(!pending.health(1, Some(10), false, None));
        assert_eq!(pending.len(), 3);
        let taken = pending.take();
        assert_eq!(taken.len(), 3);
        assert_eq!(pending.len(), 0);
        assert!(pending.progress(1, sent(6)));
    }

    /// Operational events of a commit that failed go back before those added since,
    /// so that they are appended in the order the changes happened.
    #[test]
    fn events_of_a_failed_commit_keep_their_place() {
        let event = |resource: &str| NewEvent {
            resource: resource.into(),
            state: crate::model::ResourceState::Exists,
            data: None,
            changed: vec![],
            metadata: None,
            trace: None,
        };
        let pending = PendingRecords::default();
        pending.health(1, Some(10), false, Some(event("/first")));
        let failed = pending.take();
        pending.event(event("/later"));
        pending.restore(failed);
        let order: Vec<String> = pending
            .take()
            .events
            .into_iter()
            .map(|e| e.resource)
            .collect();
        assert_eq!(order, ["/first", "/later"]);
    }

    fn sent(seq: Seq) -> Progress {
        Progress {
            through: seq,
            sent: Some(seq),
        }
    }

    #[test]
    fn progress_only_moves_forward() {
        let pending = PendingRecords::default();
        pending.progress(1, sent(9));
        pending.progress(1, sent(4));
        assert_eq!(pending.take().progress[&1], sent(9));
        // Moving past events a filter dropped keeps the last one sent.
        pending.progress(1, sent(4));
        pending.progress(
            1,
            Progress {
                through: 8,
                sent: None,
            },
        );
        assert_eq!(
            pending.take().progress[&1],
            Progress {
                through: 8,
                sent: Some(4)
            }
        );
    }

    #[test]
    fn a_failed_commit_puts_records_back_under_newer_ones() {
        let pending = PendingRecords::default();
        pending.progress(1, sent(5));
        pending.outcome(outcome(1, 5, 1));
        pending.health(1, Some(10), false, None);
        let failed = pending.take();
        // Newer records arrive while the commit fails.
        pending.progress(1, sent(3));
        pending.outcome(outcome(1, 5, 2));
        pending.health(1, None, false, None);
        pending.restore(failed);
        let records = pending.take();
        assert_eq!(records.progress[&1], sent(5), "the higher progress wins");
        assert_eq!(
            records.outcomes[&(1, 5)].attempts,
            2,
            "the newer outcome wins"
        );
        assert_eq!(records.health[&1], (None, false), "the newer health wins");
    }
}
