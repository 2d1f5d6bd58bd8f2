//! The rules watchwire's input parsers must keep, one function per fuzz target.
//!
//! Included with `#[path]` by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and by the
//! corpus replay (`tests/it/fuzz_corpus.rs`), so a fuzzer finding and its regression test
//! check the same thing. Each function takes one input and panics when a rule breaks;
//! returning means the input was accepted and is sound, or was refused properly.
//!
//! Beyond "no panic", every target checks what the rest of the gateway relies on:
//! canonical paths are fixed points, accepted bodies read back the same, and whatever the
//! API accepts can be delivered as a notification that the receiver library accepts with
//! every field intact.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};
use watchwire::api::error::ApiError;
use watchwire::api::events::{
    compact_ascii_json, parse_events, MAX_CHANGED_BYTES, MAX_METADATA_BYTES,
};
use watchwire::api::renew::RenewRequest;
use watchwire::api::resource_id::ResourceIds;
use watchwire::api::stop::StopRequest;
use watchwire::api::watch::{ChannelContext, WatchRequest, MAX_ADDRESS_BYTES};
use watchwire::delivery::render::{ChannelHeaders, Notification as Outbound, Rendered};
use watchwire::delivery::target::TargetPolicy;
use watchwire::model::{message_number, ChannelSpec, Event, NewEvent};
use watchwire::protocol::resource::{
    collection, self_and_ancestors, ServicePrefixes, MAX_RESOURCE_BYTES,
};
use watchwire::protocol::state::is_changed_token;
use watchwire::protocol::watch::{is_valid_channel_id, is_valid_token};
use watchwire::protocol::ResourceState;
use watchwire::receiver::{
    verify_signature, Channel, Notification, NotificationError, SigningSecret, Tracker,
    DEFAULT_SIGNATURE_TOLERANCE,
};

/// The clock every check runs at: 2023-11-14T22:13:20Z.
pub const NOW_MS: i64 = 1_700_000_000_000;
/// The publish target's batch limit: small, so that the limit itself is exercised.
pub const MAX_BATCH: usize = 4;
/// Every target, by the name of its fuzz target and corpus directory.
pub const TARGETS: [&str; 5] = [
    "watch_body",
    "publish_body",
    "resource_path",
    "receiver_headers",
    "filter",
];

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PUBLIC_URL: &str = "https://gw.example";
/// An error message never echoes a whole (up to 1 MiB) body.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
const DAY: Duration = Duration::from_secs(86_400);

/// Runs the check of `target` on `data`.
pub fn check(target: &str, data: &[u8]) {
    match target {
        "watch_body" => watch_body(data),
        "publish_body" => publish_body(data),
        "resource_path" => resource_path(data),
        "receiver_headers" => receiver_headers(data),
        "filter" => filter(data),
        other => panic!("no fuzz target named {other}"),
    }
}

fn now() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(NOW_MS).unwrap()
}

/// The default service prefixes plus an operator's `--strip-prefix /gmail/v1`.
fn prefixes() -> ServicePrefixes {
    ServicePrefixes::with_extra(&["/gmail/v1".to_string()]).unwrap()
}

/// A refusal is a 400 in Google's envelope with a known reason and a bounded message.
fn assert_client_error(error: &ApiError) {
    assert_eq!(error.status.as_u16(), 400, "{error:?}");
    assert!(
        ["parseError", "required", "invalid", "pushWebhookBadDomain"].contains(&error.reason),
        "unexpected reason: {error:?}"
    );
    assert!(
        !error.message.is_empty() && error.message.len() <= MAX_MESSAGE_BYTES,
        "message of {} bytes",
        error.message.len()
    );
}

// ---- resource paths (docs/api.md §1) --------------------------------------------------------

/// A byte that the canonical form keeps literal (RFC 3986 unreserved, plus the
/// sub-delimiters, `:` and `@`); every other byte is `%XX`, upper case.
fn is_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~@:!$&'()*+,;=".contains(&b)
}

pub fn resource_path(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let prefixes = prefixes();
    let canonical = match prefixes.canonicalize(&raw) {
        Ok(canonical) => canonical,
        Err(e) => {
            assert!(!e.0.is_empty() && e.0.len() <= MAX_MESSAGE_BYTES);
            return;
        }
    };
    assert_canonical(&prefixes, &canonical);
    // Percent-encoding bytes changes nothing: every byte of every segment as %xx (lower
    // case, even the literal ones) names the same resource.
    let encoded: String = canonical[1..]
        .split('/')
        .map(|segment| {
            let bytes = percent_decode(segment);
            let escaped: String = bytes.iter().map(|b| format!("%{b:02x}")).collect();
            format!("/{escaped}")
        })
        .collect();
    assert_eq!(
        prefixes.canonicalize(&encoded).as_deref(),
        Ok(canonical.as_str()),
        "fully encoded {encoded:?}"
    );
    // A service prefix in front names the same resource (docs/api.md §2).
    for prefix in ["/calendar/v3", "/storage/v1", "/gmail/v1"] {
        let prefixed = format!("{prefix}{canonical}");
        assert_eq!(
            prefixes.canonicalize(&prefixed).as_deref(),
            Ok(canonical.as_str()),
            "with the service prefix {prefix}"
        );
    }
}

/// What every canonical path satisfies; panics otherwise.
fn assert_canonical(prefixes: &ServicePrefixes, canonical: &str) {
    assert_eq!(
        prefixes.canonicalize(canonical).as_deref(),
        Ok(canonical),
        "canonicalisation is not idempotent"
    );
    assert!(
        canonical.starts_with('/') && canonical.is_ascii(),
        "{canonical:?}"
    );
    assert!(
        canonical.len() <= MAX_RESOURCE_BYTES,
        "{} bytes",
        canonical.len()
    );
    for segment in canonical[1..].split('/') {
        assert!(
            !segment.is_empty() && segment != "." && segment != "..",
            "segment {segment:?} of {canonical:?}"
        );
        let bytes = segment.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = &bytes[i + 1..i + 3];
                assert!(
                    hex.iter()
                        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)),
                    "escape in {segment:?} is not upper-case hex"
                );
                let byte = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
                assert!(!is_literal(byte), "{byte:#x} is escaped in {segment:?}");
                i += 3;
            } else {
                assert!(
                    is_literal(bytes[i]),
                    "{:#x} is literal in {segment:?}",
                    bytes[i]
                );
                i += 1;
            }
        }
    }
    // The paths that matching and polling derive from it are canonical too.
    // (The nearest few and the top one: checking all of a long path is quadratic.)
    let ancestors: Vec<&str> = self_and_ancestors(canonical).collect();
    let nearest = ancestors.iter().take(8);
    for ancestor in nearest.chain(ancestors.last()) {
        assert_eq!(
            prefixes.canonicalize(ancestor).as_deref(),
            Ok(*ancestor),
            "ancestor {ancestor:?} of {canonical:?}"
        );
    }
    let parent = collection(canonical);
    assert_eq!(prefixes.canonicalize(parent).as_deref(), Ok(parent));
}

/// Decodes the `%XX` escapes of a canonical segment.
fn percent_decode(segment: &str) -> Vec<u8> {
    let bytes = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

// ---- watch bodies (docs/api.md §2, §3) ------------------------------------------------------

/// Strict (the default), an allow-list, and `--dev`: each accepts at least what the
/// one before it does.
fn policies() -> [TargetPolicy; 3] {
    [
        TargetPolicy::default(),
        TargetPolicy {
            allow_all: false,
            allow: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
            brokers: vec![],
        },
        TargetPolicy {
            allow_all: true,
            allow: vec![],
            brokers: vec![],
        },
    ]
}

pub fn watch_body(data: &[u8]) {
    // The same bytes as a stop body.
    match StopRequest::parse(data) {
        Ok(stop) => assert!(!stop.id.is_empty() && !stop.resource_id.is_empty()),
        Err(e) => assert_client_error(&e),
    }
    let policies = policies();
    let results: Vec<Result<WatchRequest, ApiError>> = policies
        .iter()
        .map(|policy| WatchRequest::parse(data, policy, NOW_MS))
        .collect();
    for (policy, result) in policies.iter().zip(&results) {
        match result {
            Ok(request) => assert_watch_request(request, policy),
            Err(e) => assert_client_error(e),
        }
    }
    // The same bytes as a renewal body: its expiration is read as watch reads one.
    match RenewRequest::parse(data, NOW_MS) {
        Ok(renewal) => {
            assert_renewal(&renewal);
            for watched in results.iter().flatten() {
                if renewal.expiration_ms.is_some() {
                    assert_eq!(renewal.expiration_ms, watched.expiration_ms);
                }
            }
        }
        Err(e) => assert_client_error(&e),
    }
    // A looser policy accepts everything a stricter one does, and reads it the same.
    for pair in results.windows(2) {
        if let Ok(stricter) = &pair[0] {
            assert_eq!(
                pair[1].as_ref().ok(),
                Some(stricter),
                "looser policy differs"
            );
        }
    }
}

fn assert_renewal(renewal: &RenewRequest) {
    assert!(
        renewal.expiration_ms.is_none() || renewal.ttl.is_none(),
        "both expiration and ttl: {renewal:?}"
    );
    if let Some(ms) = renewal.expiration_ms {
        assert!(ms > NOW_MS, "expiration {ms} is not in the future");
    }
    if let Some(ttl) = renewal.ttl {
        assert!(ttl >= Duration::from_secs(1), "ttl {ttl:?}");
    }
    // The channel gets an expiration after now and within the maximum.
    let expiration = renewal.expiration(NOW_MS, 7 * DAY, 30 * DAY);
    assert!(expiration > NOW_MS && expiration <= NOW_MS + 30 * 86_400_000);
    // What a client would send for it reads back the same.
    let mut body = json!({});
    if let Some(ms) = renewal.expiration_ms {
        body["expiration"] = json!(ms.to_string());
    }
    if let Some(ttl) = renewal.ttl {
        body["ttl"] = json!(ttl.as_secs().to_string());
    }
    let again = RenewRequest::parse(body.to_string().as_bytes(), NOW_MS);
    assert_eq!(again.as_ref(), Ok(renewal), "re-sent as {body}");
}

fn assert_watch_request(request: &WatchRequest, policy: &TargetPolicy) {
    assert!(is_valid_channel_id(&request.id), "id {:?}", request.id);
    assert!(["web_hook", "webhook"]
        .iter()
        .any(|t| request.channel_type.eq_ignore_ascii_case(t)));
    assert!(request.address.len() <= MAX_ADDRESS_BYTES);
    let url = url::Url::parse(&request.address).expect("an accepted address is a URL");
    assert_eq!(policy.check_url(&url), Ok(()), "{:?}", request.address);
    if let Some(token) = &request.token {
        assert!(
            is_valid_token(token) && token.trim() == token,
            "token {token:?}"
        );
    }
    if let Some(ms) = request.expiration_ms {
        assert!(ms > NOW_MS, "expiration {ms} is not in the future");
    }
    if let Some(ttl) = request.ttl {
        assert!(ttl >= Duration::from_secs(1), "ttl {ttl:?}");
    }
    assert!(
        !request.params.contains_key("signingSecret"),
        "secret echoed"
    );
    assert!(request.params.values().all(Value::is_string));
    if let Some(secret) = &request.signing_secret {
        SigningSecret::parse(secret).expect("an accepted signing secret parses");
    }

    // What a client library would send for this channel reads back the same.
    let mut params = request.params.clone();
    if let Some(secret) = &request.signing_secret {
        params.insert("signingSecret".into(), json!(secret));
    }
    let mut body = json!({
        "id": request.id, "type": request.channel_type, "address": request.address,
        "token": request.token, "params": params, "payload": request.payload,
    });
    if let Some(ms) = request.expiration_ms {
        body["expiration"] = json!(ms.to_string());
    }
    let again = WatchRequest::parse(body.to_string().as_bytes(), policy, NOW_MS);
    assert_eq!(again.as_ref(), Ok(request), "re-sent as {body}");

    // The channel it makes expires after now and within the maximum, and its sync
    // notification passes the receiver's checks with the subscriber's own record.
    let channel = request
        .clone()
        .into_channel(context("/calendars/primary/events"));
    let expiration = channel.expiration_ms.expect("a watch channel expires");
    assert!(expiration > NOW_MS && expiration <= NOW_MS + 30 * 86_400_000);
    assert_eq!(
        *channel.resource_uri,
        format!("{PUBLIC_URL}/calendars/primary/events")
    );
    let Rendered { headers, body } =
        Outbound::sync(0).render(&ChannelHeaders::new(&channel), &channel, None, now());
    assert!(body.is_empty(), "a sync has no body");
    let received = subscriber(request, &channel)
        .receive_at(headers.iter().map(|(n, v)| (n, v)), &body, now())
        .unwrap_or_else(|e| panic!("the receiver refuses the sync: {e}; {headers:?}"));
    assert!(received.is_sync() && received.message_number == 1);
    assert_eq!(received.token, request.token);
    assert_eq!(*received.resource_uri, *channel.resource_uri);
    assert_eq!(
        received.channel_expiration.map(|e| e.timestamp()),
        Some(expiration.div_euclid(1000))
    );
}

/// `resourceId`s under the fuzz targets' instance secret.
static RESOURCE_IDS: std::sync::LazyLock<ResourceIds> =
    std::sync::LazyLock::new(|| ResourceIds::new(b"instance secret"));

/// What the watch handler adds to a request, on `resource`.
fn context(resource: &str) -> ChannelContext<'static> {
    ChannelContext {
        owner: "fuzz".into(),
        resource: resource.into(),
        within: None,
        resource_ids: &RESOURCE_IDS,
        public_url: PUBLIC_URL,
        default_ttl: 7 * DAY,
        max_ttl: 30 * DAY,
        now_ms: NOW_MS,
    }
}

/// The receiver's record of a channel, as its subscriber keeps it after the watch.
fn subscriber(request: &WatchRequest, channel: &ChannelSpec) -> Channel {
    let mut record = Channel::new(request.id.clone()).with_resource_id(channel.resource_id.clone());
    record.token = request.token.clone();
    record
        .set_signing_secret(request.signing_secret.as_deref())
        .expect("an accepted signing secret");
    record
}

// ---- publish bodies (docs/api.md §6, §4) ----------------------------------------------------

pub fn publish_body(data: &[u8]) {
    let prefixes = prefixes();
    let events = match parse_events(data, &prefixes, MAX_BATCH) {
        Ok(events) => events,
        Err(e) => return assert_client_error(&e),
    };
    assert!(
        (1..=MAX_BATCH).contains(&events.len()),
        "{} events",
        events.len()
    );
    for event in &events {
        assert_event(&prefixes, event);
    }
    // The events re-sent as a batch read back the same.
    let items: Vec<String> = events.iter().map(event_json).collect();
    let body = format!("[{}]", items.join(","));
    assert_eq!(
        parse_events(body.as_bytes(), &prefixes, MAX_BATCH).as_ref(),
        Ok(&events),
        "re-sent as {body}"
    );
    // Each can be delivered, and the receiver reads back what was published.
    for (i, event) in events.iter().enumerate() {
        assert_delivered(event, i as u64 + 1);
    }
}

fn assert_event(prefixes: &ServicePrefixes, event: &NewEvent) {
    assert_canonical(prefixes, &event.resource);
    let state = ResourceState::parse_publishable(event.state.as_str());
    assert_eq!(state.as_ref(), Some(&event.state), "not publishable");
    assert!(
        event.changed.iter().all(|t| is_changed_token(t)),
        "{:?}",
        event.changed
    );
    assert!(event.changed.join(",").len() <= MAX_CHANGED_BYTES);
    if let Some(metadata) = &event.metadata {
        assert!(metadata.len() <= MAX_METADATA_BYTES);
        assert!(
            metadata.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "metadata is not a header value: {metadata:?}"
        );
        let object: Value = serde_json::from_str(metadata).expect("metadata is JSON");
        assert!(object.is_object());
        assert_eq!(
            &compact_ascii_json(metadata),
            metadata,
            "metadata is not in normal form"
        );
    }
    if let Some(data) = &event.data {
        serde_json::from_slice::<Value>(data).expect("data is JSON text");
    }
}

/// One event as a publisher would send it (data as its exact text).
fn event_json(event: &NewEvent) -> String {
    let mut fields = vec![
        format!("\"resource\":{}", json!(event.resource)),
        format!("\"state\":{}", json!(event.state.as_str())),
        format!("\"changed\":{}", json!(event.changed)),
    ];
    if let Some(data) = &event.data {
        fields.push(format!("\"data\":{}", std::str::from_utf8(data).unwrap()));
    }
    if let Some(metadata) = &event.metadata {
        fields.push(format!("\"metadata\":{metadata}"));
    }
    format!("{{{}}}", fields.join(","))
}

/// Renders `event` (at log position `seq`) on a channel watching its resource, and has
/// the receiver library check it.
fn assert_delivered(event: &NewEvent, seq: u64) {
    let request = WatchRequest::parse(
        json!({
            "id": "fuzz-channel", "type": "web_hook", "address": "https://example.com/hook",
            "token": "tok", "params": {"signingSecret": SECRET},
        })
        .to_string()
        .as_bytes(),
        &TargetPolicy::default(),
        NOW_MS,
    )
    .unwrap();
    let channel = request.clone().into_channel(context(&event.resource));
    let logged = Event {
        seq,
        time_ms: NOW_MS,
        resource: event.resource.clone(),
        state: event.state.clone(),
        data: event.data.clone(),
        changed: event.changed.clone(),
        metadata: event.metadata.clone(),
        trace: None,
    };
    let Rendered { headers, body } = Outbound::event(Arc::new(logged), 1).render(
        &ChannelHeaders::new(&channel),
        &channel,
        None,
        now(),
    );
    let received = subscriber(&request, &channel)
        .receive_at(headers.iter().map(|(n, v)| (n, v)), &body, now())
        .unwrap_or_else(|e| panic!("the receiver refuses the event: {e}; {headers:?}"));
    assert_eq!(received.state, event.state);
    assert_eq!(received.message_number, message_number(seq));
    assert_eq!(received.previous_number, Some(1));
    assert_eq!(received.changed, event.changed);
    assert_eq!(
        received.event_resource.as_deref(),
        Some(event.resource.as_str())
    );
    let metadata = event
        .metadata
        .as_deref()
        .map(|m| serde_json::from_str::<Map<String, Value>>(m).unwrap());
    assert_eq!(received.metadata, metadata, "metadata lost on the way");
    assert_eq!(
        &body[..],
        event.data.as_deref().unwrap_or_default(),
        "body differs"
    );
}

// ---- receiver headers (docs/api.md §4, §11) -------------------------------------------------

/// The input as header lines `name:value` separated by `\n`; lines without `:` are
/// skipped. Values are raw bytes (not necessarily UTF-8), as a server may hand them over.
fn decode_headers(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    data.split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon]).into_owned();
            Some((name, line[colon + 1..].to_vec()))
        })
        .collect()
}

fn pairs(headers: &[(String, Vec<u8>)]) -> impl Iterator<Item = (&String, &Vec<u8>)> {
    headers.iter().map(|(k, v)| (k, v))
}

pub fn receiver_headers(data: &[u8]) {
    let headers = decode_headers(data);
    let parsed = Notification::from_headers(pairs(&headers));
    // Header names are matched in any letter case.
    let upper = headers.iter().map(|(k, v)| (k.to_ascii_uppercase(), v));
    assert_eq!(
        Notification::from_headers(upper),
        parsed,
        "letter case changed the result"
    );
    // Signature checks refuse or accept, never panic.
    let secret = SigningSecret::parse(SECRET).unwrap();
    let _ = verify_signature(
        &secret,
        pairs(&headers),
        b"{}",
        now(),
        DEFAULT_SIGNATURE_TOLERANCE,
    );
    let notification = match parsed {
        Ok(notification) => notification,
        Err(e) => {
            assert!(!e.reason().is_empty() && !e.to_string().is_empty());
            return;
        }
    };
    let n = &notification;
    assert!(n.message_number >= 1);
    assert!(n
        .previous_number
        .is_none_or(|p| p >= 1 && p < n.message_number));
    assert!(
        n.changed.iter().all(|t| is_changed_token(t)),
        "{:?}",
        n.changed
    );
    assert_eq!(
        ResourceState::parse(n.state.as_str()).as_ref(),
        Some(&n.state)
    );

    // A channel record that matches accepts it and reads the same; one with another
    // token or id refuses it.
    let at = n.channel_expiration.unwrap_or_else(now);
    let mut record = Channel::new(n.channel_id.clone()).with_resource_id(n.resource_id.clone());
    record.token = n.token.clone();
    assert_eq!(record.receive_at(pairs(&headers), b"", at).as_ref(), Ok(n));
    if let Some(token) = &n.token {
        let wrong = record.clone().with_token(format!("{token}x"));
        assert_eq!(
            wrong.receive_at(pairs(&headers), b"", at),
            Err(NotificationError::TokenMismatch)
        );
    }
    let other = Channel::new(format!("{}x", n.channel_id));
    assert!(matches!(
        other.receive_at(pairs(&headers), b"", at),
        Err(NotificationError::ChannelIdMismatch { .. })
    ));
    // With a signing secret, acceptance means a valid signature over this message.
    let signed = record.with_signing_secret(SECRET).unwrap();
    if signed.receive_at(pairs(&headers), b"", at).is_ok() {
        assert!(verify_signature(
            &secret,
            pairs(&headers),
            b"",
            at,
            DEFAULT_SIGNATURE_TOLERANCE
        )
        .is_ok());
    }
    let mut tracker = Tracker::new();
    assert!(tracker.observe(n).is_new());
    assert!(tracker.observe(n).is_duplicate());
}

/// A filter (docs/api.md §16) as a stream's `filter` parameter or `params.filter` gives
/// it: refused with a bounded message naming a place in it, or accepted, within its
/// bounds, its canonical form a fixed point, and matched against events of every shape
/// without a panic, the same way as its canonical form.
pub fn filter(data: &[u8]) {
    use watchwire::filter::{event_document, Filter, MAX_FILTER_BYTES};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let filter = match Filter::from_text(text) {
        Err(e) => {
            assert!(e.place.starts_with("filter"), "place {:?}", e.place);
            assert!(
                e.to_string().len() <= MAX_MESSAGE_BYTES,
                "a bounded message"
            );
            return;
        }
        Ok(filter) => filter,
    };
    assert!(filter.canonical().len() <= MAX_FILTER_BYTES);
    let again = Filter::from_text(filter.canonical()).expect("the canonical form parses");
    assert_eq!(again.canonical(), filter.canonical(), "a fixed point");
    let events = [
        json!({"status": "paid", "total": 120, "tags": ["a", "b"], "n": {"x": null}}),
        json!([1, "two", {"three": 3.5}]),
        json!("text"),
        Value::Null,
    ];
    for data in events {
        let event = Event {
            seq: 7,
            time_ms: NOW_MS,
            resource: "/orders/42".into(),
            state: ResourceState::Exists,
            data: Some(data.to_string().into_bytes().into()),
            changed: vec!["status".into()],
            metadata: Some(r#"{"by":"fuzz"}"#.into()),
            trace: None,
        };
        let document = event_document(&event);
        assert_eq!(filter.matches(&document), again.matches(&document));
    }
}
