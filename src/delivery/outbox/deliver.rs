//! One notification's delivery, attempt after attempt until it is done: the lease, the
//! channel's rate, admission by its host, rendering, the fence right before the attempt
//! starts, the attempt through the channel's destination, the decision and its record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::worker::End;
use super::Outbox;
use crate::delivery::attempt::{Decision, Delivery};
use crate::delivery::destination::{self, Destination};
use crate::delivery::hosts::paced;
use crate::delivery::render::{ChannelHeaders, Notification};
use crate::delivery::DeliveryContext;
use crate::model::{now_ms, ChannelSpec};
use crate::trace::Attempted;

/// How often a delivery waiting for this node's lease looks again.
const LEASE_RECHECK: Duration = Duration::from_millis(100);

/// The channel as its worker renders it: the spec it holds and the headers made from
/// it once, made again only when a renewal has replaced the spec (docs/api.md §8.6),
/// so that every attempt from then on carries the new expiration, a retry too.
pub(super) struct Current {
    spec: Arc<ChannelSpec>,
    headers: ChannelHeaders,
}

impl Current {
    pub(super) fn new(spec: Arc<ChannelSpec>) -> Current {
        Current {
            headers: ChannelHeaders::new(&spec),
            spec,
        }
    }

    /// Catches up with the channel as it is now (`None`: never while a worker runs,
    /// since only an idle channel puts its spec away; kept as it is then).
    fn follow(&mut self, now: Option<Arc<ChannelSpec>>) -> &Current {
        if let Some(now) = now.filter(|now| !Arc::ptr_eq(&self.spec, now)) {
            *self = Current::new(now);
        }
        self
    }
}

impl Outbox {
    /// Delivers one notification, retrying as docs/api.md §4 and §5 say: each attempt
    /// goes out, is decided on (`attempt.rs`), and is recorded.
    pub(super) async fn deliver(
        &self,
        notification: Notification,
        current: &mut Current,
        destination: &dyn Destination,
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
            if !self
                .keep_to_rate(current.spec.min_attempt_interval(), ctx)
                .await
            {
                return End::Abandoned;
            }
            // The host admits the attempt: its fair share, its circuit, its limits. A
            // host held back past the retry budget ends the notification for good.
            let budget_left = delivery.budget_left(ctx.retry.budget);
            let admission = tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => return End::Abandoned,
                admitted = ctx.outbound.hosts().admit(destination.host(), self.halted()) => admitted,
                _ = tokio::time::sleep(budget_left.unwrap_or_default()), if budget_left.is_some() => {
                    let decision = delivery.out_of_budget(ctx.retry.budget, last_failure.take());
                    self.record(&delivery, &decision, None, destination.host(), ctx);
                    return End::Done;
                }
            };
            let Some(admission) = admission else {
                return End::Abandoned;
            };
            let Current { spec, headers } = current.follow(self.spec());
            let mut rendered = delivery.notification.render(
                headers,
                spec,
                ctx.key_signing.get(&*spec.owner),
                chrono::Utc::now(),
            );
            // The attempt is a span in the publisher's trace (docs/api.md §18).
            let event_trace = delivery.notification.event.as_ref().and_then(|e| e.trace);
            let span = ctx.tracing.attempt(event_trace);
            if let Some(traceparent) = span.as_ref().and_then(|s| ctx.tracing.traceparent(s)) {
                rendered.put_traceparent(&traceparent);
            }
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
                attempt = destination::attempt(admission, destination, rendered) => attempt,
            };
            let decision = delivery.decide(&attempt, &ctx.retry);
            if let Some(span) = span {
                let answer = &attempt.answer;
                let attempted = Attempted {
                    channel_id: &spec.id,
                    address: &spec.address,
                    message_number: delivery.notification.number,
                    attempt: delivery.attempts,
                    status: answer.status,
                    error_reason: answer.failure.as_ref().map(|f| f.reason.as_str()),
                };
                ctx.tracing.attempted(span, attempted);
            }
            self.record(
                &delivery,
                &decision,
                attempt.answer.status,
                destination.host(),
                ctx,
            );
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
        if self.cancel.is_cancelled() || ctx.shutdown.is_cancelled() {
            return true;
        }
        let st = self.state.lock().unwrap();
        st.expired(now_ms()) || st.draining
    }

    /// Keeps to the channel's `params.maxRate` (at most one attempt per `interval`):
    /// waits until its next attempt may start. `false` if the channel is cancelled or
    /// the gateway shuts down meanwhile.
    async fn keep_to_rate(&self, interval: Option<Duration>, ctx: &Arc<DeliveryContext>) -> bool {
        let Some(interval) = interval else {
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
}
