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

/// A channel to create (SPEC §2), validated.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub owner: String,
    pub id: String,
    pub resource: String,
    pub resource_id: String,
    pub resource_uri: String,
    pub address: String,
    pub token: Option<String>,
    /// ms since the epoch; `None` = never expires (watchers).
    pub expiration_ms: Option<i64>,
    /// Params as echoed to the caller: secrets removed.
    pub params: serde_json::Map<String, serde_json::Value>,
    pub payload: bool,
    pub signing_secret: Option<String>,
    pub created_ms: i64,
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
}

/// What one notification came to, recorded in the store (SPEC §8).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub channel_pk: i64,
    pub seq: Seq,
    pub message_number: u64,
    pub state: String,
    pub delivered: bool,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub at_ms: i64,
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
