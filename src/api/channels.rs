//! Channel management and the delivery log (docs/api.md §8): list, inspect, see every
//! notification of a channel, replay from a cursor, re-enable.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{Caller, Subscriber, ALL_OWNERS};
use super::body::{optional_object, parse_json, type_name, RawBody};
use super::error::ApiError;
use super::path::PathId;
use super::query::{invalid_parameter, page_token, Query};
use super::reading::since_cursor;
use super::AppState;
use crate::channel_view::{failure_view, spec_view};

use crate::cluster::ClusterMessage;
use crate::delivery::hosts::{host_key, wall_clock_ms};
use crate::delivery::outbox::{next_attempt_ms, DeliverySnapshot};
use crate::model::{
    cursor, message_number, now_ms, rfc3339_ms, AttemptRecord, ChannelKind, ChannelSpec,
    OutcomeRecord, OutcomeStatus, ResourceState, Seq, StoredChannel,
};
use crate::store::rules::Ended;
use crate::store::Removal;

/// Lists the caller's channels or watchers, a page at a time; for the `admin` scope,
/// another owner's (`?owner=NAME`) or every owner's (`?owner=*`).
pub async fn list_kind(
    app: &AppState,
    caller: &Caller,
    uri: &Uri,
    kind: ChannelKind,
    view: fn(&StoredChannel) -> Value,
) -> Result<Json<Value>, ApiError> {
    let query = Query::parse(uri, &["maxResults", "pageToken", "owner"])?;
    let owner = match query.get("owner") {
        Some(ALL_OWNERS) if caller.is_admin() => None,
        given => Some(caller.acting_for(given)?),
    };
    let page = query.page()?;
    let limit = page.max_results;
    let secret = app.store.instance_secret();
    let list = format!(
        "{}\0{}",
        kind.as_str(),
        owner.as_deref().unwrap_or(ALL_OWNERS)
    );
    let after = page.after(secret, &list)?.map_or(0, |pk| pk as i64);
    // One more than asked tells whether there is a next page.
    let mut channels = app
        .store
        .list_channels(owner.as_deref(), kind, after, limit + 1)
        .await?;
    let more = channels.len() > limit;
    channels.truncate(limit);
    let mut items = Vec::with_capacity(channels.len());
    for channel in &channels {
        let mut item = view(channel);
        item["owner"] = json!(channel.spec.owner);
        item["delivery"] = delivery_of(app, channel).await?;
        items.push(item);
    }
    let mut answer = json!({ "items": items });
    if more {
        answer["nextPageToken"] =
            json!(channels
                .last()
                .map(|c| page_token(secret, &list, c.pk as u64)));
    }
    Ok(Json(answer))
}

/// A live channel as the channel endpoints show it (`crate::channel_view`).
fn channel_view(channel: &StoredChannel) -> Value {
    crate::channel_view::channel_view(&channel.spec)
}

pub async fn list(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    list_kind(&app, &caller, &uri, ChannelKind::WatchChannel, channel_view).await
}

fn attempt_view(attempt: &AttemptRecord) -> Value {
    let mut view = json!({"at": rfc3339_ms(attempt.at_ms), "durationMs": attempt.duration_ms});
    if let Some(status) = attempt.status {
        view["status"] = json!(status);
    }
    if let Some(reason) = attempt.reason {
        view["reason"] = json!(reason.as_str());
    }
    if let Some(detail) = &attempt.detail {
        view["detail"] = json!(detail);
    }
    if let Some(response) = &attempt.response {
        view["response"] = json!(response);
    }
    if let Some(acknowledgement) = &attempt.broker_status {
        view["brokerStatus"] = json!(acknowledgement);
    }
    view
}

/// The live channel or watcher by id of the owner the call acts on (the caller's, or
/// `?owner=` for the `admin` scope; `None` when it holds none by that id), that owner,
/// and the request's query, which may hold only `owner` and the `allowed` parameters.
pub(super) async fn owned(
    app: &AppState,
    caller: &Caller,
    uri: &Uri,
    id: &str,
    allowed: &[&str],
) -> Result<Owned, ApiError> {
    let allowed: Vec<&str> = allowed.iter().copied().chain(["owner"]).collect();
    let query = Query::parse(uri, &allowed)?;
    let owner = caller.acting_for(query.get("owner"))?;
    let channel = app.store.find_channel(&owner, id).await?;
    Ok(Owned {
        query,
        owner,
        channel,
    })
}

/// What [`owned`] found. `channel` may have expired (see [`expiry`]): the sweep may
/// not have removed it yet.
pub(super) struct Owned {
    pub query: Query,
    pub owner: String,
    pub channel: Option<StoredChannel>,
}

/// The channel if it lives: `404` for none, and for one whose expiration has passed.
pub(super) fn live(channel: Option<StoredChannel>, id: &str) -> Result<StoredChannel, ApiError> {
    channel
        .filter(|c| expiry(c).is_none())
        .ok_or_else(|| not_live(id))
}

/// How a channel whose expiration has passed ended: what its record will say once the
/// expiry sweep (`--expiry-sweep`) has removed it. `None` while it lives.
fn expiry(channel: &StoredChannel) -> Option<Ended> {
    let at = channel.spec.expiration_ms.filter(|&ms| ms <= now_ms())?;
    Some(Ended::by(
        &Removal::ExpiredAt {
            now_ms: at,
            notice_ms: 0,
        },
        at,
    ))
}

/// A channel that ended, as `GET /v1/channels/{id}` shows it (docs/api.md §8.2): how
/// (`state`), when and why.
fn ended_view(spec: &ChannelSpec, state: &str, at_ms: i64, reason: &str) -> Value {
    let mut view = spec_view(spec);
    view["state"] = json!(state);
    view["removedAt"] = json!(rfc3339_ms(at_ms));
    view["removedReason"] = json!(reason);
    view
}

/// `404` for an id the caller holds no live channel by.
pub(super) fn not_live(id: &str) -> ApiError {
    ApiError::not_found(format!("channel {id:?} was not found"))
}

/// A channel's delivery state: this node's, when it delivers the channel; else, in a
/// cluster, what the store knows (the node delivering it keeps the rest in memory).
async fn delivery_state(
    app: &AppState,
    channel: &StoredChannel,
) -> Result<DeliverySnapshot, ApiError> {
    if let Some(handle) = app.dispatcher.handle(channel.pk) {
        return Ok(handle.snapshot());
    }
    let owed = app
        .store
        .count_matching(&channel.spec.coverage(), channel.progress_seq)
        .await?;
    let retrying = app
        .store
        .list_outcomes(channel.pk, Some(OutcomeStatus::Pending), None, 1)
        .await?
        .into_iter()
        .next()
        .map(|r| r.outcome);
    Ok(DeliverySnapshot {
        progress_seq: channel.progress_seq,
        pending: owed + u64::from(!channel.synced),
        sync_pending: !channel.synced,
        replaying: false,
        enabled: !channel.disabled,
        failing_since_ms: channel.failing_since_ms,
        last_error: retrying.as_ref().and_then(|o| o.last_error.clone()),
        next_retry_ms: retrying.and_then(|o| o.next_retry_ms),
    })
}

/// The channel with its delivery state.
pub(super) async fn describe(app: &AppState, channel: &StoredChannel) -> Result<Value, ApiError> {
    let mut view = channel_view(channel);
    view["state"] = json!("active");
    view["delivery"] = delivery_of(app, channel).await?;
    Ok(view)
}

/// A channel's delivery state as the API shows it (docs/api.md §8.2): how far it got,
/// what it owes, its last error; its receiving host as this node sees it (§5.1; in a
/// cluster only the node delivering the channel knows); in a cluster, that node.
async fn delivery_of(app: &AppState, channel: &StoredChannel) -> Result<Value, ApiError> {
    // Read first: a channel owing nothing afterwards is done with everything up to it.
    let head = app.dispatcher.routed_head();
    let state = delivery_state(app, channel).await?;
    let mut view = json!({
        "cursor": cursor(state.progress_seq),
        "logHead": cursor(head.max(state.progress_seq)),
        "pendingCount": state.pending,
        "enabled": state.enabled,
        "replaying": state.replaying,
        "lastError": state.last_error.as_ref().map(failure_view),
        "nextRetry": state.next_retry_ms.map(rfc3339_ms),
        "failingSince": state.failing_since_ms.map(rfc3339_ms),
    });
    if app.dispatcher.handle(channel.pk).is_some() {
        let hosts = app.dispatcher.context().outbound.hosts();
        let (host_state, until) = hosts.state(&host_key(&channel.spec.address));
        let until_ms = until.map(wall_clock_ms);
        if let Some(retry_ms) = state.next_retry_ms {
            view["nextRetry"] = json!(rfc3339_ms(next_attempt_ms(retry_ms, until_ms)));
        }
        view["host"] = json!({
            "state": host_state.as_str(),
            "until": until_ms.map(rfc3339_ms),
        });
    }
    if let Some(membership) = app.membership.as_deref() {
        view["node"] = json!(membership.owner_of(channel.pk).await?);
    }
    Ok(view)
}

pub async fn show(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    PathId(id): PathId,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let Owned { owner, channel, .. } = owned(&app, &caller, &uri, &id, &[]).await?;
    if let Some(channel) = channel {
        return Ok(Json(match expiry(&channel) {
            Some(ended) => ended_view(&channel.spec, ended.state, ended.at_ms, &ended.reason),
            None => describe(&app, &channel).await?,
        }));
    }
    // A removed channel answers with how it ended, for the log retention window.
    let removed = app
        .store
        .find_removed(&owner, &id)
        .await?
        .ok_or_else(|| not_live(&id))?;
    Ok(Json(ended_view(
        &removed.spec,
        &removed.ended,
        removed.removed_ms,
        &removed.reason,
    )))
}

/// One delivery-log entry (docs/api.md §8.3).
fn notification_view(record: &OutcomeRecord) -> Value {
    let o = &record.outcome;
    let metadata = record
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Value>(m).ok());
    json!({
        "messageNumber": o.message_number.to_string(),
        "state": o.state.as_str(),
        "cursor": cursor(o.seq),
        "resource": record.resource,
        "metadata": metadata,
        "status": o.status.as_str(),
        "attempts": o.attempts,
        "lastStatus": o.last_status,
        "lastError": o.last_error.as_ref().map(failure_view),
        "firstAttemptAt": o.first_attempt_ms.map(rfc3339_ms),
        "lastAttemptAt": (o.attempts > 0).then(|| rfc3339_ms(o.at_ms)),
        "deliveredAt": (o.status == OutcomeStatus::Delivered).then(|| rfc3339_ms(o.at_ms)),
        "nextRetry": o.next_retry_ms.map(rfc3339_ms),
        "recentAttempts": o.recent.iter().map(attempt_view).collect::<Vec<_>>(),
    })
}

pub async fn notifications(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    PathId(id): PathId,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let Owned { query, channel, .. } = owned(
        &app,
        &caller,
        &uri,
        &id,
        &["status", "maxResults", "pageToken"],
    )
    .await?;
    let channel = live(channel, &id)?;
    let status = match query.get("status") {
        None => None,
        Some(s) => Some(OutcomeStatus::parse(s).ok_or_else(|| {
            invalid_parameter(format!(
                "status {s:?} is not one of pending, delivered, failed"
            ))
        })?),
    };
    let page = query.page()?;
    let secret = app.store.instance_secret();
    let list = format!("notifications\0{}\0{}", caller.owner, channel.pk);
    let after = page.after(secret, &list)?;
    let limit = page.max_results;
    // Outcomes are recorded in batches; make everything recorded so far visible.
    app.store.flush().await?;
    let attempted = app
        .store
        .list_outcomes(channel.pk, status, after, limit + 1)
        .await?;
    // Owed notifications not attempted yet are pending too (docs/api.md §8.3).
    let owed = match status {
        None | Some(OutcomeStatus::Pending) => {
            let state = delivery_state(&app, &channel).await?;
            unattempted(&app, &channel, &state, after, limit + 1).await?
        }
        _ => Vec::new(),
    };
    let mut entries = merge_by_seq(attempted, owed);
    let more = entries.len() > limit;
    entries.truncate(limit);
    // A retry waits for its host too, and for nothing while the channel is disabled;
    // the node delivering the channel knows both.
    if let Some(handle) = app.dispatcher.handle(channel.pk) {
        let hosts = app.dispatcher.context().outbound.hosts();
        let held = hosts.held_until_ms(&host_key(&channel.spec.address));
        let enabled = handle.snapshot().enabled;
        for entry in &mut entries {
            let outcome = &mut entry.outcome;
            if outcome.status == OutcomeStatus::Pending {
                outcome.next_retry_ms = outcome
                    .next_retry_ms
                    .filter(|_| enabled)
                    .map(|r| next_attempt_ms(r, held));
            }
        }
    }
    let mut answer = json!({ "items": entries.iter().map(notification_view).collect::<Vec<_>>() });
    if more {
        answer["nextPageToken"] =
            json!(entries
                .last()
                .map(|r| page_token(secret, &list, r.outcome.seq)));
    }
    Ok(Json(answer))
}

/// The notifications a channel owes that no attempt has been recorded for yet: its
/// sync if not done, and the matched events after its cursor, after `after`.
async fn unattempted(
    app: &AppState,
    channel: &StoredChannel,
    state: &DeliverySnapshot,
    after: Option<Seq>,
    limit: usize,
) -> Result<Vec<OutcomeRecord>, ApiError> {
    let mut owed = Vec::new();
    let entry = |seq, number, state: ResourceState| crate::model::Outcome {
        channel_pk: channel.pk,
        seq,
        message_number: number,
        state,
        status: OutcomeStatus::Pending,
        attempts: 0,
        last_status: None,
        last_error: None,
        at_ms: 0,
        next_retry_ms: None,
        recent: Vec::new(),
        first_attempt_ms: None,
    };
    if state.sync_pending && after.is_none_or(|a| channel.start_seq > a) {
        owed.push(OutcomeRecord {
            outcome: entry(channel.start_seq, 1, ResourceState::Sync),
            resource: None,
            metadata: None,
        });
    }
    let from = after.unwrap_or(0).max(state.progress_seq);
    let events = app
        .store
        .read_matching(&channel.spec.coverage(), from, limit)
        .await?
        .events;
    owed.extend(events.iter().map(|event| OutcomeRecord {
        outcome: entry(event.seq, message_number(event.seq), event.state.clone()),
        resource: Some(event.resource.clone()),
        metadata: event.metadata.clone(),
    }));
    Ok(owed)
}

/// Both lists ordered by seq, merged; where both hold a seq, the recorded attempt wins.
fn merge_by_seq(attempted: Vec<OutcomeRecord>, owed: Vec<OutcomeRecord>) -> Vec<OutcomeRecord> {
    let mut merged: Vec<OutcomeRecord> = Vec::with_capacity(attempted.len() + owed.len());
    let mut owed = owed.into_iter().peekable();
    for record in attempted {
        while let Some(next) = owed.next_if(|o| o.outcome.seq < record.outcome.seq) {
            merged.push(next);
        }
        owed.next_if(|o| o.outcome.seq == record.outcome.seq);
        merged.push(record);
    }
    merged.extend(owed);
    merged
}

pub async fn replay(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    PathId(id): PathId,
    uri: Uri,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let Owned { channel, .. } = owned(&app, &caller, &uri, &id, &[]).await?;
    let channel = live(channel, &id)?;
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
    let (replaying, upto) = match app.dispatcher.handle(channel.pk) {
        Some(handle) => (
            handle.replay(since, app.dispatcher.context()),
            handle.snapshot().progress_seq,
        ),
        // Another node delivers it: that node replays.
        None => {
            let membership = app.membership.as_deref().ok_or_else(|| not_live(&id))?;
            let pk = channel.pk;
            membership
                .tell(&ClusterMessage::Replay { pk, since })
                .await?;
            (since < channel.progress_seq, channel.progress_seq)
        }
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"replaying": replaying, "since": cursor(since), "upto": cursor(upto)})),
    )
        .into_response())
}

pub async fn enable(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    PathId(id): PathId,
    uri: Uri,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let Owned { owner, channel, .. } = owned(&app, &caller, &uri, &id, &[]).await?;
    // No body is needed; one that is sent must still be a JSON object, like every body.
    optional_object(&body)?;
    let channel = live(channel, &id)?;
    match app.dispatcher.handle(channel.pk) {
        Some(handle) => handle.enable(app.dispatcher.context()),
        // Another node delivers it: the store is told, then that node.
        None => {
            let membership = app.membership.as_deref().ok_or_else(|| not_live(&id))?;
            app.store.record_health(channel.pk, None, false, None);
            app.store.flush().await?;
            membership
                .tell(&ClusterMessage::Enable { pk: channel.pk })
                .await?;
        }
    }
    let channel = app
        .store
        .find_channel(&owner, &id)
        .await?
        .ok_or_else(|| not_live(&id))?;
    Ok(Json(describe(&app, &channel).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;

    fn record(seq: Seq, attempts: u32) -> OutcomeRecord {
        OutcomeRecord {
            outcome: Outcome {
                channel_pk: 1,
                seq,
                message_number: seq + 1,
                state: ResourceState::Exists,
                status: OutcomeStatus::Pending,
                attempts,
                last_status: None,
                last_error: None,
                at_ms: 0,
                next_retry_ms: None,
                recent: vec![],
                first_attempt_ms: None,
            },
            resource: None,
            metadata: None,
        }
    }

    #[test]
    fn recorded_and_owed_entries_merge_in_order_once_each() {
        let merged = merge_by_seq(
            vec![record(2, 1), record(5, 3)],
            vec![record(5, 0), record(6, 0), record(9, 0)],
        );
        let seen: Vec<(Seq, u32)> = merged
            .iter()
            .map(|r| (r.outcome.seq, r.outcome.attempts))
            .collect();
        assert_eq!(seen, [(2, 1), (5, 3), (6, 0), (9, 0)]);
    }
}
