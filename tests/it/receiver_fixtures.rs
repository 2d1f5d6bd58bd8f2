//! Runs the receiver over every test vector in `fixtures/notifications/` (format in its
//! README.md). The gateway's tests read the same files, so the sender and the parser
//! cannot drift apart unnoticed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use watchwire::protocol::headers as h;
use watchwire::receiver::{Channel, Notification, NotificationError, SigningSecret};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Vector {
    description: String,
    emitted_by_gateway: bool,
    channel: VectorChannel,
    now_ms: i64,
    headers: Vec<(String, String)>,
    body: String,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VectorChannel {
    id: String,
    token: Option<String>,
    resource_id: Option<String>,
    expiration: Option<String>,
    signing_secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum Expect {
    Notification(Value),
    Error {
        reason: String,
        header: Option<String>,
    },
}

fn vectors() -> Vec<(PathBuf, Vector)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/notifications");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 40,
        "expected the full set of vectors in {}",
        dir.display()
    );
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let vector =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, vector)
        })
        .collect()
}

fn channel_of(vector: &Vector) -> Channel {
    let c = &vector.channel;
    let mut channel = Channel::new(&c.id);
    channel.token = c.token.clone();
    channel.resource_id = c.resource_id.clone();
    channel
        .update(&json!({ "expiration": c.expiration }))
        .unwrap();
    channel
        .set_signing_secret(c.signing_secret.as_deref())
        .unwrap();
    channel
}

/// A notification in the vectors' `expect.notification` shape.
fn as_expected(n: &Notification) -> Value {
    json!({
        "channelId": n.channel_id,
        "messageNumber": n.message_number,
        "state": n.state.as_str(),
        "resourceId": n.resource_id,
        "resourceUri": n.resource_uri,
        "channelExpirationMs": n.channel_expiration.map(|e| e.timestamp_millis()),
        "token": n.token,
        "changed": n.changed,
        "eventResource": n.event_resource,
        "cursor": n.cursor,
        "previousNumber": n.previous_number,
        "metadata": n.metadata,
    })
}

fn header_map(pairs: &[(String, String)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::try_from(name.as_str()).unwrap(),
            http::HeaderValue::try_from(value.as_str()).unwrap(),
        );
    }
    map
}

/// What went wrong with one vector, or `None` when it gave what it expects.
fn check(vector: &Vector, result: Result<Notification, NotificationError>) -> Option<String> {
    match (&vector.expect, result) {
        (Expect::Notification(expected), Ok(n)) if as_expected(&n) == *expected => None,
        (Expect::Error { reason, header }, Err(e))
            if e.reason() == reason && e.header() == header.as_deref() =>
        {
            None
        }
        (_, Err(NotificationError::Signature(watchwire::receiver::SignatureError::Mismatch))) => {
            // Say what the signature should be, so an edited vector is easy to fix.
            let secret = SigningSecret::parse(vector.channel.signing_secret.as_deref()?).ok()?;
            let get = |name: &str| {
                vector
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let ts = get("webhook-timestamp")?.trim().parse().ok()?;
            Some(format!(
                "signatureMismatch; the body signs as {}",
                secret.sign(&get("webhook-id")?, ts, vector.body.as_bytes())
            ))
        }
        (expected, got) => Some(format!("expected {expected:?}, got {got:?}")),
    }
}

#[test]
fn every_vector_gives_its_expected_result_from_pairs_and_from_a_header_map() {
    let mut failures = Vec::new();
    for (path, vector) in vectors() {
        let channel = channel_of(&vector);
        let now = DateTime::<Utc>::from_timestamp_millis(vector.now_ms).unwrap();
        let body = vector.body.as_bytes();
        let from_pairs = channel.receive_at(vector.headers.clone(), body, now);
        let from_map = channel.receive_at(&header_map(&vector.headers), body, now);
        for (source, result) in [("pairs", from_pairs), ("HeaderMap", from_map)] {
            if let Some(problem) = check(&vector, result) {
                failures.push(format!(
                    "{} ({source}; {}): {problem}",
                    path.display(),
                    vector.description
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn vectors_cover_every_error_and_every_state() {
    let vectors = vectors();
    let reasons: BTreeSet<&str> = vectors
        .iter()
        .filter_map(|(_, v)| match &v.expect {
            Expect::Error { reason, .. } => Some(reason.as_str()),
            Expect::Notification(_) => None,
        })
        .collect();
    let all_reasons = [
        "missingHeader",
        "malformedHeader",
        "invalidMessageNumber",
        "unknownState",
        "channelIdMismatch",
        "tokenMismatch",
        "resourceIdMismatch",
        "channelExpired",
        "webhookIdMismatch",
        "missingSignatureHeader",
        "malformedSignatureHeader",
        "signatureTimestampTooOld",
        "signatureTimestampInFuture",
        "signatureMismatch",
    ];
    assert_eq!(
        reasons,
        all_reasons.into_iter().collect(),
        "error reasons without a vector, or unknown ones"
    );

    let states: BTreeSet<&str> = vectors
        .iter()
        .filter_map(|(_, v)| match &v.expect {
            Expect::Notification(n) => n["state"].as_str(),
            Expect::Error { .. } => None,
        })
        .collect();
    let every_state = "sync exists not_exists add remove update trash untrash change CREATE_USER";
    for state in every_state.split(' ') {
        assert!(states.contains(state), "no valid vector has state {state}");
    }
}

#[test]
fn gateway_vectors_carry_every_required_header_and_only_notification_headers() {
    let known: BTreeSet<&str> = h::NOTIFICATION_HEADERS.iter().copied().collect();
    let gateway: Vec<_> = vectors()
        .into_iter()
        .filter(|(_, v)| v.emitted_by_gateway)
        .collect();
    assert!(gateway.len() >= 10);
    for (path, vector) in gateway {
        assert!(
            matches!(vector.expect, Expect::Notification(_)),
            "{}: a gateway vector must be valid",
            path.display()
        );
        let names: BTreeSet<String> = vector
            .headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        assert_eq!(
            names.len(),
            vector.headers.len(),
            "{}: a header appears twice",
            path.display()
        );
        for name in &names {
            assert!(
                known.contains(name.as_str()),
                "{}: {name} is not a notification header",
                path.display()
            );
        }
        for &name in h::REQUIRED_HEADERS {
            assert!(
                names.contains(name),
                "{}: {name} is missing",
                path.display()
            );
        }
    }
}
