//! docs/api.md §7 stream: `GET /v1/watch` as Server-Sent Events, resumable without gap or
//! duplicate, with checkpoints, an expired-cursor 410, and a cutoff for slow consumers.

use std::time::Duration;

use crate::common::sse::SseStream;
use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn publish_n(gw: &Gateway, resource: &str, range: std::ops::Range<i64>) -> Vec<String> {
    let batch: Vec<_> = range
        .map(|i| json!({"resource": resource, "state": "exists", "data": {"i": i}}))
        .collect();
    gw.publish(json!(batch)).await;
    Vec::new()
}

#[tokio::test]
async fn resuming_with_last_event_id_sees_every_event_exactly_once() {
    let gw = Gateway::start().await;
    let first = gw
        .publish(json!({"resource": "/s/a", "state": "exists", "data": {"i": -1}}))
        .await;
    let since = first["cursor"].as_str().unwrap().to_string();

    let url = format!("/v1/watch?resource=/s&since={since}");
    let mut stream = gw.stream(&url).await;
    publish_n(&gw, "/s/a", 0..5).await;
    let mut last_id = String::new();
    for i in 0..5 {
        let frame = stream.expect().await;
        assert_eq!(frame.event.as_deref(), Some("exists"));
        let data = frame.json();
        assert_eq!(data["data"]["i"], i);
        assert_eq!(data["resource"], "/s/a");
        assert_eq!(Some(data["cursor"].as_str().unwrap()), frame.id.as_deref());
        assert!(data["time"].as_str().unwrap().ends_with('Z'));
        last_id = frame.id.unwrap();
    }
    drop(stream);

    // Missed while disconnected, plus noise outside the filter.
    publish_n(&gw, "/s/b", 5..10).await;
    publish_n(&gw, "/t", 100..103).await;
    // Last-Event-ID wins over a stale `since`, as for a browser's EventSource.
    let mut resumed = gw.header("last-event-id", &last_id).stream(&url).await;
    let got: Vec<i64> = futures_take(&mut resumed, 5)
        .await
        .iter()
        .map(|f| f.json()["data"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [5, 6, 7, 8, 9]);
    publish_n(&gw, "/s", 10..11).await;
    assert_eq!(
        resumed.expect().await.json()["data"]["i"],
        10,
        "no duplicate and nothing from /t in between"
    );
}

async fn futures_take(stream: &mut SseStream, n: usize) -> Vec<crate::common::sse::Frame> {
    let mut frames = Vec::new();
    for _ in 0..n {
        frames.push(stream.expect().await);
    }
    frames
}

#[tokio::test]
async fn without_since_only_later_events_arrive_and_metadata_is_carried() {
    let gw = Gateway::start().await;
    gw.publish(json!({"resource": "/n", "state": "exists", "data": {"old": true}}))
        .await;
    let mut stream = gw.stream("/v1/watch?resource=/n").await;
    gw.publish(
        json!({"resource": "/n/x", "state": "not_exists", "metadata": {"request_id": "r-1"}}),
    )
    .await;
    let frame = stream.expect().await;
    assert_eq!(frame.event.as_deref(), Some("not_exists"));
    let data = frame.json();
    assert_eq!(data["metadata"], json!({"request_id": "r-1"}));
    assert_eq!(data["data"], serde_json::Value::Null);
}

#[tokio::test]
async fn checkpoints_arrive_when_idle_and_cover_the_latest_cursor() {
    let gw = Gateway::start_with(|a| a.checkpoint_interval = Duration::from_millis(100)).await;
    let answer = gw
        .publish(json!({"resource": "/other", "state": "exists"}))
        .await;
    let latest = answer["cursor"].as_str().unwrap().to_string();
    let mut stream = gw.stream("/v1/watch?resource=/c&checkpoints=true").await;
    let checkpoint = stream.expect().await;
    assert_eq!(checkpoint.event.as_deref(), Some("checkpoint"));
    assert_eq!(
        checkpoint.id.as_deref(),
        Some(latest.as_str()),
        "the checkpoint covers the log head, even for another resource"
    );
    assert_eq!(checkpoint.json()["cursor"], latest);

    let next = gw
        .publish(json!({"resource": "/c", "state": "exists"}))
        .await;
    // An idle interval may end between the publish and the event: skip checkpoints,
    // which must never claim to cover the event before it arrives.
    let event = loop {
        let frame = stream.expect().await;
        if frame.event.as_deref() != Some("checkpoint") {
            break frame;
        }
        assert!(
            frame.id.unwrap().as_str() < next["cursor"].as_str().unwrap(),
            "a checkpoint covered an event not yet sent"
        );
    };
    assert_eq!(event.event.as_deref(), Some("exists"));
    let after = stream.expect().await;
    assert_eq!(after.event.as_deref(), Some("checkpoint"));
    assert!(after.id.unwrap().as_str() >= next["cursor"].as_str().unwrap());
}

#[tokio::test]
async fn a_cursor_older_than_retention_gets_410_and_a_bad_one_400() {
    let gw = Gateway::start_with(|a| {
        a.retention = Duration::from_millis(1);
        a.prune_interval = Duration::from_millis(20);
    })
    .await;
    let first = gw
        .publish(json!({"resource": "/old", "state": "exists"}))
        .await;
    gw.publish(json!({"resource": "/old", "state": "exists"}))
        .await;
    let url = format!("/v1/watch?since={}", first["cursor"].as_str().unwrap());
    // Pruning is a background task on its interval; wait for it to pass the cursor.
    // (A request, not `gw.get`: until then the answer is a stream that never ends.)
    let mut status = 0;
    for _ in 0..200 {
        let response = gw.request(Method::GET, &url).send().await.unwrap();
        status = response.status().as_u16();
        if status == 410 {
            let body: serde_json::Value = response.json().await.unwrap();
            assert_error(410, &body, 410, "cursorExpired");
            break;
        }
        drop(response);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 410, "the pruned cursor was still accepted");
    gw.get("/v1/watch?since=not-a-cursor").await.expect(400);
}

#[tokio::test]
async fn a_slow_consumer_is_cut_off_while_a_fast_one_continues() {
    let gw = Gateway::start_with(|a| {
        a.stream_buffer = 4;
        a.stream_stall_timeout = Duration::from_millis(300);
        a.max_body_bytes = 16 << 20;
    })
    .await;
    let mut fast = gw.stream("/v1/watch?resource=/big").await;
    let mut slow = gw.stream("/v1/watch?resource=/big").await;
    let payload = "x".repeat(64 * 1024);
    let total = 256;
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < total {
            let frame = fast.expect().await;
            seen.push(frame.json()["data"]["i"].as_i64().unwrap());
        }
        seen
    });
    // 16 MiB in all: far more than the slow stream's socket buffers and its 4 slots.
    for chunk in 0..(total / 32) {
        let batch: Vec<_> = (0..32).map(|k| json!({"resource": "/big", "state": "exists", "data": {"i": chunk * 32 + k, "pad": payload}})).collect();
        gw.publish(json!(batch)).await;
    }
    let seen = reader.await.unwrap();
    assert_eq!(
        seen,
        (0..total as i64).collect::<Vec<_>>(),
        "the fast consumer got everything, in order"
    );

    let mut last = None;
    while let Some(frame) = slow.next().await {
        last = Some(frame);
    }
    let last = last.expect("the slow stream said something");
    assert_eq!(
        last.event.as_deref(),
        Some("cutoff"),
        "the slow stream ends with a cutoff"
    );
    assert!(
        last.id.is_some(),
        "the cutoff names the cursor to resume from"
    );
}

/// Cursors are checked where they are accepted (docs/api.md §14): one from the future
/// would make the stream skip every event up to it as they arrive, and a checkpoint
/// would carry a cursor never issued.
#[tokio::test]
async fn cursors_ahead_of_the_log_and_malformed_queries_are_refused() {
    let gw = Gateway::start().await;
    let head = gw
        .publish(
            json!([{"resource": "/f", "state": "exists"}, {"resource": "/f", "state": "exists"}]),
        )
        .await["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    for query in [
        "resource=/f&since=0000000000000008",
        "resource=/f&checkpoints=true&since=9999999999999999",
    ] {
        let reply = gw.get(&format!("/v1/watch?{query}")).await;
        reply.assert_error(400, "invalidCursor");
        let body = reply.json;
        assert!(body.to_string().contains("ahead of the log"), "{body}");
    }
    gw.header("last-event-id", "00000000000000ff")
        .get("/v1/watch?resource=/f")
        .await
        .assert_error(400, "invalidCursor");
    gw.get("/v1/watch?resource=/f&since=nonsense")
        .await
        .assert_error(400, "invalidCursor");
    // A typo or a malformed flag is named instead of silently meaning something else.
    let reply = gw.get(&format!("/v1/watch?resource=/f&sinse={head}")).await;
    reply.assert_error(400, "invalidParameter");
    let body = reply.json;
    assert!(body.to_string().contains("sinse"), "{body}");
    let reply = gw.get("/v1/watch?resource=/f&checkpoints=maybe").await;
    reply.assert_error(400, "invalidParameter");
    let body = reply.json;
    assert!(body.to_string().contains("checkpoints"), "{body}");

    // The head itself is fine, and a checkpoint then carries an issued cursor.
    let mut stream = gw
        .stream(&format!(
            "/v1/watch?resource=/f&since={head}&checkpoints=true"
        ))
        .await;
    let checkpoint = stream.expect().await;
    assert_eq!(checkpoint.event.as_deref(), Some("checkpoint"));
    assert_eq!(checkpoint.id.as_deref(), Some(head.as_str()));
}

/// A stream on a quiet resource still moves past the events it skips: the cursor its
/// `event: shutdown` gives to resume from is the log's position it reached, not the
/// `since` it started from, which retention would expire.
#[tokio::test]
async fn the_resume_cursor_moves_past_events_a_stream_skips() {
    let mut gw = Gateway::start_with(|a| a.checkpoint_interval = Duration::from_millis(50)).await;
    let start = gw
        .publish(json!({"resource": "/quiet", "state": "exists"}))
        .await["cursor"]
        .clone();
    let start = start.as_str().unwrap();
    let mut stream = gw
        .stream(&format!(
            "/v1/watch?resource=/quiet&since={start}&checkpoints=true"
        ))
        .await;
    let busy: Vec<Value> = (0..3)
        .map(|i| json!({"resource": format!("/busy/{i}"), "state": "exists"}))
        .collect();
    let busy = gw.publish(json!(busy)).await["cursor"].clone();
    let busy = busy.as_str().unwrap();
    // A checkpoint at or past them: the stream has gone through them.
    loop {
        let frame = stream.expect().await;
        assert_eq!(frame.event.as_deref(), Some("checkpoint"), "{frame:?}");
        if frame.id.as_deref().unwrap() >= busy {
            break;
        }
    }
    gw.shutdown().await;
    let goodbye = loop {
        let frame = stream.expect().await;
        if frame.event.as_deref() != Some("checkpoint") {
            break frame;
        }
    };
    assert_eq!(goodbye.event.as_deref(), Some("shutdown"), "{goodbye:?}");
    assert_eq!(goodbye.id.as_deref(), Some(busy));
}

/// `resource=/` streams the whole namespace, as no filter does (docs/api.md §7.1).
#[tokio::test]
async fn a_stream_on_the_whole_namespace_gets_every_event() {
    let gw = Gateway::start().await;
    let first = gw
        .publish(json!({"resource": "/before", "state": "exists"}))
        .await["cursor"]
        .clone();
    let since = first.as_str().unwrap();
    let mut everything = gw
        .stream(&format!("/v1/watch?resource=/&since={since}"))
        .await;
    let mut unfiltered = gw.stream(&format!("/v1/watch?since={since}")).await;
    gw.publish(json!([
        {"resource": "/a", "state": "exists"},
        {"resource": "/b/c/d", "state": "exists"},
    ]))
    .await;
    for stream in [&mut everything, &mut unfiltered] {
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(stream.expect().await.json()["resource"].clone());
        }
        assert_eq!(got, [json!("/a"), json!("/b/c/d")]);
    }
}
