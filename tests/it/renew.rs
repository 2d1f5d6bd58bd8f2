//! Renewal (docs/api.md §8.6): `POST /v1/channels/{id}/renew` moves a live channel's
//! expiration and keeps everything else. The new expiration is what `GET` shows and
//! what the next notification's `X-Goog-Channel-Expiration` carries, the expiry sweep
//! goes by it, and in a cluster the node delivering the channel has it whichever node
//! was asked.

use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::common::keys::{OTHER_ROOT, PHOTOS_PUBLISHER, PHOTOS_SUBSCRIBER, ROOT};
use crate::common::process::GatewayProcess;
use crate::common::*;

const HOUR_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn renew_path(id: &str) -> String {
    format!("/v1/channels/{id}/renew")
}

/// A channel's `expiration`, in ms.
fn expiration_of(channel: &Value) -> i64 {
    channel["expiration"]
        .as_str()
        .unwrap_or_else(|| panic!("no expiration: {channel}"))
        .parse()
        .unwrap()
}

/// A notification's `X-Goog-Channel-Expiration`, in whole seconds (it is an
/// IMF-fixdate).
fn expiration_header_secs(got: &Received) -> i64 {
    let header = got
        .header("x-goog-channel-expiration")
        .expect("X-Goog-Channel-Expiration");
    watchwire::protocol::httpdate::parse(header)
        .unwrap_or_else(|| panic!("not an IMF-fixdate: {header}"))
        .timestamp()
}

/// The channel as `GET` shows it, without its delivery state (which moves on its own).
fn without_delivery(mut channel: Value) -> Value {
    channel.as_object_mut().unwrap().remove("delivery");
    channel
}

/// Waits until `GET /v1/channels` (live channels only) no longer lists `id`.
async fn until_unlisted(api: &Api, id: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let listed = api.get("/v1/channels").await.expect(200).json;
        let items = listed["items"].as_array().unwrap();
        if !items.iter().any(|c| c["id"] == id) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} is still listed: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `GET /v1/channels/{id}` says the channel expired (it does from the
/// moment its expiration passes, on the gateway's clock).
async fn until_expired(api: &Api, id: &str) {
    api.await_channel(id, "expired", |shown| shown["state"] == "expired")
        .await;
}

/// What a renewal asks for, and so what the channel's new expiration must be.
enum Asked {
    /// This expiration.
    At(i64),
    /// This long from when it was asked.
    For(i64),
}

/// Every body form renewal takes moves the expiration; the answer is the channel as
/// `GET` shows it, with the same id, resourceId and token; and the next notification
/// carries the new expiration with its message number after the last one.
#[tokio::test]
async fn each_body_form_moves_the_expiration_and_the_next_notification_carries_it() {
    let gw = Gateway::start_with(|a| a.default_channel_ttl = Duration::from_secs(3600)).await;
    let rx = Receiver::start().await;
    let created = gw
        .watch_with(
            "/renew/forms",
            json!({"id": "kept", "type": "web_hook", "address": rx.url(), "token": "tok",
                   "params": {"ttl": "60"}}),
        )
        .await;
    let sync = rx.next().await;
    assert_eq!(
        expiration_header_secs(&sync),
        expiration_of(&created) / 1000
    );
    let mut previous = sync.number();
    let mut last = expiration_of(&created);

    let at = now_ms() + 2 * HOUR_MS;
    // In an order where each differs from the one before it by whole seconds at least.
    let forms = [
        ("no body", String::new(), Asked::For(HOUR_MS)),
        (
            "expiration as a string",
            format!(r#"{{"expiration": "{at}"}}"#),
            Asked::At(at),
        ),
        ("an empty object", "{}".to_string(), Asked::For(HOUR_MS)),
        (
            "expiration as an integer",
            format!(r#"{{"expiration": {}}}"#, at + 1000),
            Asked::At(at + 1000),
        ),
        (
            "expiration as a float",
            format!(r#"{{"expiration": {}.0}}"#, at + 2000),
            Asked::At(at + 2000),
        ),
        ("ttl", r#"{"ttl": "600"}"#.to_string(), Asked::For(600_000)),
    ];
    for (form, body, asked) in forms {
        let before = now_ms();
        let answer = gw
            .post_raw(&renew_path("kept"), body)
            .await
            .expect(200)
            .json;
        let after = now_ms();
        let expiration = expiration_of(&answer);
        match asked {
            Asked::At(ms) => assert_eq!(expiration, ms, "{form}"),
            Asked::For(d) => assert!(
                (before + d..=after + d).contains(&expiration),
                "{form}: {expiration} is not {d} ms from {before}..{after}"
            ),
        }
        assert_ne!(
            expiration / 1000,
            last / 1000,
            "{form}: the test needs a change"
        );
        last = expiration;
        for field in ["id", "resourceId", "resourceUri", "token", "address"] {
            assert_eq!(answer[field], created[field], "{form}: {field}");
        }
        assert_eq!(answer["state"], "active", "{form}: {answer}");
        assert!(answer["delivery"].is_object(), "{form}: {answer}");
        let shown = gw.get("/v1/channels/kept").await.expect(200).json;
        assert_eq!(
            without_delivery(shown),
            without_delivery(answer),
            "{form}: the answer is the channel as GET shows it"
        );

        gw.publish(json!({"resource": "/renew/forms/x", "state": "exists"}))
            .await;
        let got = rx.next().await;
        assert_eq!(
            expiration_header_secs(&got),
            expiration / 1000,
            "{form}: the next notification carries the new expiration"
        );
        assert_eq!(got.header("x-goog-channel-id"), Some("kept"));
        assert_eq!(
            got.header("x-goog-resource-id"),
            created["resourceId"].as_str()
        );
        assert_eq!(got.header("x-goog-channel-token"), Some("tok"));
        assert!(got.number() > previous, "{form}: numbering goes on");
        assert_eq!(
            got.header("x-watchwire-previous-number"),
            Some(previous.to_string().as_str()),
            "{form}: no gap"
        );
        previous = got.number();
    }
}

/// A renewal is bounded by the maximum lifetime from now, as a watch is: an expiration
/// or a lifetime beyond it gets the maximum (docs/api.md §2, §8.6).
#[tokio::test]
async fn a_renewal_is_capped_at_the_maximum_lifetime_from_now() {
    let gw = Gateway::start_with(|a| {
        a.default_channel_ttl = Duration::from_secs(600);
        a.max_channel_ttl = Duration::from_secs(3600);
    })
    .await;
    let rx = Receiver::start().await;
    gw.watch_with(
        "/renew/cap",
        json!({"id": "capped", "type": "web_hook", "address": rx.url(), "params": {"ttl": "60"}}),
    )
    .await;
    rx.next().await;
    for body in [
        format!(r#"{{"expiration": "{}"}}"#, now_ms() + 1000 * HOUR_MS),
        format!(r#"{{"expiration": {}}}"#, i64::MAX),
        r#"{"ttl": "99999999999999999999999"}"#.to_string(),
    ] {
        let before = now_ms();
        let answer = gw
            .post_raw(&renew_path("capped"), body.clone())
            .await
            .expect(200)
            .json;
        let after = now_ms();
        let expiration = expiration_of(&answer);
        assert!(
            (before + HOUR_MS..=after + HOUR_MS).contains(&expiration),
            "{body}: {expiration} is not the maximum from now"
        );
    }
}

/// A channel renewed before it expires is neither removed by the expiry sweep nor
/// refused by its delivery when its old expiration passes: a channel that expired at
/// that same time is swept, the renewed one is still delivered to.
#[tokio::test]
async fn a_channel_renewed_past_its_old_expiration_lives_on() {
    let gw = Gateway::start().await;
    let (rx, unrenewed) = (Receiver::start().await, Receiver::start().await);
    let old = now_ms() + 1500;
    for (id, address) in [("renewed", rx.url()), ("unrenewed", unrenewed.url())] {
        gw.watch_with(
            "/renew/sweep",
            json!({"id": id, "type": "web_hook", "address": address, "expiration": old}),
        )
        .await;
    }
    let sync = rx.next().await;
    unrenewed.next().await;
    let renewed = gw
        .post(&renew_path("renewed"), &json!({"ttl": "3600"}))
        .await
        .expect(200)
        .json;
    let expiration = expiration_of(&renewed);
    assert!(expiration > old + HOUR_MS - 60_000, "{renewed}");

    // The sweep (every 100 ms here) has run past the old expiration once the channel
    // that expired then is gone.
    until_unlisted(&gw, "unrenewed").await;
    assert!(now_ms() > old);
    let shown = gw.get("/v1/channels/renewed").await.expect(200).json;
    assert_eq!(shown["state"], "active", "{shown}");
    assert_eq!(expiration_of(&shown), expiration);
    let listed = gw.get("/v1/channels").await.json;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");

    gw.publish(json!({"resource": "/renew/sweep", "state": "exists"}))
        .await;
    let got = rx.next().await;
    assert_eq!(got.state(), "exists");
    assert_eq!(expiration_header_secs(&got), expiration / 1000);
    assert_eq!(
        got.header("x-watchwire-previous-number"),
        Some(sync.number().to_string().as_str())
    );
    unrenewed.expect_silence(Duration::from_millis(200)).await;
}

/// Bad bodies and queries are `400` in Google's envelope, naming the problem, and
/// change nothing; what is not a live channel is `404` (a watcher, which never
/// expires, is `400`); fields renewal does not read are ignored, as in every body.
#[tokio::test]
async fn bad_renewals_are_refused_and_change_nothing() {
    let gw = Gateway::start_with(|a| a.expiry_sweep = Duration::from_secs(3600)).await;
    let rx = Receiver::start().await;
    let created = gw.watch("/renew/bad", "c", &rx.url()).await;
    let later = now_ms() + HOUR_MS;
    #[rustfmt::skip]
    let cases = [
        ("an array", "[]".to_string(), "invalid", "JSON object"),
        ("a string", r#""soon""#.to_string(), "invalid", "JSON object"),
        ("not JSON", "{".to_string(), "parseError", "not valid JSON"),
        ("an expiration in the past", r#"{"expiration": "1"}"#.to_string(), "invalid", "in the past"),
        ("an expiration that is no time", r#"{"expiration": "tomorrow"}"#.to_string(), "invalid", "milliseconds"),
        ("an expiration beyond 64 bits", r#"{"expiration": 18446744073709551615}"#.to_string(), "invalid", "64-bit"),
        ("an expiration that is a boolean", r#"{"expiration": true}"#.to_string(), "invalid", "expiration"),
        ("both", format!(r#"{{"expiration": "{later}", "ttl": "60"}}"#), "invalid", "expiration and ttl"),
        ("a ttl of 0", r#"{"ttl": "0"}"#.to_string(), "invalid", "at least 1 second"),
        ("a ttl that is a number", r#"{"ttl": 60}"#.to_string(), "invalid", "string of whole seconds"),
        ("a ttl that is not whole", r#"{"ttl": "1.5"}"#.to_string(), "invalid", "whole number of seconds"),
        ("a negative ttl", r#"{"ttl": "-5"}"#.to_string(), "invalid", "whole number of seconds"),
    ];
    for (case, body, reason, says) in cases {
        let reply = gw.post_raw(&renew_path("c"), body).await;
        reply.assert_error(400, reason);
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{case}: {message}");
    }
    gw.post_raw(&format!("{}?ttl=60", renew_path("c")), "")
        .await
        .assert_error(400, "invalidParameter");
    let shown = gw.get("/v1/channels/c").await.expect(200).json;
    assert_eq!(
        shown["expiration"], created["expiration"],
        "nothing changed"
    );

    // Fields it does not read are ignored, as in every body; they change nothing else.
    let answer = gw
        .post(
            &renew_path("c"),
            &json!({"ttl": "120", "id": "other", "token": "new", "address": "http://x/"}),
        )
        .await
        .expect(200)
        .json;
    assert_eq!(
        (&answer["id"], &answer["address"]),
        (&created["id"], &created["address"])
    );
    assert!(answer.get("token").is_none(), "{answer}");

    // What is not a live channel.
    gw.post_raw(&renew_path("no-such"), "")
        .await
        .assert_error(404, "notFound");
    let watcher = gw
        .post(
            "/v1/watchers",
            &json!({"pattern": "/renew/w", "endpoint": rx.url()}),
        )
        .await
        .expect(201)
        .json;
    let reply = gw
        .post_raw(&renew_path(watcher["id"].as_str().unwrap()), "")
        .await;
    reply.assert_error(400, "invalid");
    assert!(reply.text.contains("never expire"), "{}", reply.text);
    assert_eq!(
        gw.stop("c", created["resourceId"].as_str().unwrap()).await,
        204
    );
    gw.post_raw(&renew_path("c"), "")
        .await
        .assert_error(404, "notFound");
    // Expired (the sweep, an hour away here, has not removed it): it is over.
    let soon = now_ms() + 300;
    gw.watch_with(
        "/renew/bad",
        json!({"id": "expiring", "type": "web_hook", "address": rx.url(), "expiration": soon}),
    )
    .await;
    until_expired(&gw, "expiring").await;
    gw.post_raw(&renew_path("expiring"), r#"{"ttl": "60"}"#)
        .await
        .assert_error(404, "notFound");
    let shown = gw.get("/v1/channels/expiring").await.expect(200).json;
    assert_eq!(shown["state"], "expired", "{shown}");
}

/// Another key's channel is `404` exactly like an unknown id; a key without the
/// `subscribe` scope is `403`; an admin key renews any owner's with `?owner=`.
#[tokio::test]
async fn another_keys_channel_is_not_found_and_an_admin_renews_any() {
    let gw = Gateway::keyed(|_| {}).await;
    let rx = Receiver::start().await;
    let (root, other) = (gw.key(ROOT), gw.key(OTHER_ROOT));
    let created = root.watch("/r", "mine", &rx.url()).await;

    let theirs = other
        .post_raw(&renew_path("mine"), r#"{"ttl": "60"}"#)
        .await;
    theirs.assert_error(404, "notFound");
    let unknown = other
        .post_raw(&renew_path("nine"), r#"{"ttl": "60"}"#)
        .await;
    assert_eq!(
        theirs.text,
        unknown.text.replace("nine", "mine"),
        "another key's channel reads as an unknown id"
    );
    gw.post_raw(&renew_path("mine"), "")
        .await
        .assert_error(401, "required");
    gw.key(PHOTOS_PUBLISHER)
        .post_raw(&renew_path("mine"), "")
        .await
        .assert_error(403, "forbidden");
    let shown = root.get("/v1/channels/mine").await.expect(200).json;
    assert_eq!(
        shown["expiration"], created["expiration"],
        "nothing changed"
    );

    let owner = shown["owner"].as_str().unwrap().to_string();
    gw.key(PHOTOS_SUBSCRIBER)
        .post_raw(&format!("{}?owner={owner}", renew_path("mine")), "")
        .await
        .assert_error(403, "forbidden");
    let before = now_ms();
    let answer = other
        .post_raw(
            &format!("{}?owner={owner}", renew_path("mine")),
            r#"{"ttl": "120"}"#,
        )
        .await
        .expect(200)
        .json;
    assert!(expiration_of(&answer) >= before + 120_000, "{answer}");
    assert_eq!(answer["owner"], owner.as_str());
    let own = root
        .post_raw(&renew_path("mine"), r#"{"ttl": "240"}"#)
        .await
        .expect(200)
        .json;
    assert!(expiration_of(&own) >= before + 240_000, "{own}");
}

/// In a cluster, a renewal through a node that does not deliver the channel reaches the
/// node that does: its next notification carries the new expiration, and it keeps
/// delivering past the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_through_another_node_reaches_the_node_delivering() {
    let Some(cluster) = Cluster::start(2, "renew") else {
        return;
    };
    let rx = Receiver::start().await;
    let old = now_ms() + 3000;
    let created = cluster
        .node(0)
        .watch_with(
            "/c/renew",
            json!({"id": "renewed", "type": "web_hook", "address": rx.url(), "expiration": old}),
        )
        .await;
    // A channel that expires at the old time, to tell when it has passed. Made through
    // the other node, so that each node delivers one and neither hands one over.
    cluster
        .node(1)
        .watch_with(
            "/c/renew-control",
            json!({"id": "control", "type": "web_hook", "address": "http://127.0.0.1:9/",
                   "expiration": old}),
        )
        .await;
    let sync = rx.next().await;
    assert_eq!(expiration_header_secs(&sync), old / 1000);
    let owner = cluster.owner(0, "renewed").await.unwrap();
    let (owner, other) = if owner == "n0" { (0, 1) } else { (1, 0) };

    let answer = cluster
        .node(other)
        .post_raw(&renew_path("renewed"), r#"{"ttl": "3600"}"#)
        .await
        .expect(200)
        .json;
    let expiration = expiration_of(&answer);
    assert!(expiration > old + HOUR_MS - 60_000, "{answer}");
    let shown = cluster
        .node(owner)
        .get("/v1/channels/renewed")
        .await
        .expect(200)
        .json;
    assert_eq!(expiration_of(&shown), expiration, "every node reads it");

    cluster
        .node(other)
        .publish(json!({"resource": "/c/renew", "state": "exists"}))
        .await;
    let got = rx.next().await;
    assert_eq!(expiration_header_secs(&got), expiration / 1000);
    assert_eq!(got.header("x-goog-channel-id"), Some("renewed"));
    assert_eq!(
        got.header("x-goog-resource-id"),
        created["resourceId"].as_str()
    );
    assert_eq!(
        got.header("x-watchwire-previous-number"),
        Some(sync.number().to_string().as_str())
    );
    assert_eq!(
        cluster.owner(other, "renewed").await.as_deref(),
        Some(format!("n{owner}").as_str()),
        "the node that delivers it did not change"
    );

    // Past the old expiration, the node delivering it starts attempts still.
    until_expired(cluster.node(owner), "control").await;
    cluster
        .node(owner)
        .publish(json!({"resource": "/c/renew", "state": "not_exists"}))
        .await;
    let later = rx.next().await;
    assert_eq!(later.state(), "not_exists");
    assert_eq!(expiration_header_secs(&later), expiration / 1000);
    assert!(later.number() > got.number());
}

/// An idle channel puts its spec away (to save memory) and reads it back when it wakes;
/// a renewal made meanwhile is what the next notification carries, with every other
/// header as before. A child process, so the counters are its own.
#[tokio::test]
async fn a_channel_renewed_while_its_spec_is_put_away_carries_the_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(dir.path(), &[]);
    let rx = Receiver::start().await;
    let created = gw
        .watch_with(
            "/renew/sleepy",
            json!({"id": "sleepy", "type": "web_hook", "address": rx.url(), "token": "tok",
                   "params": {"ttl": "600"}}),
        )
        .await;
    let sync = rx.next().await;
    let counter = |what: &'static str| {
        let gw = &gw;
        async move {
            let text = gw.get("/metrics").await.text;
            match what {
                "put away" => metric_sample(&text, "watchwire_channel_specs_put_away_total", &[]),
                _ => metric_sample(&text, "watchwire_channel_specs_read_total", &[what]),
            }
            .unwrap_or_else(|| panic!("no {what} counter in:\n{text}"))
        }
    };
    let until_put_away = |times: f64| async move {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while counter("put away").await < times {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the idle channel never put its spec away"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    until_put_away(1.0).await;
    assert_eq!(
        counter("what=\"specs\"").await,
        0.0,
        "nothing read back yet"
    );

    let renewed = gw
        .post_raw(&renew_path("sleepy"), r#"{"ttl": "3600"}"#)
        .await
        .expect(200)
        .json;
    assert_ne!(
        expiration_of(&renewed) / 1000,
        expiration_of(&created) / 1000
    );
    gw.publish(json!({"resource": "/renew/sleepy", "state": "exists"}))
        .await;
    let got = rx.next().await;
    assert_eq!(
        expiration_header_secs(&got),
        expiration_of(&renewed) / 1000,
        "the renewal, read back with the spec"
    );
    assert_eq!(got.header("x-goog-channel-id"), Some("sleepy"));
    assert_eq!(got.header("x-goog-channel-token"), Some("tok"));
    assert_eq!(
        got.header("x-goog-resource-id"),
        created["resourceId"].as_str()
    );
    assert_eq!(got.number(), sync.number() + 1);
    assert!(
        counter("what=\"specs\"").await >= 1.0,
        "its spec was read back"
    );
    assert!(counter("what=\"reads\"").await >= 1.0);

    // Put away again, and woken again without a renewal: the same channel.
    until_put_away(2.0).await;
    gw.publish(json!({"resource": "/renew/sleepy", "state": "exists"}))
        .await;
    let again = rx.next().await;
    assert_eq!(
        expiration_header_secs(&again),
        expiration_of(&renewed) / 1000
    );
    assert_eq!(again.header("x-goog-channel-token"), Some("tok"));
    assert_eq!(again.number(), got.number() + 1);
}
