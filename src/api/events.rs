//! `POST /v1/events` (docs/api.md §6): publish one event or a batch, durably.
//!
//! The body is read by [`parse_events`], a pure function of the bytes, the service
//! prefixes and the batch limit, so that the fuzz targets (`fuzz/`) exercise exactly
//! what the handler runs.

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::{Caller, Scope};
use super::body::{parse_json, read_json, type_name, RawBody, Shortened};
use super::error::ApiError;
use super::query::Query;
use super::AppState;
use crate::model::{cursor, NewEvent};
use crate::protocol::resource::{is_operational, ServicePrefixes};
use crate::protocol::state::{is_changed_token, ResourceState};
use crate::store::Idempotency;

/// Largest metadata, as compact JSON.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Longest `changed` list, joined with `,` as `X-Goog-Changed` carries it.
pub const MAX_CHANGED_BYTES: usize = 4096;
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// One event as sent. Fields are loose here so that each problem gets its own message.
#[derive(Deserialize)]
struct EventInput {
    resource: Option<Value>,
    state: Option<Value>,
    /// Kept as the exact text published: it becomes the notification body.
    data: Option<Box<RawValue>>,
    changed: Option<Value>,
    /// Kept as text too, so that compacting it never rounds a number.
    metadata: Option<Box<RawValue>>,
}

#[derive(serde::Serialize)]
pub struct PublishResponse {
    cursor: String,
    events: usize,
}

pub async fn publish(
    State(app): State<AppState>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    // The publish continues its caller's trace; its events keep the context, which
    // their deliveries continue (docs/api.md §18).
    let tracing = &app.dispatcher.context().tracing;
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    let span = tracing.publish(traceparent);
    let trace = span.context();
    let answered = append(&app, caller, &uri, &headers, &body, trace).await;
    let (status, appended) = match &answered {
        Ok((response, count)) => (response.status().as_u16(), *count),
        Err(e) => (e.status.as_u16(), 0),
    };
    tracing.published(span, status, appended);
    answered.map(|(response, _)| response)
}

/// The publish itself: the answer, and how many events it appended.
async fn append(
    app: &AppState,
    caller: Caller,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    trace: Option<crate::model::TraceContext>,
) -> Result<(Response, usize), ApiError> {
    // No parameter but `key` (docs/api.md §14): a typo is refused, not ignored.
    Query::parse(uri, &[])?;
    let idempotency = idempotency_key(headers)?.map(|key| Idempotency {
        owner: caller.owner.clone(),
        key,
        body_hash: Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    });
    caller.require(Scope::Publish)?;
    let mut events = parse_events(body, &app.prefixes, app.config.max_batch)?;
    for event in &mut events {
        if is_operational(&event.resource) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{} is where the gateway publishes events about its own channels; nobody else publishes there",
                    event.resource
                ),
            ));
        }
        caller.require_resource(&event.resource)?;
        event.trace = trace;
    }
    let receipt = app.store.append(events, idempotency).await?;
    if !receipt.replayed {
        app.dispatcher.context().activity.published(receipt.count);
    }
    let answer = Json(PublishResponse {
        cursor: cursor(receipt.last_seq),
        events: receipt.count,
    });
    // Tells a client that retried after a lost answer that its first try was stored
    // (the convention of Stripe and the IETF Idempotency-Key draft).
    let response = if receipt.replayed {
        ([(IDEMPOTENT_REPLAYED, "true")], answer).into_response()
    } else {
        answer.into_response()
    };
    Ok((response, receipt.count))
}

/// Set on a publish answered from an earlier one with the same Idempotency-Key.
const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|k| {
        !k.is_empty()
            && k.len() <= MAX_IDEMPOTENCY_KEY
            && k.bytes().all(|b| (0x20..0x7f).contains(&b))
    });
    key.map(|k| Some(k.to_string())).ok_or_else(|| {
        ApiError::invalid(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        ))
    })
}

/// Reads and validates a publish body: one event object or an array of 1 to
/// `max_batch` of them, each with its resource canonicalised. A batch is valid or
/// refused as a whole. Pure: the answer depends only on the arguments.
pub fn parse_events(
    body: &[u8],
    prefixes: &ServicePrefixes,
    max_batch: usize,
) -> Result<Vec<NewEvent>, ApiError> {
    // The common publish, one event object, in one typed parse: a body that starts with
    // `{` can only be read as an object, and one of plain text is accepted by it exactly
    // when the checked way below accepts it, which a body it refuses takes to be told
    // what is wrong.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') && is_plain(body) {
        if let Ok(one) = read_json::<EventInput>(body) {
            return validate_event(one, "", prefixes).map(|event| vec![event]);
        }
    }
    parse_checked(body, prefixes, max_batch)
}

/// Whether the typed parse, which skips fields it does not know and keeps `data` and
/// `metadata` as text, refuses all the checked way's generic parse refuses: that parse
/// also refuses lone surrogates (escapes), text that is not UTF-8, and numbers beyond a
/// double (an exponent, or more digits than a double's range). A body without any of
/// those marks is plain; one with them goes the checked way.
fn is_plain(body: &[u8]) -> bool {
    let mut digits = 0;
    for &b in body {
        if !b.is_ascii() || b == b'\\' {
            return false;
        }
        if b.is_ascii_digit() {
            digits += 1;
            if digits > 300 {
                return false;
            }
        } else {
            if digits > 0 && (b == b'e' || b == b'E') {
                return false;
            }
            digits = 0;
        }
    }
    true
}

/// [`parse_events`] the long way: the shape first, for a clear message about it.
fn parse_checked(
    body: &[u8],
    prefixes: &ServicePrefixes,
    max_batch: usize,
) -> Result<Vec<NewEvent>, ApiError> {
    // First check the shape with a generic parse, for a clear message about it.
    let shape: Value = parse_json(body)?;
    let is_batch = match &shape {
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::invalid(
                "the batch is empty: send at least one event",
            ))
        }
        Value::Array(items) if items.len() > max_batch => {
            return Err(ApiError::invalid(format!(
                "a batch holds at most {max_batch} events; this one holds {}",
                items.len()
            )))
        }
        Value::Array(items) => {
            if let Some((i, item)) = items.iter().enumerate().find(|(_, v)| !v.is_object()) {
                return Err(ApiError::invalid(format!(
                    "events[{i}] must be an event object, not {}",
                    type_name(item)
                )));
            }
            true
        }
        Value::Object(_) => false,
        other => {
            return Err(ApiError::invalid(format!(
                "the request body must be an event object or an array of them, not {}",
                type_name(other)
            )))
        }
    };
    // `data` is kept as raw text, which serde cannot do inside an untagged enum, so the
    // shape decided above picks the type.
    let inputs = if is_batch {
        read_json::<Vec<EventInput>>(body)
    } else {
        read_json::<EventInput>(body).map(|one| vec![one])
    };
    let inputs =
        inputs.map_err(|e| ApiError::invalid(format!("the events could not be read: {e}")))?;
    inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            let at = if is_batch {
                format!("events[{i}].")
            } else {
                String::new()
            };
            validate_event(input, &at, prefixes)
        })
        .collect()
}

fn validate_event(
    input: EventInput,
    at: &str,
    prefixes: &ServicePrefixes,
) -> Result<NewEvent, ApiError> {
    let resource = match input.resource {
        Some(Value::String(s)) => prefixes
            .canonicalize(&s)
            .map_err(|e| ApiError::invalid(e.named(&format!("{at}resource"))))?,
        None | Some(Value::Null) => {
            return Err(ApiError::required(format!(
                "{at}resource is required: the path that changed, e.g. /b/photos/o/cat.jpg"
            )))
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{at}resource must be a string, not {}",
                type_name(&other)
            )))
        }
    };
    let state = match input.state {
        Some(Value::String(s)) => match ResourceState::parse_publishable(&s) {
            Some(state) => state,
            None => {
                return Err(ApiError::invalid(format!(
                    "{at}state {:?} is not a publishable state: use exists, not_exists, add, remove, update, trash, untrash, change, or an event name like CREATE_USER", Shortened(&s)
                )))
            }
        },
        None | Some(Value::Null) => return Err(ApiError::required(format!("{at}state is required, e.g. \"exists\""))),
        Some(other) => return Err(ApiError::invalid(format!("{at}state must be a string, not {}", type_name(&other)))),
    };
    let changed = match input.changed {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(token) if is_changed_token(&token) => Ok(token),
                Value::String(token) => Err(ApiError::invalid(format!("{at}changed items must be strings of 1 to 64 characters of A-Z a-z 0-9 _ -; got {:?}", Shortened(&token)))),
                other => Err(ApiError::invalid(format!("{at}changed items must be strings of 1 to 64 characters of A-Z a-z 0-9 _ -, not {}", type_name(&other)))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(ApiError::invalid(format!("{at}changed must be an array of strings, not {}", type_name(&other)))),
    };
    // It travels in one header (X-Goog-Changed); beyond this receivers refuse it and the
    // event could never be delivered.
    let changed_bytes = changed
        .iter()
        .map(|t: &String| t.len() + 1)
        .sum::<usize>()
        .saturating_sub(1);
    if changed_bytes > MAX_CHANGED_BYTES {
        return Err(ApiError::invalid(format!(
            "{at}changed is {changed_bytes} bytes joined with ','; the limit is {MAX_CHANGED_BYTES}"
        )));
    }
    let metadata = match input.metadata {
        None => None,
        Some(raw) if raw.get().starts_with('{') => {
            let text = compact_ascii_json(raw.get());
            if text.len() > MAX_METADATA_BYTES {
                return Err(ApiError::invalid(format!(
                    "{at}metadata is {} bytes as compact JSON; the limit is {MAX_METADATA_BYTES}",
                    text.len()
                )));
            }
            Some(text)
        }
        Some(raw) => {
            let kind = match raw.get().as_bytes()[0] {
                b'[' => "an array",
                b'"' => "a string",
                b't' | b'f' => "a boolean",
                _ => "a number",
            };
            return Err(ApiError::invalid(format!(
                "{at}metadata must be an object, not {kind}"
            )));
        }
    };
    Ok(NewEvent {
        trace: None,
        resource,
        state,
        data: input
            .data
            .map(|raw| Bytes::copy_from_slice(raw.get().as_bytes())),
        changed,
        metadata,
    })
}

/// Valid JSON text made compact (no blanks outside strings), with every character a
/// header value cannot hold (non-ASCII, and DEL, which JSON leaves literal) escaped as
/// `\uXXXX`, so that it fits a header. Works on the text: numbers and escapes stay as
/// written, so nothing is lost to a float round trip.
pub fn compact_ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if !in_string {
            match c {
                ' ' | '\t' | '\n' | '\r' => continue,
                '"' => in_string = true,
                _ => {}
            }
        } else if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_string = false;
        }
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_compact_ascii_and_exact() {
        let text = r#" { "who" : "Zoë 🐱 \" \\ a b", "n" : [ 1 , 2.50 ],"x":{}} "#;
        let compact = compact_ascii_json(text);
        assert_eq!(
            compact,
            r#"{"who":"Zo\u00eb \ud83d\udc31 \" \\ a b","n":[1,2.50],"x":{}}"#
        );
        assert_eq!(
            serde_json::from_str::<Value>(&compact).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert_eq!(compact_ascii_json(&compact), compact, "a fixed point");
        // DEL is ASCII but no header value may hold it; JSON leaves it literal.
        assert_eq!(
            compact_ascii_json("{\"k\":\"a\u{7f}b\"}"),
            r#"{"k":"a\u007fb"}"#
        );
        // Numbers keep every digit (a parse and print would round this one).
        let big = r#"{"n":555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555551.5}"#;
        assert_eq!(compact_ascii_json(big), big);
    }

    #[test]
    fn parses_without_a_server() {
        let prefixes = ServicePrefixes::default();
        let events = parse_events(
            br#"[{"resource": "/storage/v1/b/x", "state": "exists", "data": {"a" : 1}}]"#,
            &prefixes,
            1,
        )
        .unwrap();
        assert_eq!(events[0].resource, "/b/x");
        assert_eq!(events[0].data.as_deref(), Some(&br#"{"a" : 1}"#[..]));
        let two =
            br#"[{"resource": "/a", "state": "exists"}, {"resource": "/b", "state": "exists"}]"#;
        assert_eq!(parse_events(two, &prefixes, 1).unwrap_err().status, 400);
    }

    fn bodies_plain() -> &'static str {
        r#"{"resource": "/bench/items/7", "state": "exists", "data": {"n": 12, "at": "2026-12-06"}}"#
    }

    /// The one-typed-parse path for a single object answers exactly as the checked way:
    /// the same events, or the same refusal.
    #[test]
    fn one_event_is_read_as_the_checked_way_reads_it() {
        let prefixes = ServicePrefixes::default();
        let bodies: &[&str] = &[
            r#"{"resource": "/a/b", "state": "exists", "data": {"n": 1.50}}"#,
            r#"  {"resource":"/storage/v1/b/x/o/y","state":"not_exists","changed":["content"],"metadata":{"k":"v"}}"#,
            r#"{"resource": "/a", "state": "exists", "data": [1, 2]}"#,
            r#"{"resource": "/a", "state": "exists", "data": null}"#,
            r#"{"resource": "/a", "state": "exists", "unknown": true}"#,
            r#"{"resource": "/a", "state": "exists"} trailing"#,
            r#"{"resource": "/a", "state": "exists""#,
            r#"{"resource": 5, "state": "exists"}"#,
            r#"{"state": "exists"}"#,
            r#"{"resource": "/a", "state": "sync"}"#,
            r#"{"resource": "/a", "state": "exists", "changed": "x"}"#,
            r#"{"resource": "/a", "state": "exists", "metadata": [1]}"#,
            r#"{"resource": "a/../b", "state": "exists"}"#,
            r#"{"resource": "/a", "resource": "/b", "state": "exists"}"#,
            r#"{}"#,
            r#"{"#,
            // What only the checked way's generic parse refuses.
            r#"{"id": "\ud800", "resource": "/a", "state": "exists"}"#,
            r#"{"resource": "/a", "state": "exists", "data": {"s": "\udc00"}}"#,
            r#"{"resource": "/a", "state": "exists", "metadata": {"s": "\ud800x"}}"#,
            r#"{"resource": "/a", "state": "exists", "data": {"n": 1e400}}"#,
            r#"{"resource": "/a", "state": "exists", "data": {"n": -2.5E+999}}"#,
            r#"{"resource": "/a", "state": "exists", "data": {"n": 1.5e3, "s": "\u00e9\n"}}"#,
        ];
        let long_integer = format!(
            r#"{{"resource": "/a", "state": "exists", "data": {{"n": {}}}}}"#,
            "9".repeat(400)
        );
        let mut not_utf8 = br#"{"x": "#.to_vec();
        not_utf8.extend_from_slice(&[b'"', 0xff, b'"']);
        not_utf8.extend_from_slice(br#", "resource": "/a", "state": "exists"}"#);
        let bodies = bodies
            .iter()
            .map(|b| b.as_bytes().to_vec())
            .chain([long_integer.into_bytes(), not_utf8]);
        for body in bodies {
            let fast = parse_events(&body, &prefixes, 10);
            let checked = parse_checked(&body, &prefixes, 10);
            let shown = String::from_utf8_lossy(&body);
            assert_eq!(format!("{fast:?}"), format!("{checked:?}"), "{shown}");
        }
        // The plain ones do take the one-parse way.
        assert!(is_plain(bodies_plain().as_bytes()));
        assert!(!is_plain(br#"{"n": 1e5}"#));
        assert!(!is_plain(br#"{"s": "\u0041"}"#));
    }
}
