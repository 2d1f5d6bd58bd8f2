//! Graceful shutdown: SIGTERM stops the gateway cleanly and persists delivery progress,
//! so a restart neither loses nor re-sends what was already delivered.

use std::time::Duration;

use crate::common::process::GatewayProcess;
use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_progress_survives() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let mut gateway = GatewayProcess::start(dir.path(), &[]);
    gateway.watch("/r", "c", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");
    for i in 0..5 {
        gateway
            .publish(json!({"resource": "/r", "state": "exists", "data": {"i": i}}))
            .await;
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
    gateway
        .publish(json!({"resource": "/r", "state": "not_exists"}))
        .await;
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
    // A long grace period: the stream must not be what the gateway waits for.
    let mut gateway = GatewayProcess::start(dir.path(), &["--shutdown-grace", "30s"]);
    let mut stream = gateway.stream("/v1/watch?resource=/s").await;
    let event = |i: i64| json!({"resource": "/s", "state": "exists", "data": {"i": i}});
    for i in 0..3 {
        gateway.publish(event(i)).await;
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
    gateway.publish(event(3)).await;
    let mut resumed = gateway
        .header("last-event-id", &last)
        .stream("/v1/watch?resource=/s")
        .await;
    assert_eq!(resumed.expect().await.json()["data"]["i"], 3);
}

/// The next line of `log` that contains `text`, within `PATIENCE`.
async fn logged(log: &mut tokio::sync::mpsc::UnboundedReceiver<String>, text: &str) -> String {
    let found = async {
        while let Some(line) = log.recv().await {
            if line.contains(text) {
                return line;
            }
        }
        panic!("the log ended without {text:?}");
    };
    tokio::time::timeout(PATIENCE, found)
        .await
        .unwrap_or_else(|_| panic!("nothing logged {text:?}"))
}

/// The shutdown says what it waits for and how long (docs/api.md §12.1), and a second
/// SIGTERM or ctrl-c during the grace period ends the gateway at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_the_grace_period_exits_at_once() {
    use nix::sys::signal::Signal::{SIGINT, SIGTERM};
    let dir = tempfile::tempdir().unwrap();
    // A receiver that takes connections into its backlog and never answers.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}/", hanging.local_addr().unwrap());
    #[rustfmt::skip]
    let slow = ["--log", "info", "--shutdown-grace", "60s", "--delivery-timeout", "60s"];
    let (gateway, mut log) = GatewayProcess::start_logged(dir.path(), &slow);
    gateway.watch("/slow", "slow", &address).await;
    // The sync's attempt is in flight once it has connected.
    let (connection, _) = tokio::task::spawn_blocking(move || hanging.accept().unwrap())
        .await
        .unwrap();

    gateway.signal(SIGTERM);
    let shutting_down = logged(&mut log, "shutting down").await;
    for said in [
        "grace=60s",
        "deliveries_in_flight=1",
        "second SIGTERM or ctrl-c",
    ] {
        assert!(shutting_down.contains(said), "{said}: {shutting_down}");
    }
    let asked = std::time::Instant::now();
    gateway.signal(SIGINT);
    let status = gateway.exited_within(PATIENCE).await;
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the second signal waited {:?}",
        asked.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{status}");
    logged(&mut log, "second signal: exiting at once").await;
    drop(connection);
}

/// An attempt still waiting for its answer when the shutdown's grace period ends is
/// cut short, but the receiver may have got it: it is logged as an `interrupted`
/// attempt and counted, and after the restart the notification's attempts and first
/// attempt carry on from it.
#[tokio::test]
async fn an_attempt_cut_short_by_shutdown_is_logged_and_counted() {
    let mut gw = Gateway::start_with(|a| a.shutdown_grace = Duration::from_millis(200)).await;
    let rx = raw::RawReceiver::start(raw::RawAnswer::Silence).await;
    gw.watch("/cut", "cut", &rx.url()).await;
    let first = rx.next().await;
    assert_eq!(first.header("x-goog-resource-state"), Some("sync"));
    gw.shutdown().await;

    rx.answer(raw::RawAnswer::Status(204));
    gw.start_again(|_| {}).await;
    let again = rx.next().await;
    assert_eq!(again.header("x-goog-message-number"), Some("1"));
    let mut entry = serde_json::Value::Null;
    for _ in 0..500 {
        let log = gw.get("/v1/channels/cut/notifications").await.json;
        entry = log["items"][0].clone();
        if entry["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(entry["status"], "delivered", "{entry}");
    assert_eq!(
        entry["attempts"], 2,
        "the interrupted attempt counts: {entry}"
    );
    let recent = entry["recentAttempts"].as_array().unwrap();
    assert_eq!(recent.len(), 2, "{entry}");
    assert_eq!(recent[0]["reason"], "interrupted", "{entry}");
    assert!(recent[0]["status"].is_null(), "{entry}");
    assert!(recent[0]["durationMs"].as_u64().unwrap() >= 150, "{entry}");
    assert_eq!(recent[1]["status"], 204, "{entry}");
    assert_eq!(entry["firstAttemptAt"], recent[0]["at"], "{entry}");
}
