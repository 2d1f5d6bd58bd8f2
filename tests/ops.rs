//! Operations: /healthz, /metrics, configuration from the environment, refusals at start.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

#[tokio::test]
async fn healthz_and_metrics_report_the_gateway() {
    let gw = Gateway::start().await;
    let rx = Receiver::start().await;
    gw.watch("/m", "metrics-channel", &rx.url()).await;
    rx.next().await;
    gw.publish(json!({"resource": "/m", "state": "exists"}))
        .await;
    rx.next().await;

    let health = gw
        .http
        .get(format!("{}/healthz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );

    let metrics = gw
        .http
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    for name in [
        "watchwire_events_published_total",
        "watchwire_notifications_total{outcome=\"delivered\"}",
        "watchwire_delivery_latency_seconds_bucket",
        "watchwire_channels_live",
        "watchwire_pending_notifications",
        "watchwire_store_commits_total",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
}

#[test]
fn every_serve_option_reads_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchwire"))
        .arg("serve")
        .env("WATCHWIRE_DEV", "true")
        .env("WATCHWIRE_LISTEN", "127.0.0.1:0")
        .env("WATCHWIRE_DATA_DIR", dir.path())
        .env("WATCHWIRE_PUBLIC_URL", "https://push.example.com/")
        .env("WATCHWIRE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("watchwire listening on ")
        .expect("listening line")
        .to_string();
    let answer = watch_from_a_plain_thread(&url);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(answer["resourceUri"], "https://push.example.com/env/check");
    assert!(
        dir.path().join("watchwire.db").exists(),
        "the data dir came from WATCHWIRE_DATA_DIR"
    );
}

#[test]
fn refuses_to_start_without_keys_or_dev_and_dev_on_a_public_address() {
    let run = |args: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_watchwire"))
            .arg("serve")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, err) = run(&["--listen", "127.0.0.1:0"]);
    assert!(!ok && err.contains("--api-key"), "{err}");
    let (ok, err) = run(&["--dev", "--listen", "0.0.0.0:0"]);
    assert!(!ok && err.contains("non-loopback"), "{err}");
}

/// One watch call from a plain thread (this test has no runtime of its own).
fn watch_from_a_plain_thread(url: &str) -> serde_json::Value {
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let body = json!({"id": "env", "type": "web_hook", "address": "http://127.0.0.1:9/"});
            client()
                .post(format!("{url}/env/check/watch"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    })
    .join()
    .unwrap()
}
