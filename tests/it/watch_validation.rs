//! docs/api.md §2 through `POST {resource}/watch`: every row of the validation table in its
//! accepted and rejected forms, the response shape, expiration arithmetic, and resource
//! path canonicalisation.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::input::*;
use crate::common::*;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};

const EVENTS: &str = "/calendars/primary/events";
/// A patch value that removes the field from the request.
const ABSENT: &str = "<absent>";
const HOUR_MS: i64 = 3_600_000;
const YEAR: Duration = Duration::from_secs(365 * 86_400);
/// 2030-01-01T00:00:00Z, what the Google client examples send.
const Y2030_MS: i64 = 1_893_456_000_000;

fn secret(bytes: usize) -> String {
    format!("whsec_{}", BASE64.encode(vec![7u8; bytes]))
}

/// A watch body: a fresh `id`, `type` and `address`, overlaid with `patch` (a value of
/// `ABSENT` removes the field).
fn channel_body(id: &str, address: &str, patch: &Value) -> Value {
    let mut body = json!({"id": id, "type": "web_hook", "address": address});
    for (name, value) in patch.as_object().expect("a patch is an object") {
        if value == ABSENT {
            body.as_object_mut().unwrap().remove(name);
        } else {
            body[name] = value.clone();
        }
    }
    body
}

/// Runs each `(what, patch, want)` as a watch on `resource` with `api` and reports
/// every case whose answer differs; returns the accepted channels' answers.
async fn check_watch_cases(api: &Api, address: &str, cases: &[(&str, Value, Want)]) -> Vec<Value> {
    let mut failures = Vec::new();
    let mut accepted = Vec::new();
    for (i, (what, patch, want)) in cases.iter().enumerate() {
        let body = channel_body(&format!("case-{i}"), address, patch);
        let reply = api.post(&format!("{EVENTS}/watch"), &body).await;
        failures.extend(mismatch(&format!("{what} ({body})"), &reply, *want));
        if reply.status == 200 {
            accepted.push(reply.json);
        }
    }
    assert_no_failures(failures);
    accepted
}

fn many(c: char, n: usize) -> String {
    c.to_string().repeat(n)
}

/// `url` with a query that makes it exactly `len` bytes long.
fn padded(url: &str, len: usize) -> String {
    let base = format!("{url}?pad=");
    format!("{base}{}", many('p', len - base.len()))
}

#[tokio::test]
async fn every_field_rule_in_accepted_and_rejected_forms() {
    let gw = Gateway::start_with(|a| a.max_channel_ttl = 10 * YEAR).await;
    let rx = Receiver::start().await;
    let (invalid, required) = (bad("invalid"), bad("required"));
    let past = now_ms() - 60_000;
    #[rustfmt::skip]
    let cases = [
        // id
        ("id of 64 characters", json!({"id": many('i', 64)}), Want::Ok),
        ("id of 1 character", json!({"id": "x"}), Want::Ok),
        ("id using the whole alphabet", json!({"id": "AZaz09-_+/="}), Want::Ok),
        ("id of 65 characters", json!({"id": many('i', 65)}), invalid),
        ("empty id", json!({"id": ""}), invalid),
        ("id with a space", json!({"id": "a b"}), invalid),
        ("id with a dot", json!({"id": "a.b"}), invalid),
        ("id with a non-ASCII letter", json!({"id": "é"}), invalid),
        ("id as a number", json!({"id": 5}), invalid),
        ("id as an array", json!({"id": ["a"]}), invalid),
        ("id null", json!({"id": null}), required),
        ("id absent", json!({"id": ABSENT}), required),
        // type
        ("type webhook", json!({"type": "webhook"}), Want::Ok),
        ("type WEB_HOOK", json!({"type": "WEB_HOOK"}), Want::Ok),
        ("type Web_Hook", json!({"type": "Web_Hook"}), Want::Ok),
        ("type WebHook", json!({"type": "WebHook"}), Want::Ok),
        ("type web-hook", json!({"type": "web-hook"}), invalid),
        ("type with a trailing space", json!({"type": "web_hook "}), invalid),
        ("type pubsub", json!({"type": "pubsub"}), invalid),
        ("empty type", json!({"type": ""}), invalid),
        ("type as a number", json!({"type": 1}), invalid),
        ("type absent", json!({"type": ABSENT}), required),
        // address
        ("relative address", json!({"address": "/hook"}), invalid),
        ("address without a scheme", json!({"address": "example.com/hook"}), invalid),
        ("empty address", json!({"address": ""}), invalid),
        ("address without a host", json!({"address": "https://"}), invalid),
        ("ftp address", json!({"address": "ftp://example.com/hook"}), bad("pushWebhookBadDomain")),
        ("address as a number", json!({"address": 443}), invalid),
        ("address absent", json!({"address": ABSENT}), required),
        ("address of 2048 bytes", json!({"address": padded(&rx.url(), 2048)}), Want::Ok),
        ("address of 2049 bytes", json!({"address": padded(&rx.url(), 2049)}), invalid),
        // A URL parser drops or escapes these, but the address is stored and echoed as
        // given: a NUL is more than PostgreSQL can store (it was a 503).
        ("address with a NUL", json!({"address": format!("{}/a\u{0}b", rx.url())}), invalid),
        ("address with a tab", json!({"address": format!("{}/a\tb", rx.url())}), invalid),
        ("address with a newline", json!({"address": format!("{}/a\nb", rx.url())}), invalid),
        ("address with DEL", json!({"address": format!("{}/a\u{7f}", rx.url())}), invalid),
        ("address with a space and a non-ASCII letter", json!({"address": format!("{}/a b/é", rx.url())}), Want::Ok),
        // token
        ("token null", json!({"token": null}), Want::Ok),
        ("token of 256 printable characters", json!({"token": many('t', 256)}), Want::Ok),
        ("token with spaces and symbols", json!({"token": "a b~!\"{}=&"}), Want::Ok),
        ("token of 257 characters", json!({"token": many('t', 257)}), invalid),
        ("token with a newline", json!({"token": "a\nb"}), invalid),
        ("token with a non-ASCII letter", json!({"token": "é"}), invalid),
        ("token with DEL", json!({"token": "a\u{7f}"}), invalid),
        ("token as a number", json!({"token": 5}), invalid),
        // HTTP drops blanks around a header value: a receiver could never match these.
        ("token with a leading space", json!({"token": " tok"}), invalid),
        ("token with a trailing space", json!({"token": "tok "}), invalid),
        // expiration
        ("expiration as a string", json!({"expiration": Y2030_MS.to_string()}), Want::Ok),
        ("expiration as an integer", json!({"expiration": Y2030_MS}), Want::Ok),
        ("expiration as a float", json!({"expiration": Y2030_MS as f64}), Want::Ok),
        ("expiration i64::MAX", json!({"expiration": i64::MAX.to_string()}), Want::Ok),
        ("expiration null", json!({"expiration": null}), Want::Ok),
        ("expiration a minute ago", json!({"expiration": past}), invalid),
        ("expiration a minute ago as a string", json!({"expiration": past.to_string()}), invalid),
        ("expiration zero", json!({"expiration": 0}), invalid),
        ("expiration negative", json!({"expiration": "-1"}), invalid),
        ("expiration over i64 as a string", json!({"expiration": "9223372036854775808"}), invalid),
        ("expiration over i64 as an integer", json!({"expiration": 9_223_372_036_854_775_808u64}), invalid),
        ("expiration over i64 as a float", json!({"expiration": 1e19}), invalid),
        ("expiration 1e300", json!({"expiration": 1e300}), invalid),
        ("expiration garbage", json!({"expiration": "soon"}), invalid),
        ("expiration empty string", json!({"expiration": ""}), invalid),
        ("expiration digits then garbage", json!({"expiration": "1893456000000ms"}), invalid),
        ("expiration true", json!({"expiration": true}), invalid),
        ("expiration object", json!({"expiration": {}}), invalid),
        // params
        ("params of strings", json!({"params": {"a": "b", "c": ""}}), Want::Ok),
        ("params empty", json!({"params": {}}), Want::Ok),
        ("params null", json!({"params": null}), Want::Ok),
        ("params a string", json!({"params": "ttl=60"}), invalid),
        ("params an array", json!({"params": [["ttl", "60"]]}), invalid),
        ("params with a number", json!({"params": {"a": 1}}), invalid),
        ("params with a null", json!({"params": {"a": null}}), invalid),
        ("params with an object", json!({"params": {"a": {"b": "c"}}}), invalid),
        ("params.ttl 60", json!({"params": {"ttl": "60"}}), Want::Ok),
        ("params.ttl 1", json!({"params": {"ttl": "1"}}), Want::Ok),
        ("params.ttl 0", json!({"params": {"ttl": "0"}}), invalid),
        ("params.ttl 000", json!({"params": {"ttl": "000"}}), invalid),
        ("params.ttl -1", json!({"params": {"ttl": "-1"}}), invalid),
        ("params.ttl 1.5", json!({"params": {"ttl": "1.5"}}), invalid),
        ("params.ttl abc", json!({"params": {"ttl": "abc"}}), invalid),
        ("params.ttl empty", json!({"params": {"ttl": ""}}), invalid),
        ("params.ttl with a space", json!({"params": {"ttl": " 60"}}), invalid),
        ("params.ttl as a number", json!({"params": {"ttl": 60}}), invalid),
        ("signingSecret of 24 bytes", json!({"params": {"signingSecret": secret(24)}}), Want::Ok),
        ("signingSecret of 64 bytes", json!({"params": {"signingSecret": secret(64)}}), Want::Ok),
        ("signingSecret of 23 bytes", json!({"params": {"signingSecret": secret(23)}}), invalid),
        ("signingSecret of 65 bytes", json!({"params": {"signingSecret": secret(65)}}), invalid),
        ("signingSecret without whsec_", json!({"params": {"signingSecret": BASE64.encode([7u8; 32])}}), invalid),
        ("signingSecret not base64", json!({"params": {"signingSecret": "whsec_!!!not-base64!!!"}}), invalid),
        ("signingSecret empty", json!({"params": {"signingSecret": "whsec_"}}), invalid),
        // payload
        ("payload false", json!({"payload": false}), Want::Ok),
        ("payload true", json!({"payload": true}), Want::Ok),
        ("payload null", json!({"payload": null}), Want::Ok),
        ("payload \"false\"", json!({"payload": "false"}), invalid),
        ("payload 0", json!({"payload": 0}), invalid),
        // ignored
        ("kind, resourceId, resourceUri", json!({"kind": "api#channel", "resourceId": "r", "resourceUri": "https://x/y"}), Want::Ok),
        ("ignored fields of other types", json!({"kind": 5, "resourceId": [], "resourceUri": {}}), Want::Ok),
        ("unknown fields", json!({"colour": "blue", "nested": {"a": [1, null]}}), Want::Ok),
    ];
    check_watch_cases(&gw, &rx.url(), &cases).await;
}

#[tokio::test]
async fn without_dev_only_public_https_addresses_are_accepted() {
    // Without an allow-list.
    let gw = Gateway::keyed(|a| a.allow_targets.clear()).await;
    let rx = Receiver::start().await;
    let auth = gw.key(keys::ROOT);
    let bad_domain = bad("pushWebhookBadDomain");
    #[rustfmt::skip]
    let cases = [
        ("public https name", json!({"address": "https://example.com/hook"}), Want::Ok),
        ("http", json!({"address": "http://example.com/hook"}), bad_domain),
        ("http to loopback", json!({"address": rx.url()}), bad_domain),
        ("loopback", json!({"address": "https://127.0.0.1/"}), bad_domain),
        ("private", json!({"address": "https://10.0.0.1/"}), bad_domain),
        ("private with a port", json!({"address": "https://192.168.1.1:8443/x"}), bad_domain),
        ("IPv6 loopback", json!({"address": "https://[::1]/"}), bad_domain),
        ("cloud metadata", json!({"address": "https://169.254.169.254/"}), bad_domain),
        ("IPv4-mapped loopback", json!({"address": "https://[::ffff:127.0.0.1]/"}), bad_domain),
        ("unspecified", json!({"address": "https://0.0.0.0/"}), bad_domain),
        ("shared address space", json!({"address": "https://100.64.0.1/"}), bad_domain),
        ("loopback as one decimal number", json!({"address": "https://2130706433/"}), bad_domain),
        ("loopback in hex shorthand", json!({"address": "https://0x7f.1/"}), bad_domain),
        ("IPv4-mapped metadata in hex", json!({"address": "https://[::ffff:a9fe:a9fe]/latest"}), bad_domain),
    ];
    let accepted = check_watch_cases(&auth, "unused", &cases).await;
    assert_eq!(accepted[0]["address"], "https://example.com/hook");
    // Nothing is published to it; stop it so the sync delivery is not retried either.
    let stop = json!({"id": accepted[0]["id"], "resourceId": accepted[0]["resourceId"]});
    assert_eq!(auth.post("/channels/stop", &stop).await.status, 204);
    // The key is what let these requests in.
    gw.post(
        &format!("{EVENTS}/watch"),
        &channel_body("anon", "https://example.com/", &json!({})),
    )
    .await
    .expect(401);
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn response_has_exactly_the_channel_fields() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    // With forged output fields, which are ignored.
    let sent = json!({
        "id": "full", "type": "WEB_HOOK", "address": rx.url(), "token": "tok 1",
        "params": {"tag": "x"}, "expiration": (now_ms() + HOUR_MS).to_string(),
        "kind": "storage#channel", "resourceId": "forged", "resourceUri": "https://evil.example/x",
    });
    let reply = gw.post(&format!("{EVENTS}/watch"), &sent).await.expect(200);
    let content_type = reply.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let full = reply.json;
    assert_eq!(
        keys(&full),
        BTreeSet::from([
            "kind",
            "id",
            "resourceId",
            "resourceUri",
            "token",
            "expiration",
            "type",
            "address",
            "params"
        ])
    );
    assert_eq!(full["kind"], "api#channel");
    assert_eq!(full["id"], "full");
    assert_eq!(full["token"], "tok 1");
    assert_eq!(full["type"], "WEB_HOOK", "type is echoed as sent");
    assert_eq!(full["address"], rx.url());
    assert_eq!(full["params"], json!({"tag": "x"}));
    assert_eq!(
        full["expiration"], sent["expiration"],
        "expiration is a string of ms"
    );
    assert_eq!(full["resourceUri"], format!("{}{EVENTS}", gw.url));

    let bare = gw.watch(EVENTS, "bare", &rx.url()).await;
    assert_eq!(
        keys(&bare),
        BTreeSet::from([
            "kind",
            "id",
            "resourceId",
            "resourceUri",
            "expiration",
            "type",
            "address"
        ]),
        "no token or params unless set: {bare}"
    );
    let expiration = bare["expiration"].as_str().expect("expiration is a string");
    assert!(
        !expiration.is_empty() && expiration.bytes().all(|b| b.is_ascii_digit()),
        "{expiration}"
    );

    let resource_id = full["resourceId"].as_str().unwrap();
    assert_ne!(
        resource_id, "forged",
        "resourceId is the gateway's, not the caller's"
    );
    assert_eq!(
        bare["resourceId"], resource_id,
        "one resource, one resourceId"
    );
    let other = gw
        .watch("/calendars/other/events", "other", &rx.url())
        .await;
    assert_ne!(
        other["resourceId"], resource_id,
        "another resource, another resourceId"
    );
    for part in ["calendars", "primary", "events"] {
        assert!(
            !resource_id.contains(part),
            "resourceId {resource_id} reveals the path"
        );
    }
}

#[tokio::test]
async fn signing_secret_is_never_echoed() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let signing_secret = secret(32);
    for (id, params) in [
        (
            "with-other",
            json!({"signingSecret": signing_secret, "tag": "x"}),
        ),
        ("alone", json!({"signingSecret": signing_secret})),
    ] {
        let reply = gw
            .post(
                &format!("{EVENTS}/watch"),
                &json!({"id": id, "type": "web_hook", "address": rx.url(), "params": params}),
            )
            .await
            .expect(200);
        let encoded = signing_secret.trim_start_matches("whsec_");
        assert!(
            !reply.text.contains(encoded),
            "the secret leaked: {}",
            reply.text
        );
        let mut expected = params.clone();
        expected.as_object_mut().unwrap().remove("signingSecret");
        assert_eq!(
            reply.json.get("params").cloned().unwrap_or(json!({})),
            expected,
            "other params are echoed"
        );
    }
}

#[tokio::test]
async fn expiration_in_every_client_shape_is_echoed_as_a_string() {
    let gw = Gateway::start_with(|a| a.max_channel_ttl = 10 * YEAR).await;
    let rx = Receiver::start().await;
    for (i, expiration) in [
        json!("1893456000000"),
        json!(Y2030_MS),
        json!(1893456000000.0),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = gw.watch_with(EVENTS, json!({"id": format!("e{i}"), "type": "web_hook", "address": rx.url(), "expiration": expiration})).await;
        assert_eq!(answer["expiration"], "1893456000000", "from {expiration}");
    }
}

#[tokio::test]
async fn effective_expiration_is_the_earliest_of_requested_ttl_and_maximum() {
    let gw = Gateway::start_with(|a| {
        a.default_channel_ttl = Duration::from_secs(3600);
        a.max_channel_ttl = Duration::from_secs(2 * 3600);
    })
    .await;
    let rx = Receiver::start().await;
    let requested = now_ms() + 10 * 60_000;
    let later = now_ms() + 30 * 60_000;
    // (what, extra fields, lifetime after now, or an exact expiration)
    #[rustfmt::skip]
    let cases: [(&str, Value, Result<i64, i64>); 8] = [
        ("nothing asked: the default", json!({}), Ok(HOUR_MS)),
        ("params.ttl", json!({"params": {"ttl": "60"}}), Ok(60_000)),
        ("requested before ttl", json!({"expiration": requested, "params": {"ttl": "1800"}}), Err(requested)),
        ("ttl before requested", json!({"expiration": later, "params": {"ttl": "60"}}), Ok(60_000)),
        ("requested beyond the maximum", json!({"expiration": now_ms() + 5 * HOUR_MS}), Ok(2 * HOUR_MS)),
        ("ttl beyond the maximum", json!({"params": {"ttl": "36000"}}), Ok(2 * HOUR_MS)),
        ("ttl beyond u64 seconds", json!({"params": {"ttl": "99999999999999999999"}}), Ok(2 * HOUR_MS)),
        ("requested exactly", json!({"expiration": requested.to_string()}), Err(requested)),
    ];
    let mut failures = Vec::new();
    for (i, (what, extra, want)) in cases.iter().enumerate() {
        let body = channel_body(&format!("x{i}"), &rx.url(), extra);
        let before = now_ms();
        let answer = gw.watch_with(EVENTS, body).await;
        let after = now_ms();
        let got: i64 = answer["expiration"]
            .as_str()
            .expect("a string")
            .parse()
            .expect("digits");
        let (low, high) = match *want {
            Ok(lifetime) => (before + lifetime, after + lifetime),
            Err(exact) => (exact, exact),
        };
        if !(low..=high).contains(&got) {
            failures.push(format!(
                "{what}: expiration {got} is not within [{low}, {high}] (now ≈ {before})"
            ));
        }
    }
    assert_no_failures(failures);
}

#[tokio::test]
async fn channel_ids_are_unique_among_an_owners_live_channels() {
    let gw = Gateway::start_with(|a| a.api_keys = vec!["k1".into(), "k2".into()]).await;
    let rx = Receiver::start().await;
    let watch = |key: &'static str, resource: &'static str| {
        let body = json!({"id": "dup", "type": "web_hook", "address": rx.url()});
        let api = gw.key(key);
        async move { api.post(&format!("{resource}/watch"), &body).await }
    };
    let first = watch("k1", "/a").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let duplicate = bad("channelIdNotUnique");
    assert_reply(
        "same id, same resource",
        &watch("k1", "/a").await,
        duplicate,
    );
    assert_reply(
        "same id, another resource",
        &watch("k1", "/b").await,
        duplicate,
    );
    assert_eq!(
        watch("k2", "/a").await.status,
        200,
        "another owner may use the same id"
    );

    let stop = json!({"id": "dup", "resourceId": first.json["resourceId"]});
    assert_eq!(gw.key("k1").post("/channels/stop", &stop).await.status, 204);
    let again = watch("k1", "/a").await;
    assert_eq!(
        again.status, 200,
        "a stopped channel's id is free again: {}",
        again.text
    );
}

#[tokio::test]
async fn query_parameters_are_ignored() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let plain = gw.watch(EVENTS, "plain", &rx.url()).await;
    let reply = gw
        .post(
            &format!("{EVENTS}/watch?alt=json&prettyPrint=false&fields=x&pageToken=1"),
            &channel_body("queried", &rx.url(), &json!({})),
        )
        .await
        .expect(200);
    assert_eq!(reply.json["resourceId"], plain["resourceId"]);
    assert_eq!(
        reply.json["resourceUri"], plain["resourceUri"],
        "no query in resourceUri"
    );
    assert_eq!(
        reply.json["id"], "queried",
        "fields=x does not filter the answer"
    );
}

#[tokio::test]
async fn resource_paths_are_canonical() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    // (watch path prefix, canonical resource)
    let same = [
        ("/calendar/v3/calendars/primary/events", EVENTS),
        (EVENTS, EVENTS),
        ("/storage/v1/b/x/o", "/b/x/o"),
        ("/b/x/o", "/b/x/o"),
        (
            "/calendars/abc%40group.calendar.google.com/events",
            "/calendars/abc@group.calendar.google.com/events",
        ),
        (
            "/calendars/abc@group.calendar.google.com/events",
            "/calendars/abc@group.calendar.google.com/events",
        ),
        ("/b/x%2fy/o", "/b/x%2Fy/o"),
        ("/b/x%2Fy/o", "/b/x%2Fy/o"),
        ("/b/%61%62c", "/b/abc"),
        ("/b/abc", "/b/abc"),
    ];
    let mut ids = std::collections::BTreeMap::new();
    for (i, (path, canonical)) in same.iter().enumerate() {
        let answer = gw.watch(path, &format!("p{i}"), &rx.url()).await;
        assert_eq!(
            answer["resourceUri"],
            format!("{}{canonical}", gw.url),
            "watching {path}"
        );
        let first = ids.entry(*canonical).or_insert_with(|| {
            answer["resourceId"]
                .as_str()
                .expect("a resourceId")
                .to_string()
        });
        assert_eq!(
            answer["resourceId"], *first,
            "{path} names the same resource as {canonical}"
        );
    }
    assert_ne!(
        ids["/b/x%2Fy/o"], ids["/b/x/o"],
        "an encoded slash stays inside its segment"
    );
    assert_eq!(
        ids.values().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "different resources, different ids"
    );

    let longest = format!("/{}", "a".repeat(1023));
    let encoded = format!("/{}", "%61".repeat(1000));
    for path in [&longest, &encoded] {
        let reply = gw
            .post(
                &format!("{path}/watch"),
                &channel_body(&format!("l{}", path.len()), &rx.url(), &json!({})),
            )
            .await;
        assert_eq!(
            reply.status, 200,
            "1024 bytes in canonical form are allowed: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn bad_resource_paths_are_rejected() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let too_long = format!("/{}/watch", "a".repeat(1024));
    // (`/watch`, `//watch` and `/calendar/v3/watch` watch the whole namespace.)
    let paths = [
        "/a//b/watch",
        "/a/../b/watch",
        "/a/./b/watch",
        "/a/%2E%2E/b/watch",
        "/a/%zz/watch",
        "/v1/watch/watch",
        "/v1/x/watch",
        "/healthz/watch",
        "/metrics/watch",
        "/storage/v1/v1/x/watch",
        &too_long,
    ];
    let mut failures = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let body = channel_body(&format!("bad{i}"), &rx.url(), &json!({}));
        // Raw HTTP: an URL library would resolve the dot segments before sending.
        let reply = raw_http(&gw, &raw_post(path, &body.to_string())).await;
        failures.extend(mismatch(path, &reply, bad("invalid")));
    }
    assert_no_failures(failures);
}

/// `/console` is the gateway's, like `/v1` (docs/api.md §1): watching, publishing,
/// streaming, polling or a watcher on it or below it is a `400` that says it is
/// reserved, `POST /console/watch` included; the console's files are still served.
#[tokio::test]
async fn the_console_path_is_reserved_like_v1() {
    let gw = Gateway::start().await;
    let body = |id: &str| json!({"id": id, "type": "web_hook", "address": "http://127.0.0.1:9/"});
    // A query parameter's refusal is `invalidParameter`, a body's or a path's `invalid`.
    let reserved = |reply: Reply, what: &str| {
        let reason = if what.contains('?') {
            "invalidParameter"
        } else {
            "invalid"
        };
        reply.assert_error(400, reason);
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("reserved") && message.contains("/console"),
            "{what}: {message}"
        );
    };
    for path in [
        "/console/watch",
        "/console/x/watch",
        "/storage/v1/console/watch",
    ] {
        reserved(gw.post(path, &body("c")).await, path);
    }
    for resource in ["/console", "/console/x"] {
        let event = json!({"resource": resource, "state": "exists"});
        reserved(gw.post("/v1/events", &event).await, resource);
        let watcher = json!({"pattern": resource, "endpoint": "http://127.0.0.1:9/"});
        reserved(gw.post("/v1/watchers", &watcher).await, resource);
        for read in [
            format!("/v1/watch?resource={resource}"),
            format!("/v1/changeset?resource={resource}&_expected=0"),
            format!("/v1/changes?prefix={resource}"),
        ] {
            reserved(gw.get(&read).await, &read);
        }
    }
    assert_eq!(gw.get("/console").await.status, 200);
    // Only the whole first segment is reserved.
    gw.watch("/consoles", "plural", "http://127.0.0.1:9/").await;
    gw.watch("/b/console", "below", "http://127.0.0.1:9/").await;
    gw.post("/console", &json!({}))
        .await
        .assert_error(405, "httpMethodNotAllowed");
}
