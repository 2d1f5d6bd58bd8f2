//! What the read surfaces share (stream, polling, delivery log): query parameters,
//! cursors checked against the retained log, and the JSON of an event.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::value::RawValue;

use super::auth::Scope;
use super::error::ApiError;
use super::AppState;
use crate::model::{cursor, parse_cursor, Event, Seq};

/// The query string as a map (the last value of a repeated name wins).
pub fn query(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// A log reader's request (stream, changes, changeset): its query parameters and its
/// resource filter, canonical.
pub struct ReadRequest {
    pub params: HashMap<String, String>,
    pub resource: Option<String>,
}

/// Authenticates a reader, reads its resource filter from the parameter `name` and
/// checks the key may read it (no filter: the whole tree).
pub fn authorize_reader(
    app: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    name: &str,
) -> Result<ReadRequest, ApiError> {
    reader(app, headers, uri, name, None)
}

/// As `authorize_reader`, for a reader that must name a resource: without one it is a
/// `400` with `missing`, before any check of what the key may read.
pub fn authorize_reader_of(
    app: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    name: &str,
    missing: &str,
) -> Result<(HashMap<String, String>, String), ApiError> {
    let request = reader(app, headers, uri, name, Some(missing))?;
    match request.resource {
        Some(resource) => Ok((request.params, resource)),
        None => Err(ApiError::required(missing)),
    }
}

fn reader(
    app: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    name: &str,
    required: Option<&str>,
) -> Result<ReadRequest, ApiError> {
    let caller = app.keys.authorize(headers, uri, Scope::Subscribe)?;
    let params = query(uri);
    let resource = resource_param(app, &params, name)?;
    if let (None, Some(message)) = (&resource, required) {
        return Err(ApiError::required(message));
    }
    caller.require_resource(resource.as_deref().unwrap_or("/"))?;
    Ok(ReadRequest { params, resource })
}

/// Canonicalises an optional resource parameter.
pub fn resource_param(
    app: &AppState,
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<String>, ApiError> {
    params
        .get(name)
        .map(|raw| {
            app.prefixes
                .canonicalize(raw)
                .map_err(|e| ApiError::invalid(format!("{name}: {e}")))
        })
        .transpose()
}

/// Parses a cursor a client sent back, and checks the log still holds everything
/// after it: `410 cursorExpired` otherwise, so the client knows to re-sync.
pub fn since_cursor(app: &AppState, name: &str, value: &str) -> Result<Seq, ApiError> {
    let seq = parse_cursor(value).ok_or_else(|| {
        ApiError::invalid(format!(
            "{name} {value:?} is not a cursor this gateway gave out"
        ))
    })?;
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
        state: &event.state,
        data,
        metadata,
        time,
    })
    .expect("an event view always serialises")
}

/// `max_results` within `1..=max`, `default` when absent.
pub fn page_size(
    params: &HashMap<String, String>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!("{name} must be a whole number from 1 to {max}"))
            }),
    }
}
