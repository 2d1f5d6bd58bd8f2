//! Graceful shutdown: SIGTERM stops the gateway cleanly and persists delivery progress,
//! so a restart neither loses nor re-sends what was already delivered.

mod common;

use std::time::Duration;

use common::process::GatewayProcess;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_progress_survives() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let rx = Receiver::start().await;
    let mut gateway = GatewayProcess::start(dir.path(), &[]);
    let watch = http
        .post(format!("{}/r/watch", gateway.url))
        .json(&json!({"id": "c", "type": "web_hook", "address": rx.url()}))
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    assert_eq!(rx.next().await.state(), "sync");
    for i in 0..5 {
        let sent = http
            .post(format!("{}/v1/events", gateway.url))
            .json(&json!({"resource": "/r", "state": "exists", "data": {"i": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200);
    }
    let numbers: Vec<u64> = rx.take(5).await.iter().map(Received::number).collect();

    nix::sys::signal::kill(gateway.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = gateway.child.wait().unwrap();
        drop(gateway);
        status
    });
    let status = tokio::time::timeout(PATIENCE, status)
        .await
        .expect("gateway exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");

    let gateway = GatewayProcess::start(dir.path(), &[]);
    let sent = http
        .post(format!("{}/v1/events", gateway.url))
        .json(&json!({"resource": "/r", "state": "not_exists"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let next = rx.next().await;
    assert_eq!(
        next.state(),
        "not_exists",
        "nothing already delivered is sent again, and no second sync"
    );
    assert_eq!(
        next.header("x-watchwire-previous-number"),
        Some(numbers[4].to_string().as_str())
    );
    rx.expect_silence(Duration::from_millis(100)).await;
}

/// On SIGTERM an open stream is not cut after the grace period: it gets a last
/// `event: shutdown` whose id is the cursor to resume from, at once, and a restarted
/// gateway continues from there without gap or duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_with_the_cursor_to_resume_from() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    // A long grace period: the stream must not be what the gateway waits for.
    let mut gateway = GatewayProcess::start(dir.path(), &["--shutdown-grace", "30s"]);
    let url = format!("{}/v1/watch?resource=/s", gateway.url);
    let mut stream = common::sse::SseStream::open(&http, &url, &[]).await;
    let publish = |gateway_url: String, i: i64| {
        let http = http.clone();
        async move {
            let sent = http
                .post(format!("{gateway_url}/v1/events"))
                .json(&json!({"resource": "/s", "state": "exists", "data": {"i": i}}))
                .send()
                .await
                .unwrap();
            assert_eq!(sent.status(), 200);
        }
    };
    for i in 0..3 {
        publish(gateway.url.clone(), i).await;
    }
    let mut last = String::new();
    for _ in 0..3 {
        last = stream.expect().await.id.unwrap();
    }

    let asked = std::time::Instant::now();
    nix::sys::signal::kill(gateway.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let goodbye = stream.expect().await;
    assert_eq!(goodbye.event.as_deref(), Some("shutdown"), "{goodbye:?}");
    assert_eq!(goodbye.id.as_deref(), Some(last.as_str()));
    assert_eq!(goodbye.json()["cursor"], last.as_str());
    assert!(stream.next().await.is_none(), "the stream ends after it");
    let status = tokio::task::spawn_blocking(move || gateway.child.wait().unwrap());
    let status = tokio::time::timeout(PATIENCE, status)
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the open stream did not hold the shutdown for the grace period"
    );

    let gateway = GatewayProcess::start(dir.path(), &[]);
    publish(gateway.url.clone(), 3).await;
    let url = format!("{}/v1/watch?resource=/s", gateway.url);
    let mut resumed = common::sse::SseStream::open(&http, &url, &[("last-event-id", &last)]).await;
    assert_eq!(resumed.expect().await.json()["data"]["i"], 3);
}
