//! Crash safety (docs/api.md §5): SIGKILL a `watchwire serve` child in the middle of
//! publishing, restart it on the same data directory, and check that every
//! acknowledged event reaches every channel that matched it, with stable message
//! numbers, and that numbers keep increasing after the restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::process::GatewayProcess;
use crate::common::*;
use reqwest::Method;
use serde_json::json;

/// What one channel's receiver has seen: event index → message numbers it came with.
fn collect(seen: &mut BTreeMap<i64, BTreeSet<u64>>, got: &Received) -> Option<i64> {
    let i = got.body_json()["i"].as_i64()?;
    seen.entry(i).or_default().insert(got.number());
    Some(i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_publishing_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let receivers = [
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    ];
    // Two channels on the collection and one on the parent: all match every event.
    let resources = ["/crash/items", "/crash/items", "/crash"];

    let mut gateway = GatewayProcess::start(dir.path(), &[]);
    for (n, (rx, resource)) in receivers.iter().zip(resources).enumerate() {
        gateway
            .watch(resource, &format!("crash-{n}"), &rx.url())
            .await;
        assert_eq!(rx.next().await.state(), "sync");
    }

    // Eight publishers; what got a 200 is acknowledged and must never be lost.
    let acked: Arc<Mutex<HashMap<i64, String>>> = Arc::default();
    let mut publishers = Vec::new();
    for p in 0..8i64 {
        let (api, acked) = (gateway.api.clone(), acked.clone());
        publishers.push(tokio::spawn(async move {
            for k in 0.. {
                let i = p * 1_000_000 + k;
                // Not `api.post`: a failed request is the end here, not a test failure.
                let sent = api.request(Method::POST, "/v1/events").json(&json!({"resource": format!("/crash/items/{i}"), "state": "exists", "data": {"i": i}})).send().await;
                match sent {
                    Ok(response) if response.status() == 200 => {
                        let cursor = response.json::<serde_json::Value>().await.unwrap()["cursor"].as_str().unwrap().to_string();
                        acked.lock().unwrap().insert(i, cursor);
                    }
                    _ => return, // the gateway died under us
                }
            }
        }));
    }
    // Kill once a good number of publishes were acknowledged, with more in flight.
    let mut seen: Vec<BTreeMap<i64, BTreeSet<u64>>> = vec![BTreeMap::new(); 3];
    while acked.lock().unwrap().len() < 300 {
        for (rx, seen) in receivers.iter().zip(seen.iter_mut()) {
            if let Ok(got) = tokio::time::timeout(Duration::from_millis(50), rx.next()).await {
                collect(seen, &got);
            }
        }
    }
    gateway.kill9();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    // Restart on the same directory; the channels and the backlog come back.
    let gateway = GatewayProcess::start(dir.path(), &[]);
    let duplicate = gateway
        .post(
            "/crash/items/watch",
            &json!({"id": "crash-0", "type": "web_hook", "address": receivers[0].url()}),
        )
        .await;
    assert_eq!(duplicate.status, 400, "the channel survived the crash");
    gateway
        .publish(json!({"resource": "/crash/items/after", "state": "exists", "data": {"i": -1}}))
        .await;

    for (n, (rx, seen)) in receivers.iter().zip(seen.iter_mut()).enumerate() {
        while !seen.contains_key(&-1) || acked.keys().any(|i| !seen.contains_key(i)) {
            let got = rx.next().await;
            collect(seen, &got);
        }
        for (i, numbers) in seen.iter() {
            assert_eq!(
                numbers.len(),
                1,
                "channel {n}: event {i} came with different message numbers {numbers:?}"
            );
        }
        let after_number = *seen[&-1].iter().next().unwrap();
        let max_before = seen
            .iter()
            .filter(|(i, _)| **i != -1)
            .flat_map(|(_, n)| n.iter())
            .max()
            .copied()
            .unwrap();
        assert!(
            after_number > max_before,
            "channel {n}: numbers must keep increasing after a restart"
        );
    }
    // Per-resource cursors: every acknowledged cursor is distinct (one log position each).
    let cursors: BTreeSet<&String> = acked.values().collect();
    assert_eq!(cursors.len(), acked.len());
}

/// One data directory, one process: a second `serve` on it refuses to start and names
/// the holder, so no publish can be acknowledged by a process whose channels are not
/// the ones stored there. The lock dies with its holder, even under SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_a_data_directory_in_use_refuses_to_start() {
    if crate::common::store::is_postgres() {
        // A property of the embedded store's data directory; PostgreSQL shares.
        crate::common::store::embedded_only("the data directory's lock");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut first = GatewayProcess::start(dir.path(), &[]);
    let (status, stderr) = GatewayProcess::refused(dir.path(), &[]);
    assert!(
        !status.success(),
        "the second process must exit with an error"
    );
    assert!(
        stderr.contains("in use") && stderr.contains(&format!("pid {}", first.child.id())),
        "the refusal names the holder: {stderr}"
    );
    // The first one is unharmed and still accepts publishes.
    first
        .publish(json!({"resource": "/lock/a", "state": "exists"}))
        .await;

    first.kill9();
    // A SIGKILLed holder leaves no stale lock.
    let second = GatewayProcess::start(dir.path(), &[]);
    second
        .publish(json!({"resource": "/lock/a", "state": "exists"}))
        .await;
}

/// A tmpfs of a given size mounted on a fresh directory, unmounted when dropped: a
/// disk that really fills up. Needs root, as CI and this project's machines run.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            mounted.success(),
            "mounting a {size} tmpfs needs root (this test fills a real filesystem)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A disk that fills up (docs/api.md §12), with the gateway's log on it too: every
/// publish gets an answer — `200` once durable, or `503 backendError` — although the
/// lines logging the refusals cannot be written (they are counted), `/healthz` says the
/// store cannot write, everything acknowledged is delivered, and once space is freed
/// the gateway writes again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_every_request_and_loses_nothing_acknowledged() {
    if crate::common::store::is_postgres() {
        // The embedded store's disk; PostgreSQL's trouble is the outage test.
        crate::common::store::embedded_only("the full-disk test");
        return;
    }
    let disk = SmallDisk::mount("12m");
    // Room to free later, as an operator would.
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![0u8; 3 << 20]).unwrap();
    let log = || std::process::Stdio::from(std::fs::File::create(disk.path().join("log")).unwrap());
    let gateway = GatewayProcess::with_output(&disk.path().join("data"), &[], log(), log()).await;
    let rx = Receiver::start().await;
    gateway.watch("/full", "full", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");

    // Eight publishers of 4 KB events until each has been refused ten times in a row.
    let data = "x".repeat(4000);
    let mut publishers = Vec::new();
    for p in 0..8i64 {
        let (api, data) = (gateway.api.clone(), data.clone());
        publishers.push(tokio::spawn(async move {
            let (mut acked, mut refused_in_a_row) = (Vec::new(), 0);
            for k in 0..10_000i64 {
                let i = p * 100_000 + k;
                let sent = api
                    .post("/v1/events", &json!({"resource": format!("/full/{i}"), "state": "exists", "data": {"i": i, "pad": data}}))
                    .await;
                match sent.status {
                    200 => {
                        acked.push(i);
                        refused_in_a_row = 0;
                    }
                    503 => {
                        let body = sent.json;
                        assert_eq!(body["error"]["errors"][0]["reason"], "backendError", "{body}");
                        refused_in_a_row += 1;
                        if refused_in_a_row == 10 {
                            break;
                        }
                    }
                    other => panic!("publish {i} answered {other}"),
                }
            }
            acked
        }));
    }
    let mut acked = std::collections::BTreeSet::new();
    for publisher in publishers {
        acked.extend(publisher.await.unwrap());
    }
    assert!(
        acked.len() > 100,
        "the disk filled before anything was stored"
    );
    let health = gateway.get("/healthz").await;
    assert_eq!(
        health.status, 503,
        "/healthz must say the store cannot write"
    );
    assert_eq!(health.json["error"]["errors"][0]["reason"], "backendError");

    // Whatever room the store could not use, the log takes no more: each refusal's
    // line (a page of them at most fits where the log file ends) is dropped, counted.
    fill_up(&disk.path().join("last-bytes"));
    for i in 0..60 {
        let refused = gateway
            .post(
                "/v1/events",
                &json!({"resource": format!("/full/more/{i}"), "state": "exists"}),
            )
            .await;
        assert_eq!(refused.status, 503, "{}", refused.json);
    }
    let metrics = gateway.get("/metrics").await.expect(200).text;
    let dropped = metric_sample(&metrics, "watchwire_log_lines_dropped_total", &[]);
    assert!(dropped.is_some_and(|n| n > 0.0), "{dropped:?}\n{metrics}");

    // Every acknowledged event reaches the channel.
    let mut delivered = std::collections::BTreeSet::new();
    while !acked.is_subset(&delivered) {
        let got = rx.next().await;
        delivered.insert(got.body_json()["i"].as_i64().unwrap());
    }

    // Space comes back: the gateway notices by itself and takes publishes again.
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(disk.path().join("last-bytes")).unwrap();
    let mut healthy = false;
    for _ in 0..600 {
        if gateway.get("/healthz").await.status == 200 {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(healthy, "/healthz recovers once the store can write again");
    gateway
        .publish(json!({"resource": "/full/after", "state": "exists", "data": {"i": -1}}))
        .await;
    loop {
        if rx.next().await.body_json()["i"] == -1 {
            break;
        }
    }
    drop(gateway);
}

/// Writes into `path` until its filesystem has not one byte left.
fn fill_up(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    for chunk in [4096, 1] {
        while file.write_all(&vec![0u8; chunk]).is_ok() {}
    }
}

/// The retry budget runs from a notification's first attempt, across restarts: a
/// gateway killed in the middle of retrying does not give the notification a new
/// budget, and its attempt count carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.respond(|_| (503, vec![]));
    let budget = ["--retry-budget", "4s", "--retry-schedule", "200ms"];
    let mut gateway = GatewayProcess::start(dir.path(), &budget);
    gateway.watch("/b", "budget", &rx.url()).await;
    let sync = |api: Api| async move {
        let log = api.get("/v1/channels/budget/notifications").await;
        log.expect(200).json["items"][0].clone()
    };
    let time = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .to_utc()
    };
    // Retry for a while, then kill the gateway in the middle of it.
    let before = loop {
        let entry = sync(gateway.api.clone()).await;
        if entry["firstAttemptAt"].is_string()
            && chrono::Utc::now() - time(&entry["firstAttemptAt"])
                > chrono::Duration::milliseconds(2500)
        {
            break entry;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    gateway.kill9();
    let first_attempt = time(&before["firstAttemptAt"]);

    let gateway = GatewayProcess::start(dir.path(), &budget);
    let failed = loop {
        let entry = sync(gateway.api.clone()).await;
        if entry["status"] == "failed" {
            break entry;
        }
        assert!(
            chrono::Utc::now() - first_attempt < chrono::Duration::seconds(12),
            "never failed: {entry}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(time(&failed["firstAttemptAt"]), first_attempt, "{failed}");
    let spent = time(&failed["lastAttemptAt"]) - first_attempt;
    assert!(
        spent < chrono::Duration::milliseconds(5500),
        "the budget of 4s restarted with the gateway: failed {spent} after the first attempt"
    );
    assert!(
        failed["attempts"].as_u64() > before["attempts"].as_u64(),
        "the attempt count carries on: {before} then {failed}"
    );
}
