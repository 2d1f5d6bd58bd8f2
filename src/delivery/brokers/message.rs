//! A rendered notification as a broker message: its headers and body as they are, and
//! the identity every broker is given (docs/api.md §20).

#![cfg_attr(not(feature = "brokers"), allow(dead_code))]

use crate::delivery::render::Rendered;
use crate::protocol::headers as h;

/// One notification as a message.
pub struct Message<'a> {
    pub rendered: &'a Rendered,
    /// `<channel id>-<message number>`: the webhook-id, whether or not the channel signs.
    pub id: String,
    /// The notification's message number.
    pub number: u64,
    /// Where the notification is in the log (`X-Watchwire-Cursor`).
    pub cursor: u64,
}

impl<'a> Message<'a> {
    pub fn of(rendered: &'a Rendered) -> Message<'a> {
        let text = |name: &str| {
            rendered
                .header(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        let number = text(h::MESSAGE_NUMBER).parse().unwrap_or_default();
        Message {
            rendered,
            id: format!("{}-{number}", text(h::CHANNEL_ID)),
            number,
            cursor: u64::from_str_radix(text(h::CURSOR), 16).unwrap_or_default(),
        }
    }

    /// Every header, by its lower-case name, with its value as text (every value the
    /// gateway renders is visible ASCII).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.rendered
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
    }

    pub fn body(&self) -> &[u8] {
        &self.rendered.body
    }

    /// The Redis stream entry ID: `<message number>-0` for an event; for the sync
    /// (always number 1), `<cursor + 1>-1`, which sorts after every event the log held
    /// when the channel was made and before the channel's first event, so a stream key
    /// used by an earlier channel takes a new channel's sync too. A repeat of either
    /// has the same ID.
    pub fn entry_id(&self) -> String {
        if self.number == h::SYNC_MESSAGE_NUMBER {
            format!("{}-1", self.cursor + 1)
        } else {
            format!("{}-0", self.number)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderName, HeaderValue};

    fn rendered(number: &'static str, cursor: &'static str) -> Rendered {
        Rendered {
            headers: [
                (h::CHANNEL_ID, "ch-1"),
                (h::MESSAGE_NUMBER, number),
                (h::CURSOR, cursor),
            ]
            .into_iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect(),
            body: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn ids_come_from_the_channel_and_the_number() {
        let event = rendered("25", "0000000000000018");
        let message = Message::of(&event);
        assert_eq!(message.id, "ch-1-25");
        assert_eq!(message.entry_id(), "25-0");
        let sync = rendered("1", "0000000000000018");
        let message = Message::of(&sync);
        assert_eq!(message.id, "ch-1-1");
        assert_eq!(message.entry_id(), "25-1", "after event 25-0, before 26-0");
        assert_eq!(message.headers().count(), 3);
    }
}
