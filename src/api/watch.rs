//! `POST {resource}/watch` (SPEC §2): create a channel, Google-compatible.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::body::{parse_json, type_name, RawBody};
use super::auth::Scope;
use super::error::ApiError;
use super::AppState;
use crate::model::{now_ms, ChannelKind, NewChannel};
use crate::protocol::channel::{
    is_valid_channel_id, is_valid_token, parse_expiration, WatchResponse, MAX_TOKEN_LEN,
};
use crate::protocol::signature::SigningSecret;

/// A watch request, validated.
#[derive(Debug)]
struct WatchRequest {
    id: String,
    channel_type: String,
    address: String,
    token: Option<String>,
    expiration_ms: Option<i64>,
    ttl: Option<Duration>,
    params: Map<String, Value>,
    signing_secret: Option<String>,
    payload: bool,
}

pub async fn watch(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<WatchResponse>, ApiError> {
    let caller = app.keys.authenticate(&headers, &uri)?;
    let raw_resource = uri.path().strip_suffix("/watch").unwrap_or_default();
    let resource = app
        .prefixes
        .canonicalize(raw_resource)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    caller.require(Scope::Subscribe)?;
    caller.require_resource(&resource)?;
    let request = validate(&parse_json(&body)?, &app)?;

    let now = now_ms();
    let expiration_ms = effective_expiration(
        now,
        request.expiration_ms,
        request.ttl,
        app.config.default_channel_ttl,
        app.config.max_channel_ttl,
    );
    let spec = NewChannel {
        kind: ChannelKind::Channel,
        owner: caller.owner,
        id: request.id,
        resource_id: resource_id(app.store.instance_secret(), &resource),
        resource_uri: format!("{}{}", app.public_url, resource),
        resource,
        address: request.address,
        token: request.token,
        expiration_ms: Some(expiration_ms),
        params: request.params,
        payload: request.payload,
        signing_secret: request.signing_secret,
        created_ms: now,
    };
    let (channel, _) = app.store.create_channel(spec, app.config.max_channels_per_key).await?;
    let spec = &channel.spec;
    Ok(Json(channel_resource(spec, request.channel_type)))
}

/// The Google `Channel` resource of a stored channel, as watch answers it and
/// listings show it: no secrets.
pub fn channel_resource(spec: &NewChannel, channel_type: String) -> WatchResponse {
    WatchResponse {
        kind: "api#channel".into(),
        id: spec.id.clone(),
        resource_id: spec.resource_id.clone(),
        resource_uri: spec.resource_uri.clone(),
        token: spec.token.clone(),
        expiration: spec.expiration_ms.map(|ms| ms.to_string()).unwrap_or_default(),
        channel_type,
        address: spec.address.clone(),
        params: (!spec.params.is_empty()).then(|| spec.params.clone()),
    }
}

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

/// Opaque and stable per resource; reveals nothing about the path without the secret.
pub fn resource_id(secret: &[u8], resource: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(resource.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..18])
}

fn validate(body: &Value, app: &AppState) -> Result<WatchRequest, ApiError> {
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

    let id = string("id")?
        .ok_or_else(|| ApiError::required("id is required: a channel id of 1 to 64 characters"))?;
    if !is_valid_channel_id(id) {
        return Err(ApiError::invalid(format!(
            "id {id:?} is not valid: use 1 to 64 characters of A-Z a-z 0-9 - _ + / ="
        )));
    }

    let channel_type =
        string("type")?.ok_or_else(|| ApiError::required("type is required: \"web_hook\""))?;
    if !channel_type.eq_ignore_ascii_case("web_hook")
        && !channel_type.eq_ignore_ascii_case("webhook")
    {
        return Err(ApiError::invalid(format!(
            "type {channel_type:?} is not supported: use \"web_hook\""
        )));
    }

    let address = string("address")?.ok_or_else(|| {
        ApiError::required("address is required: the https:// URL notifications are sent to")
    })?;
    let url = reqwest::Url::parse(address).map_err(|e| {
        ApiError::invalid(format!("address {address:?} is not an absolute URL: {e}"))
    })?;
    app.target_policy.check_url(&url).map_err(|reason| {
        ApiError::invalid(format!("address {address:?} is not allowed: {reason}"))
            .with_reason("pushWebhookBadDomain")
    })?;

    let token = string("token")?;
    if let Some(token) = token {
        if !is_valid_token(token) {
            return Err(ApiError::invalid(format!("token must be at most {MAX_TOKEN_LEN} printable ASCII characters (it travels in a header)")));
        }
    }

    let expiration_ms = match field("expiration") {
        None => None,
        Some(value) => {
            let ms = parse_expiration(value).map_err(ApiError::invalid)?;
            if ms <= now_ms() {
                return Err(ApiError::invalid(format!("expiration {ms} is in the past; give a time in ms since the Unix epoch, after now")));
            }
            Some(ms)
        }
    };

    let mut params = Map::new();
    let mut ttl = None;
    let mut signing_secret = None;
    match field("params") {
        None => {}
        Some(Value::Object(given)) => {
            for (name, value) in given {
                let Value::String(text) = value else {
                    return Err(ApiError::invalid(format!(
                        "params.{name} must be a string, not {}",
                        type_name(value)
                    )));
                };
                match name.as_str() {
                    "ttl" => {
                        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                            return Err(ApiError::invalid(format!(
                                "params.ttl {text:?} must be a whole number of seconds"
                            )));
                        }
                        // Digits beyond u64 still ask for a lifetime; the maximum caps it.
                        let secs = text.parse().unwrap_or(u64::MAX);
                        ttl = Some(Duration::from_secs(secs));
                        params.insert(name.clone(), value.clone());
                    }
                    "signingSecret" => {
                        SigningSecret::parse(text)
                            .map_err(|e| ApiError::invalid(format!("params.signingSecret: {e}")))?;
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
    })
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
    fn resource_ids_are_stable_and_opaque() {
        let a = resource_id(b"secret", "/b/photos");
        assert_eq!(a, resource_id(b"secret", "/b/photos"));
        assert_ne!(a, resource_id(b"secret", "/b/photo"));
        assert_ne!(a, resource_id(b"other", "/b/photos"));
        assert!(!a.contains("photos") && crate::protocol::channel::is_valid_channel_id(&a));
    }
}
