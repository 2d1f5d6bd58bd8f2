//! `POST {resource}/watch` (docs/api.md §2): create a channel, Google-compatible.
//!
//! The body is read by [`WatchRequest::parse`], a pure function of the bytes, the target
//! policy and the clock, so that the fuzz targets (`fuzz/`) exercise exactly what the
//! handler runs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use serde_json::{Map, Value};

use super::auth::{Caller, Scope};
use super::body::{parse_json, type_name, RawBody, Shortened};
use super::error::ApiError;
use super::resource_id::ResourceIds;
use super::AppState;
use crate::delivery::brokers::address::{
    broker_kind, kind_name, serves, BrokerAddress, BrokerKind,
};
use crate::delivery::target::TargetPolicy;
use crate::endpoint_auth::EndpointAuth;
use crate::filter::{Filter, FilterError};
use crate::model::{now_ms, ChannelKind, ChannelSpec};
use crate::protocol::resource::WHOLE_NAMESPACE;
use crate::protocol::signature::SigningSecret;
use crate::protocol::watch::{
    is_valid_channel_id, is_valid_token, parse_expiration, WatchResponse, MAX_TOKEN_LEN,
};

/// Longest channel address, in bytes.
pub const MAX_ADDRESS_BYTES: usize = 2048;

/// A watch request body (Google's `Channel` resource), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchRequest {
    pub id: String,
    /// As given (`web_hook` or `webhook`, any letter case); echoed in the response.
    pub channel_type: String,
    pub address: String,
    pub token: Option<String>,
    /// The requested expiration, ms since the epoch; after `now`.
    pub expiration_ms: Option<i64>,
    /// `params.ttl`; at least one second.
    pub ttl: Option<Duration>,
    /// `params` as echoed: `signingSecret` taken out.
    pub params: Map<String, Value>,
    /// `params.signingSecret`, checked to be a valid `whsec_` secret.
    pub signing_secret: Option<String>,
    pub payload: bool,
    /// `params.filter` (JSON text, as Google's clients send every param) or `filter`
    /// (an object), checked.
    pub filter: Option<Filter>,
    /// `auth`: how to authenticate to the address (docs/api.md §17).
    pub auth: Option<EndpointAuth>,
    /// `address` as parsed by its check (a web_hook's; `None` for a broker's), so that
    /// the network check after it does not parse it again.
    pub address_url: Option<reqwest::Url>,
}

/// What the gateway adds to a watch request to make it a channel.
pub struct ChannelContext<'a> {
    pub owner: String,
    /// The canonical resource (docs/api.md §1).
    pub resource: String,
    /// The key's prefixes, for a channel on `/` of a key limited to them.
    pub within: Option<crate::model::Coverage>,
    /// `resourceId` under the store's secret.
    pub resource_ids: &'a ResourceIds,
    /// `--public-url` without a trailing slash.
    pub public_url: &'a str,
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    pub now_ms: i64,
}

pub async fn watch(
    State(app): State<AppState>,
    caller: Caller,
    uri: Uri,
    RawBody(body): RawBody,
) -> Result<Json<WatchResponse>, ApiError> {
    // `POST /watch` watches the whole namespace (docs/api.md §1).
    let raw_resource = match uri.path().strip_suffix("/watch") {
        Some("") => WHOLE_NAMESPACE,
        raw => raw.unwrap_or_default(),
    };
    let resource = app
        .prefixes
        .canonicalize_watched(raw_resource)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    caller.require(Scope::Subscribe)?;
    let within = caller.within(&resource)?;
    let now = now_ms();
    let request = WatchRequest::parse(&body, &app.target_policy, now)?;
    if let Some(url) = &request.address_url {
        check_deliverable_url(&app.target_policy, "address", &request.address, url).await?;
    }
    if let Some(url) = request.auth.as_ref().and_then(EndpointAuth::token_url) {
        check_deliverable(&app.target_policy, "auth.tokenUrl", url).await?;
    }
    let channel_type = request.channel_type.clone();
    let spec = request.into_channel(ChannelContext {
        owner: caller.owner,
        resource,
        within,
        resource_ids: &app.resource_ids,
        public_url: &app.public_url,
        default_ttl: app.config.default_channel_ttl,
        max_ttl: app.config.max_channel_ttl,
        now_ms: now,
    });
    let channel = app
        .store
        .create_channel(spec, app.config.max_channels_per_key)
        .await?
        .channel;
    Ok(Json(channel_resource(&channel.spec, channel_type)))
}

pub use crate::channel_view::channel_resource;

/// The earliest of the requested expiration, now + ttl and now + the maximum; the
/// default lifetime when neither was asked for.
pub fn effective_expiration(
    now: i64,
    requested: Option<i64>,
    ttl: Option<Duration>,
    default: Duration,
    max: Duration,
) -> i64 {
    let after = |d: Duration| now.saturating_add(d.as_millis().min(i64::MAX as u128) as i64);
    let asked = [requested, ttl.map(after)].into_iter().flatten().min();
    match asked {
        Some(ms) => ms.min(after(max)),
        None => after(default),
    }
}

pub use super::resource_id::resource_id;

impl WatchRequest {
    /// Reads and validates a watch body. Pure: the answer depends only on the bytes,
    /// the target policy and `now_ms` (an expiration at or before it is refused).
    pub fn parse(
        body: &[u8],
        policy: &TargetPolicy,
        now_ms: i64,
    ) -> Result<WatchRequest, ApiError> {
        WatchRequest::from_json(&parse_json(body)?, policy, now_ms)
    }

    /// As [`WatchRequest::parse`], from JSON already read.
    pub fn from_json(
        body: &Value,
        policy: &TargetPolicy,
        now_ms: i64,
    ) -> Result<WatchRequest, ApiError> {
        let Value::Object(fields) = body else {
            return Err(ApiError::invalid(format!(
                "the request body must be a JSON object (a Channel), not {}",
                type_name(body)
            )));
        };
        let field = |name: &str| fields.get(name).filter(|v| !v.is_null());
        let string = |name: &str| -> Result<Option<&str>, ApiError> {
            match field(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(ApiError::invalid(format!(
                    "{name} must be a string, not {}",
                    type_name(other)
                ))),
            }
        };

        let id = string("id")?.ok_or_else(|| {
            ApiError::required("id is required: a channel id of 1 to 64 characters")
        })?;
        if !is_valid_channel_id(id) {
            return Err(ApiError::invalid(format!(
                "id {:?} is not valid: use 1 to 64 characters of A-Z a-z 0-9 - _ + / =",
                Shortened(id)
            )));
        }

        let channel_type = string("type")?
            .ok_or_else(|| ApiError::required(format!("type is required: {CHANNEL_TYPES}")))?;
        let broker = if channel_type.eq_ignore_ascii_case("web_hook")
            || channel_type.eq_ignore_ascii_case("webhook")
        {
            None
        } else {
            Some(BrokerKind::from_channel_type(channel_type).ok_or_else(|| {
                ApiError::invalid(format!(
                    "type {:?} is not supported: use {CHANNEL_TYPES}",
                    Shortened(channel_type)
                ))
            })?)
        };

        let address = string("address")?.ok_or_else(|| {
            ApiError::required(match broker {
                None => "address is required: the https:// URL notifications are sent to",
                Some(BrokerKind::Nats) => "address is required: nats://HOST:PORT/SUBJECT",
                Some(BrokerKind::Amqp) => {
                    "address is required: amqp://HOST:PORT/VHOST?exchange=X&routing_key=K"
                }
                Some(BrokerKind::RedisStream) => "address is required: redis://HOST:PORT/DB?key=K",
            })
        })?;
        match (broker, broker_kind(address)) {
            (None, Some(kind)) => {
                return Err(ApiError::invalid(format!(
                    "address is a {} address: its type is \"{}\", not {:?}",
                    kind_name(kind),
                    kind.channel_type(),
                    Shortened(channel_type)
                )))
            }
            (Some(kind), found) if found != Some(kind) => {
                return Err(ApiError::invalid(format!(
                    "type \"{}\" needs a {} address ({}), not {:?}",
                    kind.channel_type(),
                    kind_name(kind),
                    match kind {
                        BrokerKind::Nats => "nats://HOST:PORT/SUBJECT",
                        BrokerKind::Amqp => "amqp://HOST:PORT/VHOST?exchange=X&routing_key=K",
                        BrokerKind::RedisStream => "redis://HOST:PORT/DB?key=K",
                    },
                    Shortened(&without_credentials(address))
                )))
            }
            _ => {}
        }
        let address_url = checked_address("address", address, policy)?;

        let token = string("token")?;
        if let Some(token) = token {
            if !is_valid_token(token) {
                return Err(ApiError::invalid(format!(
                    "token must be at most {MAX_TOKEN_LEN} printable ASCII characters (it travels in a header)"
                )));
            }
            // HTTP drops blanks around a header value, so a receiver could never match
            // such a token.
            if token.starts_with(' ') || token.ends_with(' ') {
                return Err(ApiError::invalid(
                    "token must not begin or end with a space: it travels in a header, which drops them",
                ));
            }
        }

        let expiration_ms = field("expiration")
            .map(|value| requested_expiration(value, now_ms))
            .transpose()?;

        let mut params = Map::new();
        let mut ttl = None;
        let mut signing_secret = None;
        let mut filter = None;
        match field("params") {
            None => {}
            Some(Value::Object(given)) => {
                for (name, value) in given {
                    let Value::String(text) = value else {
                        return Err(ApiError::invalid(format!(
                            "params.{} must be a string, not {}",
                            Shortened(name),
                            type_name(value)
                        )));
                    };
                    match name.as_str() {
                        "ttl" => {
                            ttl = Some(parse_ttl("params.ttl", text)?);
                            params.insert(name.clone(), value.clone());
                        }
                        "maxRate" => {
                            crate::model::parse_max_rate(text).map_err(|e| {
                                ApiError::invalid(format!(
                                    "params.maxRate {:?} {e}",
                                    Shortened(text)
                                ))
                            })?;
                            params.insert(name.clone(), value.clone());
                        }
                        "filter" => {
                            let parsed = Filter::from_text(text).map_err(|mut e| {
                                e.place = e.place.replacen("filter", "params.filter", 1);
                                ApiError::invalid_filter(e)
                            })?;
                            filter = Some(parsed);
                            params.insert(name.clone(), value.clone());
                        }
                        "signingSecret" => {
                            SigningSecret::parse(text).map_err(|e| {
                                ApiError::invalid(format!("params.signingSecret: {e}"))
                            })?;
                            signing_secret = Some(text.clone());
                        }
                        _ => {
                            params.insert(name.clone(), value.clone());
                        }
                    }
                }
            }
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "params must be an object of string values, not {}",
                    type_name(other)
                )))
            }
        }

        if let Some(given) = field("filter") {
            if filter.is_some() {
                return Err(ApiError::invalid_filter(FilterError {
                    place: "filter".into(),
                    problem:
                        "the filter is given twice, as params.filter and as filter: give it once"
                            .into(),
                }));
            }
            filter = Some(filter_field(given)?);
        }

        let auth = field("auth")
            .map(|given| parse_auth(given, policy))
            .transpose()?;
        if let (Some(_), Some(kind)) = (&auth, broker) {
            return Err(ApiError::invalid(format!(
                "auth is for web_hook channels: a {} channel publishes with the credentials of the gateway's --broker",
                kind.channel_type()
            )));
        }

        let payload = match field("payload") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "payload must be a boolean, not {}",
                    type_name(other)
                )))
            }
        };

        Ok(WatchRequest {
            id: id.to_string(),
            channel_type: channel_type.to_string(),
            address: address.to_string(),
            token: token.map(str::to_string),
            expiration_ms,
            ttl,
            params,
            signing_secret,
            payload,
            filter,
            auth,
            address_url,
        })
    }

    /// The channel to store: the effective expiration (docs/api.md §2), `resourceId` and
    /// `resourceUri` of the resource.
    pub fn into_channel(self, context: ChannelContext<'_>) -> ChannelSpec {
        let expiration_ms = effective_expiration(
            context.now_ms,
            self.expiration_ms,
            self.ttl,
            context.default_ttl,
            context.max_ttl,
        );
        ChannelSpec {
            kind: ChannelKind::WatchChannel,
            owner: context.owner.into(),
            id: self.id.into(),
            resource_id: context.resource_ids.of(&context.resource),
            resource_uri: format!("{}{}", context.public_url, context.resource).into(),
            resource: context.resource.into(),
            address: self.address.into(),
            token: self.token.map(Into::into),
            expiration_ms: Some(expiration_ms),
            params: (!self.params.is_empty()).then(|| Box::new(self.params)),
            payload: self.payload,
            signing_secret: self.signing_secret.map(Into::into),
            created_ms: context.now_ms,
            within: context.within.map(Box::new),
            filter: self.filter.map(Arc::new),
            auth: self.auth.map(Box::new),
        }
    }
}

/// An `auth` field (docs/api.md §17); a token URL is held to the target policy like
/// an address.
pub fn parse_auth(value: &Value, policy: &TargetPolicy) -> Result<EndpointAuth, ApiError> {
    let auth = EndpointAuth::parse(value).map_err(ApiError::invalid)?;
    if let Some(url) = auth.token_url() {
        check_address("auth.tokenUrl", url, policy)?;
    }
    Ok(auth)
}

/// A `filter` field: a filter object, or its JSON text.
pub fn filter_field(value: &Value) -> Result<Filter, ApiError> {
    match value {
        Value::String(text) => Filter::from_text(text),
        other => Filter::from_value(other),
    }
    .map_err(ApiError::invalid_filter)
}

/// An address (a channel's `address`, a watcher's `endpoint`: `field` names it in
/// messages) must be an absolute URL of bounded length, without control characters,
/// that the target policy allows. It is stored and echoed as given, so a control
/// character a URL parser would drop or escape is refused instead: a NUL is more than
/// PostgreSQL can store.
pub fn check_address(field: &str, address: &str, policy: &TargetPolicy) -> Result<(), ApiError> {
    checked_address(field, address, policy).map(drop)
}

/// [`check_address`], answering with the URL it parsed (`None` for a broker address).
pub fn checked_address(
    field: &str,
    address: &str,
    policy: &TargetPolicy,
) -> Result<Option<reqwest::Url>, ApiError> {
    if broker_kind(address).is_some() {
        return check_broker_address(field, address, policy).map(|()| None);
    }
    if address.len() > MAX_ADDRESS_BYTES {
        return Err(ApiError::invalid(format!(
            "{field} is {} bytes long; the limit is {MAX_ADDRESS_BYTES}",
            address.len()
        )));
    }
    if let Some(c) = address.chars().find(char::is_ascii_control) {
        return Err(ApiError::invalid(format!(
            "{field} {:?} holds the control character U+{:04X}; percent-encode it (%{:02X}) if it belongs in the URL",
            Shortened(address),
            c as u32,
            c as u32
        )));
    }
    let url = reqwest::Url::parse(address).map_err(|e| {
        ApiError::invalid(format!(
            "{field} {:?} is not an absolute URL: {e}",
            Shortened(address)
        ))
    })?;
    policy.check_url(&url).map_err(|reason| {
        ApiError::invalid(format!(
            "{field} {:?} is not allowed: {reason}",
            Shortened(address)
        ))
        .with_reason("pushWebhookBadDomain")
    })?;
    Ok(Some(url))
}

/// The channel types a watch takes, as messages list them.
const CHANNEL_TYPES: &str = "\"web_hook\", \"nats\", \"amqp\" or \"redis_stream\"";

/// A broker address (docs/api.md §20): its form, no credentials, and a broker the
/// operator configured (`--broker`). Messages quote it without any credentials.
fn check_broker_address(field: &str, address: &str, policy: &TargetPolicy) -> Result<(), ApiError> {
    let shown = without_credentials(address);
    if address.len() > MAX_ADDRESS_BYTES {
        return Err(ApiError::invalid(format!(
            "{field} is {} bytes long; the limit is {MAX_ADDRESS_BYTES}",
            address.len()
        )));
    }
    if address.chars().any(|c| c.is_ascii_control()) {
        return Err(ApiError::invalid(format!(
            "{field} {:?} holds a control character",
            Shortened(&shown)
        )));
    }
    let kind = broker_kind(address).map_or("broker", kind_name);
    let parsed = BrokerAddress::parse(address).map_err(|e| {
        ApiError::invalid(format!(
            "{field} {:?} is not a usable {kind} address: {e}",
            Shortened(&shown)
        ))
    })?;
    if !policy.brokers.iter().any(|b| serves(b, &parsed.broker)) {
        return Err(ApiError::invalid(format!(
            "{field} {:?} names the broker {}, which this gateway does not publish to: the operator lists brokers with --broker",
            Shortened(&shown),
            parsed.broker
        ))
        .with_reason("brokerNotAllowed"));
    }
    Ok(())
}

/// An address as messages may quote it: any `user:password@` taken out.
fn without_credentials(address: &str) -> String {
    match reqwest::Url::parse(address) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Ok(_) => address.to_string(),
        Err(_) => match address.split_once("://") {
            Some((scheme, rest)) if rest.split('/').next().unwrap_or("").contains('@') => {
                let after = rest.split_once('@').map_or(rest, |(_, after)| after);
                format!("{scheme}://{after}")
            }
            _ => address.to_string(),
        },
    }
}

/// The network half of the address check: a host name that resolves only to
/// addresses the policy refuses can never be delivered to, so the channel is refused
/// now, naming the rule (docs/api.md §10.2). `field` names the address in messages.
pub async fn check_deliverable(
    policy: &TargetPolicy,
    field: &str,
    address: &str,
) -> Result<(), ApiError> {
    let Ok(url) = reqwest::Url::parse(address) else {
        return Ok(()); // the parse already refused it
    };
    if broker_kind(address).is_some() {
        return Ok(()); // a broker the operator listed: not subject to the target policy
    }
    check_deliverable_url(policy, field, address, &url).await
}

/// [`check_deliverable`] of a web_hook address already parsed by [`checked_address`].
pub async fn check_deliverable_url(
    policy: &TargetPolicy,
    field: &str,
    address: &str,
    url: &reqwest::Url,
) -> Result<(), ApiError> {
    policy.check_new_address(url).await.map_err(|reason| {
        ApiError::invalid(format!(
            "{field} {:?} is not allowed: {reason}",
            Shortened(address)
        ))
        .with_reason("pushWebhookBadDomain")
    })
}

/// A requested `expiration` (a watch's, a renewal's): ms since the epoch in any of the
/// forms Google's clients send (a string, an integer, a float), after `now_ms`.
pub fn requested_expiration(value: &Value, now_ms: i64) -> Result<i64, ApiError> {
    let ms = parse_expiration(value).map_err(ApiError::invalid)?;
    if ms <= now_ms {
        return Err(ApiError::invalid(format!(
            "expiration {ms} is in the past; give a time in ms since the Unix epoch, after now"
        )));
    }
    Ok(ms)
}

/// A lifetime in seconds (a watch's `params.ttl`, a renewal's `ttl`; `field` names it in
/// messages): a whole number of seconds, at least 1 (a channel that expires as it is
/// created is refused like an expiration in the past).
pub fn parse_ttl(field: &str, text: &str) -> Result<Duration, ApiError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(format!(
            "{field} {:?} must be a whole number of seconds",
            Shortened(text)
        )));
    }
    // Digits beyond u64 still ask for a lifetime; the maximum caps it.
    let secs = text.parse().unwrap_or(u64::MAX);
    if secs == 0 {
        return Err(ApiError::invalid(format!(
            "{field} must be at least 1 second; a channel cannot expire as it is created"
        )));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn expiration_is_the_earliest_asked_capped_by_the_maximum() {
        let now = 1_000_000;
        let (default, max) = (7 * DAY, 30 * DAY);
        assert_eq!(
            effective_expiration(now, None, None, default, max),
            now + 7 * 86_400_000
        );
        assert_eq!(
            effective_expiration(now, Some(now + 5_000), None, default, max),
            now + 5_000
        );
        assert_eq!(
            effective_expiration(
                now,
                Some(now + 5_000),
                Some(Duration::from_secs(2)),
                default,
                max
            ),
            now + 2_000
        );
        assert_eq!(
            effective_expiration(now, None, Some(Duration::from_secs(60)), default, max),
            now + 60_000
        );
        assert_eq!(
            effective_expiration(now, Some(i64::MAX), None, default, max),
            now + 30 * 86_400_000
        );
        assert_eq!(
            effective_expiration(now, None, Some(Duration::from_secs(u64::MAX)), default, max),
            now + 30 * 86_400_000
        );
    }

    #[test]
    fn parses_without_a_server() {
        let now = 1_700_000_000_000;
        let strict = TargetPolicy::default();
        let body = |extra: &str| {
            format!(
                r#"{{"id": "c1", "type": "web_hook", "address": "https://example.com/h"{extra}}}"#
            )
        };
        let request = WatchRequest::parse(body("").as_bytes(), &strict, now).unwrap();
        assert_eq!((request.id.as_str(), request.payload), ("c1", true));
        let reason = |extra: &str| {
            WatchRequest::parse(body(extra).as_bytes(), &strict, now)
                .unwrap_err()
                .message
        };
        assert!(reason(r#", "params": {"ttl": "0"}"#).contains("at least 1 second"));
        assert!(reason(r#", "params": {"maxRate": "0"}"#).contains("at least 1"));
        assert!(reason(r#", "params": {"maxRate": "2.5"}"#).contains("whole number"));
        assert!(reason(r#", "params": {"maxRate": ""}"#).contains("whole number"));
        assert!(reason(r#", "token": " padded""#).contains("space"));
        assert!(reason(&format!(r#", "expiration": "{now}""#)).contains("in the past"));
        let long = format!(
            r#"{{"id": "c1", "type": "web_hook", "address": "https://example.com/{}"}}"#,
            "a".repeat(MAX_ADDRESS_BYTES)
        );
        let message = WatchRequest::parse(long.as_bytes(), &strict, now)
            .unwrap_err()
            .message;
        assert!(
            message.contains("the limit is 2048") && message.len() < 200,
            "{message}"
        );
    }
}
