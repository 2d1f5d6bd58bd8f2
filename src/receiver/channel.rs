//! The subscriber's record of a channel, and the one call that turns a request into a
//! trusted notification.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

use super::error::{ChannelError, NotificationError};
use super::headers::Picked;
use super::notification::Notification;
use super::signature::{verify_picked, DEFAULT_SIGNATURE_TOLERANCE};
use crate::protocol::headers as h;
use crate::protocol::signature::SigningSecret;
use crate::protocol::watch::parse_expiration;

/// A signing secret with the text it was given as, to send it back in a watch body.
#[derive(Clone)]
struct Secret {
    text: String,
    key: SigningSecret,
}

/// A watch channel as its subscriber keeps it: what to send in the watch request, and
/// what every notification on it must match.
///
/// Fields left `None` are not checked: a channel without a token accepts any token, and
/// the resource id is only compared once known (the sync message may arrive before the
/// watch response that carries it).
#[derive(Clone)]
pub struct Channel {
    pub id: String,
    pub token: Option<String>,
    /// Where notifications are sent; needed only to build a watch body.
    pub address: Option<String>,
    pub resource_id: Option<String>,
    pub resource_uri: Option<String>,
    pub expiration: Option<DateTime<Utc>>,
    /// Extra `params` for the watch body, such as `ttl` (the signing secret is added
    /// from [`Channel::set_signing_secret`]).
    pub params: BTreeMap<String, String>,
    /// How far a signature's timestamp may be from the receiver's clock.
    pub signature_tolerance: Duration,
    signing_secret: Option<Secret>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("address", &self.address)
            .field("resource_id", &self.resource_id)
            .field("resource_uri", &self.resource_uri)
            .field("expiration", &self.expiration)
            .field("params", &self.params)
            .field("signature_tolerance", &self.signature_tolerance)
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Channel {
    /// A channel known only by its id.
    pub fn new(id: impl Into<String>) -> Channel {
        Channel {
            id: id.into(),
            token: None,
            address: None,
            resource_id: None,
            resource_uri: None,
            expiration: None,
            params: BTreeMap::new(),
            signature_tolerance: DEFAULT_SIGNATURE_TOLERANCE,
            signing_secret: None,
        }
    }

    /// A web-hook channel to be created at `address` (like `channel.py`'s
    /// `new_webhook_channel`).
    pub fn webhook(id: impl Into<String>, address: impl Into<String>) -> Channel {
        Channel {
            address: Some(address.into()),
            ..Channel::new(id)
        }
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Channel {
        self.token = Some(token.into());
        self
    }

    pub fn with_resource_id(mut self, resource_id: impl Into<String>) -> Channel {
        self.resource_id = Some(resource_id.into());
        self
    }

    pub fn with_expiration(mut self, expiration: DateTime<Utc>) -> Channel {
        self.expiration = Some(expiration);
        self
    }

    /// Sets the `whsec_…` secret notifications must be signed with (docs/api.md §10).
    pub fn with_signing_secret(mut self, secret: &str) -> Result<Channel, ChannelError> {
        self.set_signing_secret(Some(secret))?;
        Ok(self)
    }

    /// Sets or clears the signing secret. With one, every notification must carry a
    /// valid signature.
    pub fn set_signing_secret(&mut self, secret: Option<&str>) -> Result<(), ChannelError> {
        self.signing_secret = secret
            .map(|text| {
                let key = SigningSecret::parse(text).map_err(ChannelError::InvalidSigningSecret)?;
                Ok(Secret {
                    text: text.to_string(),
                    key,
                })
            })
            .transpose()?;
        Ok(())
    }

    pub fn signing_secret(&self) -> Option<&SigningSecret> {
        self.signing_secret.as_ref().map(|s| &s.key)
    }

    /// The JSON body of a watch request for this channel (like `channel.py`'s `body()`):
    /// `id`, `type`, and whichever of `address`, `token`, `expiration` (ms as a string),
    /// `params` (with `signingSecret`), `resourceId`, `resourceUri` are set.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("id".into(), json!(self.id));
        body.insert("type".into(), json!("web_hook"));
        let optional = [
            ("address", self.address.clone()),
            ("token", self.token.clone()),
            (
                "expiration",
                self.expiration.map(|e| e.timestamp_millis().to_string()),
            ),
            ("resourceId", self.resource_id.clone()),
            ("resourceUri", self.resource_uri.clone()),
        ];
        for (field, value) in optional {
            if let Some(value) = value {
                body.insert(field.into(), Value::String(value));
            }
        }
        let mut params: Map<String, Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        if let Some(secret) = &self.signing_secret {
            params.insert("signingSecret".into(), json!(secret.text));
        }
        if !params.is_empty() {
            body.insert("params".into(), Value::Object(params));
        }
        Value::Object(body)
    }

    /// Takes what the gateway assigned from a watch response (like `channel.py`'s
    /// `update()`): `id`, `token`, `address`, `resourceId`, `resourceUri` and
    /// `expiration` (ms since the epoch as a string or a number, as clients differ).
    /// Absent and `null` fields leave the channel as it was. On error nothing changes.
    pub fn update(&mut self, response: &Value) -> Result<(), ChannelError> {
        let fields = response
            .as_object()
            .ok_or(ChannelError::ResponseNotAnObject)?;
        let present = |field: &'static str| fields.get(field).filter(|v| !v.is_null());
        let text = |field: &'static str| {
            present(field)
                .map(|value| {
                    value.as_str().map(str::to_string).ok_or_else(|| {
                        ChannelError::InvalidResponseField {
                            field,
                            reason: "must be a string".into(),
                        }
                    })
                })
                .transpose()
        };
        let id = text("id")?;
        let token = text("token")?;
        let address = text("address")?;
        let resource_id = text("resourceId")?;
        let resource_uri = text("resourceUri")?;
        let expiration = present("expiration")
            .map(|value| {
                let invalid = |reason| ChannelError::InvalidResponseField {
                    field: "expiration",
                    reason,
                };
                let ms = parse_expiration(value).map_err(invalid)?;
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| invalid(format!("{ms} ms is out of range")))
            })
            .transpose()?;

        let assign = |slot: &mut Option<String>, value: Option<String>| {
            if value.is_some() {
                *slot = value;
            }
        };
        if let Some(id) = id {
            self.id = id;
        }
        assign(&mut self.token, token);
        assign(&mut self.address, address);
        assign(&mut self.resource_id, resource_id);
        assign(&mut self.resource_uri, resource_uri);
        if expiration.is_some() {
            self.expiration = expiration;
        }
        Ok(())
    }

    /// Whether the channel's known expiration has passed at `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expiration.is_some_and(|e| now > e)
    }

    /// Validates a request as a notification on this channel, now. See
    /// [`Channel::receive_at`].
    pub fn receive<I, K, V>(
        &self,
        headers: I,
        body: &[u8],
    ) -> Result<Notification, NotificationError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        self.receive_at(headers, body, Utc::now())
    }

    /// Validates a request (headers in any letter case, and the raw body) as a
    /// notification on this channel at time `now`, in this order:
    /// the headers parse ([`Notification::from_headers`]); the channel id is this one;
    /// the token matches when the channel has one (constant time); the resource id
    /// matches when known; neither the notification's nor the channel's expiration has
    /// passed; and, when the channel has a signing secret, the signature verifies within
    /// the tolerance and its `webhook-id` is `<channel id>-<message number>`.
    pub fn receive_at<I, K, V>(
        &self,
        headers: I,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Notification, NotificationError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        // One pass picks the notification's and the signature's headers.
        let picked = Picked::from_pairs(h::NOTIFICATION_HEADERS, headers);
        let notification = Notification::from_picked(&picked)?;
        self.check(&notification, now)?;
        if let Some(secret) = &self.signing_secret {
            let webhook_id =
                verify_picked(&secret.key, &picked, body, now, self.signature_tolerance)?;
            let expected = format!(
                "{}-{}",
                notification.channel_id, notification.message_number
            );
            if webhook_id != expected {
                return Err(NotificationError::WebhookIdMismatch {
                    expected,
                    received: webhook_id.to_string(),
                });
            }
        }
        Ok(notification)
    }

    fn check(
        &self,
        notification: &Notification,
        now: DateTime<Utc>,
    ) -> Result<(), NotificationError> {
        if notification.channel_id != self.id {
            return Err(NotificationError::ChannelIdMismatch {
                expected: self.id.clone(),
                received: notification.channel_id.clone(),
            });
        }
        if let Some(expected) = &self.token {
            let received = notification
                .token
                .as_deref()
                .ok_or(NotificationError::MissingHeader(h::CHANNEL_TOKEN))?;
            if !bool::from(received.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(NotificationError::TokenMismatch);
            }
        }
        if let Some(expected) = &self.resource_id {
            if notification.resource_id != *expected {
                return Err(NotificationError::ResourceIdMismatch {
                    expected: expected.clone(),
                    received: notification.resource_id.clone(),
                });
            }
        }
        let earliest_expiration = [notification.channel_expiration, self.expiration]
            .into_iter()
            .flatten()
            .min();
        if let Some(expiration) = earliest_expiration.filter(|&e| now > e) {
            return Err(NotificationError::ChannelExpired { expiration });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::signature::SigningSecret;
    use crate::receiver::test_support::{event_headers, sync_headers, with, without, NOW};
    use crate::receiver::SignatureError;
    use chrono::TimeZone;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn channel() -> Channel {
        Channel::new("ch-1").with_token("tok")
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_millis_opt(NOW).unwrap()
    }

    /// `headers` plus a signature over `body` under `SECRET`, with the given id.
    fn signed(
        headers: Vec<(String, String)>,
        webhook_id: &str,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let ts = now().timestamp();
        let signature = SigningSecret::parse(SECRET)
            .unwrap()
            .sign(webhook_id, ts, body);
        let headers = with(headers, "webhook-id", webhook_id);
        let headers = with(headers, "webhook-timestamp", &ts.to_string());
        with(headers, "webhook-signature", &signature)
    }

    #[test]
    fn accepts_a_matching_notification() {
        let n = channel().receive_at(sync_headers(), b"", now()).unwrap();
        assert_eq!((n.channel_id.as_str(), n.message_number), ("ch-1", 1));
    }

    #[test]
    fn rejects_another_channels_notification() {
        assert_eq!(
            Channel::new("ch-2").receive_at(sync_headers(), b"", now()),
            Err(NotificationError::ChannelIdMismatch {
                expected: "ch-2".into(),
                received: "ch-1".into()
            })
        );
    }

    #[test]
    fn checks_the_token_only_when_the_channel_has_one() {
        assert_eq!(
            channel().receive_at(with(sync_headers(), h::CHANNEL_TOKEN, "tok2"), b"", now()),
            Err(NotificationError::TokenMismatch)
        );
        assert_eq!(
            channel().receive_at(with(sync_headers(), h::CHANNEL_TOKEN, "to"), b"", now()),
            Err(NotificationError::TokenMismatch)
        );
        assert_eq!(
            channel().receive_at(without(sync_headers(), h::CHANNEL_TOKEN), b"", now()),
            Err(NotificationError::MissingHeader(h::CHANNEL_TOKEN))
        );
        assert!(Channel::new("ch-1")
            .receive_at(with(sync_headers(), h::CHANNEL_TOKEN, "any"), b"", now())
            .is_ok());
    }

    #[test]
    fn checks_the_resource_id_only_once_known() {
        assert!(channel().receive_at(sync_headers(), b"", now()).is_ok());
        assert!(channel()
            .with_resource_id("rid-1")
            .receive_at(sync_headers(), b"", now())
            .is_ok());
        assert_eq!(
            channel()
                .with_resource_id("rid-2")
                .receive_at(sync_headers(), b"", now()),
            Err(NotificationError::ResourceIdMismatch {
                expected: "rid-2".into(),
                received: "rid-1".into()
            })
        );
    }

    #[test]
    fn rejects_notifications_after_the_expiration() {
        // sync_headers() expires at 1893456000 s; NOW is before it.
        let expiration = Utc.timestamp_opt(1_893_456_000, 0).unwrap();
        let after = expiration + chrono::TimeDelta::seconds(1);
        assert!(channel()
            .receive_at(sync_headers(), b"", expiration)
            .is_ok());
        assert_eq!(
            channel().receive_at(sync_headers(), b"", after),
            Err(NotificationError::ChannelExpired { expiration })
        );
        // The subscriber's own record counts too, even when the header is absent.
        let earlier = now() - chrono::TimeDelta::seconds(1);
        assert_eq!(
            channel().with_expiration(earlier).receive_at(
                without(sync_headers(), h::CHANNEL_EXPIRATION),
                b"",
                now()
            ),
            Err(NotificationError::ChannelExpired {
                expiration: earlier
            })
        );
    }

    #[test]
    fn requires_a_valid_signature_bound_to_the_notification() {
        let signing = channel().with_signing_secret(SECRET).unwrap();
        let body = br#"{"k":1}"#;
        let good = signed(event_headers(), "ch-1-5", body);
        assert_eq!(
            signing
                .receive_at(good.clone(), body, now())
                .unwrap()
                .message_number,
            5
        );
        assert_eq!(
            signing.receive_at(good.clone(), b"{}", now()),
            Err(NotificationError::Signature(SignatureError::Mismatch))
        );
        assert_eq!(
            signing.receive_at(event_headers(), body, now()),
            Err(NotificationError::Signature(SignatureError::MissingHeader(
                h::WEBHOOK_ID
            )))
        );
        // A correctly signed body replayed under another message number.
        assert_eq!(
            signing.receive_at(with(good, h::MESSAGE_NUMBER, "6"), body, now()),
            Err(NotificationError::WebhookIdMismatch {
                expected: "ch-1-6".into(),
                received: "ch-1-5".into()
            })
        );
        let late = now() + chrono::TimeDelta::seconds(301);
        assert!(matches!(
            signing.receive_at(signed(event_headers(), "ch-1-5", body), body, late),
            Err(NotificationError::Signature(
                SignatureError::TimestampTooOld { .. }
            ))
        ));
        // Without a secret, signature headers are not checked.
        assert!(channel()
            .receive_at(
                with(event_headers(), h::WEBHOOK_SIGNATURE, "v1,bogus"),
                body,
                now()
            )
            .is_ok());
    }

    #[test]
    fn rejects_malformed_secrets() {
        assert!(matches!(
            Channel::new("c").with_signing_secret("not-a-secret"),
            Err(ChannelError::InvalidSigningSecret(_))
        ));
    }

    #[test]
    fn builds_a_watch_body() {
        let mut channel = Channel::webhook("ch-1", "https://example.com/hook")
            .with_token("tok")
            .with_expiration(Utc.timestamp_millis_opt(1_893_456_000_000).unwrap())
            .with_signing_secret(SECRET)
            .unwrap();
        channel.params.insert("ttl".into(), "3600".into());
        assert_eq!(
            channel.body(),
            json!({
                "id": "ch-1", "type": "web_hook", "address": "https://example.com/hook", "token": "tok",
                "expiration": "1893456000000", "params": {"ttl": "3600", "signingSecret": SECRET},
            })
        );
        assert_eq!(
            Channel::new("c").body(),
            json!({"id": "c", "type": "web_hook"})
        );
    }

    #[test]
    fn updates_from_a_watch_response_with_expiration_as_string_or_number() {
        for expiration in [
            json!("1893456000000"),
            json!(1893456000000i64),
            json!(1893456000000.0),
        ] {
            let mut channel =
                Channel::webhook("ch-1", "https://example.com/hook").with_token("tok");
            channel
                .update(&json!({
                    "kind": "api#channel", "id": "ch-1", "resourceId": "rid-1",
                    "resourceUri": "http://gw/calendars/primary/events", "expiration": expiration, "token": null,
                }))
                .unwrap();
            assert_eq!(channel.resource_id.as_deref(), Some("rid-1"));
            assert_eq!(
                channel.resource_uri.as_deref(),
                Some("http://gw/calendars/primary/events")
            );
            assert_eq!(
                channel.expiration.unwrap().timestamp_millis(),
                1_893_456_000_000
            );
            assert_eq!(
                channel.token.as_deref(),
                Some("tok"),
                "null leaves the token as it was"
            );
            assert_eq!(channel.address.as_deref(), Some("https://example.com/hook"));
        }
    }

    #[test]
    fn a_bad_watch_response_changes_nothing() {
        let mut channel = Channel::new("ch-1");
        assert_eq!(
            channel.update(&json!([])),
            Err(ChannelError::ResponseNotAnObject)
        );
        let err = channel
            .update(&json!({"resourceId": "rid", "expiration": "soon"}))
            .unwrap_err();
        assert!(matches!(
            err,
            ChannelError::InvalidResponseField {
                field: "expiration",
                ..
            }
        ));
        let err = channel.update(&json!({"resourceId": 7})).unwrap_err();
        assert!(matches!(
            err,
            ChannelError::InvalidResponseField {
                field: "resourceId",
                ..
            }
        ));
        assert_eq!(channel.resource_id, None);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let channel = channel().with_signing_secret(SECRET).unwrap();
        let shown = format!("{channel:?}");
        assert!(
            !shown.contains("tok\"") && !shown.contains("whsec_"),
            "{shown}"
        );
        assert!(shown.contains("ch-1"));
    }
}
