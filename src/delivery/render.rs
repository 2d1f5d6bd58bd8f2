//! A notification's wire form, whatever carries it (docs/api.md §4, §10): every header
//! as a name and a value, and the body. A webhook sends them as an HTTP request; a
//! broker would carry the same headers as message headers (docs/api.md §17).

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue};

use crate::model::{cursor, message_number, ChannelSpec, Seq, SharedEvent};
use crate::protocol::headers as h;
use crate::protocol::httpdate;
use crate::protocol::signature::SigningSecret;
use crate::protocol::ResourceState;

const JSON_CONTENT_TYPE: &str = "application/json; charset=\"utf-8\"";
/// Headers a notification carries at most (the channel's five, seven of its own, three
/// of a signature, its content type), so rendering never grows its list.
const MOST_HEADERS: usize = 16;

/// The header names, made once at compile time: `HeaderName::from_static` checks its
/// argument every time it runs, which was a per-notification cost.
mod name {
    use super::{h, HeaderName};
    pub const CHANNEL_ID: HeaderName = HeaderName::from_static(h::CHANNEL_ID);
    pub const CHANNEL_TOKEN: HeaderName = HeaderName::from_static(h::CHANNEL_TOKEN);
    pub const CHANNEL_EXPIRATION: HeaderName = HeaderName::from_static(h::CHANNEL_EXPIRATION);
    pub const RESOURCE_ID: HeaderName = HeaderName::from_static(h::RESOURCE_ID);
    pub const RESOURCE_URI: HeaderName = HeaderName::from_static(h::RESOURCE_URI);
    pub const RESOURCE_STATE: HeaderName = HeaderName::from_static(h::RESOURCE_STATE);
    pub const MESSAGE_NUMBER: HeaderName = HeaderName::from_static(h::MESSAGE_NUMBER);
    pub const CHANGED: HeaderName = HeaderName::from_static(h::CHANGED);
    pub const EVENT_RESOURCE: HeaderName = HeaderName::from_static(h::EVENT_RESOURCE);
    pub const CURSOR: HeaderName = HeaderName::from_static(h::CURSOR);
    pub const PREVIOUS_NUMBER: HeaderName = HeaderName::from_static(h::PREVIOUS_NUMBER);
    pub const METADATA: HeaderName = HeaderName::from_static(h::METADATA);
    pub const WEBHOOK_ID: HeaderName = HeaderName::from_static(h::WEBHOOK_ID);
    pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static(h::WEBHOOK_TIMESTAMP);
    pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static(h::WEBHOOK_SIGNATURE);
    pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
}

/// One notification on one channel: the sync, or one event.
#[derive(Debug, Clone)]
pub struct Notification {
    pub number: u64,
    /// Number of the notification before it on the channel; `None` for the sync.
    pub previous: Option<u64>,
    pub state: ResourceState,
    pub cursor: Seq,
    pub event: Option<SharedEvent>,
    /// Re-sent by a replay: its delivery log entry keeps its earlier status while it
    /// is retried (a replay never makes a notification pending again).
    pub replay: bool,
}

/// A rendered notification: what every destination sends. Header names are unique.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Rendered {
    /// The value of a header, by its lowercase name.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find_map(|(n, v)| (n.as_str() == name).then_some(v))
    }

    /// The W3C `traceparent` of the attempt that sends it (docs/api.md §18).
    pub fn put_traceparent(&mut self, traceparent: &str) {
        self.put(name::TRACEPARENT, traceparent);
    }

    fn put(&mut self, name: HeaderName, value: &str) {
        // Every value is built from validated parts; one that is still not a valid
        // header value is left out rather than failing the delivery.
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
    }
}

/// The headers every notification of a channel carries (id, token, expiration, resource
/// id and URI), made once each time the channel's worker wakes rather than for every
/// notification.
pub struct ChannelHeaders(Vec<(HeaderName, HeaderValue)>);

impl ChannelHeaders {
    pub fn new(channel: &ChannelSpec) -> ChannelHeaders {
        let mut headers = Rendered {
            headers: Vec::with_capacity(5),
            body: Bytes::new(),
        };
        headers.put(name::CHANNEL_ID, &channel.id);
        if let Some(token) = &channel.token {
            headers.put(name::CHANNEL_TOKEN, token);
        }
        if let Some(expiration) = channel.expiration_ms.and_then(httpdate::format_ms) {
            headers.put(name::CHANNEL_EXPIRATION, &expiration);
        }
        headers.put(name::RESOURCE_ID, &channel.resource_id);
        headers.put(name::RESOURCE_URI, &channel.resource_uri);
        let mut headers = headers.headers;
        // Checked when given: names the gateway does not set, values a header takes.
        for (name, value) in channel.auth.iter().flat_map(|auth| auth.headers()) {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes());
            let value = HeaderValue::from_str(&value).map(|mut v| {
                v.set_sensitive(true);
                v
            });
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.push((name, value));
            }
        }
        ChannelHeaders(headers)
    }
}

impl Notification {
    pub fn sync(start_seq: Seq) -> Self {
        Notification {
            number: h::SYNC_MESSAGE_NUMBER,
            previous: None,
            state: ResourceState::Sync,
            cursor: start_seq,
            event: None,
            replay: false,
        }
    }

    pub fn event(event: SharedEvent, previous: u64) -> Self {
        Notification {
            number: message_number(event.seq),
            previous: Some(previous),
            state: event.state.clone(),
            cursor: event.seq,
            event: Some(event),
            replay: false,
        }
    }

    /// This notification on `channel`, whose own headers are `channel_headers`, signed
    /// with the channel's secret or else its key's (`key_signing`) as of `now`.
    pub fn render(
        &self,
        channel_headers: &ChannelHeaders,
        channel: &ChannelSpec,
        key_signing: Option<&KeySigning>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Rendered {
        let body = match &self.event {
            Some(event) if channel.payload => event.data.clone().unwrap_or_default(),
            _ => Bytes::new(),
        };
        let mut headers = Vec::with_capacity(MOST_HEADERS);
        headers.extend_from_slice(&channel_headers.0);
        let mut rendered = Rendered { headers, body };
        rendered.put(name::RESOURCE_STATE, self.state.as_str());
        rendered
            .headers
            .push((name::MESSAGE_NUMBER, self.number.into()));
        rendered.put(name::CURSOR, &cursor(self.cursor));
        match &self.event {
            Some(event) => {
                rendered.put(name::EVENT_RESOURCE, &event.resource);
                if !event.changed.is_empty() {
                    rendered.put(name::CHANGED, &event.changed.join(","));
                }
                if let Some(metadata) = &event.metadata {
                    rendered.put(name::METADATA, metadata);
                }
            }
            None => rendered.put(name::EVENT_RESOURCE, &channel.resource),
        }
        if let Some(previous) = self.previous {
            rendered
                .headers
                .push((name::PREVIOUS_NUMBER, previous.into()));
        }
        let own = channel
            .signing_secret
            .as_deref()
            .and_then(|s| SigningSecret::parse(s).ok());
        let secrets: Vec<&SigningSecret> = match (&own, key_signing) {
            (Some(own), _) => vec![own],
            (None, Some(key)) => key.secrets_at(now),
            (None, None) => vec![],
        };
        if !secrets.is_empty() {
            let msg_id = format!("{}-{}", channel.id, self.number);
            let timestamp = now.timestamp();
            let signatures: Vec<String> = secrets
                .iter()
                .map(|s| s.sign(&msg_id, timestamp, &rendered.body))
                .collect();
            rendered.put(name::WEBHOOK_SIGNATURE, &signatures.join(" "));
            rendered.put(name::WEBHOOK_ID, &msg_id);
            rendered.put(name::WEBHOOK_TIMESTAMP, &timestamp.to_string());
        }
        if !rendered.body.is_empty() {
            rendered
                .headers
                .push((CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE)));
        }
        rendered
    }
}

/// An API key's signing secrets: the current one, and during a rotation the previous
/// one until a given time (both signatures are sent until then).
#[derive(Debug, Clone)]
pub struct KeySigning {
    pub current: SigningSecret,
    pub previous: Option<(SigningSecret, chrono::DateTime<chrono::Utc>)>,
}

impl KeySigning {
    pub fn secrets_at(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<&SigningSecret> {
        let mut secrets = vec![&self.current];
        if let Some((old, until)) = &self.previous {
            if now < *until {
                secrets.push(old);
            }
        }
        secrets
    }
}
