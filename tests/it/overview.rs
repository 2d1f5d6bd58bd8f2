//! `GET /v1/overview` (docs/api.md §12.2): the last hour per wall-clock minute of
//! notifications delivered, attempts failed and events published, the backlog, the
//! failing channels and hosts; in a cluster, the sum of every node's part, with a node
//! that does not answer named as missing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::common::*;

const MINUTE_MS: i64 = 60_000;

/// The overview `api` answers with `query`, once `ready` holds for it.
async fn overview_once(api: &Api, query: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/v1/overview{query}");
    api.get_until(&path, "the overview awaited", ready).await
}

/// The sum of one series over the hour.
fn total(overview: &Value, series: &str) -> u64 {
    overview["minutes"]
        .as_array()
        .expect("minutes")
        .iter()
        .map(|m| m[series].as_u64().expect("a count"))
        .sum()
}

fn ms(rfc3339: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().expect("a time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

/// Sixty minutes, oldest first, on the wall clock's whole minutes, the last holding
/// `at`; what was counted in this test (seconds long) is in the last two.
fn assert_aligned(overview: &Value) {
    let minutes = overview["minutes"].as_array().expect("minutes");
    assert_eq!(minutes.len(), 60);
    let starts: Vec<i64> = minutes.iter().map(|m| ms(&m["start"])).collect();
    assert!(starts.iter().all(|s| s % MINUTE_MS == 0), "{starts:?}");
    assert!(starts.windows(2).all(|w| w[1] - w[0] == MINUTE_MS));
    let at = ms(&overview["at"]);
    assert!(
        starts[59] <= at && at < starts[59] + MINUTE_MS,
        "{overview}"
    );
    for minute in &minutes[..58] {
        for series in ["delivered", "failed", "published"] {
            assert_eq!(minute[series], 0, "{minute}");
        }
    }
}

#[tokio::test]
async fn the_overview_counts_the_minutes_and_names_the_failing_channel_and_host() {
    let gw = Gateway::start().await;
    let ok = Receiver::start().await;
    let bad = Receiver::start().await;
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    bad.respond(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        (500, vec![])
    });
    gw.watch("/ov/ok", "ov-ok", &ok.url()).await;
    let failing = gw.watch("/ov/bad", "ov-bad", &bad.url()).await;
    assert_eq!(ok.next().await.state(), "sync");
    assert_eq!(bad.next().await.state(), "sync");

    let n = 3;
    let m = 2;
    let events = |resource: &str, count: usize| {
        Value::Array(
            (0..count)
                .map(|i| json!({"resource": resource, "state": "exists", "data": {"i": i}}))
                .collect(),
        )
    };
    // Published once, whatever a retry with the same Idempotency-Key does.
    for _ in 0..2 {
        gw.header("idempotency-key", "overview-1")
            .post("/v1/events", &events("/ov/ok/e", n))
            .await
            .expect(200);
    }
    gw.publish(events("/ov/bad/e", m)).await;
    ok.take(n).await;

    let bad_host = format!("http://{}", bad.addr);
    let overview = overview_once(&gw, "", |o| {
        total(o, "delivered") == n as u64 + 1
            && o["backlog"] == m as u64 + 1
            && o["failingHosts"]
                .as_array()
                .is_some_and(|hosts| hosts.iter().any(|h| h["host"] == bad_host.as_str()))
    })
    .await;
    assert_aligned(&overview);
    assert_eq!(total(&overview, "published"), (n + m) as u64);
    assert!(total(&overview, "failed") >= 1, "{overview:#}");
    let node = overview["nodes"][0].as_str().unwrap().to_string();
    assert_eq!(overview["nodes"], json!([node]));
    assert_eq!(overview["missing"], json!([]));

    // The failing channel, with what an operator needs to act, and no more.
    assert_eq!(overview["failingChannelCount"], 1, "{overview:#}");
    let channel = &overview["failingChannels"][0];
    assert_eq!(channel["id"], "ov-bad");
    assert_eq!(channel["owner"], "dev");
    assert_eq!(channel["address"], failing["address"]);
    assert_eq!(channel["enabled"], true);
    assert_eq!(channel["pendingCount"], m as u64 + 1);
    assert_eq!(channel["lastError"]["reason"], "httpStatus");
    assert_eq!(channel["lastError"]["status"], 500);
    assert!(ms(&channel["failingSince"]) <= ms(&overview["at"]));
    // `node` is there in a cluster (the PostgreSQL store makes one of one), only.
    assert_eq!(
        channel.get("node").is_some(),
        store::is_postgres(),
        "{channel}"
    );
    // The failing host; the answering one is not in trouble.
    let ok_host = format!("http://{}", ok.addr);
    let hosts = overview["failingHosts"].as_array().unwrap();
    assert!(
        hosts.iter().all(|h| h["host"] != ok_host.as_str()),
        "{hosts:?}"
    );
    let host = hosts
        .iter()
        .find(|h| h["host"] == bad_host.as_str())
        .unwrap();
    assert!(host["failures"].as_u64().unwrap() >= 1, "{host}");
    assert!(
        ["open", "backingOff"].contains(&host["state"].as_str().unwrap()),
        "{host}"
    );

    // Stopped, it owes nothing and fails no more; every attempt it made was counted.
    let resource_id = failing["resourceId"].as_str().unwrap();
    assert_eq!(gw.stop("ov-bad", resource_id).await, 204);
    let overview = overview_once(&gw, "", |o| {
        total(o, "failed") == refused.load(Ordering::SeqCst) as u64
    })
    .await;
    assert_eq!(overview["backlog"], 0, "{overview:#}");
    assert_eq!(overview["failingChannelCount"], 0);
    assert_eq!(overview["failingChannels"], json!([]));
    assert_eq!(total(&overview, "delivered"), n as u64 + 1);
    // On one node, its own part is the whole.
    let local = gw.get("/v1/overview?local=true").await.expect(200).json;
    assert_eq!(local["nodes"], json!([node]));
    assert_eq!(total(&local, "published"), (n + m) as u64);
}

#[tokio::test]
async fn the_overview_is_an_operators_and_strict() {
    let gw = Gateway::keyed(|_| {}).await;
    gw.get("/v1/overview").await.assert_error(401, "required");
    gw.key(keys::PHOTOS_SUBSCRIBER)
        .get("/v1/overview")
        .await
        .assert_error(403, "forbidden");
    let admin = gw.key(keys::OPS);
    let overview = admin.get("/v1/overview").await.expect(200).json;
    assert_aligned(&overview);
    assert_eq!(overview["backlog"], 0);
    for query in ["?local=maybe", "?node=local", "?local=true&local=true"] {
        admin
            .get(&format!("/v1/overview{query}"))
            .await
            .assert_error(400, "invalidParameter");
    }
    // Nothing else of the gateway counts into another gateway's overview.
    let other = Gateway::start().await;
    other
        .publish(json!({"resource": "/elsewhere", "state": "exists"}))
        .await;
    assert_eq!(
        total(
            &admin.get("/v1/overview").await.expect(200).json,
            "published"
        ),
        0
    );
}

/// Three nodes: each counts its own, any one sums them all; a dead node is named as
/// missing and the others are still summed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clusters_overview_sums_its_nodes_and_names_a_dead_one() {
    // A long lease: the dead node stays listed while the test asks.
    let Some(mut cluster) = Cluster::start_leased(3, "overview", Duration::from_secs(60)) else {
        return;
    };
    let rx = Receiver::start().await;
    cluster
        .node(0)
        .watch("/c/ov", "ov-cluster", &rx.url())
        .await;
    assert_eq!(rx.next().await.state(), "sync");
    let published = [2, 3, 4];
    for (i, count) in published.iter().enumerate() {
        let batch: Vec<Value> = (0..*count)
            .map(|e| json!({"resource": "/c/ov/e", "state": "exists", "data": {"node": i, "e": e}}))
            .collect();
        cluster.node(i).publish(Value::Array(batch)).await;
    }
    rx.take(9).await;
    for (i, count) in published.iter().enumerate() {
        let local = cluster
            .node(i)
            .get("/v1/overview?local=true")
            .await
            .expect(200)
            .json;
        assert_eq!(local["nodes"], json!([format!("n{i}")]));
        assert_eq!(total(&local, "published"), *count as u64, "{local:#}");
    }
    // Whichever node delivers the channel, the sum holds every delivery.
    let summed = overview_once(cluster.node(1), "", |o| total(o, "delivered") == 10).await;
    assert_aligned(&summed);
    assert_eq!(total(&summed, "published"), 9);
    let mut nodes: Vec<&str> = summed["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["n0", "n1", "n2"]);
    assert_eq!(summed["missing"], json!([]));

    let dead_address = cluster.node(2).url.clone();
    cluster.kill9(2);
    let summed = cluster.node(0).get("/v1/overview").await.expect(200).json;
    assert_eq!(total(&summed, "published"), 5, "{summed:#}");
    let missing = summed["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{summed:#}");
    assert_eq!(missing[0]["id"], "n2");
    assert_eq!(missing[0]["address"], dead_address.as_str());
    assert!(missing[0]["reason"].as_str().unwrap().len() > 10);
    assert!(!summed["nodes"].as_array().unwrap().contains(&json!("n2")));
}
