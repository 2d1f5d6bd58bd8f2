//! The OpenAPI document (`docs/openapi.json`, served at `GET /v1/openapi.json`): served
//! byte for byte and without a key, and in step with the router: every route is
//! documented with exactly the methods it takes, every documented gateway path is
//! routed, and every `$ref` resolves. A route added without documentation fails here.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::common::*;

const SERVED: &str = "/v1/openapi.json";

/// The committed document, read from the source tree (not the copy compiled in).
fn committed() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    std::fs::read_to_string(path).expect("docs/openapi.json")
}

fn document() -> Value {
    serde_json::from_str(&committed()).expect("docs/openapi.json is JSON")
}

/// The methods a path item documents, upper case.
fn documented_methods(item: &Value) -> BTreeSet<String> {
    const OPERATIONS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    item.as_object()
        .expect("a path item is an object")
        .keys()
        .filter(|k| OPERATIONS.contains(&k.as_str()))
        .map(|k| k.to_uppercase())
        .collect()
}

/// Paths the gateway itself answers (as opposed to Google's open-ended watch and stop
/// paths, which any resource path may take).
fn is_gateway_path(path: &str) -> bool {
    path.starts_with("/v1/")
        || path.starts_with("/console")
        || path == "/healthz"
        || path == "/metrics"
}

#[tokio::test]
async fn the_served_document_is_the_committed_file() {
    let gw = Gateway::start().await;
    let reply = gw.get(SERVED).await.expect(200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(
        reply.text == committed(),
        "GET {SERVED} differs from docs/openapi.json: rebuild after editing it"
    );
    assert_eq!(reply.json["openapi"], "3.1.0");
    assert!(reply.json["info"]["title"].is_string(), "{}", reply.json);
    // Strict like every /v1 endpoint (docs/api.md §14).
    gw.get(&format!("{SERVED}?format=yaml"))
        .await
        .assert_error(400, "invalidParameter");
}

#[tokio::test]
async fn a_keyed_gateway_serves_it_without_a_key_and_nothing_else() {
    let gw = Gateway::keyed(|_| {}).await;
    let reply = gw.get(SERVED).await.expect(200);
    assert_eq!(reply.text, committed());
    // The exemption is this one path and nothing beside it.
    gw.get("/v1/openapi.json/")
        .await
        .assert_error(401, "required");
    gw.get("/v1/channels").await.assert_error(401, "required");
    gw.post_raw(SERVED, "")
        .await
        .assert_error(405, "httpMethodNotAllowed");
}

#[tokio::test]
async fn every_route_is_documented_with_exactly_its_methods() {
    let doc = document();
    let paths = doc["paths"].as_object().expect("paths");
    let gw = Gateway::start().await;
    let unknown = Method::from_bytes(b"FOO").unwrap();
    for template in watchwire::api::route_templates() {
        let item = paths
            .get(template)
            .unwrap_or_else(|| panic!("{template} is routed but not in docs/openapi.json"));
        // The router's own word on the methods: the Allow header of a 405.
        let path = template.replace("{id}", "x");
        let reply = gw.send(unknown.clone(), &path, "").await;
        reply.assert_error(405, "httpMethodNotAllowed");
        let allowed: BTreeSet<String> = reply
            .header("allow")
            .unwrap_or_else(|| panic!("{template}: a 405 without Allow"))
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| m != "HEAD")
            .collect();
        assert_eq!(
            documented_methods(item),
            allowed,
            "{template}: documented methods differ from the router's"
        );
    }
    let routed: BTreeSet<&str> = watchwire::api::route_templates().into_iter().collect();
    for path in paths.keys().filter(|p| is_gateway_path(p)) {
        assert!(
            routed.contains(path.as_str()),
            "{path} is documented but no route serves it"
        );
    }
    // Google's open-ended paths: every other documented path ends in /watch or
    // /channels/stop and takes POST alone, as `google_style` answers.
    for (path, item) in paths.iter().filter(|(p, _)| !is_gateway_path(p)) {
        assert!(
            path.ends_with("/watch") || path.ends_with("/channels/stop"),
            "{path} is neither a gateway path nor a watch or stop path"
        );
        assert_eq!(documented_methods(item), BTreeSet::from(["POST".into()]));
    }
}

/// Every `"$ref"` in `value`, with where it was found.
fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(target)) => out.push((at.clone(), target)),
                    _ => refs(child, format!("{at}/{key}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_ref_resolves_and_every_error_is_the_envelope() {
    let doc = document();
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(found.len() > 100, "only {} $refs", found.len());
    for (at, target) in &found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: {target} points outside the document"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: {target} resolves to nothing"
        );
    }
    // Every 4xx and 5xx an operation documents is Google's envelope with that code.
    let mut errors = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let name = response["$ref"].as_str().unwrap_or_else(|| {
                    panic!("{method} {path} {status}: not a shared error response")
                });
                let response = doc.pointer(&name[1..]).unwrap();
                let content = response["content"].as_object().unwrap();
                let schema = &content["application/json; charset=UTF-8"]["schema"];
                assert_eq!(
                    schema["$ref"],
                    format!("#/components/schemas/Error{status}"),
                    "{method} {path} {status}"
                );
                errors += 1;
            }
        }
    }
    assert!(errors > 100, "only {errors} error responses");
}
