//! Core types of the gateway: events in the log, channels, cursors.

use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::resource::covers;
pub use crate::protocol::ResourceState;
pub use crate::trace::TraceContext;

/// Position in the event log. Assigned by the store, strictly increasing, never reused.
pub type Seq = u64;

/// The cursor clients see for a log position: fixed-width lower-case hex, so cursors
/// order the same as strings and as numbers. Opaque by contract (docs/api.md §1).
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
/// every event number is larger (docs/api.md §1).
pub fn message_number(seq: Seq) -> u64 {
    seq + 1
}

/// An event as a backend publishes it, validated and canonicalised.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub resource: String,
    pub state: ResourceState,
    /// The `data` JSON text exactly as published.
    pub data: Option<Bytes>,
    pub changed: Vec<String>,
    /// Compact JSON, non-ASCII escaped (as the notification header carries it).
    pub metadata: Option<String>,
    /// The trace of the publish (docs/api.md §18), which its deliveries continue.
    pub trace: Option<TraceContext>,
}

/// An event in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: Seq,
    pub time_ms: i64,
    pub resource: String,
    pub state: ResourceState,
    pub data: Option<Bytes>,
    pub changed: Vec<String>,
    pub metadata: Option<String>,
    pub trace: Option<TraceContext>,
}

pub type SharedEvent = Arc<Event>;

impl NewEvent {
    /// The event once the log gave it position `seq` at `time_ms`.
    pub fn at(self, seq: Seq, time_ms: i64) -> SharedEvent {
        Arc::new(Event {
            seq,
            time_ms,
            resource: self.resource,
            state: self.state,
            data: self.data,
            changed: self.changed,
            metadata: self.metadata,
            trace: self.trace,
        })
    }
}

#[cfg(test)]
impl Event {
    /// A bare `exists` event on `/r` at `seq`, for unit tests.
    pub fn at(seq: Seq) -> SharedEvent {
        Arc::new(Event {
            seq,
            time_ms: 0,
            resource: "/r".into(),
            state: ResourceState::Exists,
            data: None,
            changed: Vec::new(),
            metadata: None,
            trace: None,
        })
    }
}

/// What kind of subscription a channel row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// Created by `watch` (docs/api.md §2); expires.
    WatchChannel,
    /// Created by `POST /v1/watchers` (docs/api.md §9); never expires, de-duplicated per endpoint.
    Watcher,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::WatchChannel => "channel",
            ChannelKind::Watcher => "watcher",
        }
    }

    pub fn parse(s: &str) -> ChannelKind {
        if s == "watcher" {
            ChannelKind::Watcher
        } else {
            ChannelKind::WatchChannel
        }
    }
}

/// What a channel or a reader covers (docs/api.md §1): every event on or below one of
/// its paths. Usually one path, the resource watched; `/` is the whole namespace; a
/// channel or stream on `/` of a key limited to prefixes covers just those (§10.1).
/// No path covers another, so an event falls under at most one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage(Vec<String>);

impl Coverage {
    /// Everything on or below `path`.
    pub fn path(path: &str) -> Coverage {
        Coverage(vec![path.to_string()])
    }

    /// Everything on or below any of `paths` (at least one), each once: a path that
    /// another covers adds nothing and is left out.
    pub fn union<'a>(paths: impl IntoIterator<Item = &'a str>) -> Coverage {
        let mut paths: Vec<&str> = paths.into_iter().collect();
        paths.sort_unstable();
        paths.dedup();
        let kept: Vec<String> = paths
            .iter()
            .filter(|p| !paths.iter().any(|q| q != *p && covers(q, p)))
            .map(|p| p.to_string())
            .collect();
        assert!(!kept.is_empty(), "it covers at least one path");
        Coverage(kept)
    }

    /// Its paths, none of which covers another.
    pub fn paths(&self) -> &[String] {
        &self.0
    }

    /// Whether an event published on `resource` falls under it.
    pub fn covers(&self, resource: &str) -> bool {
        self.0.iter().any(|path| covers(path, resource))
    }

    /// As a store keeps it: the paths, one a line (a canonical path holds no newline).
    pub fn to_lines(&self) -> String {
        self.0.join("\n")
    }

    /// What [`Coverage::to_lines`] wrote.
    pub fn from_lines(text: &str) -> Coverage {
        Coverage::union(text.lines())
    }
}

/// A channel to create (docs/api.md §2), validated. Its strings are `Box<str>`, not
/// `String`: they never change, and each of a million idle channels saves the
/// capacity words and any spare capacity.
#[derive(Clone)]
pub struct ChannelSpec {
    pub kind: ChannelKind,
    pub owner: Box<str>,
    pub id: Box<str>,
    pub resource: Box<str>,
    pub resource_id: Box<str>,
    pub resource_uri: Box<str>,
    pub address: Box<str>,
    pub token: Option<Box<str>>,
    /// ms since the epoch; `None` = never expires (watchers).
    pub expiration_ms: Option<i64>,
    /// Params as echoed to the caller: secrets removed. `None` when there are none
    /// (most channels), which keeps an idle channel small.
    pub params: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    pub payload: bool,
    pub signing_secret: Option<Box<str>>,
    pub created_ms: i64,
    /// For a channel on `/` made with a key limited to prefixes: those prefixes, all
    /// it covers (docs/api.md §10.1). `None` (nearly every channel): it covers its
    /// resource. Boxed, so that it costs an idle channel one word.
    pub within: Option<Box<Coverage>>,
    /// Which of the covered events it gets (docs/api.md §15); `None`: all of them.
    /// Shared: equal filters are evaluated once per event, whatever the number of
    /// channels holding them.
    pub filter: Option<Arc<crate::filter::Filter>>,
    /// How it authenticates to its endpoint (docs/api.md §17): secrets inside, never
    /// shown. Boxed: most channels have none.
    pub auth: Option<Box<crate::endpoint_auth::EndpointAuth>>,
}

impl ChannelSpec {
    /// What the channel covers: its resource, or the prefixes it is kept `within`.
    pub fn coverage(&self) -> Coverage {
        match &self.within {
            Some(within) => (**within).clone(),
            None => Coverage::path(&self.resource),
        }
    }

    /// The paths of [`ChannelSpec::coverage`], without building one.
    pub fn covered_paths(&self) -> impl Iterator<Item = &str> {
        let within = self
            .within
            .as_deref()
            .map(|w| w.paths().iter().map(String::as_str));
        let resource = self.within.is_none().then_some(&*self.resource);
        within.into_iter().flatten().chain(resource)
    }

    /// `params` as a store keeps them (a JSON object; `{}` for none).
    pub fn params_from_json(text: &str) -> Option<Box<serde_json::Map<String, serde_json::Value>>> {
        match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) if !map.is_empty() => Some(Box::new(map)),
            _ => None,
        }
    }

    /// `params` as a store keeps them.
    pub fn params_json(&self) -> String {
        serde_json::Value::Object(self.params.as_deref().cloned().unwrap_or_default()).to_string()
    }

    /// `params.maxRate`: the least time between two of this channel's attempts.
    pub fn min_attempt_interval(&self) -> Option<std::time::Duration> {
        let text = self.params.as_deref()?.get("maxRate")?.as_str()?;
        let per_second = parse_max_rate(text).ok()?;
        Some(std::time::Duration::from_secs_f64(
            1.0 / f64::from(per_second),
        ))
    }
}

/// `params.maxRate`: notifications per second, a whole number of at least 1 (written
/// as a string, like every Google `params` value). Larger numbers than `u32` holds
/// mean no practical cap and are taken as `u32::MAX`.
pub fn parse_max_rate(text: &str) -> Result<u32, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a whole number of notifications per second, such as \"10\"".into());
    }
    match text.parse::<u32>() {
        Ok(0) => Err("must be at least 1 notification per second".into()),
        Ok(n) => Ok(n),
        Err(_) => Ok(u32::MAX),
    }
}

/// Never prints the token or the signing secret.
impl std::fmt::Debug for ChannelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSpec")
            .field("kind", &self.kind)
            .field("owner", &self.owner)
            .field("id", &self.id)
            .field("resource", &self.resource)
            .field("address", &self.address)
            .field("expiration_ms", &self.expiration_ms)
            .field("filter", &self.filter.as_ref().map(|f| f.canonical()))
            .finish_non_exhaustive()
    }
}

/// A stored channel: what it is plus how far its delivery has got.
#[derive(Debug, Clone)]
pub struct StoredChannel {
    /// Store-assigned key, unique for the life of the database.
    pub pk: i64,
    pub spec: Arc<ChannelSpec>,
    /// The log position the channel's coverage starts after (the sync's cursor).
    pub start_seq: Seq,
    /// Every matched event at or below this has been delivered or has failed for good.
    pub progress_seq: Seq,
    /// The last notification sent (its position), where a filter made the channel
    /// move past events it did not send; `None`: `progress_seq`.
    pub sent_seq: Option<Seq>,
    /// Whether the sync notification is done.
    pub synced: bool,
    /// Disabled after failing without success for the disable window (docs/api.md §5).
    pub disabled: bool,
    /// Since when every attempt has failed; `None` after a success.
    pub failing_since_ms: Option<i64>,
}

/// Where a notification stands (docs/api.md §8).
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

/// Why a delivery attempt did not deliver, as the delivery log names it
/// (docs/api.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureReason {
    /// The receiving host refused the TCP connection.
    ConnectionRefused,
    /// No connection, or no answer, within the timeout.
    Timeout,
    /// The address's host name did not resolve.
    DnsFailure,
    /// The TLS handshake failed (certificate, protocol).
    TlsError,
    /// Any other failure to connect (unreachable network, reset while connecting).
    ConnectionFailed,
    /// The target policy refused the address (it resolves to a non-public address).
    TargetRefused,
    /// The receiver answered with a status that is not an acknowledgement.
    HttpStatus,
    /// The connection broke while the request or answer was under way.
    RequestFailed,
    /// The gateway shut down while the attempt waited for an answer.
    Interrupted,
    /// The OAuth 2.0 token endpoint gave no token (docs/api.md §17).
    AuthFailed,
    /// No connection to the broker (down, refusing, reconnecting; docs/api.md §20).
    BrokerUnavailable,
    /// The broker had nowhere to put the message: an AMQP message returned as
    /// unroutable, a missing exchange, a subject no JetStream stream takes.
    NoRoute,
    /// The broker refused to take the message (an AMQP nack, a JetStream error).
    Nack,
    /// The broker answered with an error of another kind (a key that is not a stream).
    BrokerError,
    /// A Redis stream already holds a newer entry than this notification's, written by
    /// something else: the notification can never be added in order.
    StreamAhead,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ConnectionRefused => "connectionRefused",
            FailureReason::Timeout => "timeout",
            FailureReason::DnsFailure => "dnsFailure",
            FailureReason::TlsError => "tlsError",
            FailureReason::ConnectionFailed => "connectionFailed",
            FailureReason::TargetRefused => "targetRefused",
            FailureReason::HttpStatus => "httpStatus",
            FailureReason::RequestFailed => "requestFailed",
            FailureReason::Interrupted => "interrupted",
            FailureReason::AuthFailed => "authFailed",
            FailureReason::BrokerUnavailable => "brokerUnavailable",
            FailureReason::NoRoute => "noRoute",
            FailureReason::Nack => "nack",
            FailureReason::BrokerError => "brokerError",
            FailureReason::StreamAhead => "streamAhead",
        }
    }

    pub fn parse(s: &str) -> Option<FailureReason> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// A failure in short: a classified reason and a detail a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: FailureReason,
    /// One short sentence, e.g. "connection refused by 127.0.0.1:9".
    pub detail: String,
    /// The receiver's status, for `HttpStatus`.
    pub status: Option<u16>,
}

impl Failure {
    /// A failure as a store keeps it: its reason, detail and last status columns. Rows
    /// from before reasons were kept have a detail only, and read as a connection
    /// failure (or `httpStatus` when a status was kept).
    pub fn from_columns(
        reason: Option<String>,
        detail: Option<String>,
        status: Option<u16>,
    ) -> Option<Failure> {
        let detail = detail?;
        let fallback = match status {
            Some(_) => FailureReason::HttpStatus,
            None => FailureReason::ConnectionFailed,
        };
        let reason = reason
            .as_deref()
            .and_then(FailureReason::parse)
            .unwrap_or(fallback);
        Some(Failure {
            reason,
            detail,
            status: status.filter(|_| reason == FailureReason::HttpStatus),
        })
    }
}

/// One delivery attempt, as the delivery log keeps the last few of each notification.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttemptRecord {
    pub at_ms: i64,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The start of the receiver's answer body (at most [`RESPONSE_EXCERPT_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// A broker's acknowledgement (docs/api.md §20): `acked`, or `duplicate` when it
    /// already held the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_status: Option<String>,
}

/// How much of a receiver's answer body the delivery log keeps.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;
/// How many attempts of one notification the delivery log keeps.
pub const RECENT_ATTEMPTS: usize = 5;

/// What one notification came to so far, recorded in the store (docs/api.md §8).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub channel_pk: i64,
    /// The event's seq; for the sync, the channel's `start_seq`.
    pub seq: Seq,
    pub message_number: u64,
    pub state: ResourceState,
    pub status: OutcomeStatus,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<Failure>,
    /// When the last attempt ended.
    pub at_ms: i64,
    pub next_retry_ms: Option<i64>,
    /// When the first attempt began: the retry budget runs from here, across restarts.
    pub first_attempt_ms: Option<i64>,
    /// The last [`RECENT_ATTEMPTS`] attempts, oldest first.
    pub recent: Vec<AttemptRecord>,
}

/// What is left of a removed channel for the delivery-log retention window
/// (docs/api.md §8): what it was, and when and why it ended.
#[derive(Debug, Clone)]
pub struct RemovedChannel {
    /// The channel as it was (no token or secret kept).
    pub spec: ChannelSpec,
    /// How it ended: `stopped`, `expired` or `gone`.
    pub ended: String,
    pub reason: String,
    pub removed_ms: i64,
}

/// A delivery-log entry as listed: the outcome and what its event carried.
#[derive(Debug, Clone)]
pub struct OutcomeRecord {
    pub outcome: Outcome,
    /// `None` for the sync or once the event was pruned from the log.
    pub resource: Option<String>,
    pub metadata: Option<String>,
}

/// A collection's latest change (docs/api.md §7 polling).
#[derive(Debug, Clone)]
pub struct Collection {
    pub path: String,
    pub last_seq: Seq,
    pub last_ms: i64,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A time as the JSON API shows it: RFC 3339, UTC, milliseconds
/// (`2026-11-30T12:00:00.123Z`, docs/api.md §14).
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
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
    fn times_are_rfc3339_with_milliseconds_in_utc() {
        assert_eq!(rfc3339_ms(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn failure_reasons_round_trip_by_name() {
        for reason in [FailureReason::DnsFailure, FailureReason::HttpStatus] {
            assert_eq!(FailureReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(FailureReason::parse("nope"), None);
    }

    #[test]
    fn event_numbers_follow_sync() {
        assert!(message_number(1) > crate::protocol::headers::SYNC_MESSAGE_NUMBER);
    }
}
