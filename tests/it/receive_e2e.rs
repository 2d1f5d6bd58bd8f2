//! `watchwire receive` through the real binary: fed by a real `watchwire serve`, and
//! answering requests directly.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::common::process::GatewayProcess;
use crate::common::{Api, Reply};

/// Long enough for a loaded CI machine; a passing run takes well under a second.
const TIMEOUT: Duration = Duration::from_secs(30);
const SECRET: &str = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// A running `watchwire` process, killed when dropped.
struct Process {
    child: Child,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
    url: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `watchwire ARGS` and waits for the stdout line containing `ready`
    /// followed by the URL it listens on.
    async fn start(args: &[&str], ready: &str) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_watchwire"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the watchwire binary starts");
        let (tx, rx) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut process = Process {
            child,
            stdout: rx,
            stderr,
            url: String::new(),
        };
        loop {
            let line = process.next_line().await;
            if let Some(rest) = line.split(ready).nth(1) {
                process.url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_string();
                assert!(
                    process.url.starts_with("http://"),
                    "bad ready line {line:?}"
                );
                return process;
            }
        }
    }

    async fn next_line(&mut self) -> String {
        match tokio::time::timeout(TIMEOUT, self.stdout.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!(
                "{:?} exited; stderr:\n{}",
                self.child.id(),
                self.stderr.lock().unwrap()
            ),
            Err(_) => panic!(
                "no output within {TIMEOUT:?}; stderr:\n{}",
                self.stderr.lock().unwrap()
            ),
        }
    }

    async fn next_json(&mut self) -> Value {
        let line = self.next_line().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"))
    }
}

async fn receiver(extra: &[&str]) -> Process {
    let mut args = vec!["receive", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Process::start(&args, "watchwire receive listening on ").await
}

#[tokio::test]
async fn gateway_notifications_arrive_validated_at_watchwire_receive() {
    let mut receive = receiver(&[
        "--json",
        "--channel-id",
        "e2e-1",
        "--token",
        "t",
        "--secret",
        SECRET,
    ])
    .await;
    let data_dir = tempfile::tempdir().unwrap();
    let gateway = GatewayProcess::start(data_dir.path(), &[]);

    let watch = gateway
        .watch_with(
            "/calendars/primary/events",
            json!({
                "id": "e2e-1", "type": "web_hook", "address": format!("{}/", receive.url), "token": "t",
                "params": {"signingSecret": SECRET},
            }),
        )
        .await;
    gateway
        .publish(
            json!({"resource": "/calendars/primary/events", "state": "exists", "data": {"k": 1}}),
        )
        .await;

    let sync = receive.next_json().await;
    assert_eq!(sync["valid"], true, "{sync}");
    assert_eq!(sync["channelId"], "e2e-1");
    assert_eq!(sync["state"], "sync");
    assert_eq!(sync["messageNumber"], 1);
    assert_eq!(sync["resourceId"], watch["resourceId"]);
    assert_eq!(sync["resourceUri"], watch["resourceUri"]);
    assert_eq!(sync["previousNumber"], Value::Null);
    assert_eq!(sync["body"], Value::Null);
    assert!(sync["channelExpiration"].is_string(), "{sync}");
    assert!(sync["cursor"].is_string(), "{sync}");

    let event = receive.next_json().await;
    assert_eq!(event["valid"], true, "{event}");
    assert_eq!(event["channelId"], "e2e-1");
    assert_eq!(event["state"], "exists");
    assert!(event["messageNumber"].as_u64().unwrap() > 1, "{event}");
    assert_eq!(
        event["previousNumber"], 1,
        "nothing was sent between sync and this event"
    );
    assert_eq!(event["resourceId"], watch["resourceId"]);
    assert_eq!(event["eventResource"], "/calendars/primary/events");
    assert_eq!(event["body"], json!({"k": 1}));
    assert_ne!(event["cursor"], sync["cursor"]);
    assert_eq!(
        (event["duplicate"].as_bool(), event["outOfOrder"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(event["gap"], Value::Null);
}

/// Posts notification `number` on channel `c1` with `token` to the receiver `receive`.
async fn deliver(receive: &Api, number: u64, token: &str) -> Reply {
    let state = if number == 1 { "sync" } else { "not_exists" };
    receive
        .header("X-Goog-Channel-ID", "c1")
        .header("X-Goog-Channel-Token", token)
        .header("X-Goog-Resource-ID", "rid")
        .header("X-Goog-Resource-URI", "http://gw/b/photos/o")
        .header("X-Goog-Resource-State", state)
        .header("X-Goog-Message-Number", &number.to_string())
        .post_raw("/hook", "")
        .await
}

#[tokio::test]
async fn receive_answers_204_for_valid_and_flagged_notifications_and_400_with_the_reason() {
    let mut receive = receiver(&["--json", "--channel-id", "c1", "--token", "t"]).await;
    let api = Api::new(&receive.url);

    assert_eq!(deliver(&api, 1, "t").await.status, 204);
    assert_eq!(receive.next_json().await["duplicate"], false);
    assert_eq!(deliver(&api, 1, "t").await.status, 204);
    assert_eq!(receive.next_json().await["duplicate"], true);
    assert_eq!(deliver(&api, 7, "t").await.status, 204);
    assert_eq!(deliver(&api, 4, "t").await.status, 204);
    assert_eq!(receive.next_json().await["outOfOrder"], false);
    assert_eq!(receive.next_json().await["outOfOrder"], true);

    let rejected = deliver(&api, 8, "wrong").await.expect(400);
    let envelope = rejected.json;
    assert_eq!(envelope["error"]["errors"][0]["reason"], "tokenMismatch");
    let line = receive.next_json().await;
    assert_eq!(
        (line["valid"].as_bool(), line["error"]["reason"].as_str()),
        (Some(false), Some("tokenMismatch"))
    );

    let missing = api
        .header("X-Goog-Channel-ID", "c1")
        .post_raw("", "")
        .await
        .expect(400);
    let envelope = missing.json;
    assert_eq!(envelope["error"]["errors"][0]["reason"], "missingHeader");
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-goog-message-number"),
        "{envelope}"
    );
    assert_eq!(
        receive.next_json().await["error"]["header"],
        "x-goog-message-number"
    );

    api.get("").await.expect(405);
}

#[tokio::test]
async fn receive_prints_readable_lines_by_default() {
    let mut receive = receiver(&[]).await;
    let api = Api::new(&receive.url);
    assert_eq!(deliver(&api, 1, "t").await.status, 204);
    assert_eq!(deliver(&api, 1, "t").await.status, 204);
    let first = receive.next_line().await;
    assert!(
        first.ends_with(" c1 #1 sync http://gw/b/photos/o"),
        "{first:?}"
    );
    let again = receive.next_line().await;
    assert!(
        again.ends_with(" c1 #1 sync http://gw/b/photos/o [duplicate]"),
        "{again:?}"
    );
}

/// A receiver's refusal reaches the gateway's delivery log with its reason: the first
/// 1 KiB of what `watchwire receive` answered says why (docs/api.md §8.3).
#[tokio::test]
async fn the_delivery_log_shows_why_watchwire_receive_refused() {
    let receive = receiver(&["--channel-id", "expected-id"]).await;
    let receive_url = receive.url.clone();
    let data_dir = tempfile::tempdir().unwrap();
    let gateway = GatewayProcess::start(data_dir.path(), &[]);
    gateway
        .watch("/r", "other-id", &format!("{receive_url}/"))
        .await;
    let mut sync = Value::Null;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < deadline {
        let log = gateway
            .get("/v1/channels/other-id/notifications")
            .await
            .json;
        sync = log["items"][0].clone();
        if sync["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sync["status"], "failed",
        "a 400 fails the sync for good: {sync}"
    );
    assert_eq!(sync["lastError"]["reason"], "httpStatus");
    assert_eq!(sync["lastError"]["status"], 400);
    let answer = sync["recentAttempts"][0]["response"].as_str().unwrap();
    assert!(answer.contains("channelIdMismatch"), "{sync}");
}
