//! Watchers (docs/api.md §9): channels on a resource prefix that never expire, with rules
//! that keep one endpoint from receiving an event twice from one owner's watchers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::auth::Subscriber;
use super::body::{parse_json, type_name, RawBody, Shortened};
use super::channels::list_kind;
use super::error::ApiError;
use super::path::PathId;
use super::query::Query;
use super::removal;
use super::watch::{check_address, check_deliverable, filter_field, parse_auth};
use super::AppState;
use crate::delivery::brokers::address::broker_kind;
use crate::endpoint_auth::EndpointAuth;
use crate::model::{now_ms, ChannelKind, ChannelSpec, StoredChannel};
use crate::store::{rules, Removal, StoreError};

/// Characters that mean "any" in a glob. A pattern is a path prefix, so one of these
/// would be taken literally and match nothing the caller meant: refused.
const GLOB_CHARACTERS: &str = "*?[]{}";

/// Deterministic for (owner, pattern, endpoint in its normal form), opaque, within the
/// channel-id alphabet.
pub fn watcher_id(secret: &[u8], owner: &str, pattern: &str, endpoint: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    for part in [owner, pattern, endpoint] {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    format!(
        "w-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..24])
    )
}

fn watcher_view(channel: &StoredChannel) -> Value {
    let spec = &channel.spec;
    let mut view = json!({
        "kind": "watchwire#watcher",
        "id": spec.id,
        "pattern": spec.resource,
        "endpoint": spec.address,
        "resourceId": spec.resource_id,
        "resourceUri": spec.resource_uri,
    });
    if let Some(filter) = &spec.filter {
        view["filter"] = filter.to_value();
    }
    if let Some(auth) = &spec.auth {
        view["auth"] = auth.view();
    }
    view
}

pub async fn create(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    uri: Uri,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    Query::parse(&uri, &[])?;
    let body: Value = parse_json(&body)?;
    let field = |name: &str| match body.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(ApiError::required(format!("{name} is required"))),
        Some(other) => Err(ApiError::invalid(format!(
            "{name} must be a string, not {}",
            type_name(other)
        ))),
    };
    if !body.is_object() {
        return Err(ApiError::invalid(format!(
            "the request body must be an object with pattern and endpoint, not {}",
            type_name(&body)
        )));
    }
    let raw_pattern = field("pattern")?;
    if let Some(glob) = raw_pattern.chars().find(|c| GLOB_CHARACTERS.contains(*c)) {
        return Err(ApiError::invalid(format!(
            "pattern {raw_pattern:?} holds the glob character {glob:?}: patterns are path prefixes, not globs; /apps covers /apps and everything below it"
        )));
    }
    let pattern = app
        .prefixes
        .canonicalize_watched(&raw_pattern)
        .map_err(|e| ApiError::invalid(e.named("pattern")))?;
    let within = caller.within(&pattern)?;
    let endpoint = field("endpoint")?;
    check_address("endpoint", &endpoint, &app.target_policy)?;
    if let Some((_, fragment)) = endpoint.split_once('#') {
        return Err(ApiError::invalid(format!(
            "endpoint {:?} has a fragment (#{}); a fragment is never sent to the receiver, so it cannot tell endpoints apart: leave it out",
            Shortened(&endpoint),
            Shortened(fragment)
        )));
    }
    // Kept, compared and shown in its normal form: two spellings of one address are
    // one endpoint to the rules below.
    let endpoint = rules::normal_endpoint(&endpoint).ok_or_else(|| {
        ApiError::invalid(format!(
            "endpoint {:?} is not an absolute URL",
            Shortened(&endpoint)
        ))
    })?;
    check_deliverable(&app.target_policy, "endpoint", &endpoint).await?;
    let auth = match body.get("auth") {
        None | Some(Value::Null) => None,
        Some(given) => Some(Box::new(parse_auth(given, &app.target_policy)?)),
    };
    if let (Some(_), Some(kind)) = (&auth, broker_kind(&endpoint)) {
        return Err(ApiError::invalid(format!(
            "auth is for HTTP endpoints: a {} endpoint is published to with the credentials of the gateway's --broker",
            kind.channel_type()
        )));
    }
    if let Some(url) = auth.as_deref().and_then(EndpointAuth::token_url) {
        check_deliverable(&app.target_policy, "auth.tokenUrl", url).await?;
    }
    let filter = match body.get("filter") {
        None | Some(Value::Null) => None,
        Some(given) => Some(Arc::new(filter_field(given)?)),
    };

    let secret = app.store.instance_secret();
    let spec = ChannelSpec {
        kind: ChannelKind::Watcher,
        id: watcher_id(secret, &caller.owner, &pattern, &endpoint).into(),
        resource_id: app.resource_ids.of(&pattern),
        resource_uri: format!("{}{}", app.public_url, pattern).into(),
        resource: pattern.clone().into(),
        owner: caller.owner.into(),
        address: endpoint.into(),
        token: None,
        expiration_ms: None,
        params: None,
        payload: true,
        signing_secret: None,
        created_ms: now_ms(),
        within: within.map(Box::new),
        filter,
        auth,
    };
    match app
        .store
        .create_channel(spec, app.config.max_channels_per_key)
        .await
    {
        Ok(created) => {
            Ok((StatusCode::CREATED, Json(watcher_view(&created.channel))).into_response())
        }
        // The id is derived from (owner, pattern, endpoint): the same id is the same record.
        Err(StoreError::DuplicateChannel(id)) => Err(StoreError::WatcherConflict {
            rule: "Record already exists",
            existing: (id, pattern),
        }
        .into()),
        Err(e) => Err(e.into()),
    }
}

pub async fn list(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    list_kind(&app, &caller, &uri, ChannelKind::Watcher, watcher_view).await
}

pub async fn delete(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    PathId(id): PathId,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    let query = Query::parse(&uri, &["owner"])?;
    let owner = caller.acting_for(query.get("owner"))?;
    match app
        .store
        .remove_channels(Removal::Watcher {
            owner,
            id: id.clone(),
        })
        .await
    {
        Ok(removed) => {
            removal::in_force(&app, &removed).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        Err(StoreError::NotFound) => {
            Err(ApiError::not_found(format!("watcher {id:?} was not found")))
        }
        Err(e) => Err(e.into()),
    }
}
