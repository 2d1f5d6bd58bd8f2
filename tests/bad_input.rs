//! Malformed requests (docs/api.md §10 Errors): each one gets a 4xx in Google's envelope with
//! the right reason, never a 5xx, and the gateway keeps working afterwards.

mod common;
mod input_support;

use axum::http::Method;
use common::*;
use input_support::*;
use serde_json::json;

const WATCH: &str = "/calendars/primary/events/watch";
const STOP: &str = "/channels/stop";
const PUBLISH: &str = "/v1/events";
/// Every endpoint that reads a JSON body.
const JSON_ENDPOINTS: [&str; 3] = [WATCH, STOP, PUBLISH];

/// One request and what it must get.
struct Probe {
    what: String,
    method: Method,
    path: String,
    body: Vec<u8>,
    want: Want,
}

fn probe(
    what: impl Into<String>,
    method: Method,
    path: &str,
    body: impl Into<Vec<u8>>,
    want: Want,
) -> Probe {
    Probe {
        what: what.into(),
        method,
        path: path.to_string(),
        body: body.into(),
        want,
    }
}

/// Sends every probe; reports each answer that differs, and any 5xx above all.
async fn run_probes(gw: &Gateway, probes: Vec<Probe>) {
    let mut failures = Vec::new();
    for p in probes {
        let reply = send(gw, p.method.clone(), &p.path, &[], p.body).await;
        failures.extend(mismatch(
            &format!("{} {} ({})", p.method, p.path, p.what),
            &reply,
            p.want,
        ));
    }
    assert_no_failures(failures);
}

/// Malformed JSON in every shape a broken client or a fuzzer produces.
fn broken_json() -> Vec<(&'static str, Vec<u8>)> {
    let deep =
        |open: &str, close: &str, n| format!("{}1{}", open.repeat(n), close.repeat(n)).into_bytes();
    vec![
        ("truncated", br#"{"id": "a", "type": "web_h"#.to_vec()),
        ("trailing garbage", br#"{"id": "a"} x"#.to_vec()),
        ("two objects", b"{}{}".to_vec()),
        (
            "invalid UTF-8",
            b"{\"id\": \"\xff\xfe\", \"resource\": \"/a\xc3\"}".to_vec(),
        ),
        ("a lone surrogate escape", br#"{"id": "\ud800"}"#.to_vec()),
        ("single quotes", b"{'id': 'a'}".to_vec()),
        ("a comment", b"{/* note */}".to_vec()),
        ("NaN", br#"{"expiration": NaN}"#.to_vec()),
        ("10000 unclosed [", b"[".repeat(10_000)),
        ("10000 nested arrays", deep("[", "]", 10_000)),
        ("10000 nested objects", deep("{\"a\":", "}", 10_000)),
        ("a bare word", b"hello".to_vec()),
    ]
}

#[tokio::test]
async fn malformed_json_is_a_parse_error() {
    let gw = Gateway::start().await;
    let mut probes = Vec::new();
    for path in JSON_ENDPOINTS {
        for (what, body) in broken_json() {
            probes.push(probe(what, Method::POST, path, body, bad("parseError")));
        }
        for (what, body) in [("an empty body", ""), ("a blank body", " \r\n\t")] {
            probes.push(probe(what, Method::POST, path, body, bad("parseError")));
        }
    }
    run_probes(&gw, probes).await;
}

#[tokio::test]
async fn json_of_the_wrong_type_is_invalid() {
    let gw = Gateway::start().await;
    let mut probes = Vec::new();
    for path in JSON_ENDPOINTS {
        for body in [json!("text"), json!(5), json!(null), json!(true)] {
            probes.push(probe(
                format!("top-level {body}"),
                Method::POST,
                path,
                body.to_string(),
                bad("invalid"),
            ));
        }
    }
    for body in [
        json!([]),
        json!([{"id": "a", "type": "web_hook", "address": "http://127.0.0.1:9/"}]),
    ] {
        probes.push(probe(
            format!("an array {body}"),
            Method::POST,
            WATCH,
            body.to_string(),
            bad("invalid"),
        ));
        probes.push(probe(
            format!("an array {body}"),
            Method::POST,
            STOP,
            body.to_string(),
            bad("invalid"),
        ));
    }
    run_probes(&gw, probes).await;
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods() {
    let gw = Gateway::start().await;
    let not_found = Want::Err(404, "notFound");
    let not_allowed = Want::Err(405, "httpMethodNotAllowed");
    #[rustfmt::skip]
    let probes = vec![
        probe("root", Method::GET, "/", "", not_found),
        probe("unknown", Method::GET, "/nope", "", not_found),
        probe("unknown", Method::POST, "/nope", "{}", not_found),
        probe("under /v1", Method::GET, "/v1/nope", "", not_found),
        probe("below publish", Method::POST, "/v1/events/x", "{}", not_found),
        probe("watch with a trailing slash", Method::POST, "/calendars/primary/events/watch/", "{}", not_found),
        probe("stop with a suffix", Method::POST, "/channels/stopped", "{}", not_found),
        probe("publish", Method::GET, PUBLISH, "", not_allowed),
        probe("publish", Method::PUT, PUBLISH, "{}", not_allowed),
        probe("publish", Method::DELETE, PUBLISH, "", not_allowed),
        probe("watch", Method::GET, "/x/watch", "", not_allowed),
        probe("watch", Method::PUT, WATCH, "{}", not_allowed),
        probe("stop", Method::PUT, STOP, "{}", not_allowed),
        probe("stop", Method::GET, "/admin/reports_v1/channels/stop", "", not_allowed),
        probe("healthz", Method::DELETE, "/healthz", "", not_allowed),
        probe("healthz", Method::POST, "/healthz", "{}", not_allowed),
        probe("metrics", Method::POST, "/metrics", "{}", not_allowed),
    ];
    run_probes(&gw, probes).await;

    // A 405 says what is allowed (RFC 9110 §15.5.6).
    for (method, path, allowed) in [
        (Method::GET, PUBLISH, "POST"),
        (Method::GET, WATCH, "POST"),
        (Method::PUT, STOP, "POST"),
        (Method::DELETE, "/healthz", "GET"),
    ] {
        let reply = send(&gw, method.clone(), path, &[], "").await;
        let allow = reply
            .headers
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(
            allow.split(',').any(|m| m.trim() == allowed),
            "{method} {path}: Allow {allow:?} should list {allowed}"
        );
    }
}

/// `len` bytes that start like a valid request body (so only the size is wrong).
fn padded_body(len: usize) -> Vec<u8> {
    let mut body = br#"{"resource": "/big", "state": "exists"}"#.to_vec();
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn bodies_over_the_limit_are_too_large() {
    let too_large = Want::Err(413, "requestTooLarge");
    let gw = Gateway::start().await;
    let over = (1 << 20) + 1;
    let probes = JSON_ENDPOINTS.iter().flat_map(|path| {
        [
            probe(
                "1 MiB + 1 of JSON",
                Method::POST,
                path,
                padded_body(over),
                too_large,
            ),
            probe(
                "1 MiB + 1 of garbage",
                Method::POST,
                path,
                vec![b'['; over],
                too_large,
            ),
        ]
    });
    run_probes(&gw, probes.collect()).await;
    let at_limit = send(&gw, Method::POST, PUBLISH, &[], padded_body(1 << 20)).await;
    assert_eq!(
        at_limit.status, 200,
        "exactly 1 MiB is allowed: {}",
        at_limit.text
    );

    let small = Gateway::start_with(|a| a.max_body_bytes = 1000).await;
    let probes = JSON_ENDPOINTS.iter().map(|path| {
        probe(
            "1001 bytes",
            Method::POST,
            path,
            padded_body(1001),
            too_large,
        )
    });
    run_probes(&small, probes.collect()).await;
    let at_limit = send(&small, Method::POST, PUBLISH, &[], padded_body(1000)).await;
    assert_eq!(
        at_limit.status, 200,
        "exactly the limit is allowed: {}",
        at_limit.text
    );
    // Without a Content-Length the limit holds too.
    let chunk = String::from_utf8(padded_body(1500)).unwrap();
    let chunked = format!("POST {PUBLISH} HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len());
    let reply = raw_http(&small, chunked.as_bytes()).await;
    assert_reply(
        "a chunked body over the limit",
        &reply,
        Want::Err(413, "requestTooLarge"),
    );
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 bytes"),
        "the message states the limit: {}",
        reply.text
    );
}

#[tokio::test]
async fn a_body_that_cannot_be_read_is_a_client_error() {
    let gw = Gateway::start().await;
    for path in JSON_ENDPOINTS {
        let broken = format!("POST {path} HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n");
        let reply = raw_http(&gw, broken.as_bytes()).await;
        assert_reply(
            &format!("malformed chunks on {path}"),
            &reply,
            bad("invalid"),
        );
    }
}

#[tokio::test]
async fn stop_needs_both_fields_and_a_matching_channel() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let channel = gw
        .watch("/calendars/primary/events", "live", &rx.url())
        .await;
    let resource_id = channel["resourceId"].as_str().unwrap();
    let not_found = Want::Err(404, "notFound");
    #[rustfmt::skip]
    let cases = [
        ("no fields", json!({}), bad("required")),
        ("no id", json!({"resourceId": resource_id}), bad("required")),
        ("no resourceId", json!({"id": "live"}), bad("required")),
        ("null id", json!({"id": null, "resourceId": resource_id}), bad("required")),
        ("empty id", json!({"id": "", "resourceId": resource_id}), bad("invalid")),
        ("numeric id", json!({"id": 5, "resourceId": resource_id}), bad("invalid")),
        ("object resourceId", json!({"id": "live", "resourceId": {}}), bad("invalid")),
        ("unknown id", json!({"id": "ghost", "resourceId": resource_id}), not_found),
        ("wrong resourceId", json!({"id": "live", "resourceId": "not-the-resource-id"}), not_found),
        ("resourceId of another resource", json!({"id": "live", "resourceId": gw.watch("/other", "other", &rx.url()).await["resourceId"]}), not_found),
    ];
    run_probes(
        &gw,
        cases
            .into_iter()
            .map(|(what, body, want)| probe(what, Method::POST, STOP, body.to_string(), want))
            .collect(),
    )
    .await;
    assert_eq!(
        gw.stop("live", resource_id).await,
        204,
        "the failed stops left the channel alone"
    );
    let again = post_json(
        &gw,
        STOP,
        &[],
        &json!({"id": "live", "resourceId": resource_id}),
    )
    .await;
    assert_reply(
        "a stopped channel is gone",
        &again,
        Want::Err(404, "notFound"),
    );
}

#[tokio::test]
async fn stopping_another_owners_channel_is_not_found() {
    let gw = Gateway::start_with(|a| a.api_keys = vec!["mine".into(), "theirs".into()]).await;
    let rx = Receiver::start().await;
    let mine = [("authorization", "Bearer mine")];
    let created = post_json(
        &gw,
        WATCH,
        &mine,
        &json!({"id": "private", "type": "web_hook", "address": rx.url()}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let stop = json!({"id": "private", "resourceId": created.json["resourceId"]});
    let theirs = post_json(&gw, STOP, &[("authorization", "Bearer theirs")], &stop).await;
    assert_reply("another key's stop", &theirs, Want::Err(404, "notFound"));
    assert_eq!(
        post_json(&gw, STOP, &mine, &stop).await.status,
        204,
        "the owner's channel survived the other key's stop"
    );
}

#[tokio::test]
async fn the_gateway_keeps_working_after_a_barrage() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/survivor", "survivor", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");

    let mut probes = Vec::new();
    for path in JSON_ENDPOINTS {
        for (what, body) in broken_json() {
            probes.push(probe(what, Method::POST, path, body, bad("parseError")));
        }
        for (what, body) in [
            ("NUL bytes", vec![0u8; 4096]),
            ("binary", b"\x00\x01{\"".to_vec()),
        ] {
            probes.push(probe(what, Method::POST, path, body, bad("parseError")));
        }
        let too_large = Want::Err(413, "requestTooLarge");
        probes.push(probe(
            "over 1 MiB",
            Method::POST,
            path,
            padded_body((1 << 20) + 10),
            too_large,
        ));
        probes.push(probe(
            "wrong method",
            Method::DELETE,
            path,
            "",
            Want::Err(405, "httpMethodNotAllowed"),
        ));
    }
    run_probes(&gw, probes).await;

    let health = send(&gw, Method::GET, "/healthz", &[], "").await;
    assert_eq!(health.status, 200, "{}", health.text);
    gw.publish(json!({"resource": "/survivor/x", "state": "exists", "data": {"still": "here"}}))
        .await;
    let got = rx.next().await;
    assert_eq!(
        (got.state(), got.body_json()),
        ("exists", json!({"still": "here"}))
    );
}
