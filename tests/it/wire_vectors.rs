//! The sender side of the shared notification vectors (fixtures/notifications): every
//! vector marked `emittedByGateway` must be exactly what the gateway renders for that
//! channel and event, so the gateway and the receiver library cannot drift apart.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use watchwire::delivery::render::{ChannelHeaders, Notification};
use watchwire::delivery::webhook;
use watchwire::model::{parse_cursor, ChannelSpec, Event};

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_gateway_renders_every_vector_it_is_said_to_emit() {
    let mut checked = 0;
    for entry in std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/notifications"
    ))
    .unwrap()
    {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let vector: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if vector["emittedByGateway"] != true {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let headers: Vec<(String, String)> =
            serde_json::from_value(vector["headers"].clone()).unwrap();
        let get = |n: &str| header(&headers, n);
        let body = vector["body"].as_str().unwrap_or_default();
        let channel = &vector["channel"];
        let spec = ChannelSpec {
            kind: watchwire::model::ChannelKind::WatchChannel,
            owner: "o".into(),
            id: channel["id"].as_str().unwrap().into(),
            resource: get("x-watchwire-event-resource").unwrap().into(),
            resource_id: get("x-goog-resource-id").unwrap().into(),
            resource_uri: get("x-goog-resource-uri").unwrap().into(),
            address: "https://example.com/hook".into(),
            token: channel["token"].as_str().map(Into::into),
            expiration_ms: channel["expiration"].as_str().map(|s| s.parse().unwrap()),
            params: Default::default(),
            payload: true,
            signing_secret: channel["signingSecret"].as_str().map(Into::into),
            created_ms: 0,
            within: None,
            filter: None,
            auth: None,
        };
        let cursor = parse_cursor(get("x-watchwire-cursor").unwrap()).unwrap();
        let notification = match get("x-goog-resource-state").unwrap() {
            "sync" => Notification::sync(cursor),
            state => {
                let event = Event {
                    seq: cursor,
                    time_ms: 0,
                    resource: spec.resource.to_string(),
                    state: watchwire::protocol::ResourceState::parse(state)
                        .expect("a vector's state"),
                    data: (!body.is_empty()).then(|| Bytes::from(body.to_string())),
                    changed: get("x-goog-changed")
                        .map(|c| c.split(',').map(Into::into).collect())
                        .unwrap_or_default(),
                    metadata: get("x-watchwire-metadata").map(Into::into),
                    trace: None,
                };
                Notification::event(
                    Arc::new(event),
                    get("x-watchwire-previous-number").unwrap().parse().unwrap(),
                )
            }
        };
        let now =
            chrono::DateTime::from_timestamp_millis(vector["nowMs"].as_i64().unwrap()).unwrap();
        let rendered = notification.render(&ChannelHeaders::new(&spec), &spec, None, now);
        // As the request goes on the wire.
        let request = webhook::request(&spec.address.parse().unwrap(), rendered);
        let rendered_body = request.body().as_bytes().unwrap();
        let rendered = request.headers();

        let expected: BTreeMap<String, String> = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        assert_eq!(
            rendered.get("content-length").map(|v| v.to_str().unwrap()),
            Some(body.len().to_string().as_str()),
            "{name}: a Content-Length, 0 without a body"
        );
        // Framing, not part of the vectors.
        let got: BTreeMap<String, String> = rendered
            .iter()
            .filter(|(n, _)| !["content-type", "content-length"].contains(&n.as_str()))
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            got, expected,
            "{name}: rendered headers differ from the vector"
        );
        assert_eq!(rendered_body, body.as_bytes(), "{name}: body");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} gateway vectors found");
}
