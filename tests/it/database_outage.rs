//! PostgreSQL stopped and started under publish load through two nodes of one gateway
//! (docs/api.md §13, "Database trouble"): while the database is down every call that
//! needs it answers `503 backendError` within 5 s and `/healthz` answers `503`; the
//! nodes keep running, reconnect by themselves once the database is back, and lose
//! nothing they acknowledged.
//!
//! The test runs a PostgreSQL server of its own (`test_support::PrivatePostgres`), so
//! stopping it disturbs nothing else on the machine.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use test_support::PrivatePostgres;

use crate::common::process::GatewayProcess;
use crate::common::*;

/// Polls `done` until it holds; fails after 30 s naming `what`.
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_under_publish_load() {
    if crate::common::store::is_postgres_repeat() {
        return; // It brings its own PostgreSQL, whatever the store: the first pass ran it.
    }
    let Some(database) = PrivatePostgres::create("the database outage test") else {
        return;
    };
    // Two nodes of one gateway on it: the outage hits the cluster, not one process.
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let url = format!("--database-url={}", database.url());
    let nodes: Vec<GatewayProcess> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            GatewayProcess::start(dir.path(), &[&url, &format!("--node-id=outage-{i}")])
        })
        .collect();
    let gateway = &nodes[0];
    let rx = Receiver::start().await;
    gateway.watch("/outage", "through", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");

    // Publishers that never stop until told: what got a 200 must arrive.
    let acked: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let refused = Arc::new(Mutex::new(0usize));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut publishers = Vec::new();
    for p in 0..4i64 {
        let (api, acked, slowest, refused, running) = (
            nodes[p as usize % 2].api.clone(),
            acked.clone(),
            slowest.clone(),
            refused.clone(),
            running.clone(),
        );
        publishers.push(tokio::spawn(async move {
            let mut k = 0;
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                let i = p * 1_000_000 + k;
                k += 1;
                let started = Instant::now();
                let reply = api
                    .post("/v1/events", &json!({"resource": format!("/outage/{i}"), "state": "exists", "data": {"i": i}}))
                    .await;
                let took = started.elapsed();
                {
                    let mut slowest = slowest.lock().unwrap();
                    *slowest = (*slowest).max(took);
                }
                match reply.status {
                    200 => drop(acked.lock().unwrap().insert(i)),
                    503 => {
                        reply.assert_error(503, "backendError");
                        *refused.lock().unwrap() += 1;
                    }
                    other => panic!("publish {i} answered {other}: {}", reply.text),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    wait_for("acknowledged publishes", || {
        acked.lock().unwrap().len() >= 50
    })
    .await;

    database.stop();
    let refused_before = *refused.lock().unwrap();
    wait_for("refusals while the database is down", || {
        *refused.lock().unwrap() >= refused_before + 8
    })
    .await;
    for node in &nodes {
        node.get("/healthz").await.assert_error(503, "backendError");
    }
    let listing = gateway.get("/v1/channels/through").await;
    listing.assert_error(503, "backendError");

    database.start();
    let acked_at_restart = acked.lock().unwrap().len();
    wait_for("publishes acknowledged again", || {
        acked.lock().unwrap().len() >= acked_at_restart + 50
    })
    .await;
    for node in &nodes {
        let mut healthy = false;
        for _ in 0..300 {
            if node.get("/healthz").await.status == 200 {
                healthy = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(healthy, "/healthz recovers once the database is back");
    }
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let slowest = *slowest.lock().unwrap();
    assert!(
        slowest < Duration::from_millis(6500),
        "a call waited {slowest:?} for the unreachable database (5 s is the bound)"
    );

    // Everything acknowledged arrives, before and after the outage.
    let acked = acked.lock().unwrap().clone();
    let mut delivered = BTreeSet::new();
    while !acked.is_subset(&delivered) {
        let got = rx.next().await;
        delivered.insert(got.body_json()["i"].as_i64().unwrap());
    }
}
