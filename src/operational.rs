//! Operational events (docs/api.md §18): what the gateway publishes about its own
//! channels, into the ordinary log under `/watchwire/events/channels/{id}`, so that a
//! watcher, a channel, the stream or polling on `/watchwire/events` (admin keys only)
//! hears when an endpoint breaks. Each change of a channel makes one event, written in
//! the transaction that records the change (health), or right after the one that
//! made it (removals), by the node that made it.

use serde_json::{json, Value};

use crate::channel_view::{channel_view, failure_view};
use crate::model::{rfc3339_ms, ChannelSpec, Failure, NewEvent, ResourceState};
use crate::protocol::resource::{segment, OPERATIONAL};

/// What happened to a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelChange {
    /// Its first failed attempt after a success (or since it was made).
    Failing,
    /// Its first success after failing.
    Recovered,
    /// Failing for `--disable-after`: no more attempts until enabled.
    Disabled,
    Enabled,
    /// It expires within `--expiring-notice`.
    Expiring,
    Expired,
    Stopped,
    /// Its receiver answered `410 Gone`.
    Gone,
}

impl ChannelChange {
    pub fn name(self) -> &'static str {
        match self {
            ChannelChange::Failing => "channel.failing",
            ChannelChange::Recovered => "channel.recovered",
            ChannelChange::Disabled => "channel.disabled",
            ChannelChange::Enabled => "channel.enabled",
            ChannelChange::Expiring => "channel.expiring",
            ChannelChange::Expired => "channel.expired",
            ChannelChange::Stopped => "channel.stopped",
            ChannelChange::Gone => "channel.gone",
        }
    }

    /// Whether the channel is gone after it.
    fn ends(self) -> bool {
        matches!(
            self,
            ChannelChange::Expired | ChannelChange::Stopped | ChannelChange::Gone
        )
    }
}

/// Where a channel's operational events are published.
pub fn channel_resource(id: &str) -> String {
    format!("{OPERATIONAL}/events/channels/{}", segment(id))
}

/// What a channel's delivery state was at the change, as its view shows it.
#[derive(Debug, Clone, Default)]
pub struct Health<'a> {
    pub enabled: bool,
    pub failing_since_ms: Option<i64>,
    pub last_error: Option<&'a Failure>,
}

/// The event telling of `change` to `spec`: `{"type", "channel", "reason"}`, the
/// channel as `GET /v1/channels/{id}` shows it (with what its delivery state was, when
/// it is live), `reason` a sentence, or the failure that made it.
pub fn channel_event(
    change: ChannelChange,
    spec: &ChannelSpec,
    health: Option<Health<'_>>,
    reason: Value,
    now_ms: i64,
) -> NewEvent {
    let mut channel = channel_view(spec);
    match (change.ends(), health) {
        (true, _) => {
            channel["state"] = json!(match change {
                ChannelChange::Expired => "expired",
                ChannelChange::Gone => "gone",
                _ => "stopped",
            });
            channel["removedAt"] = json!(rfc3339_ms(now_ms));
        }
        (false, Some(health)) => {
            channel["state"] = json!("active");
            channel["delivery"] = json!({
                "enabled": health.enabled,
                "failingSince": health.failing_since_ms.map(rfc3339_ms),
                "lastError": health.last_error.map(failure_view),
            });
        }
        (false, None) => channel["state"] = json!("active"),
    }
    let data = json!({"type": change.name(), "channel": channel, "reason": reason});
    NewEvent {
        resource: channel_resource(&spec.id),
        state: match change.ends() {
            true => ResourceState::NotExists,
            false => ResourceState::Exists,
        },
        data: Some(data.to_string().into_bytes().into()),
        changed: vec![],
        metadata: None,
        trace: None,
    }
}

/// A failure as an event's reason.
pub fn failure_reason(failure: &Failure) -> Value {
    failure_view(failure)
}
