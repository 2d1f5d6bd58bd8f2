//! A cluster (docs/api.md §13): three `watchwire serve` processes on one PostgreSQL
//! database, killed, stopped and restarted while they work. Every acknowledged event
//! reaches every channel, per-channel order and message numbers hold across handovers,
//! no duplicate while all nodes are healthy, a stop through one node is final on all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::process::GatewayProcess;
use crate::common::proxy::Proxy;
use crate::common::store;
use crate::common::*;
use test_support::Schema;

/// The lease of the test clusters: short, so failover tests take seconds.
pub(crate) const LEASE: Duration = Duration::from_secs(2);

/// Nodes on one database; a node may be down (`None`) and started again.
/// Fields drop in order: the nodes stop before their database goes.
pub(crate) struct Cluster {
    nodes: Vec<Option<GatewayProcess>>,
    dirs: Vec<tempfile::TempDir>,
    /// The `--database-url` each node starts with (the database's, or a proxy's).
    urls: Vec<String>,
    /// Their `--lease-ttl`.
    lease: Duration,
    /// Options every node starts with, besides the cluster's own.
    extra: Vec<String>,
    pub(crate) database: Schema,
}

impl Cluster {
    /// `count` nodes, or `None` when this run has no test database (see `store`). A run
    /// on PostgreSQL (the suite's repeat, or `WATCHWIRE_TEST_STORE=postgres`) skips
    /// these: they bring their own cluster, whatever the store, so the plain pass runs
    /// them.
    pub(crate) fn start(count: usize, tag: &str) -> Option<Cluster> {
        Cluster::start_leased(count, tag, LEASE)
    }

    /// As [`Cluster::start`], with a lease of `lease`.
    pub(crate) fn start_leased(count: usize, tag: &str, lease: Duration) -> Option<Cluster> {
        Cluster::start_with(count, tag, lease, &[])
    }

    /// As [`Cluster::start`], with a lease of `lease` and `extra` options for every node.
    pub(crate) fn start_with(
        count: usize,
        tag: &str,
        lease: Duration,
        extra: &[&str],
    ) -> Option<Cluster> {
        if store::is_postgres() {
            if !store::is_postgres_repeat() {
                test_support::note(
                    "the cluster tests bring their own database and run in the plain pass \
                     (without WATCHWIRE_TEST_STORE), not on PostgreSQL's",
                );
            }
            return None;
        }
        let database = store::shared_schema(tag)?;
        let mut cluster = Cluster {
            nodes: (0..count).map(|_| None).collect(),
            dirs: (0..count).map(|_| tempfile::tempdir().unwrap()).collect(),
            urls: vec![database.url.clone(); count],
            lease,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            database,
        };
        for i in 0..count {
            cluster.up(i);
        }
        Some(cluster)
    }

    /// Starts node `i`. Its deliveries connect from [`node_address`]`(i)`, so a
    /// receiver can tell which node sent what.
    pub(crate) fn up(&mut self, i: usize) {
        let url = format!("--database-url={}", self.urls[i]);
        let node = format!("--node-id=n{i}");
        let lease = format!("--lease-ttl={}ms", self.lease.as_millis());
        let from = format!("--outbound-address={}", node_address(i));
        let mut args = vec![&*url, &*node, &*lease, &*from, "--retry-schedule", "50ms"];
        args.extend(self.extra.iter().map(String::as_str));
        self.nodes[i] = Some(GatewayProcess::start(self.dirs[i].path(), &args));
    }

    /// Node `i` reaches the database through `proxy` from its next start.
    pub(crate) fn route_through(&mut self, i: usize, proxy: &Proxy) {
        let url = &self.database.url;
        // The URL names the server as host[:port] right after its '@' (or "//").
        let start = url
            .find('@')
            .map_or(url.find("//").unwrap() + 2, |at| at + 1);
        let end = start + url[start..].find(['/', '?']).unwrap_or(url.len() - start);
        self.urls[i] = format!("{}127.0.0.1:{}{}", &url[..start], proxy.port, &url[end..]);
    }

    /// Starts node 0 again, now reaching the database through a proxy the test can
    /// cut or black-hole.
    pub(crate) async fn node_0_behind_proxy(&mut self) -> Proxy {
        let proxy = Proxy::start(self.database_address()).await;
        self.sigterm(0);
        self.route_through(0, &proxy);
        self.up(0);
        proxy
    }

    /// Where the database listens, as this process can reach it.
    pub(crate) fn database_address(&self) -> std::net::SocketAddr {
        let config: tokio_postgres::Config = self.database.url.parse().unwrap();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_string(),
        };
        let host = if host == "localhost" {
            "127.0.0.1".into()
        } else {
            host
        };
        format!("{host}:{port}").parse().unwrap()
    }

    pub(crate) fn node(&self, i: usize) -> &GatewayProcess {
        self.nodes[i].as_ref().expect("node is up")
    }

    pub(crate) fn kill9(&mut self, i: usize) {
        self.nodes[i].take().expect("node is up").kill9();
    }

    /// SIGTERM, and waits for the node to exit.
    pub(crate) fn sigterm(&mut self, i: usize) {
        let mut node = self.nodes[i].take().expect("node is up");
        nix::sys::signal::kill(node.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
        assert!(
            node.child.wait().unwrap().success(),
            "node n{i} exits cleanly"
        );
    }

    /// Which node delivers a channel, as any node says.
    pub(crate) async fn owner(&self, asked: usize, id: &str) -> Option<String> {
        let shown = self
            .node(asked)
            .get(&format!("/v1/channels/{id}"))
            .await
            .expect(200);
        shown.json["delivery"]["node"].as_str().map(str::to_string)
    }
}

/// The loopback address node `i` delivers from.
pub(crate) fn node_address(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, 0, 10 + i as u8)
}

/// What one receiver saw: message numbers in arrival order, and per event index the
/// numbers it came with.
#[derive(Default)]
struct Seen {
    numbers: Vec<u64>,
    by_event: BTreeMap<i64, BTreeSet<u64>>,
}

/// A receiver that records what arrives, on its own task.
fn recording(rx: Arc<Receiver>, seen: Arc<Mutex<Seen>>, running: Arc<AtomicBool>) {
    tokio::spawn(async move {
        while running.load(Ordering::SeqCst) {
            let Ok(got) = tokio::time::timeout(Duration::from_millis(100), rx.next_quietly()).await
            else {
                continue;
            };
            let Some(got) = got else { continue };
            let mut seen = seen.lock().unwrap();
            seen.numbers.push(got.number());
            if let Some(i) = got.body_json_opt().and_then(|b| b["i"].as_i64()) {
                seen.by_event.entry(i).or_default().insert(got.number());
            }
        }
    });
}

/// Publishes event `i` (`{"i": i}` on `resource`) every `every`, to the nodes in
/// `apis` in turn (skipping those set to `None` while they are down), until stopped;
/// remembers which were acknowledged.
struct Publisher {
    publishing: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeSet<i64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    fn start(apis: Arc<Mutex<Vec<Option<Api>>>>, resource: &'static str, every: Duration) -> Self {
        let publishing = Arc::new(AtomicBool::new(true));
        let acked: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
        let task = {
            let (acked, publishing) = (acked.clone(), publishing.clone());
            tokio::spawn(async move {
                let mut i = 0i64;
                while publishing.load(Ordering::SeqCst) {
                    let api = {
                        let apis = apis.lock().unwrap();
                        apis[i as usize % apis.len()].clone()
                    };
                    if let Some(api) = api {
                        let body =
                            json!({"resource": resource, "state": "exists", "data": {"i": i}});
                        let sent = api
                            .request(axum::http::Method::POST, "/v1/events")
                            .json(&body)
                            .send()
                            .await;
                        if matches!(sent, Ok(ref r) if r.status() == 200) {
                            acked.lock().unwrap().insert(i);
                        }
                    }
                    i += 1;
                    tokio::time::sleep(every).await;
                }
            })
        };
        Publisher {
            publishing,
            acked,
            task,
        }
    }

    /// Stops publishing; the events that were acknowledged.
    async fn stop(self) -> BTreeSet<i64> {
        self.publishing.store(false, Ordering::SeqCst);
        self.task.await.unwrap();
        self.acked.lock().unwrap().clone()
    }
}

/// The first receipt of each message number came in number order (repeats may come
/// at any time, with their number).
fn first_receipts_in_order(seen: &Seen, what: &str) {
    let mut firsts = BTreeSet::new();
    let first_receipts: Vec<u64> = seen
        .numbers
        .iter()
        .copied()
        .filter(|n| firsts.insert(*n))
        .collect();
    assert!(
        first_receipts.windows(2).all(|w| w[0] < w[1]),
        "{what}: first receipts out of message-number order: {first_receipts:?}"
    );
}

/// Waits until `seen` holds every event of `acked`, failing at `deadline` with the
/// ones that never arrived.
async fn until_all_arrived(
    what: &str,
    seen: &Mutex<Seen>,
    acked: &BTreeSet<i64>,
    deadline: Instant,
) {
    loop {
        let missing: Vec<i64> = {
            let seen = seen.lock().unwrap();
            acked
                .iter()
                .filter(|i| !seen.by_event.contains_key(i))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: acknowledged events {missing:?} never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_created_on_one_node_is_read_and_delivered_through_any() {
    let Some(cluster) = Cluster::start(3, "read") else {
        return;
    };
    let rx = Receiver::start().await;
    let created = cluster.node(0).watch("/c/read", "across", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");
    // Read through another node at once: what one node acknowledged, every node sees.
    let shown = cluster.node(1).get("/v1/channels/across").await.expect(200);
    assert_eq!(shown.json["resourceId"], created["resourceId"]);
    assert!(shown.json["delivery"]["node"].is_string(), "{}", shown.text);
    cluster
        .node(2)
        .publish(json!({"resource": "/c/read/x", "state": "exists"}))
        .await;
    assert_eq!(rx.next().await.state(), "exists");
    let nodes = cluster.node(2).get("/v1/cluster").await.expect(200);
    let listed: Vec<&str> = nodes.json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["n0", "n1", "n2"], "{}", nodes.text);
    assert!(nodes.json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["lastHeartbeat"].is_string()));
    let metrics = cluster.node(1).get("/metrics").await.expect(200);
    assert!(
        metrics.text.contains("node=\"n1\""),
        "per-node metrics carry the node id"
    );
}

/// Publishes round-robin through every node while one node is killed and restarted and
/// another is stopped and restarted: every acknowledged event reaches every channel,
/// first receipts in message-number order, duplicates with their number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_while_nodes_die_and_return() {
    let Some(mut cluster) = Cluster::start(3, "churn") else {
        return;
    };
    // Receivers record until the end; the publisher stops on its own.
    let running = Arc::new(AtomicBool::new(true));
    let mut receivers = Vec::new();
    for c in 0..6 {
        let rx = Arc::new(Receiver::start().await);
        cluster
            .node(c % 3)
            .watch("/c/churn", &format!("churn-{c}"), &rx.url())
            .await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        recording(rx.clone(), seen.clone(), running.clone());
        receivers.push((rx, seen));
    }
    let apis: Arc<Mutex<Vec<Option<Api>>>> = Arc::new(Mutex::new(
        (0..3).map(|i| Some(cluster.node(i).api.clone())).collect(),
    ));
    let publisher = Publisher::start(apis.clone(), "/c/churn/e", Duration::from_millis(5));
    let pause = |ms| tokio::time::sleep(Duration::from_millis(ms));
    pause(500).await;
    apis.lock().unwrap()[0] = None;
    cluster.kill9(0);
    pause(800).await;
    cluster.up(0);
    apis.lock().unwrap()[0] = Some(cluster.node(0).api.clone());
    pause(500).await;
    apis.lock().unwrap()[1] = None;
    cluster.sigterm(1);
    pause(500).await;
    cluster.up(1);
    apis.lock().unwrap()[1] = Some(cluster.node(1).api.clone());
    pause(800).await;
    // Enough events to mean something, however slow a loaded machine publishes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while publisher.acked.lock().unwrap().len() <= 100 {
        assert!(Instant::now() < deadline, "too few publishes went through");
        pause(50).await;
    }
    let acked = publisher.stop().await;

    let deadline = Instant::now() + LEASE * 2 + Duration::from_secs(20);
    for (c, (_, seen)) in receivers.iter().enumerate() {
        until_all_arrived(&format!("channel {c}"), seen, &acked, deadline).await;
        let seen = seen.lock().unwrap();
        for (i, numbers) in &seen.by_event {
            assert_eq!(
                numbers.len(),
                1,
                "channel {c}: event {i} came with numbers {numbers:?}"
            );
        }
        first_receipts_in_order(&seen, &format!("channel {c}"));
    }
    running.store(false, Ordering::SeqCst);
}

/// While every node is healthy, nothing is delivered twice, and channels spread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_cluster_sends_no_duplicates_and_spreads_its_channels() {
    let Some(cluster) = Cluster::start(3, "healthy") else {
        return;
    };
    let running = Arc::new(AtomicBool::new(true));
    let mut receivers = Vec::new();
    for c in 0..9 {
        let rx = Arc::new(Receiver::start().await);
        // All created through one node: the others must still get their share.
        cluster
            .node(0)
            .watch("/c/healthy", &format!("h-{c}"), &rx.url())
            .await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        recording(rx.clone(), seen.clone(), running.clone());
        receivers.push(seen);
    }
    // Wait until the channels spread over the nodes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let nodes = cluster.node(1).get("/v1/cluster").await.expect(200).json;
        let counts: Vec<u64> = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["channels"].as_u64().unwrap())
            .collect();
        if counts.len() == 3 && counts.iter().all(|&c| c >= 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "channels did not spread: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..60 {
        cluster
            .node(i % 3)
            .publish(json!({"resource": "/c/healthy/e", "state": "exists", "data": {"i": i}}))
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for (c, seen) in receivers.iter().enumerate() {
        while seen.lock().unwrap().by_event.len() < 60 {
            assert!(
                Instant::now() < deadline,
                "channel {c} did not get every event"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (c, seen) in receivers.iter().enumerate() {
        let seen = seen.lock().unwrap();
        let mut counts: HashMap<u64, usize> = HashMap::new();
        for n in &seen.numbers {
            *counts.entry(*n).or_default() += 1;
        }
        let twice: Vec<_> = counts.iter().filter(|(_, k)| **k > 1).collect();
        assert!(
            twice.is_empty(),
            "channel {c}: duplicates while healthy: {twice:?}"
        );
    }
    running.store(false, Ordering::SeqCst);
}

/// A stop through one node while another delivers: no attempt starts after the 204.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_through_one_node_is_final_on_the_node_delivering() {
    let Some(cluster) = Cluster::start(2, "stop") else {
        return;
    };
    let rx = Receiver::start().await;
    let created = cluster.node(0).watch("/c/stop", "stopped", &rx.url()).await;
    rx.next().await;
    let owner = cluster.owner(0, "stopped").await.unwrap();
    let (owner, other) = if owner == "n0" { (0, 1) } else { (1, 0) };
    // The receiver fails every attempt, so retries are scheduled every 50 ms.
    rx.respond(|_| (503, vec![]));
    cluster
        .node(owner)
        .publish(json!({"resource": "/c/stop", "state": "exists"}))
        .await;
    rx.next().await;
    rx.next().await;
    let stopped = cluster
        .node(other)
        .stop("stopped", created["resourceId"].as_str().unwrap())
        .await;
    assert_eq!(stopped, 204);
    let answered = Instant::now();
    // Anything started before the 204 arrives within a moment; nothing after.
    while let Ok(got) = tokio::time::timeout(Duration::from_millis(400), rx.next_quietly()).await {
        let Some(got) = got else { break };
        assert!(
            got.at.duration_since(answered) < Duration::from_millis(30),
            "an attempt started {:?} after the stop's 204",
            got.at.duration_since(answered)
        );
    }
}

/// A stream on one node sees every event published through the others, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_node_follows_every_node() {
    let Some(cluster) = Cluster::start(3, "stream") else {
        return;
    };
    let mut stream = cluster.node(0).stream("/v1/watch?resource=/c/stream").await;
    for i in 0..30 {
        cluster
            .node(1 + i % 2)
            .publish(json!({"resource": "/c/stream/e", "state": "exists", "data": {"i": i}}))
            .await;
    }
    let mut last = String::new();
    for i in 0..30 {
        let frame = stream.expect().await;
        assert_eq!(
            frame.json()["data"]["i"],
            i,
            "in cursor order, none missing"
        );
        let id = frame.id.unwrap();
        assert!(id > last);
        last = id;
    }
}

/// Three nodes racing to create one watcher, each given another spelling of its
/// endpoint: one success, two conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_raced_through_three_nodes_is_created_once() {
    let Some(cluster) = Cluster::start(3, "race") else {
        return;
    };
    let spellings = [
        "http://127.0.0.1:9/hook",
        "HTTP://127.0.0.1:09/hook",
        "http://127.0.0.1:9/%68ook",
    ];
    let racers = spellings.iter().enumerate().map(|(i, endpoint)| {
        let body = json!({"pattern": "/c/race", "endpoint": endpoint});
        let api = cluster.node(i).api.clone();
        tokio::spawn(async move { api.post("/v1/watchers", &body).await.status })
    });
    let mut statuses = Vec::new();
    for racer in racers {
        statuses.push(racer.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409]);
}

/// A killed node's channels are delivered again within the lease + 5 s; a node
/// stopped with SIGTERM hands its channels over within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_within_the_lease_and_handover_within_two_seconds() {
    let Some(mut cluster) = Cluster::start(3, "failover") else {
        return;
    };
    let rx = Receiver::start().await;
    cluster.node(0).watch("/c/fail", "moving", &rx.url()).await;
    rx.next().await;
    let owner = |name: String| name.trim_start_matches('n').parse::<usize>().unwrap();
    let first = owner(cluster.owner(0, "moving").await.unwrap());
    let asker = (first + 1) % 3;
    cluster.kill9(first);
    let took = publish_and_time(&cluster.node(asker).api, &rx, 1).await;
    assert!(
        took < LEASE + Duration::from_secs(5),
        "failover took {took:?}"
    );

    let second = owner(cluster.owner(asker, "moving").await.unwrap());
    assert_ne!(second, first);
    let asker = (0..3).find(|i| *i != first && *i != second).unwrap();
    cluster.sigterm(second);
    let took = publish_and_time(&cluster.node(asker).api, &rx, 2).await;
    assert!(
        took < Duration::from_secs(2),
        "graceful handover took {took:?}"
    );
}

/// Notifications `seen` has received so far.
fn received(seen: &Mutex<Seen>) -> usize {
    seen.lock().unwrap().numbers.len()
}

/// Waits until `seen` has received more than `count` notifications.
async fn until_received(seen: &Mutex<Seen>, count: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while received(seen) <= count {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until node `asked` says it delivers channel `id` itself and 20 more
/// notifications arrived since `since`; then how many had arrived and the highest
/// number so far.
async fn until_taken_over(
    cluster: &Cluster,
    asked: usize,
    id: &str,
    seen: &Mutex<Seen>,
    since: usize,
) -> (usize, u64) {
    let deadline = Instant::now() + LEASE + Duration::from_secs(10);
    loop {
        if cluster.owner(asked, id).await.as_deref() == Some(&format!("n{asked}"))
            && received(seen) > since + 20
        {
            let seen = seen.lock().unwrap();
            return (
                seen.numbers.len(),
                seen.numbers.iter().copied().max().unwrap(),
            );
        }
        assert!(Instant::now() < deadline, "channel {id} was not taken over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lets the cluster run on for 3 s, a window in which a node that should start
/// nothing would be seen sending (it may also take channels back for balance, which is
/// a clean handover), then stops the publisher and waits for every acknowledged event.
async fn observe_then_drain(publisher: Publisher, seen: &Mutex<Seen>) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acked = publisher.stop().await;
    let deadline = Instant::now() + LEASE * 2 + Duration::from_secs(10);
    until_all_arrived("the channel", seen, &acked, deadline).await;
}

/// Nothing received from `from` on has a number below `highest` (what the new owner
/// had reached when the old one could run again), and every event came with one number.
fn nothing_went_out_behind(seen: &Seen, from: usize, highest: u64) {
    let stale: Vec<u64> = seen.numbers[from..]
        .iter()
        .copied()
        .filter(|&n| n < highest)
        .collect();
    assert!(
        stale.is_empty(),
        "notifications went out behind the new owner: {stale:?} (it had reached {highest})"
    );
    for (i, numbers) in &seen.by_event {
        assert_eq!(numbers.len(), 1, "event {i} came with numbers {numbers:?}");
    }
}

/// A node that stalls (SIGSTOP) past its lease loses its channels to another node, and
/// when it runs again (SIGCONT) it starts no attempt on them: nothing it still had
/// queued goes out behind the new owner's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_node_starts_nothing_when_it_wakes_after_its_lease() {
    let Some(cluster) = Cluster::start(2, "stall") else {
        return;
    };
    let rx = Arc::new(Receiver::start().await);
    cluster
        .node(0)
        .watch("/c/stall", "stalled", &rx.url())
        .await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let running = Arc::new(AtomicBool::new(true));
    recording(rx.clone(), seen.clone(), running.clone());
    let owner = cluster.owner(0, "stalled").await.expect("owned");
    let stalled = owner.trim_start_matches('n').parse::<usize>().unwrap();
    let other = 1 - stalled;
    let pid = cluster.node(stalled).pid();

    // Events flow through the other node all along, so the stalled one has work queued.
    let apis = Arc::new(Mutex::new(vec![Some(cluster.node(other).api.clone())]));
    let publisher = Publisher::start(apis, "/c/stall/e", Duration::from_millis(10));
    until_received(&seen, 20, "nothing was delivered before the stall").await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    // The other node takes the channel over once the stalled node's lease has lapsed.
    let (resumed_at, highest_before) =
        until_taken_over(&cluster, other, "stalled", &seen, received(&seen)).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    observe_then_drain(publisher, &seen).await;
    running.store(false, Ordering::SeqCst);
    nothing_went_out_behind(&seen.lock().unwrap(), resumed_at, highest_before);
}

/// A node cut off from the database (its connections closed, new ones refused) while
/// the other node still reaches it: its lease runs out, the other node takes its channel
/// over, and once the link is back it starts nothing on that channel behind the new
/// owner; every acknowledged event arrives, first receipts in message-number order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_gives_its_channels_up() {
    let Some(mut cluster) = Cluster::start(2, "partition") else {
        return;
    };
    let proxy = cluster.node_0_behind_proxy().await;
    let rx = Arc::new(Receiver::start().await);
    cluster.node(0).watch("/c/cut", "cut-off", &rx.url()).await;
    assert_eq!(
        cluster.owner(1, "cut-off").await.as_deref(),
        Some("n0"),
        "a channel is delivered by the node that created it"
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let running = Arc::new(AtomicBool::new(true));
    recording(rx.clone(), seen.clone(), running.clone());
    let apis = Arc::new(Mutex::new(vec![Some(cluster.node(1).api.clone())]));
    let publisher = Publisher::start(apis, "/c/cut/e", Duration::from_millis(10));
    until_received(&seen, 20, "nothing was delivered before the cut").await;
    proxy.cut();
    let (healed_at, highest_before) =
        until_taken_over(&cluster, 1, "cut-off", &seen, received(&seen)).await;
    proxy.heal();
    // Node 0 reconnects, learns it was taken for dead, and joins again.
    observe_then_drain(publisher, &seen).await;
    running.store(false, Ordering::SeqCst);
    {
        let seen = seen.lock().unwrap();
        nothing_went_out_behind(&seen, healed_at, highest_before);
        first_receipts_in_order(&seen, "the channel");
    }
    let nodes = cluster.node(1).get("/v1/cluster").await.expect(200).json;
    assert_eq!(
        nodes["nodes"].as_array().unwrap().len(),
        2,
        "the node cut off joined again: {nodes}"
    );
}

/// Publishes event `i` and waits for its delivery: how long that took.
async fn publish_and_time(api: &Api, rx: &Receiver, i: i64) -> Duration {
    let sent = Instant::now();
    api.publish(json!({"resource": "/c/fail", "state": "exists", "data": {"i": i}}))
        .await;
    loop {
        if rx.next().await.body_json_opt().is_some_and(|b| b["i"] == i) {
            return sent.elapsed();
        }
    }
}
