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
//!   (docs/api.md §8.6) replaces it under the channel's lock, and the worker's fence
//!   and every notification rendered after that see the new expiration;
//! - an idle channel puts its spec away (`idle.rs`) and its next worker reads it from
//!   the store; the router needs only what the `Outbox` keeps (coverage, filter).

mod deliver;
mod health;
pub mod idle;
mod queue;
mod record;
pub mod spec_loader;
mod worker;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use self::health::Failing;
use self::queue::Queue;
pub use self::record::next_attempt_ms;
use super::cancel::Cancel;
use super::DeliveryContext;
use crate::filter::{Filter, Verdicts};
use crate::model::{ChannelSpec, Coverage, Failure, Outcome, Seq, SharedEvent, StoredChannel};

/// Events a channel holds in memory before it switches to reading from the store.
pub const QUEUE_CAPACITY: usize = 1024;

pub struct Outbox {
    pub pk: i64,
    pub start_seq: Seq,
    pub cancel: Cancel,
    /// The paths it covers (they never change): shared by every channel on the same
    /// resource (the router's index hands it out).
    coverage: Arc<Coverage>,
    state: Mutex<OutboxState>,
}

struct OutboxState {
    /// What the channel is ([`Outbox::spec`]); `None` while idle (`idle.rs`): its
    /// worker reads it from the store. Only its expiration ever changes (a renewal),
    /// and then the whole is replaced: whoever holds the old one holds a consistent,
    /// older channel. Kept under the lock rather than beside it, so that a million
    /// idle channels do not pay for a lock of its own.
    spec: Option<Arc<ChannelSpec>>,
    /// The spec's filter, kept while the spec is away: the router decides each offer
    /// with it.
    filter: Option<Arc<Filter>>,
    queue: Queue,
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
    /// Renewed while the spec was away: a read of it that was under way may be older.
    renewed_away: bool,
    /// The tick (`idle::Sleepers`) its worker last went idle at.
    idle_tick: u32,
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
        let expiration = self.spec.as_ref().and_then(|spec| spec.expiration_ms);
        expiration.is_some_and(|ms| ms <= now)
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
    /// A channel as created or loaded; `coverage` is what it covers (shared, from the
    /// router's index). `keep_spec: false` for one loaded at startup that has nothing
    /// to do: it does not hold its spec until it wakes up.
    pub fn new(channel: StoredChannel, coverage: Arc<Coverage>, keep_spec: bool) -> Arc<Self> {
        let owed = u64::from(!channel.synced);
        let keep_spec =
            keep_spec || !channel.synced || channel.disabled || channel.failing_since_ms.is_some();
        Outbox::with_state(channel, coverage, owed, None, keep_spec)
    }

    /// A channel this node takes over from another (or from none): it may owe events
    /// committed before this node saw them, so it starts in backlog mode and reads
    /// them from the store. `owed` is what it owed when it was claimed, counting every
    /// event up to `counted_through`, which offers then skip.
    pub fn adopted(
        channel: StoredChannel,
        coverage: Arc<Coverage>,
        owed: u64,
        counted_through: Seq,
    ) -> Arc<Self> {
        Outbox::with_state(channel, coverage, owed, Some(counted_through), true)
    }

    fn with_state(
        channel: StoredChannel,
        coverage: Arc<Coverage>,
        owed: u64,
        backlog_through: Option<Seq>,
        keep_spec: bool,
    ) -> Arc<Self> {
        let handle = Arc::new(Outbox {
            pk: channel.pk,
            start_seq: channel.start_seq,
            cancel: Cancel::default(),
            coverage,
            state: Mutex::new(OutboxState {
                filter: channel.spec.filter.clone(),
                spec: keep_spec.then_some(channel.spec),
                queue: Queue::default(),
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
                renewed_away: false,
                idle_tick: 0,
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

    /// The channel as this node knows it now (a renewal replaces it); `None` while
    /// it is idle and has put it away (`idle.rs`): the store has it.
    pub fn spec(&self) -> Option<Arc<ChannelSpec>> {
        self.state.lock().unwrap().spec.clone()
    }

    /// The paths it covers.
    pub fn coverage(&self) -> &Arc<Coverage> {
        &self.coverage
    }

    /// Whether this node's copy of the channel expires at `expiration_ms` (a renewal
    /// reached it). A channel that put its spec away reads it from the store, which
    /// has every committed renewal.
    pub fn expires_at(&self, expiration_ms: i64) -> bool {
        let st = self.state.lock().unwrap();
        st.spec
            .as_ref()
            .is_none_or(|spec| spec.expiration_ms == Some(expiration_ms))
    }

    /// The channel now expires at `expiration_ms` (docs/api.md §8.6): from now on the
    /// fence lets attempts start until then, and every notification rendered carries
    /// it. The store holds it already; this is the node's copy catching up. A worker
    /// that stopped at the old expiration starts again.
    pub fn renew(self: &Arc<Self>, expiration_ms: i64, ctx: &Arc<DeliveryContext>) {
        let mut st = self.state.lock().unwrap();
        match &st.spec {
            Some(spec) if spec.expiration_ms != Some(expiration_ms) => {
                let mut spec = (**spec).clone();
                spec.expiration_ms = Some(expiration_ms);
                st.spec = Some(Arc::new(spec));
            }
            Some(_) => {}
            // A worker reading it from the store now may read it from before.
            None => st.renewed_away = true,
        }
        self.ensure_running(&mut st, ctx);
    }

    /// The spec for a worker that starts: its copy, or else read from the store (a
    /// store error is retried after a second). `None`: the channel is gone from the
    /// store (its removal is on its way to the router) or halted while reading.
    async fn wake_spec(&self, ctx: &Arc<DeliveryContext>) -> Option<Arc<ChannelSpec>> {
        loop {
            {
                let mut st = self.state.lock().unwrap();
                if let Some(spec) = &st.spec {
                    return Some(spec.clone());
                }
                st.renewed_away = false;
            }
            match ctx.specs.load(&ctx.store, self.pk).await {
                Ok(Some(channel)) => {
                    let mut st = self.state.lock().unwrap();
                    if st.renewed_away {
                        continue; // Renewed during the read: read it again.
                    }
                    st.spec = Some(channel.spec.clone());
                    return Some(channel.spec);
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!(pk = self.pk, error = %e, "could not read a channel from the store; retrying");
                    if !self.pause(std::time::Duration::from_secs(1), ctx).await {
                        return None;
                    }
                }
            }
        }
    }

    /// The worker found nothing to do: parks the channel so that its spec is put
    /// away if it stays idle (`idle.rs`). Once per tick.
    fn went_idle(self: &Arc<Self>, st: &mut OutboxState, ctx: &Arc<DeliveryContext>) {
        let tick = ctx.sleepers.tick();
        if st.spec.is_some() && st.idle_tick != tick {
            st.idle_tick = tick;
            ctx.sleepers.park(tick, Arc::downgrade(self));
        }
    }

    /// Drops the spec (and the queue's memory) if the channel has stayed idle since
    /// it went idle at `tick` and is healthy. `true` if it did.
    fn put_spec_away(&self, tick: u32) -> bool {
        let mut st = self.state.lock().unwrap();
        let idle = !st.running && st.idle_tick == tick && st.spec.is_some();
        let rare = st.failing.is_some() || st.disabled || st.replay.is_some();
        if !idle || rare || !st.queue.is_empty() {
            return false;
        }
        st.spec = None;
        st.queue.release_if_empty();
        true
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
        if verdicts.admits(st.filter.as_ref()) {
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
            spec: Some(Arc::new(crate::store::conformance::channel("o", "c", "/r"))),
            filter: None,
            queue: Queue::default(),
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
            renewed_away: false,
            idle_tick: 0,
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

    fn stored(synced: bool) -> StoredChannel {
        StoredChannel {
            pk: 7,
            spec: Arc::new(crate::store::conformance::channel("o", "c", "/r")),
            start_seq: 1,
            progress_seq: 1,
            sent_seq: None,
            synced,
            disabled: false,
            failing_since_ms: None,
        }
    }

    #[test]
    fn only_a_healthy_channel_idle_since_it_was_parked_puts_its_spec_away() {
        let coverage = Arc::new(Coverage::path("/r"));
        let loaded = Outbox::new(stored(true), coverage.clone(), false);
        assert!(
            loaded.spec().is_none(),
            "loaded with nothing to do: no spec"
        );
        assert!(loaded.expires_at(0), "the store has every renewal");
        let unsynced = Outbox::new(stored(false), coverage.clone(), false);
        assert!(
            unsynced.spec().is_some(),
            "its sync is owed: it keeps its spec"
        );

        let outbox = Outbox::new(stored(true), coverage, true);
        outbox.state.lock().unwrap().idle_tick = 3;
        assert!(!outbox.put_spec_away(2), "it went idle again since");
        outbox.state.lock().unwrap().running = true;
        assert!(!outbox.put_spec_away(3), "its worker runs");
        outbox.state.lock().unwrap().running = false;
        outbox.state.lock().unwrap().failing = Some(Box::default());
        assert!(!outbox.put_spec_away(3), "a failing channel keeps it");
        outbox.state.lock().unwrap().failing = None;
        outbox.state.lock().unwrap().queue.push_back(event(2));
        assert!(!outbox.put_spec_away(3), "it has work queued");
        outbox.state.lock().unwrap().queue.pop_front();
        assert!(outbox.put_spec_away(3));
        assert!(outbox.spec().is_none());
        assert!(outbox.state.lock().unwrap().queue.0.is_none());
        assert!(!outbox.put_spec_away(3), "once");
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
