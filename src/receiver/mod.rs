//! The receiving side of watch channels (docs/api.md §11): everything an app needs to turn an
//! incoming push request into a trusted, typed [`Notification`].
//!
//! Builds with `default-features = false`: it depends only on `http`, `serde_json`,
//! `chrono` and the HMAC crates, never on the gateway's runtime.
//!
//! ```
//! use watchwire::receiver::{Channel, NotificationError, Tracker};
//!
//! let channel = Channel::new("ch-1").with_token("secret-token");
//! let mut tracker = Tracker::new();
//! let headers = [
//!     ("X-Goog-Channel-ID", "ch-1"),
//!     ("X-Goog-Channel-Token", "secret-token"),
//!     ("X-Goog-Message-Number", "1"),
//!     ("X-Goog-Resource-ID", "rid"),
//!     ("X-Goog-Resource-URI", "https://gw.example/calendars/primary/events"),
//!     ("X-Goog-Resource-State", "sync"),
//! ];
//! let notification = channel.receive(headers, b"")?;
//! assert!(notification.is_sync());
//! assert!(tracker.observe(&notification).is_new());
//! # Ok::<(), NotificationError>(())
//! ```
//!
//! - [`Channel`]: what the subscriber knows about a channel; builds the watch body,
//!   takes the watch response, and validates requests with [`Channel::receive`].
//! - [`Notification::from_headers`]: parsing alone, without a channel to check against.
//! - [`verify_signature`]: Standard Webhooks verification on its own.
//! - [`Tracker`]: duplicates, out-of-order numbers and gaps per channel;
//!   [`Tracker::retract`] takes a number back when handling it failed.

mod channel;
mod error;
mod headers;
mod notification;
mod signature;
mod tracker;

pub use channel::Channel;
pub use error::{ChannelError, NotificationError, SignatureError};
pub use notification::Notification;
pub use signature::{verify_signature, DEFAULT_SIGNATURE_TOLERANCE};
pub use tracker::{Arrival, Gap, Observation, Tracker, DEFAULT_MAX_CHANNELS, DEFAULT_WINDOW};

pub use crate::protocol::signature::SigningSecret;
pub use crate::protocol::ResourceState;

/// Header sets shared by the unit tests of this module.
#[cfg(test)]
pub(crate) mod test_support {
    /// A moment before the test channels expire (2023-11-14T22:13:20Z), in ms.
    pub const NOW: i64 = 1_700_000_000_000;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A sync message on channel `ch-1` (token `tok`), as the gateway sends it.
    pub fn sync_headers() -> Vec<(String, String)> {
        pairs(&[
            ("X-Goog-Channel-ID", "ch-1"),
            ("X-Goog-Channel-Token", "tok"),
            ("X-Goog-Channel-Expiration", "Tue, 01 Jan 2030 00:00:00 GMT"),
            ("X-Goog-Resource-ID", "rid-1"),
            (
                "X-Goog-Resource-URI",
                "http://127.0.0.1:8080/calendars/primary/events",
            ),
            ("X-Goog-Resource-State", "sync"),
            ("X-Goog-Message-Number", "1"),
            ("X-Watchwire-Event-Resource", "/calendars/primary/events"),
            ("X-Watchwire-Cursor", "c-0"),
        ])
    }

    /// Message 5 (after 3) on channel `ch-1`, with every optional header.
    pub fn event_headers() -> Vec<(String, String)> {
        let headers = with(sync_headers(), "x-goog-resource-state", "update");
        let headers = with(headers, "x-goog-message-number", "5");
        let headers = with(headers, "x-watchwire-previous-number", "3");
        let headers = with(headers, "x-watchwire-cursor", "c-9");
        let headers = with(
            headers,
            "x-watchwire-event-resource",
            "/calendars/primary/events/e1",
        );
        let headers = with(headers, "x-goog-changed", "content,properties");
        with(headers, "x-watchwire-metadata", r#"{"request_id":"r-1"}"#)
    }

    /// `headers` with `name` (any case) set to `value`, replacing any value it had.
    pub fn with(headers: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
        let mut headers = without(headers, name);
        headers.push((name.to_string(), value.to_string()));
        headers
    }

    /// `headers` without `name` (any case).
    pub fn without(headers: Vec<(String, String)>, name: &str) -> Vec<(String, String)> {
        headers
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
            .collect()
    }
}
