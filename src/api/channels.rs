//! Channel management and the delivery log (SPEC §8): list, inspect, see every
//! notification of a channel, replay from a cursor, re-enable.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{Caller, Scope};
use super::body::{parse_json, type_name, RawBody};
use super::error::ApiError;
use super::path::PathId;
use super::query::{invalid_parameter, Query};
use super::reading::since_cursor;
use super::watch::channel_resource;
use super::AppState;
use crate::model::{cursor, Channel, ChannelKind, OutcomeStatus};

/// Lists the caller's channels or watchers, a page at a time.
pub async fn list_kind(
    app: &AppState,
    caller: &Caller,
    uri: &Uri,
    kind: ChannelKind,
    view: fn(&Channel) -> Value,
) -> Result<Json<Value>, ApiError> {
    let page = Query::parse(uri, &["maxResults", "pageToken"])?.page()?;
    let limit = page.max_results;
    // One more than asked tells whether there is a next page.
    let mut channels = app
        .store
        .list_channels(&caller.owner, kind, page.after()?.unwrap_or(0), limit + 1)
        .await?;
    let more = channels.len() > limit;
    channels.truncate(limit);
    let mut answer = json!({ "items": channels.iter().map(view).collect::<Vec<_>>() });
    if more {
        answer["nextPageToken"] = json!(channels.last().map(|c| c.pk.to_string()));
    }
    Ok(Json(answer))
}

fn channel_view(channel: &Channel) -> Value {
    serde_json::to_value(channel_resource(&channel.spec, "web_hook".into()))
        .expect("a channel always serialises")
}

pub async fn list(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = app.keys.authorize(&headers, &uri, Scope::Subscribe)?;
    list_kind(&app, &caller, &uri, ChannelKind::Channel, channel_view).await
}

/// The caller's channel or watcher by id (`404` for anyone else's), and the request's
/// query, which may hold only the `allowed` parameters.
async fn owned(
    app: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    id: &str,
    allowed: &[&str],
) -> Result<(Channel, Query), ApiError> {
    let caller = app.keys.authorize(headers, uri, Scope::Subscribe)?;
    let query = Query::parse(uri, allowed)?;
    let channel = app
        .store
        .find_channel(&caller.owner, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("channel {id:?} was not found")))?;
    Ok((channel, query))
}

/// The channel with its delivery state.
async fn describe(app: &AppState, channel: &Channel) -> Result<Value, ApiError> {
    let mut view = channel_view(channel);
    if channel.spec.kind == ChannelKind::Watcher {
        view["kind"] = json!("watchwire#watcher");
    }
    let Some(handle) = app.dispatcher.handle(channel.pk) else {
        return Ok(view);
    };
    let state = handle.snapshot();
    let pending = app
        .store
        .count_matching(&channel.spec.resource, state.last_seq)
        .await?
        + u64::from(state.sync_pending);
    view["delivery"] = json!({
        "cursor": cursor(state.last_seq),
        "pendingCount": pending,
        "enabled": state.enabled,
        "replaying": state.replaying,
        "lastError": state.last_error,
        "nextRetry": state.next_retry_ms.map(|ms| ms.to_string()),
        "failingSince": state.failing_since_ms.map(|ms| ms.to_string()),
    });
    Ok(view)
}

pub async fn show(
    State(app): State<AppState>,
    PathId(id): PathId,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (channel, _) = owned(&app, &headers, &uri, &id, &[]).await?;
    Ok(Json(describe(&app, &channel).await?))
}

pub async fn notifications(
    State(app): State<AppState>,
    PathId(id): PathId,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (channel, query) = owned(
        &app,
        &headers,
        &uri,
        &id,
        &["status", "maxResults", "pageToken"],
    )
    .await?;
    let status = match query.get("status") {
        None => None,
        Some(s) => Some(OutcomeStatus::parse(s).ok_or_else(|| {
            invalid_parameter(format!(
                "status {s:?} is not one of pending, delivered, failed"
            ))
        })?),
    };
    let page = query.page()?;
    let after = page
        .token
        .as_deref()
        .map(|t| {
            crate::model::parse_cursor(t).ok_or_else(|| {
                invalid_parameter(format!("pageToken {t:?} is not one this gateway gave out; pass nextPageToken from the previous answer"))
            })
        })
        .transpose()?;
    let limit = page.max_results;
    // Outcomes are recorded in batches; make everything recorded so far visible.
    app.store.flush().await?;
    let mut page = app
        .store
        .list_outcomes(channel.pk, status, after, limit + 1)
        .await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let items: Vec<Value> = page
        .iter()
        .map(|record| {
            let o = &record.outcome;
            let metadata = record
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str::<Value>(m).ok());
            json!({
                "messageNumber": o.message_number.to_string(),
                "state": o.state,
                "cursor": cursor(o.seq),
                "resource": record.resource,
                "metadata": metadata,
                "status": o.status.as_str(),
                "attempts": o.attempts,
                "lastStatus": o.last_status,
                "lastError": o.last_error,
                "lastAttemptAt": o.at_ms.to_string(),
                "deliveredAt": (o.status == OutcomeStatus::Delivered).then(|| o.at_ms.to_string()),
                "nextRetry": o.next_retry_ms.map(|ms| ms.to_string()),
            })
        })
        .collect();
    let mut answer = json!({ "items": items });
    if more {
        answer["nextPageToken"] = json!(page.last().map(|r| cursor(r.outcome.seq)));
    }
    Ok(Json(answer))
}

pub async fn replay(
    State(app): State<AppState>,
    PathId(id): PathId,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let (channel, _) = owned(&app, &headers, &uri, &id, &[]).await?;
    let body: Value = parse_json(&body)?;
    let since = match body.get("since") {
        Some(Value::String(s)) => since_cursor(&app, "since", s).await?,
        None | Some(Value::Null) => {
            return Err(ApiError::required(
                "since is required: the cursor to replay after",
            ))
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "since must be a cursor string, not {}",
                type_name(other)
            )))
        }
    };
    let handle = app
        .dispatcher
        .handle(channel.pk)
        .ok_or_else(|| ApiError::not_found(format!("channel {id:?} is no longer live")))?;
    let replaying = handle.replay(since, app.dispatcher.shared());
    let upto = handle.snapshot().last_seq;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"replaying": replaying, "since": cursor(since), "upto": cursor(upto)})),
    )
        .into_response())
}

pub async fn enable(
    State(app): State<AppState>,
    PathId(id): PathId,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (channel, _) = owned(&app, &headers, &uri, &id, &[]).await?;
    let handle = app
        .dispatcher
        .handle(channel.pk)
        .ok_or_else(|| ApiError::not_found(format!("channel {id:?} is no longer live")))?;
    handle.enable(app.dispatcher.shared());
    Ok(Json(describe(&app, &channel).await?))
}
