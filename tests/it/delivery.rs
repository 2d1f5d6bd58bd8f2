//! Delivery semantics (docs/api.md §4 notifications and acknowledgement, §5 guarantees),
//! against a real gateway and real receivers on loopback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use serde_json::json;
use watchwire::protocol::signature::SigningSecret;

const FIVE_HEADERS: [&str; 5] = [
    "x-goog-channel-id",
    "x-goog-message-number",
    "x-goog-resource-id",
    "x-goog-resource-state",
    "x-goog-resource-uri",
];

#[tokio::test]
async fn sync_then_events_carry_every_header_and_the_exact_body() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let channel = gw
        .watch_with(
            "/calendar/v3/calendars/primary/events",
            json!({"id": "chan-1", "type": "web_hook", "address": rx.url(), "token": "target=A"}),
        )
        .await;

    let sync = rx.next().await;
    for name in FIVE_HEADERS {
        assert!(sync.header(name).is_some(), "sync lacks {name}");
    }
    assert_eq!(sync.state(), "sync");
    assert_eq!(sync.number(), 1);
    assert_eq!(sync.header("x-goog-channel-id"), Some("chan-1"));
    assert_eq!(sync.header("x-goog-channel-token"), Some("target=A"));
    assert_eq!(
        sync.header("x-goog-resource-id"),
        channel["resourceId"].as_str()
    );
    assert_eq!(
        sync.header("x-goog-resource-uri"),
        channel["resourceUri"].as_str()
    );
    assert_eq!(
        sync.header("x-goog-resource-uri"),
        Some(format!("{}/calendars/primary/events", gw.url).as_str())
    );
    assert!(sync.header("x-watchwire-previous-number").is_none());
    assert!(sync.header("x-watchwire-cursor").is_some());
    assert!(sync.body.is_empty());
    assert!(sync.header("user-agent").unwrap().starts_with("watchwire/"));
    let expiration: i64 = channel["expiration"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        sync.header("x-goog-channel-expiration")
            .map(|s| watchwire::protocol::httpdate::parse(s).unwrap().timestamp()),
        Some(expiration / 1000)
    );

    // data goes out byte for byte as published, whitespace and key order included.
    let raw = r#"{"resource":"/calendars/primary/events/ev1","state":"exists","data":{"z": 1,  "a" : [true, null]},"changed":["content","properties"],"metadata":{"request_id":"12345","who":"Zoë"}}"#;
    let answer = gw.post_raw("/v1/events", raw).await.expect(200);
    let published: serde_json::Value = serde_json::from_str(&answer.text).unwrap();
    let exists = rx.next().await;
    for name in FIVE_HEADERS {
        assert!(exists.header(name).is_some(), "event lacks {name}");
    }
    assert_eq!(exists.state(), "exists");
    assert!(exists.number() > 1);
    assert_eq!(&exists.body[..], br#"{"z": 1,  "a" : [true, null]}"#);
    assert_eq!(
        exists.header("content-type"),
        Some("application/json; charset=\"utf-8\"")
    );
    assert_eq!(
        exists.header("content-length"),
        Some(exists.body.len().to_string().as_str())
    );
    assert_eq!(exists.header("x-goog-changed"), Some("content,properties"));
    assert_eq!(
        exists.header("x-watchwire-event-resource"),
        Some("/calendars/primary/events/ev1")
    );
    assert_eq!(
        exists.header("x-watchwire-cursor"),
        published["cursor"].as_str()
    );
    assert_eq!(exists.header("x-watchwire-previous-number"), Some("1"));
    assert_eq!(
        exists.header("x-watchwire-metadata"),
        Some(r#"{"request_id":"12345","who":"Zo\u00eb"}"#)
    );
    assert!(
        sync.header("x-watchwire-cursor").unwrap() < exists.header("x-watchwire-cursor").unwrap()
    );

    gw.publish(json!({"resource": "/calendars/primary/events", "state": "not_exists"}))
        .await;
    let gone = rx.next().await;
    assert_eq!(gone.state(), "not_exists");
    assert!(gone.body.is_empty());
    assert!(
        gone.header("x-goog-changed").is_none() && gone.header("x-watchwire-metadata").is_none()
    );
    assert!(gone.number() > exists.number());
    assert_eq!(
        gone.header("x-watchwire-previous-number"),
        Some(exists.number().to_string().as_str())
    );
}

#[tokio::test]
async fn drive_and_admin_states_and_payload_false() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch_with(
        "/drive/v3/files/abc",
        json!({"id": "d", "type": "web_hook", "address": rx.url(), "payload": false}),
    )
    .await;
    assert_eq!(rx.next().await.state(), "sync");
    let states = [
        "add",
        "remove",
        "update",
        "trash",
        "untrash",
        "change",
        "CREATE_USER",
    ];
    let batch: Vec<_> = states
        .iter()
        .map(|s| json!({"resource": "/files/abc", "state": s, "data": {"s": s}}))
        .collect();
    gw.publish(json!(batch)).await;
    for state in states {
        let got = rx.next().await;
        assert_eq!(got.state(), state);
        assert!(got.body.is_empty(), "payload:false must send no body");
        assert!(got.header("content-type").is_none());
    }
}

/// Every notification carries a `Content-Length`, `0` when it has no body, and is
/// never chunked: seen on the wire, where an HTTP server library would hide it.
#[tokio::test]
async fn every_notification_has_a_content_length_even_without_a_body() {
    let gw = Gateway::start().await;
    let rx = raw::RawReceiver::start(raw::RawAnswer::Status(204)).await;
    gw.watch("/cl", "framed", &rx.url()).await;
    gw.watch_with(
        "/cl",
        json!({"id": "bodiless", "type": "web_hook", "address": rx.url(), "payload": false}),
    )
    .await;
    let mut requests = vec![rx.next().await, rx.next().await];
    gw.publish(json!([
        {"resource": "/cl", "state": "exists"},
        {"resource": "/cl", "state": "exists", "data": {"n": 1}}
    ]))
    .await;
    for _ in 0..4 {
        requests.push(rx.next().await);
    }
    let mut seen = std::collections::BTreeSet::new();
    for request in &requests {
        assert!(
            request.head.starts_with("POST /hook HTTP/1.1\r\n"),
            "{}",
            request.head
        );
        assert_eq!(
            request.headers("content-length"),
            [request.body.len().to_string()],
            "exactly one Content-Length, the body's length:\n{}",
            request.head
        );
        assert!(
            request.headers("transfer-encoding").is_empty(),
            "{}",
            request.head
        );
        let channel = request.header("x-goog-channel-id").unwrap().to_string();
        let number = request.header("x-goog-message-number").unwrap().to_string();
        seen.insert((channel, number, request.body.clone()));
    }
    assert_eq!(
        seen.len(),
        6,
        "two syncs and two events on each channel: {seen:?}"
    );
    let bodies: Vec<&[u8]> = seen
        .iter()
        .map(|(_, _, body)| body.as_slice())
        .filter(|body| !body.is_empty())
        .collect();
    assert_eq!(
        bodies,
        [br#"{"n":1}"#.as_slice()],
        "only the event with data on the channel with payloads has a body: {seen:?}"
    );
}

#[tokio::test]
async fn a_channel_covers_its_subtree_but_not_string_prefix_siblings() {
    let gw = Gateway::start().await;
    let photos = Receiver::start().await;
    let photo = Receiver::start().await;
    gw.watch("/b/photos", "photos", &photos.url()).await;
    gw.watch("/b/photo", "photo", &photo.url()).await;
    photos.next().await;
    photo.next().await;

    gw.publish(json!([
        {"resource": "/b/photos/o/cat.jpg", "state": "exists"},
        {"resource": "/b/photos", "state": "exists"},
        {"resource": "/b/photosX/o/dog.jpg", "state": "exists"},
        {"resource": "/b/photo/o/a%40b", "state": "exists"},
        {"resource": "/b", "state": "exists"},
    ]))
    .await;
    let got: Vec<_> = photos
        .take(2)
        .await
        .iter()
        .map(|r| r.header("x-watchwire-event-resource").unwrap().to_string())
        .collect();
    assert_eq!(got, ["/b/photos/o/cat.jpg", "/b/photos"]);
    assert_eq!(
        photo.next().await.header("x-watchwire-event-resource"),
        Some("/b/photo/o/a@b")
    );
    // Proof of absence: one more event each, which must be the next thing to arrive.
    gw.publish(json!([{"resource": "/b/photos/x", "state": "exists"}, {"resource": "/b/photo/x", "state": "exists"}])).await;
    assert_eq!(
        photos.next().await.header("x-watchwire-event-resource"),
        Some("/b/photos/x")
    );
    assert_eq!(
        photo.next().await.header("x-watchwire-event-resource"),
        Some("/b/photo/x")
    );
}

#[tokio::test]
async fn stop_silences_a_channel_even_with_a_retry_scheduled() {
    let gw = Gateway::start_with(|a| a.retry_schedule = vec![Duration::from_millis(30)]).await;
    let rx = Receiver::start().await;
    let control = Receiver::start().await;
    let channel = gw.watch("/r", "stopme", &rx.url()).await;
    gw.watch("/r", "control", &control.url()).await;
    rx.next().await;
    control.next().await;

    rx.respond(|_| (503, vec![]));
    gw.publish(json!({"resource": "/r", "state": "exists"}))
        .await;
    control.next().await;
    let first = rx.next().await;
    let second = rx.next().await;
    assert_eq!(
        first.number(),
        second.number(),
        "a retry repeats the message number"
    );

    assert_eq!(
        gw.stop("stopme", channel["resourceId"].as_str().unwrap())
            .await,
        204
    );
    let stopped_at = std::time::Instant::now();
    // Attempts that started before the 204 may still land; none may start after it.
    gw.publish(json!({"resource": "/r", "state": "exists"}))
        .await;
    control.next().await;
    let window = Duration::from_millis(300); // ten retry intervals
    while let Ok(got) = tokio::time::timeout(window, rx.next()).await {
        assert!(
            got.at < stopped_at + Duration::from_millis(5),
            "an attempt arrived after the stop"
        );
    }
    // The id is free again.
    gw.watch("/r", "stopme", &rx.url()).await;
}

#[tokio::test]
async fn stop_needs_the_right_resource_id_and_owner_data_stays_put() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let channel = gw.watch("/r1", "c", &rx.url()).await;
    let other = gw.watch("/r2", "other", &rx.url()).await;
    assert_ne!(channel["resourceId"], other["resourceId"]);
    gw.post(
        "/channels/stop",
        &json!({"id": "c", "resourceId": other["resourceId"]}),
    )
    .await
    .assert_error(404, "notFound");
    assert_eq!(
        gw.stop("c", channel["resourceId"].as_str().unwrap()).await,
        204
    );
    assert_eq!(
        gw.stop("c", channel["resourceId"].as_str().unwrap()).await,
        404
    );
}

#[tokio::test]
async fn retry_on_503_then_success_keeps_the_message_number() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/r", "c", &rx.url()).await;
    rx.next().await;
    rx.script(&[503, 500, 502, 504, 408]);
    gw.publish(json!({"resource": "/r", "state": "exists"}))
        .await;
    let attempts = rx.take(6).await;
    let number = attempts[0].number();
    assert!(attempts
        .iter()
        .all(|a| a.number() == number && a.state() == "exists"));
    gw.publish(json!({"resource": "/r", "state": "not_exists"}))
        .await;
    let next = rx.next().await;
    assert_eq!(next.state(), "not_exists");
    assert_eq!(
        next.header("x-watchwire-previous-number"),
        Some(number.to_string().as_str())
    );
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/r", "c", &rx.url()).await;
    rx.next().await;
    let first = Arc::new(AtomicBool::new(true));
    rx.respond(move |_| {
        if first.swap(false, Ordering::SeqCst) {
            (429, vec![("retry-after", "1".into())])
        } else {
            (204, vec![])
        }
    });
    gw.publish(json!({"resource": "/r", "state": "exists"}))
        .await;
    let a = rx.next().await;
    let b = rx.next().await;
    assert_eq!(a.number(), b.number());
    let waited = b.at - a.at;
    // The schedule says 20 ms; the receiver asked for 1 s.
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
}

#[tokio::test]
async fn permanent_failure_is_recorded_and_the_channel_moves_on() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/r", "c", &rx.url()).await;
    rx.next().await;
    rx.script(&[404]);
    gw.publish(
        json!([{"resource": "/r", "state": "exists"}, {"resource": "/r", "state": "not_exists"}]),
    )
    .await;
    let failed = rx.next().await;
    assert_eq!(failed.state(), "exists");
    let next = rx.next().await;
    assert_eq!(next.state(), "not_exists", "a 404 is not retried");
    assert_eq!(
        next.header("x-watchwire-previous-number"),
        Some(failed.number().to_string().as_str()),
        "the receiver can see the gap"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let elsewhere = Receiver::start().await;
    gw.watch("/r", "c", &rx.url()).await;
    rx.next().await;
    let target = elsewhere.url();
    rx.respond(move |_| (307, vec![("location", target.clone())]));
    gw.publish(
        json!([{"resource": "/r", "state": "exists"}, {"resource": "/r", "state": "not_exists"}]),
    )
    .await;
    assert_eq!(rx.next().await.state(), "exists");
    assert_eq!(
        rx.next().await.state(),
        "not_exists",
        "a redirect is a permanent failure, not retried"
    );
    elsewhere.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn order_is_kept_under_retries_while_other_channels_run_freely() {
    let gw = Gateway::start().await;
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    gw.watch("/shared", "slow", &slow.url()).await;
    gw.watch("/shared", "fast", &fast.url()).await;
    slow.next().await;
    fast.next().await;

    // The slow channel refuses everything until the fast one has had all five events.
    let open = slow.unavailable_until_up();
    for i in 0..5 {
        gw.publish(json!({"resource": "/shared", "state": "exists", "data": {"i": i}}))
            .await;
    }
    let fast_got: Vec<i64> = fast
        .take(5)
        .await
        .iter()
        .map(|r| r.body_json()["i"].as_i64().unwrap())
        .collect();
    assert_eq!(fast_got, [0, 1, 2, 3, 4]);
    open.store(true, Ordering::SeqCst);

    // The slow channel saw only event 0 (retried) until it succeeded, then 1..4 in order.
    let mut delivered = Vec::new();
    let mut last_number = 0;
    while delivered.len() < 5 {
        let got = slow.next().await;
        let i = got.body_json()["i"].as_i64().unwrap();
        assert!(got.number() >= last_number, "numbers never go back");
        last_number = got.number();
        if delivered.last() != Some(&i) {
            delivered.push(i);
        }
    }
    assert_eq!(delivered, [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn gone_410_stops_the_channel() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let control = Receiver::start().await;
    gw.watch("/r", "c", &rx.url()).await;
    gw.watch("/r", "control", &control.url()).await;
    rx.next().await;
    control.next().await;
    rx.script(&[410]);
    gw.publish(json!({"resource": "/r", "state": "exists"}))
        .await;
    assert_eq!(rx.next().await.state(), "exists");
    control.next().await;
    // The channel is gone: its id can be used again (and gets a fresh sync).
    let mut reused = false;
    for _ in 0..50 {
        let reply = gw
            .post(
                "/r/watch",
                &json!({"id": "c", "type": "web_hook", "address": rx.url()}),
            )
            .await;
        if reply.status == 200 {
            reused = true;
            break;
        }
        // The removal is committed right after the 410 reaches the gateway.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reused, "the channel was not removed after 410");
    assert_eq!(rx.next().await.state(), "sync");
}

#[tokio::test]
async fn retry_budget_ends_a_notification_and_the_channel_moves_on() {
    let gw = Gateway::start_with(|a| {
        a.retry_schedule = vec![Duration::from_millis(20)];
        a.retry_budget = Duration::from_millis(200);
    })
    .await;
    let rx = Receiver::start().await;
    gw.watch("/r", "c", &rx.url()).await;
    rx.next().await;
    let first = Arc::new(AtomicBool::new(true));
    rx.respond(move |r| {
        if r.state() == "exists" || !first.load(Ordering::SeqCst) {
            (503, vec![])
        } else {
            first.store(false, Ordering::SeqCst);
            (204, vec![])
        }
    });
    gw.publish(
        json!([{"resource": "/r", "state": "exists"}, {"resource": "/r", "state": "not_exists"}]),
    )
    .await;
    let mut attempts = 0;
    loop {
        let got = rx.next().await;
        if got.state() == "not_exists" {
            break;
        }
        attempts += 1;
    }
    assert!(attempts >= 3, "retried {attempts} times within the budget");
}

#[tokio::test]
async fn an_expired_channel_gets_nothing_and_is_removed() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let expiration = chrono::Utc::now().timestamp_millis() + 400;
    gw.watch_with(
        "/r",
        json!({"id": "short", "type": "web_hook", "address": rx.url(), "expiration": expiration}),
    )
    .await;
    assert_eq!(rx.next().await.state(), "sync");
    // Wait out the expiration (the behaviour under test is time itself).
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.publish(json!({"resource": "/r", "state": "exists"}))
        .await;
    rx.expect_silence(Duration::from_millis(300)).await;
    // Removed: the id is free again.
    gw.watch("/r", "short", &rx.url()).await;
}

#[tokio::test]
async fn signed_channels_carry_standard_webhooks_headers() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let answer = gw
        .watch_with("/r", json!({"id": "signed", "type": "web_hook", "address": rx.url(), "params": {"signingSecret": secret, "x": "y"}}))
        .await;
    assert!(
        !answer.to_string().contains(secret),
        "the secret must not be echoed: {answer}"
    );
    assert_eq!(answer["params"], json!({"x": "y"}));
    let key = SigningSecret::parse(secret).unwrap();
    rx.next().await;
    gw.publish(json!({"resource": "/r", "state": "exists", "data": {"v": 1}}))
        .await;
    let got = rx.next().await;
    let id = got.header("webhook-id").unwrap();
    assert_eq!(id, format!("signed-{}", got.number()));
    let ts: i64 = got.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    assert!(key.verify(id, ts, &got.body, got.header("webhook-signature").unwrap()));
}

#[tokio::test]
async fn a_slow_endpoint_does_not_delay_other_channels() {
    let gw = Gateway::start_with(|a| a.delivery_timeout = Duration::from_secs(5)).await;
    // A receiver that accepts connections and never answers.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_addr = black_hole.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = black_hole.accept().await {
            held.push(socket);
        }
    });
    let fast = Receiver::start().await;
    gw.watch("/r", "hole", &format!("http://{hole_addr}/"))
        .await;
    gw.watch("/r", "fast", &fast.url()).await;
    fast.next().await;
    let started = std::time::Instant::now();
    for i in 0..3 {
        gw.publish(json!({"resource": "/r", "state": "exists", "data": {"i": i}}))
            .await;
    }
    fast.take(3).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the fast channel waited for the stuck one"
    );
}

/// `/` names the whole namespace (docs/api.md §1): `POST /watch`, and Node's
/// `/calendar/v3/watch`, create a channel that gets every event, in log order, from
/// memory and from the store once it owes more than its queue holds; it is listed,
/// counted and stopped like any channel, and nothing is published on `/`.
#[tokio::test]
async fn post_watch_watches_the_whole_namespace() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let up = rx.unavailable_until_up();
    let all = gw.watch("", "all", &rx.url()).await;
    assert_eq!(all["resourceUri"], format!("{}/", gw.url));
    let node_form = gw
        .watch("/calendar/v3", "node-form", "http://127.0.0.1:9/")
        .await;
    assert_eq!(node_form["resourceId"], all["resourceId"]);
    let resource_id = node_form["resourceId"].as_str().unwrap();
    assert_eq!(gw.stop("node-form", resource_id).await, 204);
    assert_eq!(gw.get("/v1/channels/all").await.json["resource"], "/");

    // More than a channel's queue holds (1024), under resources of every shape.
    let resources = ["/a", "/b/c", "/calendars/primary/events/e1", "/x%2Fy"];
    for round in 0..11 {
        let batch: Vec<serde_json::Value> = (0..100)
            .map(|i| json!({"resource": resources[i % 4], "state": "exists", "data": {"n": round * 100 + i}}))
            .collect();
        gw.publish(json!(batch)).await;
    }
    // The sync and every event are owed, and listed as pending.
    gw.await_pending("all", 1101).await;
    let listed = gw
        .logged_resources("all", "?status=pending&maxResults=3")
        .await;
    assert_eq!(listed, ["sync", "/a", "/b/c"]);

    up.store(true, Ordering::SeqCst);
    let got = rx.first_receipts(1101).await;
    assert_eq!(got[0].0, 1, "the sync first");
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "in log order");
    for (i, (_, resource)) in got[1..].iter().enumerate() {
        assert_eq!(resource, resources[i % 4], "event {i}");
    }

    for root in ["/", "/calendar/v3"] {
        let event = json!({"resource": root, "state": "exists"});
        let reply = gw.post("/v1/events", &event).await;
        reply.assert_error(400, "invalid");
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(message.contains("whole namespace"), "{message}");
    }
    let resource_id = all["resourceId"].as_str().unwrap();
    assert_eq!(gw.stop("all", resource_id).await, 204);
    assert_eq!(gw.get("/v1/channels/all").await.json["state"], "stopped");
}
