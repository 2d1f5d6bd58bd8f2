//! Core types of the gateway: events in the log, channels, cursors.

use std::sync::Arc;

use bytes::Bytes;

/// Position in the event log. Assigned by the store, strictly increasing, never reused.
pub type Seq = u64;

/// The cursor clients see for a log position: fixed-width lower-case hex, so cursors
/// order the same as strings and as numbers. Opaque by contract (SPEC §1).
pub fn cursor(seq: Seq) -> String {
    format!("{seq:016x}")
}

/// Parses a cursor produced by [`cursor`].
pub fn parse_cursor(s: &str) -> Option<Seq> {
    (s.len() == 16)
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// The message number a channel gives to the event at `seq`. Derived from the log
/// position, so every retry, replay and restart repeats it; the sync message is 1 and
/// every event number is larger (SPEC §1).
pub fn message_number(seq: Seq) -> u64 {
    seq + 1
}

/// An event as a backend publishes it, validated and canonicalised.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub resource: String,
    pub state: String,
    /// The `data` JSON text exactly as published.
    pub data: Option<Bytes>,
    pub changed: Vec<String>,
    /// Compact JSON, non-ASCII escaped (as the notification header carries it).
    pub metadata: Option<String>,
}

/// An event in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: Seq,
    pub time_ms: i64,
    pub resource: String,
    pub state: String,
    pub data: Option<Bytes>,
    pub changed: Vec<String>,
    pub metadata: Option<String>,
}

pub type SharedEvent = Arc<Event>;

/// What kind of subscription a channel row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// Created by `watch` (SPEC §2); expires.
    Channel,
    /// Created by `POST /v1/watchers` (SPEC §9); never expires, de-duplicated per endpoint.
    Watcher,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Channel => "channel",
            ChannelKind::Watcher => "watcher",
        }
    }

    pub fn parse(s: &str) -> ChannelKind {
        if s == "watcher" {
            ChannelKind::Watcher
        } else {
            ChannelKind::Channel
        }
    }
}

/// A channel to create (SPEC §2), validated.
#[derive(Clone)]
pub struct NewChannel {
    pub kind: ChannelKind,
    pub owner: String,
    pub id: String,
    pub resource: String,
    pub resource_id: String,
    pub resource_uri: String,
    pub address: String,
    pub token: Option<String>,
    /// ms since the epoch; `None` = never expires (watchers).
    pub expiration_ms: Option<i64>,
    /// Params as echoed to the caller: secrets removed. `None` when there are none
    /// (most channels), which keeps an idle channel small.
    pub params: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    pub payload: bool,
    pub signing_secret: Option<String>,
    pub created_ms: i64,
}

/// Never prints the token or the signing secret.
impl std::fmt::Debug for NewChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewChannel")
            .field("kind", &self.kind)
            .field("owner", &self.owner)
            .field("id", &self.id)
            .field("resource", &self.resource)
            .field("address", &self.address)
            .field("expiration_ms", &self.expiration_ms)
            .finish_non_exhaustive()
    }
}

/// A stored channel: what it is plus how far its delivery has got.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Store-assigned key, unique for the life of the database.
    pub pk: i64,
    pub spec: Arc<NewChannel>,
    /// The log position the channel's coverage starts after (the sync's cursor).
    pub start_seq: Seq,
    /// Every matched event at or below this has been delivered or has failed for good.
    pub progress_seq: Seq,
    /// Whether the sync notification is done.
    pub synced: bool,
    /// Disabled after failing without success for the disable window (SPEC §5).
    pub disabled: bool,
    /// Since when every attempt has failed; `None` after a success.
    pub failing_since_ms: Option<i64>,
}

/// Where a notification stands (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeStatus {
    /// Attempted, not yet delivered; will be retried.
    Pending,
    Delivered,
    /// Failed for good: a permanent status or the retry budget ran out.
    Failed,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Pending => "pending",
            OutcomeStatus::Delivered => "delivered",
            OutcomeStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<OutcomeStatus> {
        match s {
            "pending" => Some(OutcomeStatus::Pending),
            "delivered" => Some(OutcomeStatus::Delivered),
            "failed" => Some(OutcomeStatus::Failed),
            _ => None,
        }
    }
}

/// What one notification came to so far, recorded in the store (SPEC §8).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub channel_pk: i64,
    /// The event's seq; for the sync, the channel's `start_seq`.
    pub seq: Seq,
    pub message_number: u64,
    pub state: String,
    pub status: OutcomeStatus,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// When the last attempt ended.
    pub at_ms: i64,
    pub next_retry_ms: Option<i64>,
}

/// A delivery-log entry as listed: the outcome and what its event carried.
#[derive(Debug, Clone)]
pub struct OutcomeRecord {
    pub outcome: Outcome,
    /// `None` for the sync or once the event was pruned from the log.
    pub resource: Option<String>,
    pub metadata: Option<String>,
}

/// A collection's latest change (SPEC §7 polling).
#[derive(Debug, Clone)]
pub struct Collection {
    pub path: String,
    pub last_seq: Seq,
    pub last_ms: i64,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_order_as_strings_and_round_trip() {
        assert!(cursor(9) < cursor(10));
        assert!(cursor(255) < cursor(256));
        assert_eq!(parse_cursor(&cursor(123_456)), Some(123_456));
        assert_eq!(parse_cursor("12"), None);
        assert_eq!(parse_cursor("zzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn event_numbers_follow_sync() {
        assert!(message_number(1) > crate::protocol::headers::SYNC_MESSAGE_NUMBER);
    }
}
