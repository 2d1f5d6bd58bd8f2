//! One channel's delivery state and its worker.
//!
//! A channel is a cursor into the log (`last_seq`) plus a bounded in-memory queue of
//! the matched events after it. The router offers each new event; when the queue is
//! full the channel switches to *backlog* mode, the router stops queueing for it, and
//! its worker reads pending events from the store instead, so pending work never
//! grows memory. A worker task exists only while the channel has work.
//!
//! Invariants:
//! - events are delivered in `seq` order, each at most once per process run;
//! - no attempt starts once `cancel` is cancelled (stop, 410, expiry);
//! - `last_seq` (and the store's progress) only moves past an event once it was
//!   delivered or failed for good.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::client::Notification;
use super::retry::Verdict;
use super::Shared;
use crate::model::{message_number, now_ms, Channel, NewChannel, Outcome, Seq, SharedEvent};
use crate::store::Removal;

/// Events a channel holds in memory before it switches to reading from the store.
pub const QUEUE_CAPACITY: usize = 1024;

pub struct ChannelHandle {
    pub pk: i64,
    pub spec: Arc<NewChannel>,
    pub start_seq: Seq,
    pub cancel: CancellationToken,
    state: Mutex<QueueState>,
}

struct QueueState {
    queue: VecDeque<SharedEvent>,
    /// Done with every matched event at or below this.
    last_seq: Seq,
    /// Highest seq queued or done: offers at or below it are already covered.
    tail_seq: Seq,
    /// Backlog mode: pending events beyond the queue live only in the store.
    backlog: bool,
    /// Highest seq the router skipped while in backlog mode.
    skipped_max: Seq,
    sync_pending: bool,
    running: bool,
}

enum Next {
    Sync,
    Event(SharedEvent),
    Refill(Seq),
}

/// How one notification ended.
enum End {
    Done(Outcome),
    /// Stopped, expired or shutting down: progress stays where it was.
    Abandoned,
    Gone,
}

impl ChannelHandle {
    pub fn new(channel: Channel) -> Arc<Self> {
        Arc::new(ChannelHandle {
            pk: channel.pk,
            start_seq: channel.start_seq,
            cancel: CancellationToken::new(),
            state: Mutex::new(QueueState {
                queue: VecDeque::new(),
                last_seq: channel.progress_seq,
                tail_seq: channel.progress_seq,
                backlog: false,
                skipped_max: 0,
                sync_pending: !channel.synced,
                running: false,
            }),
            spec: channel.spec,
        })
    }

    fn expired(&self, now: i64) -> bool {
        self.spec.expiration_ms.is_some_and(|ms| ms <= now)
    }

    /// Offers a matched event (in log order). Starts the worker when needed.
    pub fn offer(self: &Arc<Self>, event: &SharedEvent, shared: &Arc<Shared>) {
        let mut st = self.state.lock().unwrap();
        if event.seq <= st.tail_seq {
            return;
        }
        if st.backlog || st.queue.len() >= QUEUE_CAPACITY {
            if !st.backlog {
                st.backlog = true;
                metrics::gauge!("watchwire_channels_backlogged").increment(1.0);
            }
            st.skipped_max = event.seq;
        } else {
            st.queue.push_back(event.clone());
            st.tail_seq = event.seq;
            metrics::gauge!("watchwire_pending_notifications").increment(1.0);
        }
        self.ensure_running(&mut st, shared);
    }

    /// Starts the worker if the channel has work and none runs.
    pub fn kick(self: &Arc<Self>, shared: &Arc<Shared>) {
        let mut st = self.state.lock().unwrap();
        self.ensure_running(&mut st, shared);
    }

    fn ensure_running(self: &Arc<Self>, st: &mut QueueState, shared: &Arc<Shared>) {
        let has_work = st.sync_pending || !st.queue.is_empty() || st.backlog;
        if has_work && !st.running && !self.cancel.is_cancelled() {
            st.running = true;
            let (me, shared2) = (self.clone(), shared.clone());
            shared.tasks.spawn(async move { me.work(shared2).await });
        }
    }

    /// Marks the channel as stopped: nothing more is attempted.
    pub fn close(&self) {
        self.cancel.cancel();
        let mut st = self.state.lock().unwrap();
        metrics::gauge!("watchwire_pending_notifications").decrement(st.queue.len() as f64);
        st.queue.clear();
        if st.backlog {
            st.backlog = false;
            metrics::gauge!("watchwire_channels_backlogged").decrement(1.0);
        }
    }

    async fn work(self: Arc<Self>, shared: Arc<Shared>) {
        loop {
            let next = {
                let mut st = self.state.lock().unwrap();
                let halted = self.cancel.is_cancelled()
                    || shared.shutdown.is_cancelled()
                    || self.expired(now_ms());
                if halted {
                    st.running = false;
                    return;
                }
                if st.sync_pending {
                    Next::Sync
                } else if let Some(event) = st.queue.front() {
                    Next::Event(event.clone())
                } else if st.backlog {
                    Next::Refill(st.last_seq)
                } else {
                    st.running = false;
                    return;
                }
            };
            match next {
                Next::Refill(after) => self.refill(after, &shared).await,
                Next::Sync => {
                    let end = self
                        .deliver(Notification::sync(self.start_seq), &shared)
                        .await;
                    if !self.finish(end, None, &shared).await {
                        return self.halt();
                    }
                }
                Next::Event(event) => {
                    let previous = {
                        let st = self.state.lock().unwrap();
                        if st.last_seq <= self.start_seq {
                            crate::protocol::headers::SYNC_MESSAGE_NUMBER
                        } else {
                            message_number(st.last_seq)
                        }
                    };
                    let end = self
                        .deliver(Notification::event(event.clone(), previous), &shared)
                        .await;
                    if !self.finish(end, Some(&event), &shared).await {
                        return self.halt();
                    }
                }
            }
        }
    }

    fn halt(&self) {
        self.state.lock().unwrap().running = false;
    }

    /// Applies the end of one notification. `false` when the worker must stop.
    async fn finish(&self, end: End, event: Option<&SharedEvent>, shared: &Arc<Shared>) -> bool {
        match end {
            End::Abandoned => false,
            End::Gone => {
                tracing::info!(channel = %self.spec.id, "receiver answered 410 Gone; stopping the channel");
                self.cancel.cancel();
                if let Err(e) = shared
                    .store
                    .remove_channels(Removal::Gone { pk: self.pk })
                    .await
                {
                    tracing::error!(channel = %self.spec.id, error = %e, "could not remove a channel after 410 Gone");
                }
                false
            }
            End::Done(outcome) => {
                if !outcome.delivered || outcome.attempts > 1 {
                    shared.store.record_outcome(outcome);
                }
                let mut st = self.state.lock().unwrap();
                match event {
                    None => st.sync_pending = false,
                    Some(event) => {
                        st.queue.pop_front();
                        st.last_seq = event.seq;
                        metrics::gauge!("watchwire_pending_notifications").decrement(1.0);
                    }
                }
                shared
                    .store
                    .record_progress(self.pk, st.last_seq.max(self.start_seq));
                true
            }
        }
    }

    /// Backlog mode: loads the next pending events from the store. Leaves backlog mode
    /// once the store has nothing beyond what it returned that the router skipped.
    async fn refill(&self, after: Seq, shared: &Arc<Shared>) {
        match shared
            .store
            .read_matching(&self.spec.resource, after, QUEUE_CAPACITY)
            .await
        {
            Ok((events, head)) => {
                let mut st = self.state.lock().unwrap();
                let complete = events.len() < QUEUE_CAPACITY && st.skipped_max <= head;
                for event in events {
                    if event.seq > st.tail_seq {
                        st.tail_seq = event.seq;
                        st.queue.push_back(event);
                        metrics::gauge!("watchwire_pending_notifications").increment(1.0);
                    }
                }
                if complete && st.backlog {
                    st.backlog = false;
                    st.skipped_max = 0;
                    metrics::gauge!("watchwire_channels_backlogged").decrement(1.0);
                }
            }
            Err(e) => {
                tracing::error!(channel = %self.spec.id, error = %e, "could not read pending events; retrying");
                self.pause(Duration::from_secs(1), shared).await;
            }
        }
    }

    /// Sleeps unless the channel is cancelled or the gateway shuts down first.
    async fn pause(&self, delay: Duration, shared: &Arc<Shared>) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = shared.shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// Delivers one notification, retrying as SPEC §4/§5 say.
    async fn deliver(&self, notification: Notification, shared: &Arc<Shared>) -> End {
        let first_try = Instant::now();
        let mut attempts = 0u32;
        loop {
            if self.cancel.is_cancelled()
                || shared.shutdown.is_cancelled()
                || self.expired(now_ms())
            {
                return End::Abandoned;
            }
            attempts += 1;
            let (headers, body) = notification.render(&self.spec, shared.key_signing.get(&self.spec.owner), chrono::Utc::now());
            let attempt = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return End::Abandoned,
                attempt = shared.client.attempt(&self.spec.address, headers, body) => attempt,
            };
            let outcome = |delivered: bool, error: Option<String>| Outcome {
                channel_pk: self.pk,
                seq: notification.cursor,
                message_number: notification.number,
                state: notification.state.clone(),
                delivered,
                attempts,
                last_status: attempt.status,
                last_error: error,
                at_ms: now_ms(),
            };
            match attempt.verdict {
                Verdict::Delivered => {
                    metrics::counter!("watchwire_notifications_total", "outcome" => "delivered")
                        .increment(1);
                    if let Some(event) = &notification.event {
                        let latency_ms = (now_ms() - event.time_ms).max(0) as f64;
                        metrics::histogram!("watchwire_delivery_latency_seconds")
                            .record(latency_ms / 1000.0);
                    }
                    return End::Done(outcome(true, None));
                }
                Verdict::Gone => return End::Gone,
                Verdict::Failed => {
                    let error = attempt.error.clone().unwrap_or_else(|| {
                        format!("receiver answered {}", attempt.status.unwrap_or(0))
                    });
                    tracing::warn!(channel = %self.spec.id, number = notification.number, %error, "notification failed for good");
                    metrics::counter!("watchwire_notifications_total", "outcome" => "failed")
                        .increment(1);
                    return End::Done(outcome(false, Some(error)));
                }
                Verdict::Retry { retry_after } => {
                    let delay = shared.retry.delay(attempts, retry_after);
                    let error = attempt.error.clone().unwrap_or_else(|| {
                        format!("receiver answered {}", attempt.status.unwrap_or(0))
                    });
                    if first_try.elapsed() + delay > shared.retry.budget {
                        tracing::warn!(channel = %self.spec.id, number = notification.number, attempts, %error, "retry budget exhausted");
                        metrics::counter!("watchwire_notifications_total", "outcome" => "failed")
                            .increment(1);
                        return End::Done(outcome(
                            false,
                            Some(format!("retry budget exhausted; last error: {error}")),
                        ));
                    }
                    tracing::debug!(channel = %self.spec.id, number = notification.number, attempts, ?delay, %error, "will retry");
                    metrics::counter!("watchwire_notifications_total", "outcome" => "retried")
                        .increment(1);
                    if !self.pause(delay, shared).await {
                        return End::Abandoned;
                    }
                }
            }
        }
    }
}
