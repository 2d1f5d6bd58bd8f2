//! One channel's delivery state and its worker.
//!
//! A channel is a cursor into the log (`progress_seq`) plus a bounded in-memory queue of
//! the matched events after it. The router offers each new event; when the queue is
//! full the channel switches to *backlog* mode, the router stops queueing for it, and
//! its worker reads pending events from the store instead, so pending work never
//! grows memory. A worker task exists only while the channel has work.
//!
//! Invariants:
//! - events are delivered in `seq` order (a replay re-sends an older range first);
//! - no attempt starts once `cancel` is cancelled (stop, 410, expiry) or while the
//!   channel is disabled;
//! - `progress_seq` (and the store's progress) only moves past an event once it was
//!   delivered or failed for good;
//! - `owed` counts the notifications the channel still owes (its sync, and every
//!   matched event after `progress_seq`, queued or left in the store): the channel's
//!   `pendingCount` and its share of the `watchwire_pending_notifications` gauge.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::attempt::{humanize, Decision, Delivery};
use super::cancel::Cancel;
use super::client::{Notification, Target};
use super::hosts::{host_key, paced};
use super::DeliveryContext;
use crate::model::{
    message_number, now_ms, ChannelSpec, Failure, Outcome, OutcomeStatus, Seq, SharedEvent,
    StoredChannel,
};
use crate::protocol::headers::SYNC_MESSAGE_NUMBER;
use crate::store::{EventPage, Removal};
use crate::telemetry::LogGate;

/// Events a channel holds in memory before it switches to reading from the store.
pub const QUEUE_CAPACITY: usize = 1024;
/// How often a delivery waiting for this node's lease looks again.
const LEASE_RECHECK: Duration = Duration::from_millis(100);

pub struct Outbox {
    pub pk: i64,
    pub spec: Arc<ChannelSpec>,
    pub start_seq: Seq,
    pub cancel: Cancel,
    state: Mutex<OutboxState>,
}

struct OutboxState {
    queue: VecDeque<SharedEvent>,
    /// Done with every matched event at or below this.
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

/// A failing endpoint: since when, the last failure, the next retry, and the rate limit
/// of the channel's failure log lines. Kept after a success (cleared), so a flapping
/// endpoint's log lines stay limited.
#[derive(Default)]
struct Failing {
    since_ms: Option<i64>,
    last_error: Option<Failure>,
    next_retry_ms: Option<i64>,
    log_gate: LogGate,
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
            None if self.backlog => Some(Next::Refill(self.progress_seq)),
            None => None,
        }
    }

    /// One owed notification is done (delivered or failed for good).
    fn settle_one(&mut self) {
        self.owed = self.owed.saturating_sub(1);
        metrics::gauge!("watchwire_pending_notifications").decrement(1.0);
    }
}

/// How one notification ended.
enum End {
    Done,
    /// Stopped, expired, disabled or shutting down: progress stays where it was.
    Abandoned,
    Gone,
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
                queue: VecDeque::new(),
                progress_seq: channel.progress_seq,
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
            spec: channel.spec,
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

    /// Completes once the channel is cancelled or being handed over.
    async fn halted(&self) {
        self.cancel.cancelled_or(|| self.draining()).await
    }

    fn expired(&self, now: i64) -> bool {
        self.spec.expiration_ms.is_some_and(|ms| ms <= now)
    }

    /// Offers a matched event (in log order). Starts the worker when needed.
    pub fn offer(self: &Arc<Self>, event: &SharedEvent, ctx: &Arc<DeliveryContext>) {
        let mut st = self.state.lock().unwrap();
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
        self.ensure_running(&mut st, ctx);
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

    /// Re-enables a disabled channel: delivery resumes where it stopped.
    pub fn enable(self: &Arc<Self>, ctx: &Arc<DeliveryContext>) {
        let mut st = self.state.lock().unwrap();
        if st.disabled {
            st.disabled = false;
            if let Some(failing) = &mut st.failing {
                failing.since_ms = None;
            }
            ctx.store.record_health(self.pk, None, false);
        }
        self.ensure_running(&mut st, ctx);
    }

    async fn work(self: Arc<Self>, ctx: Arc<DeliveryContext>) {
        // Made once per wake-up, not per notification: the parsed address, the host,
        // the channel's own headers.
        let target = Target::new(&self.spec);
        loop {
            let next = {
                let mut st = self.state.lock().unwrap();
                let halted = self.cancel.is_cancelled()
                    || ctx.shutdown.is_cancelled()
                    || st.disabled
                    || st.draining
                    || self.expired(now_ms());
                match st.next() {
                    Some(next) if !halted => next,
                    _ => {
                        st.running = false;
                        return;
                    }
                }
            };
            let end = match next {
                Next::Refill(after) => {
                    self.refill(after, &ctx).await;
                    End::Done
                }
                Next::LoadReplay(after, upto) => {
                    self.load_replay(after, upto, &ctx).await;
                    End::Done
                }
                Next::Sync => {
                    let end = self
                        .deliver(Notification::sync(self.start_seq), &target, &ctx)
                        .await;
                    if matches!(end, End::Done) {
                        let mut st = self.state.lock().unwrap();
                        st.sync_pending = false;
                        st.settle_one();
                        ctx.store.record_progress(self.pk, self.start_seq);
                    }
                    end
                }
                Next::Replay(event) => {
                    let previous = self.previous_number(event.seq, true);
                    let mut notification = Notification::event(event.clone(), previous);
                    notification.replay = true;
                    let end = self.deliver(notification, &target, &ctx).await;
                    if matches!(end, End::Done) {
                        let mut st = self.state.lock().unwrap();
                        if let Some(replay) = &mut st.replay {
                            replay.queue.pop_front();
                            replay.after = event.seq;
                        }
                    }
                    end
                }
                Next::Event(event) => {
                    let previous = self.previous_number(event.seq, false);
                    let end = self
                        .deliver(Notification::event(event.clone(), previous), &target, &ctx)
                        .await;
                    if matches!(end, End::Done) {
                        let mut st = self.state.lock().unwrap();
                        st.queue.pop_front();
                        st.progress_seq = event.seq;
                        st.settle_one();
                        metrics::gauge!("watchwire_queued_notifications").decrement(1.0);
                        ctx.store.record_progress(self.pk, event.seq);
                    }
                    end
                }
            };
            match end {
                End::Done => {}
                End::Abandoned => return self.halt(),
                End::Gone => return self.gone(&ctx).await,
            }
        }
    }

    /// The receiver answered `410 Gone`: the channel is stopped and removed.
    async fn gone(&self, ctx: &Arc<DeliveryContext>) {
        tracing::info!(channel = %self.spec.id, "receiver answered 410 Gone; stopping the channel");
        self.cancel.cancel();
        self.halt();
        let removal = Removal::Gone {
            pk: self.pk,
            reason: "the receiver answered 410 Gone".into(),
        };
        if let Err(e) = ctx.store.remove_channels(removal).await {
            tracing::error!(channel = %self.spec.id, error = %e, "could not remove a channel after 410 Gone");
        }
    }

    /// The number of the notification before the event at `seq` on this channel. In a
    /// replay the previous one is the replay's own previous event (or the sync).
    fn previous_number(&self, seq: Seq, replaying: bool) -> u64 {
        let st = self.state.lock().unwrap();
        let before = if replaying {
            st.replay.as_ref().map_or(self.start_seq, |r| r.after)
        } else {
            st.progress_seq
        };
        let before = before.min(seq.saturating_sub(1));
        if before <= self.start_seq {
            SYNC_MESSAGE_NUMBER
        } else {
            message_number(before)
        }
    }

    fn halt(&self) {
        self.state.lock().unwrap().running = false;
    }

    /// Matched events after `after` from the store, and the head that read saw. On a
    /// store error: logs, backs off a second, and returns `None` (the caller retries).
    async fn read_after(&self, after: Seq, ctx: &Arc<DeliveryContext>) -> Option<EventPage> {
        match ctx
            .store
            .read_matching(&self.spec.coverage(), after, QUEUE_CAPACITY)
            .await
        {
            Ok(read) => Some(read),
            Err(e) => {
                tracing::error!(channel = %self.spec.id, error = %e, "could not read events from the store; retrying");
                self.pause(Duration::from_secs(1), ctx).await;
                None
            }
        }
    }

    /// Backlog mode: loads the next pending events from the store. Leaves backlog mode
    /// once the store has nothing beyond what it returned that the router skipped.
    async fn refill(&self, after: Seq, ctx: &Arc<DeliveryContext>) {
        let Some(EventPage { events, head }) = self.read_after(after, ctx).await else {
            return;
        };
        let mut st = self.state.lock().unwrap();
        let complete = events.len() < QUEUE_CAPACITY && st.skipped_max <= head;
        for event in events {
            if event.seq > st.tail_seq {
                st.tail_seq = event.seq;
                st.queue.push_back(event);
                metrics::gauge!("watchwire_queued_notifications").increment(1.0);
            }
        }
        if complete && st.backlog {
            st.backlog = false;
            st.skipped_max = 0;
            metrics::gauge!("watchwire_channels_backlogged").decrement(1.0);
        }
    }

    /// Loads the next page of a replay; ends the replay when nothing is left.
    async fn load_replay(&self, after: Seq, upto: Seq, ctx: &Arc<DeliveryContext>) {
        let Some(EventPage { events, .. }) = self.read_after(after, ctx).await else {
            return;
        };
        let mut st = self.state.lock().unwrap();
        let Some(replay) = &mut st.replay else {
            return;
        };
        replay.queue = events.into_iter().filter(|e| e.seq <= upto).collect();
        if replay.queue.is_empty() {
            st.replay = None;
        }
    }

    /// Sleeps unless the channel is cancelled or handed over, or the gateway shuts
    /// down, first.
    async fn pause(&self, delay: Duration, ctx: &Arc<DeliveryContext>) -> bool {
        tokio::select! {
            _ = self.halted() => false,
            _ = ctx.shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// Keeps to the channel's `params.maxRate`: waits until its next attempt may start.
    /// `false` if the channel is cancelled or the gateway shuts down meanwhile.
    async fn keep_to_rate(&self, ctx: &Arc<DeliveryContext>) -> bool {
        let Some(interval) = self.spec.min_attempt_interval() else {
            return true;
        };
        let until = self.state.lock().unwrap().paced_until.as_deref().copied();
        if let Some(wait) = until.and_then(|t| t.checked_duration_since(Instant::now())) {
            if !self.pause(wait, ctx).await {
                return false;
            }
        }
        let mut st = self.state.lock().unwrap();
        let next = paced(st.paced_until.as_deref().copied(), Instant::now(), interval);
        match &mut st.paced_until {
            Some(at) => **at = next,
            None => st.paced_until = Some(Box::new(next)),
        }
        true
    }

    /// Gives the channel the stored state of a delivery that a restart interrupted.
    pub fn resume(&self, awaiting_retry: Outcome) {
        self.state.lock().unwrap().resume = Some(Box::new(awaiting_retry));
    }

    /// Delivers one notification, retrying as docs/api.md §4 and §5 say: each attempt
    /// goes out, is decided on (`attempt.rs`), and is recorded.
    async fn deliver(
        &self,
        notification: Notification,
        target: &Target,
        ctx: &Arc<DeliveryContext>,
    ) -> End {
        let resumed = {
            let mut st = self.state.lock().unwrap();
            st.resume.take_if(|r| {
                r.seq == notification.cursor && r.message_number == notification.number
            })
        };
        let mut delivery = match resumed {
            Some(before) => Delivery::resumed(notification, &before),
            None => Delivery::new(notification),
        };
        let mut last_failure = None;
        loop {
            if self.must_not_attempt(ctx) {
                return End::Abandoned;
            }
            // In a cluster, only while this node's lease lets it start attempts.
            if !ctx.lease.valid() {
                if !self.pause(LEASE_RECHECK, ctx).await {
                    return End::Abandoned;
                }
                continue;
            }
            if !self.keep_to_rate(ctx).await {
                return End::Abandoned;
            }
            // The host admits the attempt: its fair share, its circuit, its limits. A
            // host held back past the retry budget ends the notification for good.
            let budget_left = delivery.budget_left(ctx.retry.budget);
            let admission = tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => return End::Abandoned,
                admitted = ctx.client.hosts().admit(&target.host, self.halted()) => admitted,
                _ = tokio::time::sleep(budget_left.unwrap_or_default()), if budget_left.is_some() => {
                    let decision = delivery.out_of_budget(ctx.retry.budget, last_failure.take());
                    self.record(&delivery, &decision, None, ctx);
                    return End::Done;
                }
            };
            let Some(admission) = admission else {
                return End::Abandoned;
            };
            let (headers, body) = delivery.notification.render(
                target,
                &self.spec,
                ctx.key_signing.get(&*self.spec.owner),
                chrono::Utc::now(),
            );
            // The fence: the wait for the host may have been long (a host backed off
            // for a minute), so whether this node may still start an attempt on this
            // channel is decided again here, right before it starts, not only before
            // the wait.
            if self.must_not_attempt(ctx) {
                return End::Abandoned;
            }
            if !ctx.lease.valid() {
                drop(admission);
                continue;
            }
            let started_ms = now_ms();
            let attempt = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return End::Abandoned,
                _ = ctx.cut_short.cancelled() => {
                    self.interrupted(&mut delivery, started_ms, ctx);
                    return End::Abandoned;
                }
                attempt = ctx.client.attempt(admission, target, headers, body) => attempt,
            };
            let decision = delivery.decide(&attempt, &ctx.retry);
            self.record(&delivery, &decision, attempt.status, ctx);
            match decision {
                Decision::Delivered | Decision::Failed(_) => return End::Done,
                Decision::Gone => return End::Gone,
                Decision::Retry { delay, failure } => {
                    if self.state.lock().unwrap().disabled || !self.pause(delay, ctx).await {
                        return End::Abandoned;
                    }
                    last_failure = Some(failure);
                }
            }
        }
    }

    /// Whether the channel must start no attempt any more: stopped, expired, being
    /// handed to another node, or the gateway shutting down.
    fn must_not_attempt(&self, ctx: &DeliveryContext) -> bool {
        self.cancel.is_cancelled()
            || ctx.shutdown.is_cancelled()
            || self.expired(now_ms())
            || self.draining()
    }

    /// Records what an attempt decided: the delivery log, metrics, the endpoint's
    /// health and the channel's state, and a (rate-limited) log line for failures.
    fn record(
        &self,
        delivery: &Delivery,
        decision: &Decision,
        status: Option<u16>,
        ctx: &Arc<DeliveryContext>,
    ) {
        let notification = &delivery.notification;
        let mut outcome = self.outcome(delivery, status);
        let outcome_label = match decision {
            Decision::Delivered => {
                if let Some(event) = &notification.event {
                    let latency_ms = (outcome.at_ms - event.time_ms).max(0) as f64;
                    metrics::histogram!("watchwire_delivery_latency_seconds")
                        .record(latency_ms / 1000.0);
                }
                self.healthy(ctx);
                "delivered"
            }
            Decision::Gone => "gone",
            Decision::Failed(failure) => {
                self.log_failure(notification, delivery.attempts, failure, None);
                outcome.status = OutcomeStatus::Failed;
                outcome.last_error = Some(failure.clone());
                // Done for good either way; a disabled channel halts before the next one.
                self.unhealthy(failure, None, ctx);
                "failed"
            }
            Decision::Retry { delay, failure } => {
                // The attempt starts once both the retry schedule and the host allow.
                let next_retry_ms = next_attempt_ms(
                    outcome.at_ms + delay.as_millis() as i64,
                    ctx.client
                        .hosts()
                        .held_until_ms(&host_key(&self.spec.address)),
                );
                let wait = Duration::from_millis((next_retry_ms - outcome.at_ms).max(0) as u64);
                self.log_failure(notification, delivery.attempts, failure, Some(wait));
                outcome.status = OutcomeStatus::Pending;
                outcome.last_error = Some(failure.clone());
                outcome.next_retry_ms = Some(next_retry_ms);
                self.unhealthy(failure, Some(next_retry_ms), ctx);
                "retried"
            }
        };
        metrics::counter!("watchwire_notifications_total", "outcome" => outcome_label).increment(1);
        if !matches!(decision, Decision::Gone) {
            self.keep(outcome, notification.replay, ctx);
        }
    }

    /// The delivery log's entry for where a delivery stands.
    fn outcome(&self, delivery: &Delivery, last_status: Option<u16>) -> Outcome {
        let notification = &delivery.notification;
        Outcome {
            channel_pk: self.pk,
            seq: notification.cursor,
            message_number: notification.number,
            state: notification.state.clone(),
            status: OutcomeStatus::Delivered,
            attempts: delivery.attempts,
            last_status,
            last_error: None,
            at_ms: now_ms(),
            next_retry_ms: None,
            first_attempt_ms: delivery.first_attempt_ms,
            recent: delivery.recent.clone(),
        }
    }

    /// Keeps an entry of the delivery log. While the notification is owed, it is also
    /// what the channel resumes it from when its delivery stops before the end
    /// (disabled then enabled, shutdown): the count of attempts, the recent ones and
    /// the retry budget go on from there.
    fn keep(&self, outcome: Outcome, replay: bool, ctx: &Arc<DeliveryContext>) {
        let pending = outcome.status == OutcomeStatus::Pending;
        {
            let mut st = self.state.lock().unwrap();
            let same = |r: &mut Box<Outcome>| {
                (r.seq, r.message_number) == (outcome.seq, outcome.message_number)
            };
            match pending {
                true => st.resume = Some(Box::new(outcome.clone())),
                false => drop(st.resume.take_if(same)),
            }
        }
        // A replay never makes a notification pending again: its entry changes only
        // once the re-send is done.
        if !(pending && replay) {
            ctx.store.record_outcome(outcome);
        }
    }

    /// An attempt that the shutdown cut short while it waited for an answer: the
    /// receiver may have got it, so it is counted and logged; the notification is
    /// delivered after the next start.
    fn interrupted(&self, delivery: &mut Delivery, started_ms: i64, ctx: &Arc<DeliveryContext>) {
        let failure = delivery.interrupted(started_ms);
        let mut outcome = self.outcome(delivery, None);
        outcome.status = OutcomeStatus::Pending;
        outcome.last_error = Some(failure);
        self.keep(outcome, delivery.notification.replay, ctx);
    }

    /// One line per failed attempt at `info` (a notification failing for good at
    /// `warn`), at most one a minute per channel, saying how many were left out.
    fn log_failure(
        &self,
        notification: &Notification,
        attempt: u32,
        failure: &Failure,
        retry_in: Option<Duration>,
    ) {
        let suppressed = {
            let mut st = self.state.lock().unwrap();
            st.failing
                .get_or_insert_with(Box::default)
                .log_gate
                .admit(now_ms())
        };
        let Some(suppressed) = suppressed else {
            return;
        };
        let (channel, number, reason, detail) = (
            &self.spec.id,
            notification.number,
            failure.reason.as_str(),
            &failure.detail,
        );
        match retry_in {
            Some(delay) => tracing::info!(
                %channel, number, attempt, reason, %detail, retry_in = %humanize(delay), suppressed,
                "delivery attempt failed; retrying"
            ),
            None => tracing::warn!(
                %channel, number, attempt, reason, %detail, suppressed,
                "notification failed for good; the channel moves on"
            ),
        }
    }

    /// A success: the endpoint is healthy again.
    fn healthy(&self, ctx: &Arc<DeliveryContext>) {
        let mut st = self.state.lock().unwrap();
        let Some(failing) = &mut st.failing else {
            return;
        };
        failing.last_error = None;
        failing.next_retry_ms = None;
        if failing.since_ms.take().is_some() {
            ctx.store.record_health(self.pk, None, false);
        }
    }

    /// A failure. Disables the channel once its endpoint has failed without a single
    /// success for the disable window (docs/api.md §5).
    fn unhealthy(&self, failure: &Failure, next_retry_ms: Option<i64>, ctx: &Arc<DeliveryContext>) {
        let now = now_ms();
        let mut st = self.state.lock().unwrap();
        let failing = st.failing.get_or_insert_with(Box::default);
        failing.last_error = Some(failure.clone());
        failing.next_retry_ms = next_retry_ms;
        let since = *failing.since_ms.get_or_insert(now);
        if since == now {
            ctx.store.record_health(self.pk, Some(now), false);
        }
        if now - since >= ctx.disable_after.as_millis() as i64 {
            tracing::warn!(channel = %self.spec.id, "endpoint failing without success for the disable window; channel disabled");
            failing.next_retry_ms = None;
            st.disabled = true;
            ctx.store.record_health(self.pk, Some(since), true);
        }
    }
}

/// When a channel's next attempt really starts: its retry time, or later if its host
/// holds every attempt until then (a backoff, `Retry-After`, a rate cap).
pub fn next_attempt_ms(retry_at_ms: i64, host_held_until_ms: Option<i64>) -> i64 {
    host_held_until_ms.map_or(retry_at_ms, |held| held.max(retry_at_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;

    fn event(seq: Seq) -> SharedEvent {
        Event::at(seq)
    }

    fn state() -> OutboxState {
        OutboxState {
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
}
