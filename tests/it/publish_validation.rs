//! docs/api.md §6 (and §4's states) through `POST /v1/events`: the shape of a publish, every
//! field rule, all-or-nothing batches proven against a real receiver, and
//! `Idempotency-Key`.

use crate::common::input::*;
use crate::common::*;
use serde_json::{json, Value};

const FEED: &str = "/feeds/main";

fn event(state: &str) -> Value {
    json!({"resource": FEED, "state": state})
}

/// `event("exists")` with `patch` laid over it.
fn event_with(patch: Value) -> Value {
    let mut body = event("exists");
    for (name, value) in patch.as_object().expect("a patch is an object") {
        body[name] = value.clone();
    }
    body
}

/// Publishes each body and reports every case whose answer differs.
async fn check_publish_cases(gw: &Gateway, cases: &[(String, Value, Want)]) {
    let mut failures = Vec::new();
    for (what, body, want) in cases {
        let reply = gw.post("/v1/events", body).await;
        failures.extend(mismatch(what, &reply, *want));
    }
    assert_no_failures(failures);
}

fn cases<const N: usize>(list: [(&str, Value, Want); N]) -> Vec<(String, Value, Want)> {
    list.into_iter()
        .map(|(what, body, want)| (what.to_string(), body, want))
        .collect()
}

/// A channel on `FEED` whose sync has arrived.
async fn synced_channel(gw: &Gateway, rx: &Receiver) -> Value {
    let channel = gw.watch(FEED, "feed", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");
    channel
}

#[tokio::test]
async fn answers_the_last_cursor_and_the_count() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    synced_channel(&gw, &rx).await;

    let one = gw.publish(event("exists")).await;
    assert_eq!(
        one.as_object().unwrap().len(),
        2,
        "only cursor and events: {one}"
    );
    assert_eq!(one["events"], 1);
    let batch = gw
        .publish(json!([event("add"), event("update"), event("remove")]))
        .await;
    assert_eq!(batch["events"], 3);
    let after = gw.publish(event("not_exists")).await;

    let cursors: Vec<&str> = [&one, &batch, &after]
        .iter()
        .map(|a| a["cursor"].as_str().expect("a string cursor"))
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors increase: {cursors:?}"
    );
    // The batch's cursor is its last event's.
    let delivered = rx.take(5).await;
    let states: Vec<&str> = delivered.iter().map(Received::state).collect();
    assert_eq!(states, ["exists", "add", "update", "remove", "not_exists"]);
    assert_eq!(delivered[0].header("x-watchwire-cursor"), Some(cursors[0]));
    assert_eq!(delivered[3].header("x-watchwire-cursor"), Some(cursors[1]));
    assert_eq!(delivered[4].header("x-watchwire-cursor"), Some(cursors[2]));
}

#[tokio::test]
async fn batches_hold_1_to_1000_events() {
    let gw = Gateway::start().await;
    let batch = |n: usize| Value::Array(vec![event("exists"); n]);
    let full = gw.publish(batch(1000)).await;
    assert_eq!(full["events"], 1000);
    #[rustfmt::skip]
    let list = cases([
        ("empty batch", json!([]), bad("invalid")),
        ("1001 events", batch(1001), bad("invalid")),
        ("a batch with a string", json!([event("exists"), "exists"]), bad("invalid")),
        ("a batch with null", json!([event("exists"), null]), bad("invalid")),
        ("a batch of batches", json!([[event("exists")]]), bad("invalid")),
    ]);
    check_publish_cases(&gw, &list).await;
}

#[tokio::test]
async fn every_publishable_state_and_no_other() {
    let gw = Gateway::start().await;
    let long_name = format!("A{}", "B".repeat(63));
    let too_long = format!("A{}", "B".repeat(64));
    #[rustfmt::skip]
    let accepted = ["exists", "not_exists", "add", "remove", "update", "trash", "untrash", "change", "CREATE_USER", "X", "A1_B2", &long_name];
    let rejected = [
        "sync",
        "created",
        "Exists",
        "EXISTS ",
        "_X",
        "1ABC",
        "create_user",
        "",
        &too_long,
    ];
    let as_case = |want: Want| move |s: &&str| (format!("state {s:?}"), event(s), want);
    let mut list: Vec<(String, Value, Want)> = accepted.iter().map(as_case(Want::Ok)).collect();
    list.extend(rejected.iter().map(as_case(bad("invalid"))));
    #[rustfmt::skip]
    let wrong_types = cases([
        ("state as a number", event_with(json!({"state": 1})), bad("invalid")),
        ("state null", event_with(json!({"state": null})), bad("required")),
        ("state absent", json!({"resource": FEED}), bad("required")),
    ]);
    list.extend(wrong_types);
    check_publish_cases(&gw, &list).await;
}

#[tokio::test]
async fn resource_changed_and_metadata_rules() {
    let gw = Gateway::start().await;
    #[rustfmt::skip]
    let list = cases([
        // resource
        ("resource absent", json!({"state": "exists"}), bad("required")),
        ("resource null", event_with(json!({"resource": null})), bad("required")),
        ("resource a number", event_with(json!({"resource": 5})), bad("invalid")),
        ("resource relative", event_with(json!({"resource": "feeds/main"})), bad("invalid")),
        ("resource with an empty segment", event_with(json!({"resource": "/a//b"})), bad("invalid")),
        ("resource with ..", event_with(json!({"resource": "/a/../b"})), bad("invalid")),
        ("resource reserved", event_with(json!({"resource": "/v1/events"})), bad("invalid")),
        ("resource only a service prefix", event_with(json!({"resource": "/drive/v3"})), bad("invalid")),
        ("resource over 1024 bytes", event_with(json!({"resource": format!("/{}", "a".repeat(1024))})), bad("invalid")),
        // changed
        ("changed tokens", event_with(json!({"changed": ["content", "a-b_C9", "x".repeat(64)]})), Want::Ok),
        ("changed empty", event_with(json!({"changed": []})), Want::Ok),
        ("changed null", event_with(json!({"changed": null})), Want::Ok),
        ("changed with a comma", event_with(json!({"changed": ["a,b"]})), bad("invalid")),
        ("changed of 65 characters", event_with(json!({"changed": ["x".repeat(65)]})), bad("invalid")),
        ("changed with an empty token", event_with(json!({"changed": [""]})), bad("invalid")),
        ("changed with a space", event_with(json!({"changed": ["a b"]})), bad("invalid")),
        ("changed with a number", event_with(json!({"changed": [1]})), bad("invalid")),
        ("changed a string", event_with(json!({"changed": "content"})), bad("invalid")),
        ("changed an object", event_with(json!({"changed": {"content": true}})), bad("invalid")),
        // metadata
        ("metadata an object", event_with(json!({"metadata": {"request_id": "12345", "n": [1, {"x": null}]}})), Want::Ok),
        ("metadata null", event_with(json!({"metadata": null})), Want::Ok),
        ("metadata a string", event_with(json!({"metadata": "request_id=1"})), bad("invalid")),
        ("metadata an array", event_with(json!({"metadata": [1]})), bad("invalid")),
        ("metadata a number", event_with(json!({"metadata": 1})), bad("invalid")),
        // data is any JSON
        ("data an object", event_with(json!({"data": {"a": [1, 2]}})), Want::Ok),
        ("data a string", event_with(json!({"data": "text"})), Want::Ok),
        ("data a number", event_with(json!({"data": 1.5})), Want::Ok),
    ]);
    check_publish_cases(&gw, &list).await;
}

#[tokio::test]
async fn header_bound_fields_are_limited_to_4_kib() {
    let gw = Gateway::start().await;
    // `{"k":""}` is 8 bytes; the value fills the rest.
    let metadata = |len: usize| json!({"k": "v".repeat(len - 8)});
    #[rustfmt::skip]
    let list = cases([
        ("changed of 4096 bytes joined", event_with(json!({"changed": changed_list(4096)})), Want::Ok),
        ("changed of 4097 bytes joined", event_with(json!({"changed": changed_list(4097)})), bad("invalid")),
        ("4096 bytes of metadata", event_with(json!({"metadata": metadata(4096)})), Want::Ok),
        ("4097 bytes of metadata", event_with(json!({"metadata": metadata(4097)})), bad("invalid")),
    ]);
    check_publish_cases(&gw, &list).await;
    // Whitespace in the request does not count.
    let spaced = format!("{{\"resource\": \"{FEED}\", \"state\": \"exists\", \"metadata\": {{ {:>200}\"k\" :   \"{}\" }} }}", "", "v".repeat(4088));
    gw.post_raw("/v1/events", spaced).await.expect(200);
}

/// `changed` tokens that join (with `,`) to exactly `len` bytes: 64-character tokens
/// and a shorter last one.
fn changed_list(len: usize) -> Vec<String> {
    let mut tokens = vec!["x".repeat(64); (len - 1) / 65];
    tokens.push("y".repeat(len - tokens.len() * 65));
    tokens
}

#[tokio::test]
async fn the_longest_changed_list_arrives_whole() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    synced_channel(&gw, &rx).await;
    let changed = changed_list(4096);
    gw.publish(event_with(json!({"changed": changed}))).await;
    let got = rx.next().await;
    assert_eq!(
        got.header("x-goog-changed"),
        Some(changed.join(",").as_str())
    );
}

#[tokio::test]
async fn published_resources_are_canonicalised() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let calendar = "/calendars/abc@group.calendar.google.com/events";
    gw.watch(calendar, "cal", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");
    for published in [
        "/calendar/v3/calendars/abc%40group.calendar.google.com/events/e1",
        "/calendars/abc%40group.calendar.google.com/events/e%31",
    ] {
        gw.publish(json!({"resource": published, "state": "exists"}))
            .await;
        let got = rx.next().await;
        assert_eq!(
            got.header("x-watchwire-event-resource"),
            Some(format!("{calendar}/e1").as_str()),
            "published as {published}"
        );
    }
}

#[tokio::test]
async fn one_bad_element_rejects_the_whole_batch() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    synced_channel(&gw, &rx).await;
    let good = |n: u32| json!({"resource": FEED, "state": "exists", "data": {"n": n}});
    let batches = [
        (
            "the last element",
            json!([good(1), good(2), event("sync")]),
            "events[2]",
        ),
        (
            "the first element",
            json!([{"resource": "relative", "state": "exists"}, good(3)]),
            "events[0]",
        ),
        (
            "the middle element",
            json!([good(4), event_with(json!({"changed": ["a,b"]})), good(5)]),
            "events[1]",
        ),
        (
            "a metadata too large",
            json!([
                good(6),
                event_with(json!({"metadata": {"k": "v".repeat(5000)}}))
            ]),
            "events[1]",
        ),
        (
            "a missing state",
            json!([good(7), {"resource": FEED}]),
            "events[1]",
        ),
    ];
    for (what, batch, element) in batches {
        let reply = gw.post("/v1/events", &batch).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        let message = reply.json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(element),
            "{what}: the message names {element}: {message}"
        );
    }
    // Nothing of those batches was published: the next notification is this one, and it
    // follows the sync directly.
    gw.publish(good(100)).await;
    let next = rx.next().await;
    assert_eq!(
        next.body_json(),
        json!({"n": 100}),
        "an event of a rejected batch was delivered"
    );
    assert_eq!(next.header("x-watchwire-previous-number"), Some("1"));
}

#[tokio::test]
async fn idempotency_key_repeats_the_first_answer() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    synced_channel(&gw, &rx).await;
    let publish = |key: String, body: Value| {
        let api = gw.header("idempotency-key", &key);
        async move { api.post("/v1/events", &body).await }
    };
    let first = publish("order-1".into(), json!([event("add"), event("update")])).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let repeat = publish("order-1".into(), json!([event("add"), event("update")])).await;
    assert_eq!(
        (repeat.status, &repeat.json),
        (200, &first.json),
        "a repeat answers as the first time"
    );
    let conflict = publish("order-1".into(), json!(event("remove"))).await;
    assert_reply(
        "the same key with another body",
        &conflict,
        Want::Err(409, "conflict"),
    );

    let longest = publish("k".repeat(255), json!(event("trash"))).await;
    assert_eq!(
        longest.status, 200,
        "255 characters are allowed: {}",
        longest.text
    );
    let mut failures = Vec::new();
    for (what, key) in [
        ("256 characters", "k".repeat(256)),
        ("empty", String::new()),
        ("a tab", "a\tb".into()),
        ("non-ASCII", "clé".into()),
    ] {
        let reply = publish(key, json!(event("untrash"))).await;
        failures.extend(mismatch(
            &format!("Idempotency-Key {what}"),
            &reply,
            bad("invalid"),
        ));
    }
    assert_no_failures(failures);

    // Delivered: the first publish and the 255-character one; nothing from the repeat,
    // the conflict or the rejected keys.
    let states: Vec<String> = rx
        .take(3)
        .await
        .iter()
        .map(|r| r.state().to_string())
        .collect();
    assert_eq!(states, ["add", "update", "trash"]);
    gw.publish(event("change")).await;
    assert_eq!(rx.next().await.state(), "change");
}

/// A message names the field once: `resource "a/b" must start with '/'`, not
/// `resource: resource "a/b" …`; in a batch, the element's field; for a watcher, the
/// pattern.
#[tokio::test]
async fn resource_messages_name_their_field_once() {
    let gw = Gateway::start().await;
    let message = |reply: Reply| reply.json["error"]["message"].as_str().unwrap().to_string();
    let reply = gw
        .post("/v1/events", &json!({"resource": "a/b", "state": "exists"}))
        .await
        .expect(400);
    assert_eq!(message(reply), r#"resource "a/b" must start with '/'"#);
    let batch =
        json!([{"resource": "/ok", "state": "exists"}, {"resource": "a/b", "state": "exists"}]);
    assert_eq!(
        message(gw.post("/v1/events", &batch).await),
        r#"events[1].resource "a/b" must start with '/'"#
    );
    let watcher = json!({"pattern": "a/b", "endpoint": "http://127.0.0.1:9/"});
    assert_eq!(
        message(gw.post("/v1/watchers", &watcher).await),
        r#"pattern "a/b" must start with '/'"#
    );
    assert_eq!(
        message(gw.get("/v1/changes?prefix=a/b").await),
        r#"prefix "a/b" must start with '/'"#
    );
}

/// docs/api.md §10.4: bodies nest up to 128 levels of arrays and objects. A publish
/// whose body is exactly that deep is stored and read back whole; one level more is a
/// `parseError` that names the limit. A watch body is held to the same limit.
#[tokio::test]
async fn bodies_nest_exactly_128_levels() {
    let gw = Gateway::start().await;
    // The event object is the first level; `data` holds the rest.
    let body = |levels: usize| {
        let data = format!("{}{}", "[".repeat(levels - 1), "]".repeat(levels - 1));
        format!(r#"{{"resource": "/deep/x", "state": "exists", "data": {data}}}"#)
    };
    let published = gw.post_raw("/v1/events", body(128)).await.expect(200).json;
    let reply = gw.post_raw("/v1/events", body(129)).await;
    reply.assert_error(400, "parseError");
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("128 levels"),
        "{}",
        reply.json
    );
    // The answer nests deeper than a default JSON parser reads: compare its text.
    let changes = gw
        .request(
            axum::http::Method::GET,
            "/v1/changeset?resource=/deep&_expected=0",
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = format!("{}{}", "[".repeat(127), "]".repeat(127));
    let cursor = published["cursor"].as_str().unwrap();
    assert!(
        changes.starts_with(&format!(r#"{{"changes":[{{"cursor":"{cursor}""#))
            && changes.contains(&format!(r#""data":{data},"#)),
        "{changes}"
    );

    let watch = |levels: usize| {
        let extra = format!("{}{}", "[".repeat(levels - 1), "]".repeat(levels - 1));
        format!(
            r#"{{"id": "deep-{levels}", "type": "web_hook", "address": "http://127.0.0.1:9/", "extra": {extra}}}"#
        )
    };
    gw.post_raw("/deep/watch", watch(128)).await.expect(200);
    gw.post_raw("/deep/watch", watch(129))
        .await
        .assert_error(400, "parseError");
}
