//! What the read surfaces share (stream, polling, delivery log): query parameters,
//! cursors checked against the retained log, and the JSON of an event.

use axum::http::{StatusCode, Uri};
use serde_json::value::RawValue;

use super::auth::Caller;
use super::body::Shortened;
use super::error::ApiError;
use super::query::{invalid_parameter, Query};
use super::AppState;
use crate::model::{cursor, parse_cursor, Coverage, Event, Seq};
use crate::protocol::resource::WHOLE_NAMESPACE;

/// A log reader's request (stream, changes, changeset): its query, and what it reads:
/// its resource filter within what the key may see (docs/api.md §10.1).
pub struct ReadRequest {
    pub query: Query,
    pub coverage: Coverage,
}

/// Reads a reader's query (`allowed` names the parameters it takes) and its resource
/// filter from the parameter `name`. Without one it reads the whole namespace, `/`:
/// every event the key may see.
pub fn authorize_reader(
    app: &AppState,
    caller: &Caller,
    uri: &Uri,
    allowed: &[&str],
    name: &str,
) -> Result<ReadRequest, ApiError> {
    let (query, resource) = reader(app, uri, allowed, name)?;
    let coverage = caller.coverage(resource.as_deref().unwrap_or(WHOLE_NAMESPACE))?;
    Ok(ReadRequest { query, coverage })
}

/// As `authorize_reader`, for a reader that must name a resource: without one it is a
/// `400` with `missing`, before any check of what the key may read.
pub fn authorize_reader_of(
    app: &AppState,
    caller: &Caller,
    uri: &Uri,
    allowed: &[&str],
    name: &str,
    missing: &str,
) -> Result<ReadRequest, ApiError> {
    let (query, resource) = reader(app, uri, allowed, name)?;
    let resource = resource.ok_or_else(|| ApiError::required(missing))?;
    let coverage = caller.coverage(&resource)?;
    Ok(ReadRequest { query, coverage })
}

/// The query and the canonical resource filter, if any.
fn reader(
    app: &AppState,
    uri: &Uri,
    allowed: &[&str],
    name: &str,
) -> Result<(Query, Option<String>), ApiError> {
    let query = Query::parse(uri, allowed)?;
    let resource = query
        .get(name)
        .map(|raw| {
            app.prefixes
                .canonicalize_watched(raw)
                .map_err(|e| invalid_parameter(e.named(name)))
        })
        .transpose()?;
    Ok((query, resource))
}

/// Parses a cursor a client sent back (docs/api.md §14): malformed or ahead of the
/// log's head is `400 invalidCursor` (a cursor from the future would make a reader skip
/// the events up to it as they arrive); older than the retained log is
/// `410 cursorExpired`, so the client knows to re-sync.
pub async fn since_cursor(app: &AppState, name: &str, value: &str) -> Result<Seq, ApiError> {
    let invalid = |message: String| ApiError::invalid(message).with_reason("invalidCursor");
    let seq = parse_cursor(value).ok_or_else(|| {
        invalid(format!(
            "{name} {:?} is not a cursor this gateway gave out; cursors are 16 hex digits, passed back as received",
            Shortened(value)
        ))
    })?;
    let head = app.store.head().await?;
    if seq > head {
        return Err(invalid(format!(
            "{name} {value} is ahead of the log, whose latest cursor is {}: it was not issued by this gateway's store (was the store reset or restored from a backup?); re-sync and continue from a cursor this gateway gave out",
            cursor(head)
        )));
    }
    let floor = app.store.pruned_through();
    if seq < floor {
        return Err(ApiError::new(
            StatusCode::GONE,
            "cursorExpired",
            format!("{name} {value} is older than the retained log (it starts after {}); re-sync and continue from a newer cursor", cursor(floor)),
        ));
    }
    Ok(seq)
}

/// The cursor a reader gives out as the newest of what it covers (a changeset's
/// `timestamp`, an `ETag`): `newest`, the newest event it covers, while the log still
/// holds it; else (nothing covered, or pruned since) the log's head. Either way a
/// client can pass it back as `_since` or `since`: it is never below the retained log,
/// so a re-sync after `410 cursorExpired` resumes instead of expiring again. Read before
/// the events the answer lists: any event after the head read here is listed too.
pub async fn resumable_latest(app: &AppState, newest: Option<Seq>) -> Result<Seq, ApiError> {
    match newest {
        Some(seq) if seq >= app.store.pruned_through() => Ok(seq),
        _ => Ok(app.store.head().await?),
    }
}

/// `{cursor, resource, state, data, metadata, time}`: an event as the stream and the
/// changeset show it. `data` and `metadata` are embedded as the JSON they are.
pub fn event_json(event: &Event) -> String {
    #[derive(serde::Serialize)]
    struct View<'a> {
        cursor: String,
        resource: &'a str,
        state: &'a str,
        data: Option<&'a RawValue>,
        metadata: Option<&'a RawValue>,
        time: String,
    }
    let data = event
        .data
        .as_deref()
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| serde_json::from_str::<&RawValue>(text).ok());
    let metadata = event
        .metadata
        .as_deref()
        .and_then(|text| serde_json::from_str::<&RawValue>(text).ok());
    let time = chrono::DateTime::from_timestamp_millis(event.time_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    serde_json::to_string(&View {
        cursor: cursor(event.seq),
        resource: &event.resource,
        state: event.state.as_str(),
        data,
        metadata,
        time,
    })
    .expect("an event view always serialises")
}
