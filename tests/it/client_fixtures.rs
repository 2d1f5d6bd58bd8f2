//! Replays the bodies real Google clients send (`fixtures/clients/`, format in its
//! README.md): every watch must succeed, open its channel with a sync, carry an event,
//! and be stopped by its client's `channels.stop` body.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::input::*;
use crate::common::*;
use serde_json::{json, Value};

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Fixture {
    client: String,
    path: String,
    body: Value,
    /// Watch fixtures: the canonical resource the path names.
    resource: Option<String>,
    /// Watch fixtures: the file name of the stop fixture for this channel.
    stop_with: Option<String>,
}

impl Fixture {
    fn is_stop(&self) -> bool {
        self.path
            .split('?')
            .next()
            .unwrap()
            .ends_with("/channels/stop")
    }
}

fn fixtures() -> BTreeMap<String, Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/clients");
    let mut found = BTreeMap::new();
    for entry in
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
    {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let fixture: Fixture =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                fixture.client.len() > 10,
                "{}: say which client sends this",
                path.display()
            );
            found.insert(
                path.file_name().unwrap().to_string_lossy().into_owned(),
                fixture,
            );
        }
    }
    found
}

/// Replaces `{{name}}` placeholders in every string of `value`; a string that is only a
/// placeholder becomes the replacement value itself.
fn fill(value: &Value, with: &BTreeMap<&str, Value>) -> Value {
    match value {
        Value::String(s) => {
            let whole = s
                .strip_prefix("{{")
                .and_then(|r| r.strip_suffix("}}"))
                .and_then(|name| with.get(name));
            if let Some(replacement) = whole {
                return replacement.clone();
            }
            let mut out = s.clone();
            for (name, replacement) in with {
                out = out.replace(
                    &format!("{{{{{name}}}}}"),
                    replacement.as_str().unwrap_or_default(),
                );
            }
            assert!(!out.contains("{{"), "unknown placeholder in {s:?}");
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, with)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), fill(v, with)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn fixture_set_is_complete_and_consistent() {
    let all = fixtures();
    let (stops, watches): (Vec<_>, Vec<_>) = all.iter().partition(|(_, f)| f.is_stop());
    assert!(
        watches.len() >= 6 && stops.len() >= 3,
        "expected the full set in fixtures/clients"
    );
    let mut used = BTreeSet::new();
    for (name, watch) in &watches {
        let stop = watch
            .stop_with
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: a watch needs stopWith"));
        assert!(
            all.get(stop).is_some_and(Fixture::is_stop),
            "{name}: stopWith {stop} is not a stop fixture"
        );
        assert!(
            watch.resource.is_some(),
            "{name}: a watch needs its canonical resource"
        );
        assert!(
            watch.body["address"] == "{{address}}",
            "{name}: the address must be the {{{{address}}}} placeholder"
        );
        used.insert(stop);
    }
    for (name, stop) in &stops {
        assert!(
            stop.resource.is_none() && stop.stop_with.is_none(),
            "{name}: a stop has no resource or stopWith"
        );
        assert!(
            used.contains(name.as_str()),
            "{name} is not used by any watch fixture"
        );
    }
}

#[tokio::test]
async fn every_client_body_watches_syncs_delivers_and_stops() {
    let all = fixtures();
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let mut resource_ids: BTreeMap<String, Value> = BTreeMap::new();
    for (name, watch) in all.iter().filter(|(_, f)| !f.is_stop()) {
        let address = BTreeMap::from([("address", json!(rx.url()))]);
        let body = fill(&watch.body, &address);
        let reply = gw.post(&watch.path, &body).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
        let channel = reply.json;
        let resource = watch.resource.as_deref().unwrap();
        assert_eq!(channel["id"], body["id"], "{name}");
        assert_eq!(
            channel["resourceUri"],
            format!("{}{resource}", gw.url),
            "{name}"
        );
        assert_eq!(
            channel.get("token"),
            body.get("token").filter(|t| !t.is_null()),
            "{name}: token echoed only when set"
        );
        assert!(channel["expiration"].is_string(), "{name}: {channel}");
        let same_resource = resource_ids
            .entry(resource.to_string())
            .or_insert_with(|| channel["resourceId"].clone());
        assert_eq!(
            channel["resourceId"], *same_resource,
            "{name}: every client names {resource} the same way"
        );

        let sync = rx.next().await;
        assert_eq!(sync.state(), "sync", "{name}");
        for (header, field) in [
            ("x-goog-channel-id", "id"),
            ("x-goog-resource-id", "resourceId"),
            ("x-goog-resource-uri", "resourceUri"),
        ] {
            assert_eq!(
                sync.header(header),
                channel[field].as_str(),
                "{name}: {header}"
            );
        }
        gw.publish(json!({"resource": resource, "state": "exists", "data": {"fixture": name}}))
            .await;
        let event = rx.next().await;
        assert_eq!(
            (event.header("x-goog-channel-id"), event.body_json()),
            (channel["id"].as_str(), json!({"fixture": name})),
            "{name}"
        );

        let stop = &all[watch.stop_with.as_deref().unwrap()];
        let mut values = address;
        values.extend([
            ("id", channel["id"].clone()),
            ("resourceId", channel["resourceId"].clone()),
            ("resourceUri", channel["resourceUri"].clone()),
        ]);
        let stop_body = fill(&stop.body, &values);
        let stopped = gw.post(&stop.path, &stop_body).await;
        assert_eq!(
            stopped.status, 204,
            "{name} stopped with {}: {}",
            stop.path, stopped.text
        );
        let again = gw.post(&stop.path, &stop_body).await;
        let gone = format!("{name}: the channel is gone after its stop");
        assert_reply(&gone, &again, Want::Err(404, "notFound"));
    }
    assert!(
        resource_ids.len() >= 5,
        "the fixtures cover several resources: {resource_ids:?}"
    );
}
