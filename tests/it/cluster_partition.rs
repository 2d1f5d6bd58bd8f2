//! A node whose link to the database goes silent (docs/api.md §13, "Database trouble"):
//! packets vanish without a reset, so nothing tells the node its connections are dead.
//! Node 0 of three reaches the database through a proxy that black-holes it: its
//! connections stay open and silent. When the link returns they either go on (it came
//! back in time) or stay silent for good (a firewall on the way forgot them) while new
//! ones work. Deliveries go on to receivers that log which node sent each attempt
//! (`cluster_ownership.rs`); events are published through the healthy nodes.
//!
//! The others take node 0's channels over within `--lease-ttl` + 5 s; node 0 starts
//! nothing once its lease would have lapsed, so no channel gets attempts from two
//! nodes; its API answers `503` instead of hanging; when the link returns it rejoins,
//! gets channels again, hears the other nodes and takes publishes; nothing
//! acknowledged is lost.

use std::collections::{BTreeSet, HashMap};
use std::future::ready;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::{Cluster, LEASE};
use crate::cluster_ownership::{
    nodes, until_delivered, until_spread, wall_ms, Answer, Attempt, Attempts, OwnershipLog,
    Publisher,
};
use crate::common::proxy::Held;
use crate::common::Api;

/// How the receivers answer: quickly, but not at once, so that a burst takes seconds.
const ANSWER: Answer = Answer::After(Duration::from_millis(10));
/// The burst published right before the link goes silent (its `i`s).
const BURST: std::ops::Range<i64> = 1_000_000..1_000_300;
/// How long a call that needs the database may take before it answers `503` (the
/// gateway's deadline, 5 s), with a second for the test's own scheduling.
const ANSWER_WITHIN: Duration = Duration::from_secs(6);
/// How soon after the link returns the node must be back: it notices at its next
/// renewal, on a new connection, that it was taken for dead, joins again and claims;
/// its listener pings, finds its connection dead and listens on a new one.
const BACK_WITHIN: Duration = Duration::from_secs(15);
/// Longest the writer waits on one transaction before it gives its connection up
/// (`store::writer`, 30 s): a node writes again at the latest this long after its link
/// went silent, once the link is back.
const WRITER_DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_in_silence_is_taken_over_and_comes_back() {
    silent_link("silent", Held::Lost).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_silent_connections_resume_is_taken_over_and_comes_back() {
    silent_link("resumed", Held::Resume).await;
}

async fn silent_link(tag: &str, held_connections: Held) {
    let Some(mut cluster) = Cluster::start(3, tag) else {
        return;
    };
    let proxy = cluster.node_0_behind_proxy().await;
    let (ownership, attempts) = (OwnershipLog::install(&cluster).await, Attempts::default());
    let channels = watch_through_each(&cluster, &attempts, tag).await;
    let healthy = cluster.node(1).api.clone();
    let partitioned = cluster.node(0).api.clone();
    until_spread(&healthy, 3, "channels did not spread over three").await;
    let publisher = Publisher::start(
        vec![healthy.clone(), cluster.node(2).api.clone()],
        "/p/e",
        Duration::from_millis(20),
    );
    let held = owned_by(&ownership, "n0").await;
    let joined = nodes(&healthy).await["n0"].0.clone();
    // A burst that takes every channel seconds to deliver: node 0 has it in hand when
    // its link goes silent, and only its lease stops it.
    let burst: Vec<_> = BURST
        .map(|i| json!({"resource": "/p/e", "state": "exists", "data": {"i": i}}))
        .collect();
    healthy.publish(json!(burst)).await;
    until("node 0 delivers the burst", Duration::from_secs(10), || {
        let bursting = |a: &Attempt| a.node == 0 && a.event.is_some_and(|i| BURST.contains(&i));
        ready(attempts.all().iter().any(bursting))
    })
    .await;

    let silent_ms = wall_ms();
    proxy.black_hole();
    let calls = tokio::spawn(answers_in_time(partitioned.clone()));
    taken_over(&attempts, &held, silent_ms).await;
    calls.await.unwrap();
    let restored_ms = wall_ms();
    fenced(&attempts.all(), &held, silent_ms, restored_ms);

    proxy.restore(held_connections);
    until("node 0 rejoins and owns channels", BACK_WITHIN, || async {
        let listed = nodes(&healthy).await;
        let rejoined = listed
            .get("n0")
            .is_some_and(|(started, owned)| *started != joined && *owned > 0);
        rejoined && partitioned.get("/v1/cluster").await.status == 200
    })
    .await;
    let back_ms = wall_ms() - restored_ms;
    until("node 0 delivers again", BACK_WITHIN, || {
        ready(
            attempts
                .all()
                .iter()
                .any(|a| a.node == 0 && a.at_ms > restored_ms),
        )
    })
    .await;
    eprintln!(
        "{tag}: node 0 rejoined and owned channels {back_ms} ms after the link returned, \
         delivered again {} ms after",
        wall_ms() - restored_ms
    );
    let mut acked = publisher.stop().await;
    acked.extend(BURST);
    until_delivered(&attempts, &channels, &acked).await;
    hears_the_others(&cluster, &ownership, &attempts, tag).await;
    writes_again(&partitioned, silent_ms, restored_ms, tag).await;
    ownership
        .assert_every_attempt_by_its_owner(&attempts.all())
        .await;
}

/// Twelve channels on `/p`, created through the three nodes in turn, each to an
/// endpoint of its own; their ids.
async fn watch_through_each(cluster: &Cluster, attempts: &Attempts, tag: &str) -> Vec<String> {
    let mut channels = Vec::new();
    for c in 0..12 {
        let id = format!("{tag}-{c}");
        let endpoint = attempts.endpoint(ANSWER).await;
        cluster.node(c % 3).watch("/p", &id, &endpoint).await;
        channels.push(id);
    }
    channels
}

/// Calls on the node cut off that need the database, a read and a write, answer `503
/// backendError` within the gateway's deadline instead of hanging.
async fn answers_in_time(api: Api) {
    let read = async {
        let started = Instant::now();
        (api.get("/v1/cluster").await, started.elapsed())
    };
    let write = async {
        let started = Instant::now();
        let body = json!({"resource": "/p/e", "state": "exists"});
        (api.post("/v1/events", &body).await, started.elapsed())
    };
    let (read, write) = tokio::join!(read, write);
    for (what, (reply, took)) in [("a read", read), ("a publish", write)] {
        eprintln!(
            "silent link: {what} on node 0 answered {} in {took:?}",
            reply.status
        );
        reply.assert_error(503, "backendError");
        assert!(took <= ANSWER_WITHIN, "{what} took {took:?}");
    }
}

/// Every channel of `held` gets attempts from another node within `--lease-ttl` + 5 s
/// of the link going silent at `silent_ms`.
async fn taken_over(attempts: &Attempts, held: &[String], silent_ms: i64) {
    let lapse = LEASE + Duration::from_secs(5);
    let within = lapse + Duration::from_secs(1);
    until("the others take node 0's channels over", within, || {
        let all = attempts.all();
        ready(
            held.iter()
                .all(|c| first_by_another(&all, c, silent_ms).is_some()),
        )
    })
    .await;
    let all = attempts.all();
    let taken_ms = held
        .iter()
        .map(|c| first_by_another(&all, c, silent_ms).unwrap() - silent_ms)
        .max()
        .unwrap();
    let last_ms = all
        .iter()
        .filter(|a| a.node == 0)
        .map(|a| a.at_ms - silent_ms)
        .max()
        .unwrap();
    eprintln!(
        "silent link: {} channels taken over {taken_ms} ms after the link went silent; \
         node 0's last attempt arrived at {last_ms} ms",
        held.len()
    );
    assert!(
        taken_ms <= lapse.as_millis() as i64,
        "taken over after {taken_ms} ms, beyond --lease-ttl + 5 s"
    );
}

/// Between the link going silent and its return, node 0 started nothing once its lease
/// would have lapsed (it was renewed last before the silence), and nothing on a
/// channel after another node's first attempt on it.
fn fenced(all: &[Attempt], held: &[String], silent_ms: i64, restored_ms: i64) {
    let lapsed_ms = silent_ms + LEASE.as_millis() as i64;
    let late: Vec<&Attempt> = all
        .iter()
        .filter(|a| a.node == 0 && (lapsed_ms..restored_ms).contains(&a.at_ms))
        .collect();
    assert!(
        late.is_empty(),
        "node 0 attempted after its lease would have lapsed: {late:?}"
    );
    for channel in held {
        let taken = first_by_another(all, channel, silent_ms).unwrap();
        let behind: Vec<&Attempt> = all
            .iter()
            .filter(|a| &a.channel == channel && a.node == 0)
            .filter(|a| (taken..restored_ms).contains(&a.at_ms))
            .collect();
        assert!(
            behind.is_empty(),
            "node 0 attempted {channel} after another node took it over at {taken}: {behind:?}"
        );
    }
}

/// Node 0 hears messages from the others again: a replay asked through another node of
/// a channel node 0 delivers reaches it. Its listener's connection went silent with the
/// link; it must have noticed and listen on a new one.
async fn hears_the_others(
    cluster: &Cluster,
    ownership: &OwnershipLog,
    attempts: &Attempts,
    tag: &str,
) {
    let healthy = &cluster.node(1).api;
    let channel = owned_by(ownership, "n0")
        .await
        .pop()
        .expect("node 0 owns channels again");
    let mut cursors = Vec::new();
    for marker in [-1, -2] {
        let body = json!({"resource": "/p/e", "state": "exists", "data": {"i": marker}});
        let published = healthy.publish(body).await;
        cursors.push(published["cursor"].as_str().unwrap().to_string());
    }
    let delivered = |a: &&Attempt| a.channel == channel && a.event == Some(-2) && a.node == 0;
    until("node 0 delivers the markers", BACK_WITHIN, || {
        ready(attempts.all().iter().any(|a| delivered(&a)))
    })
    .await;
    let replay = json!({"since": cursors[0]});
    let path = format!("/v1/channels/{channel}/replay");
    let asked = Instant::now();
    until(
        "node 0 hears a replay asked through node 1",
        BACK_WITHIN,
        || async {
            healthy.post(&path, &replay).await.expect(202);
            let heard = Instant::now() + Duration::from_millis(500);
            while Instant::now() < heard {
                if attempts.all().iter().filter(delivered).count() > 1 {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        },
    )
    .await;
    eprintln!(
        "{tag}: node 0 heard a replay {:?} after it was first asked",
        asked.elapsed()
    );
}

/// Node 0 takes publishes again, at the latest once its writer gave up the transaction
/// the silence caught.
async fn writes_again(api: &Api, silent_ms: i64, restored_ms: i64, tag: &str) {
    let body = json!({"resource": "/p/e", "state": "exists"});
    let by_ms = silent_ms + (WRITER_DEADLINE + ANSWER_WITHIN).as_millis() as i64;
    let within = Duration::from_millis((by_ms - wall_ms()).max(0) as u64);
    until("node 0 takes publishes again", within, || async {
        api.post("/v1/events", &body).await.status == 200
    })
    .await;
    eprintln!(
        "{tag}: node 0 takes publishes again {} ms after the link returned",
        wall_ms() - restored_ms
    );
}

/// The channels whose latest owner in the log is `node`.
async fn owned_by(ownership: &OwnershipLog, node: &str) -> Vec<String> {
    let history: HashMap<String, Vec<(i64, Option<String>)>> = ownership.history().await;
    let owned: BTreeSet<String> = history
        .into_iter()
        .filter(|(_, owners)| owners.last().and_then(|(_, n)| n.as_deref()) == Some(node))
        .map(|(id, _)| id)
        .collect();
    assert!(!owned.is_empty(), "{node} owns no channel");
    owned.into_iter().collect()
}

/// When the first attempt on `channel` by a node other than 0 arrived at or after
/// `from_ms`.
fn first_by_another(attempts: &[Attempt], channel: &str, from_ms: i64) -> Option<i64> {
    attempts
        .iter()
        .filter(|a| a.channel == channel && a.node != 0 && a.at_ms >= from_ms)
        .map(|a| a.at_ms)
        .min()
}

/// Polls `done` until it holds; fails after `within`, naming `what`.
async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
