//! One channel's delivery: its queue state and what comes next (here), its worker
//! (`worker.rs`), one notification's delivery with its retries (`deliver.rs`), what
//! each attempt leaves behind (`record.rs`), and its endpoint's health (`health.rs`).
//!
//! A channel is a cursor into the log (`progress_seq`) plus a bounded in-memory queue of
//! the matched events after it. The router offers each new event; when the queue is
//! full the channel switches to *backlog* mode, the router stops queueing for it, and
//! its worker reads pending events from the store instead, so pending work never
//! grows memory. A worker task exists only while the channel has work.
//!
//! Invariants:
//! - events are delivered in `seq` order (a replay re-sends an older range first), one
//!   notification at a time;
//! - no attempt starts once `cancel` is cancelled (stop, 410, expiry), while the
//!   channel is disabled or being handed over, or without this node's lease: checked
//!   again right before each attempt starts (`deliver.rs`);
//! - `progress_seq` (and the store's progress) only moves past an event once it was
//!   delivered or failed for good;
//! - `owed` counts the notifications the channel still owes (its sync, and every
//!   matched event after `progress_seq`, queued or left in the store): the channel's
//!   `pendingCount` and its share of the `watchwire_pending_notifications` gauge;
//! - an idle channel costs an `Outbox` and nothing else: what only some channels need
//!   is boxed, and a million idle channels must stay small (BENCHMARKS.md);
//! - its `ChannelSpec` is the channel as this node knows it, one copy: a renewal
//!   (docs/api.md §8.6) replaces it under the channel's lock, and the router, the
//!   worker's fence and every notification rendered after that see the new expiration.

mod deliver;
mod health;
mod record;
mod worker;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use self::health::Failing;
pub use self::record::next_attempt_ms;
use super::cancel::Cancel;
use super::DeliveryContext;
use crate::filter::Verdicts;
use crate::model::{ChannelSpec, Failure, Outcome, Seq, SharedEvent, StoredChannel};

/// Events a channel holds in memory before it switches to reading from the store.
pub const QUEUE_CAPACITY: usize = 1024;

pub struct Outbox {
    pub pk: i64,
    pub start_seq: Seq,
    pub cancel: Cancel,
    state: Mutex<OutboxState>,
}

struct OutboxState {
    /// What the channel is ([`Outbox::spec`]). Only its expiration ever changes (a
    /// renewal), and then the whole is replaced: whoever holds the old one holds a
    /// consistent, older channel. Kept under the lock rather than beside it, so that a
    /// million idle channels do not pay for a lock of its own.
    spec: Arc<ChannelSpec>,
    queue: VecDeque<SharedEvent>,
    /// Done with every matched event at or below this: the last notification sent or
    /// failed for good (the previous number of the next). What a filter made it move
    /// past without sending is only in `tail_seq` and the store's progress.
    progress_seq: Seq,
    /// Highest seq queued or done: offers at or below it are already covered.
    tail_seq: Seq,
    /// Backlog mode: pending events beyond the queue live only in the store.
    backlog: bool,
    /// Highest seq the router skipped while in backlog mode.
    skipped_max: Seq,
    sync_pending: bool,
    /// Notifications still owed (see the module's invariants).
    owed: u64,
    /// A replay in progress (rare, so boxed: idle channels stay small).
    replay: Option<Box<Replay>>,
    disabled: bool,
    /// Where a failing endpoint stands (boxed: most channels never fail, and an idle
    /// channel's size is what a million of them cost).
    failing: Option<Box<Failing>>,
    /// Where the delivery of an owed notification stood when it stopped before its
    /// end: a restart, or the channel being disabled (boxed: rare). The notification
    /// resumes its attempt count, recent attempts and retry budget.
    resume: Option<Box<Outcome>>,
    /// `params.maxRate`: the next attempt may start at this instant (boxed: rare).
    paced_until: Option<Box<Instant>>,
    /// Being handed to another node: no attempt starts any more.
    draining: bool,
    running: bool,
}

/// Re-sending the matched events in `(after, upto]` (docs/api.md §8); `queue` holds the
/// next page of them.
struct Replay {
    after: Seq,
    upto: Seq,
    queue: VecDeque<SharedEvent>,
}

/// The delivery state of a channel as an operator sees it (docs/api.md §8).
#[derive(Debug, Clone)]
pub struct DeliverySnapshot {
    pub progress_seq: Seq,
    /// Notifications still owed: the sync if not done, and every matched event after
    /// `progress_seq`.
    pub pending: u64,
    pub sync_pending: bool,
    pub replaying: bool,
    pub enabled: bool,
    pub failing_since_ms: Option<i64>,
    pub last_error: Option<Failure>,
    pub next_retry_ms: Option<i64>,
}

/// What the worker does next.
#[derive(Debug, Clone, PartialEq)]
enum Next {
    Sync,
    Event(SharedEvent),
    Replay(SharedEvent),
    /// Load the replay's next page of events in `(after, upto]`.
    LoadReplay(Seq, Seq),
    /// Backlog mode: load the pending events after this seq from the store.
    Refill(Seq),
}

impl OutboxState {
    /// Whether the channel's expiration has passed: no attempt starts any more.
    fn expired(&self, now: i64) -> bool {
        self.spec.expiration_ms.is_some_and(|ms| ms <= now)
    }

    /// What to send next, in priority order: the sync opens the channel; a replay
    /// re-sends an older range before anything newer; then the queue, then the
    /// backlog in the store. `None`: nothing to do.
    fn next(&self) -> Option<Next> {
        if self.sync_pending {
            return Some(Next::Sync);
        }
        if let Some(replay) = &self.replay {
            return Some(match replay.queue.front() {
                Some(event) => Next::Replay(event.clone()),
                None => Next::LoadReplay(replay.after, replay.upto),
            });
        }
        match self.queue.front() {
            Some(event) => Some(Next::Event(event.clone())),
            // From what it has read, not what it delivered: with a filter, what lies
            // between was read and is not the channel's.
            None if self.backlog => Some(Next::Refill(self.tail_seq.max(self.progress_seq))),
            None => None,
        }
    }

    /// What it owes, counted afresh from what it holds, once nothing it owes is left
    /// in the store only: the sync, and the queue.
    fn recount(&mut self) {
        let exact = u64::from(self.sync_pending) + self.queue.len() as u64;
        let gauge = metrics::gauge!("watchwire_pending_notifications");
        gauge.increment(exact as f64 - self.owed as f64);
        self.owed = exact;
    }

    /// One owed notification is done (delivered or failed for good).
    fn settle_one(&mut self) {
        self.owed = self.owed.saturating_sub(1);
        metrics::gauge!("watchwire_pending_notifications").decrement(1.0);
    }
}

impl Outbox {
    pub fn new(channel: StoredChannel) -> Arc<Self> {
        let owed = u64::from(!channel.synced);
        Outbox::with_state(channel, owed, None)
    }

    /// A channel this node takes over from another (or from none): it may owe events
    /// committed before this node saw them, so it starts in backlog mode and reads
    /// them from the store. `owed` is what it owed when it was claimed, counting every
    /// event up to `counted_through`, which offers then skip.
    pub fn adopted(channel: StoredChannel, owed: u64, counted_through: Seq) -> Arc<Self> {
        Outbox::with_state(channel, owed, Some(counted_through))
    }

    fn with_state(channel: StoredChannel, owed: u64, backlog_through: Option<Seq>) -> Arc<Self> {
        let handle = Arc::new(Outbox {
            pk: channel.pk,
            start_seq: channel.start_seq,
            cancel: Cancel::default(),
            state: Mutex::new(OutboxState {
                spec: channel.spec,
                queue: VecDeque::new(),
                progress_seq: channel.sent_seq.unwrap_or(channel.progress_seq),
                tail_seq: channel.progress_seq,
                backlog: backlog_through.is_some(),
                skipped_max: backlog_through.unwrap_or(0),
                sync_pending: !channel.synced,
                owed,
                replay: None,
                disabled: channel.disabled,
                failing: channel.failing_since_ms.map(|since| {
                    Box::new(Failing {
                        since_ms: Some(since),
                        ..Failing::default()
                    })
                }),
                resume: None,
                paced_until: None,
                draining: false,
                running: false,
            }),
        });
        metrics::gauge!("watchwire_pending_notifications").increment(owed as f64);
        if backlog_through.is_some() {
            metrics::gauge!("watchwire_channels_backlogged").increment(1.0);
        }
        handle
    }

    /// Stops starting attempts, to hand the channel to another node; an attempt in
    /// flight finishes, a worker waiting (for a retry, its host, the lease) stops
    /// waiting. `true` once the worker has stopped.
    pub fn drain(&self) -> bool {
        let mut st = self.state.lock().unwrap();
        if !st.draining {
            st.draining = true;
            self.cancel.nudge();
        }
        !st.running
    }

    /// The channel stays on this node after all (its handover failed): delivery
    /// resumes.
    pub fn undrain(self: &Arc<Self>, ctx: &Arc<DeliveryContext>) {
        let mut st = self.state.lock().unwrap();
        st.draining = false;
        self.ensure_running(&mut st, ctx);
    }

    /// Whether its worker is running (an attempt in flight, or waiting to start one).
    pub fn busy(&self) -> bool {
        self.state.lock().unwrap().running
    }

    fn draining(&self) -> bool {
        self.state.lock().unwrap().draining
    }

    /// The channel as this node knows it now (a renewal replaces it).
    pub fn spec(&self) -> Arc<ChannelSpec> {
        self.state.lock().unwrap().spec.clone()
    }

    /// The channel now expires at `expiration_ms` (docs/api.md §8.6): from now on the
    /// fence lets attempts start until then, and every notification rendered carries
    /// it. The store holds it already; this is the node's copy catching up. A worker
    /// that stopped at the old expiration starts again.
    pub fn renew(self: &Arc<Self>, expiration_ms: i64, ctx: &Arc<DeliveryContext>) {
        let mut st = self.state.lock().unwrap();
        if st.spec.expiration_ms != Some(expiration_ms) {
            let mut spec = (*st.spec).clone();
            spec.expiration_ms = Some(expiration_ms);
            st.spec = Arc::new(spec);
        }
        self.ensure_running(&mut st, ctx);
    }

    /// Offers an event the channel covers (in log order): queued when its filter
    /// matches it (the worker starts when needed), passed otherwise. `verdicts` decides
    /// each distinct filter once per event, whatever the number of channels holding it.
    pub fn route(
        self: &Arc<Self>,
        event: &SharedEvent,
        verdicts: &mut Verdicts<'_>,
        ctx: &Arc<DeliveryContext>,
    ) {
        let mut st = self.state.lock().unwrap();
        if verdicts.admits(st.spec.filter.as_ref()) {
            self.offer(&mut st, event, ctx);
        } else {
            self.pass(&mut st, event.seq, ctx);
        }
    }

    /// Offers a matched event. Starts the worker when needed.
    fn offer(
        self: &Arc<Self>,
        st: &mut OutboxState,
        event: &SharedEvent,
        ctx: &Arc<DeliveryContext>,
    ) {
        // Recovery and the live feed may both offer an event: count it once.
        if event.seq <= st.tail_seq.max(st.skipped_max) {
            return;
        }
        st.owed += 1;
        metrics::gauge!("watchwire_pending_notifications").increment(1.0);
        if st.backlog || st.queue.len() >= QUEUE_CAPACITY {
            if !st.backlog {
                st.backlog = true;
                metrics::gauge!("watchwire_channels_backlogged").increment(1.0);
            }
            st.skipped_max = event.seq;
        } else {
            st.queue.push_back(event.clone());
            st.tail_seq = event.seq;
            metrics::gauge!("watchwire_queued_notifications").increment(1.0);
        }
        self.ensure_running(st, ctx);
    }

    /// An event its filter does not match: while it owes nothing, it moves past it, so
    /// that what it has not sent neither holds back pruning nor is read again after a
    /// restart.
    fn pass(&self, st: &mut OutboxState, seq: Seq, ctx: &Arc<DeliveryContext>) {
        let idle = st.queue.is_empty() && !st.backlog && !st.sync_pending && st.replay.is_none();
        if idle && seq > st.tail_seq {
            st.tail_seq = seq;
            ctx.store.record_passed(self.pk, seq);
        }
    }

    /// Starts the worker if the channel has work and none runs.
    pub fn kick(self: &Arc<Self>, ctx: &Arc<DeliveryContext>) {
        let mut st = self.state.lock().unwrap();
        self.ensure_running(&mut st, ctx);
    }

    fn ensure_running(self: &Arc<Self>, st: &mut OutboxState, ctx: &Arc<DeliveryContext>) {
        if st.next().is_some()
            && !st.running
            && !st.draining
            && !st.disabled
            && !self.cancel.is_cancelled()
        {
            st.running = true;
            let (me, ctx2) = (self.clone(), ctx.clone());
            ctx.tasks.spawn(async move { me.work(ctx2).await });
        }
    }

    /// Marks the channel as stopped: nothing more is attempted.
    pub fn close(&self) {
        self.cancel.cancel();
        let mut st = self.state.lock().unwrap();
        metrics::gauge!("watchwire_queued_notifications").decrement(st.queue.len() as f64);
        metrics::gauge!("watchwire_pending_notifications").decrement(st.owed as f64);
        st.owed = 0;
        st.queue.clear();
        if st.backlog {
            st.backlog = false;
            metrics::gauge!("watchwire_channels_backlogged").decrement(1.0);
        }
    }

    pub fn snapshot(&self) -> DeliverySnapshot {
        let st = self.state.lock().unwrap();
        DeliverySnapshot {
            progress_seq: st.progress_seq,
            pending: st.owed,
            sync_pending: st.sync_pending,
            replaying: st.replay.is_some(),
            enabled: !st.disabled,
            failing_since_ms: st.failing.as_ref().and_then(|f| f.since_ms),
            last_error: st.failing.as_ref().and_then(|f| f.last_error.clone()),
            next_retry_ms: st.failing.as_ref().and_then(|f| f.next_retry_ms),
        }
    }

    /// Re-sends what the channel matched after `since`, up to where it has got, with
    /// the original message numbers; then carries on. `false` when there is nothing.
    pub fn replay(self: &Arc<Self>, since: Seq, ctx: &Arc<DeliveryContext>) -> bool {
        let mut st = self.state.lock().unwrap();
        let from = since.max(self.start_seq);
        if from >= st.progress_seq {
            return false;
        }
        st.replay = Some(Box::new(Replay {
            after: from,
            upto: st.progress_seq,
            queue: VecDeque::new(),
        }));
        self.ensure_running(&mut st, ctx);
        true
    }

    /// Gives the channel the stored state of a delivery that a restart interrupted.
    pub fn resume(&self, awaiting_retry: Outcome) {
        self.state.lock().unwrap().resume = Some(Box::new(awaiting_retry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;

    const SIZE_OF_OUTBOX: usize = 176;

    fn event(seq: Seq) -> SharedEvent {
        Event::at(seq)
    }

    fn state() -> OutboxState {
        OutboxState {
            spec: Arc::new(crate::store::conformance::channel("o", "c", "/r")),
            queue: VecDeque::new(),
            progress_seq: 5,
            tail_seq: 5,
            backlog: false,
            skipped_max: 0,
            sync_pending: false,
            owed: 0,
            replay: None,
            disabled: false,
            failing: None,
            resume: None,
            paced_until: None,
            draining: false,
            running: false,
        }
    }

    #[test]
    fn what_to_send_next_goes_sync_replay_queue_backlog() {
        let mut st = state();
        assert_eq!(st.next(), None, "an idle channel has nothing to do");
        st.backlog = true;
        assert_eq!(st.next(), Some(Next::Refill(5)));
        st.queue.push_back(event(6));
        assert_eq!(st.next(), Some(Next::Event(event(6))));
        st.replay = Some(Box::new(Replay {
            after: 1,
            upto: 5,
            queue: VecDeque::new(),
        }));
        assert_eq!(st.next(), Some(Next::LoadReplay(1, 5)));
        st.replay.as_mut().unwrap().queue.push_back(event(3));
        assert_eq!(st.next(), Some(Next::Replay(event(3))));
        st.sync_pending = true;
        assert_eq!(st.next(), Some(Next::Sync), "the sync always goes first");
    }

    #[test]
    fn an_idle_channel_stays_small() {
        // What a million idle channels cost (BENCHMARKS.md): grow it only on purpose.
        assert!(
            std::mem::size_of::<Outbox>() <= SIZE_OF_OUTBOX,
            "{}",
            std::mem::size_of::<Outbox>()
        );
    }
}
