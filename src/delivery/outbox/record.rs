//! What each attempt leaves behind: the delivery log's entry (kept by the store, and by
//! the channel to resume an owed notification from), metrics, the endpoint's health
//! (`health.rs`), and a rate-limited log line for failures.

use std::sync::Arc;
use std::time::Duration;

use super::Outbox;
use crate::delivery::attempt::{humanize, Decision, Delivery};
use crate::delivery::render::Notification;
use crate::delivery::DeliveryContext;
use crate::model::{now_ms, Failure, Outcome, OutcomeStatus};

impl Outbox {
    /// Records what an attempt decided: the delivery log, metrics, the endpoint's
    /// health and the channel's state, and a (rate-limited) log line for failures.
    pub(super) fn record(
        &self,
        delivery: &Delivery,
        decision: &Decision,
        status: Option<u16>,
        host: &str,
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
                    ctx.outbound.hosts().held_until_ms(host),
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
        ctx.activity
            .attempted(matches!(decision, Decision::Delivered));
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
    pub(super) fn interrupted(
        &self,
        delivery: &mut Delivery,
        started_ms: i64,
        ctx: &Arc<DeliveryContext>,
    ) {
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
        let (suppressed, spec) = {
            let mut st = self.state.lock().unwrap();
            let suppressed = st
                .failing
                .get_or_insert_with(Box::default)
                .log_gate
                .admit(now_ms());
            (suppressed, st.spec.clone())
        };
        let (Some(suppressed), Some(spec)) = (suppressed, spec) else {
            return;
        };
        let (channel, number, reason, detail) = (
            &spec.id,
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
}

/// When a channel's next attempt really starts: its retry time, or later if its host
/// holds every attempt until then (a backoff, `Retry-After`, a rate cap).
pub fn next_attempt_ms(retry_at_ms: i64, host_held_until_ms: Option<i64>) -> i64 {
    host_held_until_ms.map_or(retry_at_ms, |held| held.max(retry_at_ms))
}
