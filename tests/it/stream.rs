//! docs/api.md §7 stream: `GET /v1/watch` as Server-Sent Events, resumable without gap or
//! duplicate, with checkpoints, an expired-cursor 410, and a cutoff for slow consumers.

use std::time::Duration;

use crate::common::input::raw_http;
use crate::common::sse::SseStream;
use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

// ---- streams on a connection of their own (src/api/stream_connection.rs) ------------

/// Reads from `socket` until `done` says what arrived is enough; panics if the gateway
/// closes first or takes longer than the tests' patience.
async fn read_until(socket: &mut TcpStream, got: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    let read = async {
        while !done(got) {
            let mut buffer = [0u8; 4096];
            let n = socket.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(got));
            got.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .unwrap_or_else(|_| panic!("not in time: {}", String::from_utf8_lossy(got)));
}

/// Where the answer's head ends, once it has.
fn head_end(got: &[u8]) -> Option<usize> {
    got.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The payload of a chunked body, and whether its last chunk came.
fn dechunk(mut body: &[u8]) -> (String, bool) {
    let mut payload = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return (String::from_utf8(payload).unwrap(), false);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap(), 16)
            .expect("a chunk size");
        if size == 0 {
            return (
                String::from_utf8(payload).unwrap(),
                &body[line_end..] == b"\r\n\r\n",
            );
        }
        let data = &body[line_end + 2..];
        assert!(data.len() >= size + 2, "a chunk cut short");
        payload.extend_from_slice(&data[..size]);
        assert_eq!(&data[size..size + 2], b"\r\n", "a chunk ends with CRLF");
        body = &data[size + 2..];
    }
}

/// A stream asked for as a connection's first request is written by the gateway itself,
/// not hyper, to keep an open stream small: the same answer (head, events in order,
/// keep-alive comments and the goodbye), chunked, and the connection closed at the end.
/// The head may arrive in pieces, as from a slow client.
#[tokio::test]
async fn a_stream_on_a_connection_of_its_own_is_chunked_and_says_goodbye() {
    let mut gw = Gateway::start().await;
    let first = gw
        .publish(json!({"resource": "/own/start", "state": "exists"}))
        .await;
    let since = first["cursor"].as_str().unwrap().to_string();
    let mut socket = TcpStream::connect(gw.authority()).await.unwrap();
    let request = format!(
        "GET /v1/watch?resource=/own&since={since} HTTP/1.1\r\nHost: g\r\nAccept: text/event-stream\r\n\r\n"
    );
    // Shorter than what tells a stream from `/v1/watchers`, then the rest of the head.
    for piece in [&request[..9], &request[9..40], &request[40..]] {
        socket.write_all(piece.as_bytes()).await.unwrap();
        socket.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await; // a slow client
    }
    let mut got = Vec::new();
    read_until(&mut socket, &mut got, |g| head_end(g).is_some()).await;
    let head_end = head_end(&got).unwrap();
    let head = String::from_utf8(got[..head_end].to_vec()).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for line in [
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "transfer-encoding: chunked",
        "connection: close",
    ] {
        assert!(head.contains(line), "{line} missing from {head}");
    }
    assert!(head.contains("\r\ndate: "), "{head}");

    publish_n(&gw, "/own/x", 0..3).await;
    let events = |g: &[u8]| dechunk(&g[head_end..]).0.matches("event: exists").count();
    read_until(&mut socket, &mut got, |g| events(g) == 3).await;
    gw.shutdown().await;
    let read = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut got));
    read.await.expect("the gateway closes the stream").unwrap();

    let (payload, ended) = dechunk(&got[head_end..]);
    assert!(ended, "the last chunk was sent: {payload}");
    let frames: Vec<&str> = payload.split("\n\n").filter(|f| !f.is_empty()).collect();
    let data: Vec<Value> = frames
        .iter()
        .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let numbers: Vec<&Value> = data.iter().take(3).map(|d| &d["data"]["i"]).collect();
    assert_eq!(numbers, [&json!(0), &json!(1), &json!(2)], "{payload}");
    let goodbye = frames.last().unwrap();
    assert!(goodbye.contains("event: shutdown"), "{payload}");
    let last = data[2]["cursor"].as_str().unwrap();
    assert!(goodbye.contains(&format!("id: {last}")), "{payload}");
}

/// An HTTP/1.0 client gets the stream as it is, ended by the close.
#[tokio::test]
async fn an_http_1_0_stream_is_sent_unchunked() {
    let gw = Gateway::start().await;
    let mut socket = TcpStream::connect(gw.authority()).await.unwrap();
    socket
        .write_all(b"GET /v1/watch?resource=/old HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut socket, &mut got, |g| head_end(g).is_some()).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(!text.contains("transfer-encoding"), "{text}");
    gw.publish(json!({"resource": "/old/a", "state": "exists"}))
        .await;
    read_until(&mut socket, &mut got, |g| {
        String::from_utf8_lossy(g).contains("\"resource\":\"/old/a\"")
    })
    .await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    assert!(
        body.contains("event: exists\n"),
        "no chunk framing: {body:?}"
    );
    assert!(
        !body.starts_with(|c: char| c.is_ascii_hexdigit()),
        "{body:?}"
    );
}

/// A stream's own connection answers what it cannot serve with the envelope and
/// closes, as hyper's connections do (docs/api.md §14): a head hyper would refuse, a
/// request with a body, and any error of the route itself.
#[tokio::test]
async fn a_stream_connection_refuses_with_the_envelope_and_closes() {
    let gw = Gateway::keyed(|_| {}).await;
    let many: String = (0..600).map(|i| format!("x-h{i}: v\r\n")).collect();
    let get = |extra: &str| format!("GET /v1/watch?resource=/r HTTP/1.1\r\nHost: g\r\n{extra}\r\n");
    for (what, request, status, reason) in [
        (
            "a header line without a colon",
            get("broken\r\n"),
            400,
            "invalid",
        ),
        (
            "a NUL in a header value",
            get("x-nul: a\0b\r\n"),
            400,
            "invalid",
        ),
        (
            "a folded header",
            get("x-fold: a\r\n b\r\n"),
            400,
            "invalid",
        ),
        ("600 headers", get(&many), 431, "headersTooLarge"),
        (
            "a head over 256 KiB",
            get(&format!("x-big: {}\r\n", "b".repeat(300_000))),
            431,
            "headersTooLarge",
        ),
        (
            "a body",
            get("Content-Length: 2\r\n") + "{}",
            400,
            "invalid",
        ),
        ("no key", get(""), 401, "required"),
        (
            "a cursor that is not one",
            get(&format!("Authorization: Bearer {}\r\n", keys::ROOT))
                .replace("/r ", "/r&since=zz "),
            400,
            "invalidCursor",
        ),
    ] {
        let reply = raw_http(&gw, request.as_bytes()).await;
        assert_eq!(reply.status, status, "{what}: {}", reply.text);
        let envelope: Value = serde_json::from_str(&reply.text)
            .unwrap_or_else(|_| panic!("{what}: not the envelope: {}", reply.text));
        assert_eq!(envelope["error"]["code"], status, "{what}");
        assert_eq!(
            envelope["error"]["errors"][0]["reason"], reason,
            "{what}: {envelope}"
        );
    }
    let envelope: Value = serde_json::from_str(
        &raw_http(&gw, get("Content-Length: 2\r\n").as_bytes())
            .await
            .text,
    )
    .unwrap();
    let message = envelope["error"]["message"].as_str().unwrap();
    assert!(message.contains("no request body"), "{message}");
}
