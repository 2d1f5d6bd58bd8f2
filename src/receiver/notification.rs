//! The typed notification and the parsing of its headers (docs/api.md §4).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::error::NotificationError;
use super::headers::Picked;
use crate::protocol::headers as h;
use crate::protocol::state::is_changed_token;
use crate::protocol::{httpdate, ResourceState};

/// One notification, as its headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `X-Goog-Channel-ID`.
    pub channel_id: String,
    /// `X-Goog-Message-Number`: 1 for sync, strictly larger afterwards, kept on retries.
    pub message_number: u64,
    /// `X-Goog-Resource-State`.
    pub state: ResourceState,
    /// `X-Goog-Resource-ID`: opaque, the same for every channel on one resource.
    pub resource_id: String,
    /// `X-Goog-Resource-URI`.
    pub resource_uri: String,
    /// `X-Goog-Channel-Expiration`; `None` for channels that never expire.
    pub channel_expiration: Option<DateTime<Utc>>,
    /// `X-Goog-Channel-Token`, when the channel has one.
    pub token: Option<String>,
    /// `X-Goog-Changed`, split at commas; empty when absent.
    pub changed: Vec<String>,
    /// `X-Watchwire-Event-Resource`: the path the event was published on.
    pub event_resource: Option<String>,
    /// `X-Watchwire-Cursor`: the event's position in the gateway's log (for sync, where
    /// the channel's coverage starts).
    pub cursor: Option<String>,
    /// `X-Watchwire-Previous-Number`: the message number sent before this one on the
    /// channel; absent on sync and from senders other than watchwire.
    pub previous_number: Option<u64>,
    /// `X-Watchwire-Metadata`: the publisher's metadata object.
    pub metadata: Option<Map<String, Value>>,
}

impl Notification {
    /// Parses notification headers (names in any letter case) without checking them
    /// against a channel: every required header present, number and state well formed,
    /// the optional ones in their formats. [`Channel::receive`](super::Channel::receive)
    /// is the call that also authenticates.
    ///
    /// `headers` is anything that yields `(name, value)` pairs, such as
    /// `&http::HeaderMap` or `[("X-Goog-Channel-ID", "ch-1"), …]`.
    pub fn from_headers<I, K, V>(headers: I) -> Result<Notification, NotificationError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        Notification::from_picked(&Picked::from_pairs(h::NOTIFICATION_HEADERS, headers))
    }

    pub(crate) fn from_picked<V: AsRef<[u8]>>(
        picked: &Picked<V>,
    ) -> Result<Notification, NotificationError> {
        let optional = |name: &'static str| {
            picked
                .text(name)
                .map_err(|reason| NotificationError::MalformedHeader {
                    header: name,
                    reason,
                })
        };
        let required =
            |name: &'static str| optional(name)?.ok_or(NotificationError::MissingHeader(name));
        let malformed = |header, reason| NotificationError::MalformedHeader { header, reason };

        let channel_id = required(h::CHANNEL_ID)?.to_string();
        let number = required(h::MESSAGE_NUMBER)?;
        let message_number = parse_number(number)
            .ok_or_else(|| NotificationError::InvalidMessageNumber(number.to_string()))?;
        let state = required(h::RESOURCE_STATE)?;
        let state = ResourceState::parse(state)
            .ok_or_else(|| NotificationError::UnknownState(state.to_string()))?;
        let resource_id = required(h::RESOURCE_ID)?.to_string();
        let resource_uri = required(h::RESOURCE_URI)?.to_string();

        let token = optional(h::CHANNEL_TOKEN)?.map(str::to_string);
        let channel_expiration = optional(h::CHANNEL_EXPIRATION)?
            .map(|s| {
                httpdate::parse(s).ok_or(malformed(h::CHANNEL_EXPIRATION, "is not an IMF-fixdate"))
            })
            .transpose()?;
        let changed = optional(h::CHANGED)?
            .map(|s| {
                parse_changed(s).ok_or(malformed(
                    h::CHANGED,
                    "is not a comma-separated list of [A-Za-z0-9_-]{1,64}",
                ))
            })
            .transpose()?
            .unwrap_or_default();
        let event_resource = optional(h::EVENT_RESOURCE)?.map(str::to_string);
        let cursor = optional(h::CURSOR)?.map(str::to_string);
        let previous_number = optional(h::PREVIOUS_NUMBER)?
            .map(|s| {
                parse_number(s)
                    .filter(|&previous| previous < message_number)
                    .ok_or(malformed(
                        h::PREVIOUS_NUMBER,
                        "is not a positive decimal integer below the message number",
                    ))
            })
            .transpose()?;
        let metadata = optional(h::METADATA)?
            .map(|s| {
                serde_json::from_str::<Map<String, Value>>(s)
                    .map_err(|_| malformed(h::METADATA, "is not a JSON object"))
            })
            .transpose()?;

        Ok(Notification {
            channel_id,
            message_number,
            state,
            resource_id,
            resource_uri,
            channel_expiration,
            token,
            changed,
            event_resource,
            cursor,
            previous_number,
            metadata,
        })
    }

    /// Whether this is the sync message that opens a channel.
    pub fn is_sync(&self) -> bool {
        self.state == ResourceState::Sync
    }
}

/// A message number: decimal digits only (no sign), at least 1.
fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|&n| n >= 1)
}

/// `content,properties` → `["content", "properties"]`; an empty value is an empty list.
fn parse_changed(s: &str) -> Option<Vec<String>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(',')
        .map(|item| item.trim_matches([' ', '\t']))
        .map(|item| is_changed_token(item).then(|| item.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::test_support::{event_headers, sync_headers, with, without};

    #[test]
    fn parses_a_sync_message() {
        let n = Notification::from_headers(sync_headers()).unwrap();
        assert_eq!(n.channel_id, "ch-1");
        assert_eq!(n.message_number, 1);
        assert!(n.is_sync());
        assert_eq!(n.resource_id, "rid-1");
        assert_eq!(
            n.resource_uri,
            "http://127.0.0.1:8080/calendars/primary/events"
        );
        assert_eq!(n.token.as_deref(), Some("tok"));
        assert_eq!(n.channel_expiration.unwrap().timestamp(), 1_893_456_000);
        assert_eq!(n.cursor.as_deref(), Some("c-0"));
        assert_eq!(n.previous_number, None);
        assert!(n.changed.is_empty());
        assert_eq!(n.metadata, None);
    }

    #[test]
    fn parses_every_extension_header() {
        let n = Notification::from_headers(event_headers()).unwrap();
        assert_eq!(n.message_number, 5);
        assert_eq!(n.state, ResourceState::Update);
        assert_eq!(n.changed, ["content", "properties"]);
        assert_eq!(
            n.event_resource.as_deref(),
            Some("/calendars/primary/events/e1")
        );
        assert_eq!(n.cursor.as_deref(), Some("c-9"));
        assert_eq!(n.previous_number, Some(3));
        assert_eq!(n.metadata.unwrap()["request_id"], "r-1");
    }

    #[test]
    fn keeps_admin_style_state_names() {
        let n = Notification::from_headers(with(event_headers(), h::RESOURCE_STATE, "CREATE_USER"))
            .unwrap();
        assert_eq!(n.state, ResourceState::Named("CREATE_USER".into()));
    }

    #[test]
    fn names_each_missing_required_header() {
        for name in [
            h::CHANNEL_ID,
            h::MESSAGE_NUMBER,
            h::RESOURCE_STATE,
            h::RESOURCE_ID,
            h::RESOURCE_URI,
        ] {
            assert_eq!(
                Notification::from_headers(without(sync_headers(), name)),
                Err(NotificationError::MissingHeader(name)),
            );
        }
    }

    #[test]
    fn optional_headers_may_be_absent() {
        let mut headers = event_headers();
        for name in [
            h::CHANNEL_TOKEN,
            h::CHANNEL_EXPIRATION,
            h::CHANGED,
            h::EVENT_RESOURCE,
            h::CURSOR,
            h::PREVIOUS_NUMBER,
            h::METADATA,
        ] {
            headers = without(headers, name);
        }
        let n = Notification::from_headers(headers).unwrap();
        assert_eq!(
            (n.token, n.channel_expiration, n.previous_number, n.metadata),
            (None, None, None, None)
        );
        assert!(n.changed.is_empty());
    }

    #[test]
    fn rejects_unparsable_message_numbers() {
        for bad in [
            "",
            "0",
            "-1",
            "+2",
            "1.0",
            "0x10",
            "one",
            "18446744073709551616",
            "1 2",
        ] {
            assert_eq!(
                Notification::from_headers(with(sync_headers(), h::MESSAGE_NUMBER, bad)),
                Err(NotificationError::InvalidMessageNumber(bad.to_string())),
                "{bad:?}"
            );
        }
        let n = Notification::from_headers(with(
            event_headers(),
            h::MESSAGE_NUMBER,
            "18446744073709551615",
        ))
        .unwrap();
        assert_eq!(n.message_number, u64::MAX);
    }

    #[test]
    fn rejects_unknown_states() {
        for bad in [
            "",
            "Exists",
            "SYNC ING",
            "created",
            "deleted",
            "exists,sync",
        ] {
            assert_eq!(
                Notification::from_headers(with(sync_headers(), h::RESOURCE_STATE, bad)),
                Err(NotificationError::UnknownState(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_malformed_optional_headers() {
        let cases = [
            (h::CHANNEL_EXPIRATION, "1893456000000"),
            (h::CHANNEL_EXPIRATION, "2030-01-01T00:00:00Z"),
            (h::CHANGED, "content,,parents"),
            (h::CHANGED, "a b"),
            (h::PREVIOUS_NUMBER, "five"),
            (h::PREVIOUS_NUMBER, "0"),
            (h::PREVIOUS_NUMBER, "5"), // not below the message number 5
            (h::METADATA, "[1,2]"),
            (h::METADATA, "{not json"),
        ];
        for (header, value) in cases {
            let err = Notification::from_headers(with(event_headers(), header, value)).unwrap_err();
            assert!(
                matches!(err, NotificationError::MalformedHeader { header: got, .. } if got == header),
                "{header}: {value:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn a_previous_number_on_sync_is_malformed() {
        let err =
            Notification::from_headers(with(sync_headers(), h::PREVIOUS_NUMBER, "1")).unwrap_err();
        assert_eq!(err.header(), Some(h::PREVIOUS_NUMBER));
        assert_eq!(err.reason(), "malformedHeader");
    }

    #[test]
    fn an_empty_changed_header_is_an_empty_list() {
        let n = Notification::from_headers(with(event_headers(), h::CHANGED, "")).unwrap();
        assert!(n.changed.is_empty());
    }

    #[test]
    fn a_repeated_header_is_malformed_not_first_wins() {
        let mut headers = sync_headers();
        headers.push(("X-Goog-Channel-ID".into(), "ch-2".into()));
        assert_eq!(
            Notification::from_headers(headers),
            Err(NotificationError::MalformedHeader {
                header: h::CHANNEL_ID,
                reason: super::super::headers::REPEATED
            }),
        );
    }

    #[test]
    fn a_non_text_value_is_malformed() {
        let headers: Vec<(String, Vec<u8>)> = sync_headers()
            .into_iter()
            .map(|(k, v)| {
                let value = if k.eq_ignore_ascii_case(h::RESOURCE_URI) {
                    vec![0xc3, 0x28]
                } else {
                    v.into_bytes()
                };
                (k, value)
            })
            .collect();
        assert_eq!(
            Notification::from_headers(headers),
            Err(NotificationError::MalformedHeader {
                header: h::RESOURCE_URI,
                reason: super::super::headers::NOT_TEXT
            }),
        );
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let variants: [fn(&str) -> String; 4] = [
            |s| s.to_string(),
            |s| s.to_ascii_uppercase(),
            |s| s.to_ascii_lowercase(),
            |s| {
                s.chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if i % 2 == 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c.to_ascii_lowercase()
                        }
                    })
                    .collect()
            },
        ];
        let expected = Notification::from_headers(event_headers()).unwrap();
        for variant in variants {
            let renamed: Vec<(String, String)> = event_headers()
                .into_iter()
                .map(|(k, v)| (variant(&k), v))
                .collect();
            assert_eq!(
                Notification::from_headers(renamed.clone()).unwrap(),
                expected
            );
            let map: http::HeaderMap = renamed
                .iter()
                .map(|(k, v)| {
                    (
                        http::HeaderName::try_from(k.as_str()).unwrap(),
                        http::HeaderValue::try_from(v.as_str()).unwrap(),
                    )
                })
                .collect();
            assert_eq!(Notification::from_headers(&map).unwrap(), expected);
        }
    }
}
