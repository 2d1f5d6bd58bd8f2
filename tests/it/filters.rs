//! docs/api.md §15 filters: a channel, a watcher and a stream get only the events their
//! filter matches; numbers stay log positions and `X-Watchwire-Previous-Number` names
//! the previous notification actually sent; a bad filter is `400 invalidFilter` on
//! every path that takes one.

use crate::common::*;
use serde_json::{json, Value};

/// Publishes one order event per status, in order; their message numbers.
async fn publish_orders(gw: &Gateway, statuses: &[&str]) -> Vec<u64> {
    let mut numbers = Vec::new();
    for (i, status) in statuses.iter().enumerate() {
        let answer = gw
            .publish(json!({"resource": "/orders/1", "state": "exists",
                            "data": {"status": status, "i": i}}))
            .await;
        let cursor = answer["cursor"].as_str().unwrap();
        // Cursors and message numbers are both the log position (number = seq + 1).
        numbers.push(cursor_seq(cursor) + 1);
    }
    numbers
}

fn cursor_seq(cursor: &str) -> u64 {
    cursor
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or_else(|_| panic!("a cursor ending in its position: {cursor}"))
}

#[tokio::test]
async fn a_channel_gets_only_matching_events_with_the_previous_number_it_was_sent() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    // As Google's clients send it: every param a string.
    let watch = json!({"id": "paid-only", "type": "web_hook", "address": rx.url(),
                       "params": {"filter": "{\"data.status\": \"paid\"}"}});
    let channel = gw.watch_with("/orders", watch).await;
    assert_eq!(channel["params"]["filter"], "{\"data.status\": \"paid\"}");
    let sync = rx.next().await;
    assert_eq!(sync.state(), "sync");

    let numbers = publish_orders(&gw, &["open", "paid", "open", "open", "paid"]).await;
    let got = rx.take(2).await;
    assert_eq!(got[0].number(), numbers[1]);
    assert_eq!(got[0].body_json()["status"], "paid");
    assert_eq!(
        got[0].header("x-watchwire-previous-number"),
        Some("1"),
        "after the sync"
    );
    assert_eq!(got[1].number(), numbers[4]);
    assert_eq!(
        got[1].header("x-watchwire-previous-number"),
        Some(numbers[1].to_string().as_str()),
        "the previous notification sent, not the previous event"
    );
    rx.expect_silence(std::time::Duration::from_millis(300))
        .await;

    let shown = gw.get("/v1/channels/paid-only").await.expect(200).json;
    assert_eq!(shown["filter"], json!({"data.status": "paid"}));
    let logged = gw.logged_resources("paid-only", "").await;
    assert_eq!(
        logged,
        ["sync", "/orders/1", "/orders/1"],
        "the delivery log lists the sync and what was matched"
    );
}

#[tokio::test]
async fn a_filter_object_on_a_watch_and_on_a_watcher_and_a_stream_filter() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let watch = json!({"id": "big", "type": "web_hook", "address": rx.url(),
                       "filter": {"data.i": {"$gte": 2}, "$not": {"data.status": "void"}}});
    gw.watch_with("/orders", watch).await;
    assert_eq!(rx.next().await.state(), "sync");

    let watchers = Receiver::start().await;
    let created = gw
        .post(
            "/v1/watchers",
            &json!({"pattern": "/orders", "endpoint": watchers.url(),
                                       "filter": {"data.status": {"$in": ["void"]}}}),
        )
        .await
        .expect(201)
        .json;
    assert_eq!(created["filter"], json!({"data.status": {"$in": ["void"]}}));
    let listed = gw.get("/v1/watchers").await.expect(200).json;
    assert_eq!(listed["items"][0]["filter"], created["filter"]);

    let mut stream = gw
        .stream("/v1/watch?resource=/orders&filter=%7B%22data.status%22%3A%22open%22%7D")
        .await;
    publish_orders(&gw, &["open", "open", "paid", "void", "open"]).await;

    let channel: Vec<i64> = rx
        .take(2)
        .await
        .iter()
        .map(|r| r.body_json()["i"].as_i64().unwrap())
        .collect();
    assert_eq!(channel, [2, 4]);
    let watcher: Vec<Value> = watchers
        .take(2)
        .await
        .iter()
        .filter(|r| r.state() != "sync")
        .map(|r| r.body_json()["i"].clone())
        .collect();
    assert_eq!(watcher, [json!(3)]);
    let mut streamed = Vec::new();
    for _ in 0..3 {
        streamed.push(stream.expect().await.json()["data"]["i"].as_i64().unwrap());
    }
    assert_eq!(streamed, [0, 1, 4]);
}

#[tokio::test]
async fn bad_filters_are_invalid_filter_on_every_path() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let cases = [
        (
            json!({"params": {"filter": "{\"data\": {\"$regex\": \"x\"}}"}}),
            "params.filter.data.$regex",
        ),
        (json!({"params": {"filter": "{not json"}}), "not JSON"),
        (
            json!({"filter": {"data.total": {"$gt": true}}}),
            "filter.data.total.$gt",
        ),
        (json!({"filter": {"$or": []}}), "filter.$or"),
        (
            json!({"filter": {"a": 1}, "params": {"filter": "{\"a\": 1}"}}),
            "twice",
        ),
    ];
    for (extra, says) in cases {
        let mut body = json!({"id": "bad", "type": "web_hook", "address": rx.url()});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let reply = gw.post("/orders/watch", &body).await;
        reply.assert_error(400, "invalidFilter");
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{extra}: {message}");
    }
    let reply = gw
        .post(
            "/v1/watchers",
            &json!({"pattern": "/orders", "endpoint": rx.url(),
                                       "filter": {"data": {"$nope": 1}}}),
        )
        .await;
    reply.assert_error(400, "invalidFilter");
    let reply = gw
        .get("/v1/watch?resource=/orders&filter=%7B%22%24gt%22%3A1%7D")
        .await;
    reply.assert_error(400, "invalidFilter");
    assert!(reply.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("filter.$gt"));
    let none = gw.get("/v1/channels").await.expect(200).json;
    assert_eq!(none["items"], json!([]), "nothing was created");
}

/// More matching events than a channel holds in memory: it reads the rest from the
/// store, where its worker filters what it reads and moves on past what the filter
/// drops; a replay sends only what matches too.
#[tokio::test]
async fn a_backlogged_channel_filters_what_it_reads_and_a_replay_sends_only_matches() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    let watch = json!({"id": "evens", "type": "web_hook", "address": rx.url(),
                       "filter": {"resource": {"$startsWith": "/bl/even/"}}});
    gw.watch_with("/bl", watch).await;
    let sync = rx.next().await;
    let start = sync.header("x-watchwire-cursor").unwrap().to_string();
    let up = rx.unavailable_until_up();
    for batch in 0..3 {
        let events: Vec<Value> = (batch * 1000..(batch + 1) * 1000)
            .map(|i| {
                let parity = if i % 2 == 0 { "even" } else { "odd" };
                json!({"resource": format!("/bl/{parity}/{i}"), "state": "exists"})
            })
            .collect();
        gw.publish(json!(events)).await;
    }
    // 1,500 owed: more than the 1,024 a channel queues.
    gw.await_pending("evens", 1500).await;
    up.store(true, std::sync::atomic::Ordering::SeqCst);

    let got = rx.first_receipts(1500).await;
    let expected: Vec<String> = (0..3000)
        .step_by(2)
        .map(|i| format!("/bl/even/{i}"))
        .collect();
    let resources: Vec<String> = got.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(resources, expected, "every matching event, once, in order");
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    gw.await_pending("evens", 0).await;

    gw.post("/v1/channels/evens/replay", &json!({"since": start}))
        .await
        .expect(202);
    let replayed = rx.take(1500).await;
    assert!(
        replayed.iter().all(|r| r
            .header("x-watchwire-event-resource")
            .is_some_and(|res| res.starts_with("/bl/even/"))),
        "a replay sends only what the filter matches"
    );
    let numbers: Vec<u64> = replayed.iter().map(|r| r.number()).collect();
    assert_eq!(numbers, got.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    rx.expect_silence(std::time::Duration::from_millis(200))
        .await;
}

/// On a cluster the node that delivers a channel filters what every node publishes,
/// and a stream on any node filters what every node publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_hold_across_the_nodes_of_a_cluster() {
    let Some(cluster) = crate::cluster::Cluster::start(3, "filters") else {
        return;
    };
    let rx = Receiver::start().await;
    let watch = json!({"id": "c-paid", "type": "web_hook", "address": rx.url(),
                       "filter": {"data.status": "paid"}});
    cluster.node(0).watch_with("/c/orders", watch).await;
    assert_eq!(rx.next().await.state(), "sync");
    let mut stream = cluster
        .node(2)
        .stream("/v1/watch?resource=/c/orders&filter=%7B%22data.status%22%3A%22open%22%7D")
        .await;
    for i in 0..20 {
        let status = if i % 2 == 0 { "paid" } else { "open" };
        cluster
            .node(1 + i % 2)
            .publish(
                json!({"resource": format!("/c/orders/{i}"), "state": "exists",
                            "data": {"status": status}}),
            )
            .await;
    }
    let got = rx.first_receipts(10).await;
    let expected: Vec<String> = (0..20)
        .step_by(2)
        .map(|i| format!("/c/orders/{i}"))
        .collect();
    assert_eq!(
        got.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
        expected
    );
    let mut streamed = Vec::new();
    for _ in 0..10 {
        streamed.push(
            stream.expect().await.json()["resource"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let odd: Vec<String> = (1..20)
        .step_by(2)
        .map(|i| format!("/c/orders/{i}"))
        .collect();
    assert_eq!(streamed, odd);
}

/// A channel moves past the events its filter does not match, so they do not hold
/// back pruning; the last notification it sent is kept apart, so that after a restart
/// the next one still names it as its previous.
#[tokio::test]
async fn a_channel_moves_past_what_it_does_not_send_and_keeps_its_previous_number_across_a_restart()
{
    let fast_pruning = |a: &mut watchwire::config::ServeArgs| {
        a.retention = std::time::Duration::from_millis(1);
        a.prune_interval = std::time::Duration::from_millis(20);
    };
    let mut gw = Gateway::start_with(fast_pruning).await;
    let rx = Receiver::start().await;
    let watch = json!({"id": "sparse", "type": "web_hook", "address": rx.url(),
                       "filter": {"data.status": "paid"}});
    gw.watch_with("/orders", watch).await;
    assert_eq!(rx.next().await.state(), "sync");
    let paid = publish_orders(&gw, &["paid"]).await[0];
    assert_eq!(rx.next().await.number(), paid);
    let open = gw
        .publish(json!({"resource": "/orders/1", "state": "exists", "data": {"status": "open"}}))
        .await;
    publish_orders(&gw, &["open", "open"]).await;

    // Pruning goes past the open events: the channel owes none of them.
    let url = format!(
        "/v1/changeset?resource=/orders&_expected=1&_since={}",
        open["cursor"].as_str().unwrap()
    );
    let mut expired = false;
    for _ in 0..250 {
        let reply = gw.get(&url).await;
        if reply.status == 410 {
            expired = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        expired,
        "pruning never passed the events the filter dropped"
    );

    gw.shutdown().await;
    gw.start_again(fast_pruning).await;
    let next = publish_orders(&gw, &["paid"]).await[0];
    let got = rx.next().await;
    assert_eq!(got.number(), next);
    assert_eq!(
        got.header("x-watchwire-previous-number"),
        Some(paid.to_string().as_str()),
        "the previous notification sent, across the restart"
    );
}
