//! Polling (docs/api.md §7, Kinto-changes style): `GET /v1/changes` lists every
//! collection with its latest cursor in one answer, as Kinto's monitor endpoint does;
//! `GET /v1/changeset` returns what changed under a path. Both answer with an ETag of
//! their latest cursor, `304` to `If-None-Match`, and the same cache rules.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::auth::Subscriber;
use super::error::ApiError;
use super::reading::{
    authorize_reader, authorize_reader_of, event_json, resumable_latest, since_cursor, ReadRequest,
};
use super::AppState;
use crate::model::{cursor, parse_cursor, Seq};

/// Most collections one `/v1/changes` answer lists.
const MAX_COLLECTIONS: usize = 10_000;
/// Most events one changeset holds.
const MAX_CHANGESET: usize = 10_000;

pub async fn changes(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ReadRequest { query, coverage } = authorize_reader(
        &app,
        &caller,
        &uri,
        &["prefix", "_since", "_limit", "_expected"],
        "prefix",
    )?;
    let since = match query.get("_since") {
        Some(c) => since_cursor(&app, "_since", c).await?,
        None => 0,
    };
    let limit = query.count("_limit", MAX_COLLECTIONS, MAX_COLLECTIONS)?;
    // The latest cursor first: if the client already has it, nothing else is read.
    let newest = app
        .store
        .list_collections(&coverage, 0, 1)
        .await?
        .first()
        .map(|c| c.last_seq);
    let latest = resumable_latest(&app, newest).await?;
    let (etag, cache_headers) = cache_headers(&app, latest, query.get("_expected"));
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, cache_headers).into_response());
    }
    let collections = app.store.list_collections(&coverage, since, limit).await?;
    let items: Vec<serde_json::Value> = collections
        .iter()
        .map(|c| serde_json::json!({"collection": c.path, "cursor": cursor(c.last_seq), "last_modified": c.last_ms, "host": app.public_url}))
        .collect();
    let body = serde_json::json!({ "collections": items }).to_string();
    Ok(json_response(cache_headers, body))
}

/// `ETag` of the latest cursor, and `Cache-Control`: the longer max-age once the
/// client's `_expected` cursor is reached, since the answer to that URL is then settled
/// (docs/api.md §7).
fn cache_headers(
    app: &AppState,
    latest: Seq,
    expected: Option<&str>,
) -> (String, [(HeaderName, HeaderValue); 2]) {
    let etag = format!("\"{}\"", cursor(latest));
    let settled = expected
        .and_then(|e| parse_cursor(e.trim_matches('"')))
        .is_some_and(|want| latest >= want);
    let max_age = if settled {
        app.config.changes_expected_max_age
    } else {
        app.config.changes_max_age
    };
    let headers = [
        (
            header::ETAG,
            HeaderValue::from_str(&etag).expect("a cursor is a valid header value"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("max-age={}", max_age.as_secs())).expect("digits"),
        ),
    ];
    (etag, headers)
}

fn json_response(cache_headers: [(HeaderName, HeaderValue); 2], body: String) -> Response {
    let mut response = (cache_headers, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub async fn changeset(
    State(app): State<AppState>,
    Subscriber(caller): Subscriber,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ReadRequest { query, coverage } = authorize_reader_of(
        &app,
        &caller,
        &uri,
        &["resource", "_expected", "_since", "_limit"],
        "resource",
        "resource is required: the path whose changes you want, e.g. /b/photos/o",
    )?;
    let expected = query.get("_expected").ok_or_else(|| {
        ApiError::required(
            "_expected is required (any value; pass the timestamp you expect, to bust caches)",
        )
    })?;
    let since = match query.get("_since") {
        Some(c) => Some(since_cursor(&app, "_since", c).await?),
        None => None,
    };
    let limit = query.count("_limit", MAX_CHANGESET, MAX_CHANGESET)?;

    // The latest cursor first: if the client already has it, nothing else is read.
    let newest = app.store.latest_seq_under(&coverage).await?;
    let latest = resumable_latest(&app, newest).await?;
    let (etag, cache_headers) = cache_headers(&app, latest, Some(expected));
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, cache_headers).into_response());
    }

    let after = since.unwrap_or_else(|| app.store.pruned_through());
    let mut events = app
        .store
        .read_matching(&coverage, after, limit + 1)
        .await?
        .events;
    let next = (events.len() > limit).then(|| {
        events.truncate(limit);
        cursor(events.last().map_or(after, |e| e.seq))
    });
    let timestamp = cursor(latest.max(events.last().map_or(0, |e| e.seq)));
    let changes: Vec<String> = events.iter().map(|e| event_json(e)).collect();
    let mut body = format!(
        "{{\"changes\":[{}],\"timestamp\":\"{timestamp}\"",
        changes.join(",")
    );
    if let Some(next) = next {
        body.push_str(&format!(",\"next\":\"{next}\""));
    }
    body.push('}');
    Ok(json_response(cache_headers, body))
}

/// Whether `If-None-Match` names this ETag (weak or strong, in a list, or `*`).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}
