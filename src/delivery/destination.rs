//! The seam every attempt goes through: "send this rendered notification to this
//! destination, tell me what came of it". An HTTP webhook (`webhook.rs`) and each
//! broker (`brokers/`, docs/api.md §20) implement it, chosen in
//! [`Outbound::destination`]; the pipeline in front of it (order, admission by host,
//! rendering, the lease fence, retries, recording, health) is the same for all.
//!
//! One attempt, in the order the outbox takes it: its host admits it (`hosts.rs`), it
//! is rendered (`render.rs`), it passes the fence (`outbox/deliver.rs`), then
//! [`attempt`] sends it through the destination, times it, and tells the host how it
//! did; `attempt.rs` decides what follows. Admission stays in front of the seam because
//! it is shared by every kind of destination: a broker that is down is a failing host
//! like any other (docs/api.md §17).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::brokers::address::broker_kind;
use super::brokers::{BrokerOptions, Brokers};
use super::hosts::{Admission, HostOutcome, Hosts};
use super::render::Rendered;
use super::webhook::{WebhookOptions, Webhooks};
use crate::model::{now_ms, AttemptRecord, ChannelSpec, Failure};

/// Where one channel's notifications go, made once each time its worker wakes.
#[async_trait]
pub trait Destination: Send + Sync {
    /// The host its attempts are admitted by (`hosts.rs`).
    fn host(&self) -> &str;

    /// Sends one notification once.
    async fn send(&self, notification: Rendered) -> Answer;
}

/// What the destination made of one notification.
#[derive(Debug, Clone)]
pub struct Answer {
    pub verdict: Verdict,
    /// The receiver's status, when it answered with one.
    pub status: Option<u16>,
    /// Why it did not deliver (classified); `None` when it did.
    pub failure: Option<Failure>,
    /// The start of the receiver's answer, when it sent one.
    pub excerpt: Option<String>,
    /// A broker's acknowledgement: `acked`, or `duplicate` when it already held the
    /// message; `None` for webhooks.
    pub acknowledgement: Option<&'static str>,
}

/// What an answer means for the notification (docs/api.md §4 acknowledgement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again later; `retry_after` is the receiver's own request (429/503).
    Retry {
        retry_after: Option<Duration>,
    },
    /// 410: the receiver unsubscribes; the channel is stopped.
    Gone,
    /// Any other status: this notification has failed for good; the channel moves on.
    Failed,
}

/// One attempt: the destination's answer, and when and for how long it ran.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub answer: Answer,
    pub started_ms: i64,
    pub duration: Duration,
}

impl Attempt {
    /// The attempt as the delivery log keeps it.
    pub fn record(&self) -> AttemptRecord {
        let failure = self.answer.failure.as_ref();
        AttemptRecord {
            at_ms: self.started_ms,
            duration_ms: self.duration.as_millis() as u64,
            status: self.answer.status,
            reason: failure.map(|f| f.reason),
            detail: failure.map(|f| f.detail.clone()),
            response: self.answer.excerpt.clone(),
            broker_status: self.answer.acknowledgement.map(str::to_string),
        }
    }
}

/// Sends a rendered notification through `destination` as its host admitted it, and
/// tells the host how it did. Admission comes before rendering, so a wide fan-out keeps
/// only admitted notifications in memory.
pub async fn attempt(
    admission: Admission,
    destination: &dyn Destination,
    notification: Rendered,
) -> Attempt {
    let started_ms = now_ms();
    let started = Instant::now();
    let answer = destination.send(notification).await;
    let (host, retry_after) = match answer.verdict {
        Verdict::Retry { retry_after } => (HostOutcome::Failed, retry_after),
        _ => (HostOutcome::Answered, None),
    };
    admission.finish(host, retry_after);
    Attempt {
        answer,
        started_ms,
        duration: started.elapsed(),
    }
}

/// Everything attempts leave through, shared by every channel: the admission of
/// attempts by host, and the shared clients of each kind of destination.
pub struct Outbound {
    /// Admits attempts by host (`hosts.rs`): fair shares, circuit breaking, limits. It
    /// also bounds what is in flight, so a fan-out to many channels reuses warm
    /// connections instead of opening one socket per channel at once.
    hosts: Arc<Hosts>,
    webhooks: Webhooks,
    brokers: Brokers,
}

impl Outbound {
    /// `max_in_flight` bounds attempts (and pooled connections per host);
    /// `max_host_rate` caps attempts per second per host; `webhooks` says how the
    /// HTTP clients of webhooks reach receivers, `brokers` which brokers there are.
    pub fn new(
        webhooks: WebhookOptions,
        brokers: BrokerOptions,
        max_in_flight: usize,
        max_host_rate: Option<f64>,
    ) -> anyhow::Result<Outbound> {
        Ok(Outbound {
            hosts: Hosts::new(max_in_flight, max_host_rate),
            webhooks: Webhooks::new(webhooks)?,
            brokers: Brokers::new(brokers),
        })
    }

    /// The hosts attempts go to, and their admission.
    pub fn hosts(&self) -> &Arc<Hosts> {
        &self.hosts
    }

    /// Where `channel`'s notifications go: its address's scheme says what kind of
    /// destination it is.
    pub fn destination(&self, channel: &ChannelSpec) -> Box<dyn Destination + '_> {
        match broker_kind(&channel.address) {
            Some(_) => Box::new(self.brokers.destination(channel)),
            None => Box::new(self.webhooks.destination(channel)),
        }
    }
}
