//! A channel's worker: a task that exists only while the channel has work. It takes
//! what comes next (`OutboxState::next`), delivers it (`deliver.rs`), and moves the
//! channel on only once it is done; backlog mode and replays read from the store here.

use std::sync::Arc;
use std::time::Duration;

use super::deliver::Current;
use super::{Next, Outbox, QUEUE_CAPACITY};
use crate::delivery::render::Notification;
use crate::delivery::DeliveryContext;
use crate::filter;
use crate::model::{message_number, now_ms, Seq};
use crate::protocol::headers::SYNC_MESSAGE_NUMBER;
use crate::store::{EventPage, Removal};

/// How one notification ended.
pub(super) enum End {
    Done,
    /// Stopped, expired, disabled or shutting down: progress stays where it was.
    Abandoned,
    Gone,
}

impl Outbox {
    pub(super) async fn work(self: Arc<Self>, ctx: Arc<DeliveryContext>) {
        // Made once per wake-up, not per notification: where the notifications go (the
        // parsed address, its host) and the headers they all carry (made again only
        // when a renewal changes the channel).
        let Some(spec) = self.wake_spec(&ctx).await else {
            return self.halt();
        };
        let destination = ctx.outbound.destination(&spec);
        let destination = &*destination;
        let mut current = Current::new(spec);
        let headers = &mut current;
        loop {
            let next = {
                let mut st = self.state.lock().unwrap();
                let halted = self.cancel.is_cancelled()
                    || ctx.shutdown.is_cancelled()
                    || st.disabled
                    || st.draining
                    || st.expired(now_ms());
                match st.next() {
                    Some(next) if !halted => next,
                    Some(_) => {
                        st.running = false;
                        return;
                    }
                    None => {
                        st.running = false;
                        self.went_idle(&mut st, &ctx);
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
                    let sync = Notification::sync(self.start_seq);
                    let end = self.deliver(sync, headers, destination, &ctx).await;
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
                    let end = self.deliver(notification, headers, destination, &ctx).await;
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
                    let notification = Notification::event(event.clone(), previous);
                    let end = self.deliver(notification, headers, destination, &ctx).await;
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

    /// Completes once the channel is cancelled or being handed over.
    pub(super) async fn halted(&self) {
        self.cancel.cancelled_or(|| self.draining()).await
    }

    /// The receiver answered `410 Gone`: the channel is stopped and removed.
    async fn gone(&self, ctx: &Arc<DeliveryContext>) {
        let channel = self
            .spec()
            .map_or_else(|| self.pk.to_string(), |spec| spec.id.to_string());
        tracing::info!(%channel, "receiver answered 410 Gone; stopping the channel");
        self.cancel.cancel();
        self.halt();
        let removal = Removal::Gone {
            pk: self.pk,
            reason: "the receiver answered 410 Gone".into(),
        };
        if let Err(e) = ctx.store.remove_channels(removal).await {
            tracing::error!(%channel, error = %e, "could not remove a channel after 410 Gone");
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
            .read_matching(&self.coverage, after, QUEUE_CAPACITY)
            .await
        {
            Ok(read) => Some(read),
            Err(e) => {
                tracing::error!(pk = self.pk, error = %e, "could not read events from the store; retrying");
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
        let filter = st.filter.clone();
        for event in events {
            if event.seq > st.tail_seq {
                st.tail_seq = event.seq;
                if filter::admits(filter.as_deref(), &event) {
                    st.queue.push_back(event);
                    metrics::gauge!("watchwire_queued_notifications").increment(1.0);
                }
            }
        }
        if complete && st.backlog {
            st.backlog = false;
            st.skipped_max = 0;
            metrics::gauge!("watchwire_channels_backlogged").decrement(1.0);
            if filter.is_some() {
                // What it owes was counted from the store without the filter when it
                // was claimed; now everything it owes is in the queue.
                st.recount();
            }
        }
    }

    /// Loads the next page of a replay; ends the replay when nothing is left.
    async fn load_replay(&self, after: Seq, upto: Seq, ctx: &Arc<DeliveryContext>) {
        let Some(EventPage { events, .. }) = self.read_after(after, ctx).await else {
            return;
        };
        let mut st = self.state.lock().unwrap();
        let filter = st.filter.clone();
        let Some(replay) = &mut st.replay else {
            return;
        };
        let read_through = events
            .last()
            .map(|e| e.seq)
            .filter(|_| events.len() == QUEUE_CAPACITY);
        replay.queue = events
            .into_iter()
            .filter(|e| e.seq <= upto && filter::admits(filter.as_deref(), e))
            .collect();
        if replay.queue.is_empty() {
            match read_through {
                // A full page the filter let nothing through: read on after it.
                Some(last) if last < upto => replay.after = last,
                _ => st.replay = None,
            }
        }
    }

    /// Sleeps unless the channel is cancelled or handed over, or the gateway shuts
    /// down, first.
    pub(super) async fn pause(&self, delay: Duration, ctx: &Arc<DeliveryContext>) -> bool {
        tokio::select! {
            _ = self.halted() => false,
            _ = ctx.shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}
