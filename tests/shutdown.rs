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
