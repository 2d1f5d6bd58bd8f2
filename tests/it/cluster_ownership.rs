//! Who delivers what in a cluster (docs/api.md §13), seen from the receivers' side.
//! Every node delivers from an address of its own (`--outbound-address`), so a receiver
//! knows which node sent each attempt; a trigger in the test's schema logs every change
//! of a channel's owner with the database's clock. Each attempt must come from the node
//! that owned its channel at that moment: a node never starts an attempt on a channel
//! another node has taken. Dead endpoints must not cost a healthy node its lease, a slow
//! node must not attempt behind the new owner's back, and a node that joins gets its
//! share of the channels.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::cluster::{node_address, Cluster, LEASE};
use crate::common::Api;

/// One attempt a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) channel: String,
    pub(crate) node: usize,
    /// Wall-clock ms when it arrived (the database's clock is this machine's too).
    pub(crate) at_ms: i64,
    pub(crate) number: u64,
    /// The `i` of the event's body, if it has one.
    pub(crate) event: Option<i64>,
}

/// How an endpoint answers.
#[derive(Clone, Copy)]
pub(crate) enum Answer {
    Accept,
    Fail,
    /// Reads the request and never answers.
    Hang,
    /// Accepts after a while.
    After(Duration),
}

/// Every attempt that reached one of the test's endpoints.
#[derive(Clone, Default)]
pub(crate) struct Attempts(Arc<Mutex<Vec<Attempt>>>);

impl Attempts {
    /// An endpoint on its own port that records each attempt and answers with `answer`.
    pub(crate) async fn endpoint(&self, answer: Answer) -> String {
        async fn handle(
            State((attempts, answer)): State<(Attempts, Answer)>,
            ConnectInfo(peer): ConnectInfo<SocketAddr>,
            request: axum::extract::Request,
        ) -> StatusCode {
            // When the attempt started: its head has arrived. Its body may come later,
            // when the node sending it was stopped in between.
            let at_ms = wall_ms();
            let (parts, body) = request.into_parts();
            let headers: HeaderMap = parts.headers;
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            let std::net::IpAddr::V4(from) = peer.ip() else {
                panic!("an attempt from {peer}")
            };
            attempts.0.lock().unwrap().push(Attempt {
                channel: header("x-goog-channel-id"),
                node: (from.octets()[3] - node_address(0).octets()[3]) as usize,
                at_ms,
                number: header("x-goog-message-number").parse().unwrap_or(0),
                event: serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|b| b["i"].as_i64()),
            });
            match answer {
                Answer::Accept => StatusCode::NO_CONTENT,
                Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR,
                Answer::Hang => std::future::pending().await,
                Answer::After(wait) => {
                    tokio::time::sleep(wait).await;
                    StatusCode::NO_CONTENT
                }
            }
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state((self.clone(), answer));
        receivers().spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        url
    }

    pub(crate) fn all(&self) -> Vec<Attempt> {
        self.0.lock().unwrap().clone()
    }
}

/// The runtime the endpoints answer on: threads of their own, so that an attempt is
/// logged when it arrives however busy the test's own runtime is (an arrival logged
/// late would look like an attempt made after a takeover).
fn receivers() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("attempt-log")
            .enable_all()
            .build()
            .unwrap()
    })
}

pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An address whose connections are refused: a port that was free a moment ago.
fn refusing() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/", listener.local_addr().unwrap())
}

/// An address that drops connection requests without an answer: a listener that never
/// accepts, its queue filled, so the kernel ignores further SYNs. Kept alive by the
/// returned value.
async fn black_hole() -> (String, Vec<tokio::net::TcpStream>, tokio::net::TcpListener) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let address = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    // A backlog of 1 holds two connections; the third SYN goes unanswered.
    while let Ok(Ok(stream)) = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(address),
    )
    .await
    {
        fillers.push(stream);
        assert!(fillers.len() < 16, "the listener's queue never filled");
    }
    (format!("http://{address}/"), fillers, listener)
}

/// The log of owner changes: a trigger on the cluster's `channels` table.
pub(crate) struct OwnershipLog {
    client: tokio_postgres::Client,
}

impl OwnershipLog {
    pub(crate) async fn install(cluster: &Cluster) -> OwnershipLog {
        let (client, connection) =
            tokio_postgres::connect(&cluster.database.url, tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE TABLE test_ownership (id TEXT, node TEXT, at_ms INT8, n BIGSERIAL);
                 CREATE FUNCTION test_log_owner() RETURNS trigger AS $$ BEGIN
                   IF TG_OP = 'INSERT' OR NEW.owner_node IS DISTINCT FROM OLD.owner_node THEN
                     INSERT INTO test_ownership (id, node, at_ms) VALUES (NEW.id, NEW.owner_node,
                       (extract(epoch from clock_timestamp()) * 1000)::int8);
                   END IF;
                   RETURN NEW;
                 END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER test_log_owner AFTER INSERT OR UPDATE OF owner_node ON channels
                   FOR EACH ROW EXECUTE FUNCTION test_log_owner();",
            )
            .await
            .unwrap();
        OwnershipLog { client }
    }

    /// Per channel id, its owners in order, each from when.
    pub(crate) async fn history(&self) -> HashMap<String, Vec<(i64, Option<String>)>> {
        let rows = self
            .client
            .query("SELECT id, node, at_ms FROM test_ownership ORDER BY n", &[])
            .await
            .unwrap();
        let mut history: HashMap<String, Vec<(i64, Option<String>)>> = HashMap::new();
        for row in rows {
            history
                .entry(row.get(0))
                .or_default()
                .push((row.get(2), row.get(1)));
        }
        history
    }

    /// Every attempt came from the node that owned its channel when it arrived.
    pub(crate) async fn assert_every_attempt_by_its_owner(&self, attempts: &[Attempt]) {
        let history = self.history().await;
        let mut strays = Vec::new();
        for attempt in attempts {
            let Some(owners) = history.get(&attempt.channel) else {
                strays.push(format!("{attempt:?}: a channel the database never had"));
                continue;
            };
            let owner = owners
                .iter()
                .rev()
                .find(|(from, _)| *from <= attempt.at_ms)
                .and_then(|(_, node)| node.clone());
            if owner.as_deref() != Some(&format!("n{}", attempt.node)) {
                strays.push(format!(
                    "{} #{} from n{} at {} while its owner was {owner:?} (owners: {owners:?})",
                    attempt.channel, attempt.number, attempt.node, attempt.at_ms
                ));
            }
        }
        assert!(
            strays.is_empty(),
            "{} attempts came from a node that did not own the channel:\n{}",
            strays.len(),
            strays[..strays.len().min(10)].join("\n")
        );
    }
}

/// The nodes `GET /v1/cluster` lists: id → (started at, channels owned).
pub(crate) async fn nodes(api: &Api) -> BTreeMap<String, (String, u64)> {
    let listed = api.get("/v1/cluster").await.expect(200).json;
    listed["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                (
                    n["startedAt"].as_str().unwrap().to_string(),
                    n["channels"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Publishes `{"i": i}` on `resource` through the nodes in turn every `every` until
/// stopped; the events acknowledged.
pub(crate) struct Publisher {
    running: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<BTreeSet<i64>>,
}

impl Publisher {
    pub(crate) fn start(apis: Vec<Api>, resource: &'static str, every: Duration) -> Publisher {
        let running = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn({
            let running = running.clone();
            async move {
                let mut acked = BTreeSet::new();
                let mut i = 0i64;
                while running.load(Ordering::SeqCst) {
                    let body = json!({"resource": resource, "state": "exists", "data": {"i": i}});
                    let api = &apis[i as usize % apis.len()];
                    if api.post("/v1/events", &body).await.status == 200 {
                        acked.insert(i);
                    }
                    i += 1;
                    tokio::time::sleep(every).await;
                }
                acked
            }
        });
        Publisher { running, task }
    }

    pub(crate) async fn stop(self) -> BTreeSet<i64> {
        self.running.store(false, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// Waits until every channel in `channels` got every event of `acked`.
pub(crate) async fn until_delivered(
    attempts: &Attempts,
    channels: &[String],
    acked: &BTreeSet<i64>,
) {
    let deadline = Instant::now() + LEASE * 3 + Duration::from_secs(20);
    loop {
        let got: HashMap<&String, BTreeSet<i64>> = {
            let all = attempts.all();
            channels
                .iter()
                .map(|c| {
                    let events = all
                        .iter()
                        .filter(|a| &a.channel == c)
                        .filter_map(|a| a.event)
                        .collect();
                    (c, events)
                })
                .collect()
        };
        let missing: Vec<_> = got
            .iter()
            .map(|(c, events)| (c, acked.difference(events).count()))
            .filter(|(_, n)| *n > 0)
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged events never arrived (channel, how many): {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Hundreds of channels whose endpoints refuse connections, hang, drop connection
/// requests or answer 500, beside channels whose endpoints answer, all created through
/// one node: for several lease periods no healthy node is taken for dead, every attempt
/// comes from its channel's owner, and the answering channels get every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_endpoints_never_cost_a_healthy_node_its_lease() {
    let Some(cluster) = Cluster::start(3, "deadends") else {
        return;
    };
    let ownership = OwnershipLog::install(&cluster).await;
    let attempts = Attempts::default();
    let hanging = [
        attempts.endpoint(Answer::Hang).await,
        attempts.endpoint(Answer::Hang).await,
    ];
    let failing = [
        attempts.endpoint(Answer::Fail).await,
        attempts.endpoint(Answer::Fail).await,
    ];
    let mut holes = Vec::new();
    for _ in 0..3 {
        holes.push(black_hole().await);
    }
    let creator = &cluster.node(0).api;
    let mut dead = 0;
    for c in 0..300 {
        let address = match c % 4 {
            0 => refusing(),
            1 => hanging[c % 2].clone(),
            2 => failing[c % 2].clone(),
            _ => holes[c % 3].0.clone(),
        };
        creator.watch("/d", &format!("dead-{c}"), &address).await;
        dead += 1;
    }
    let mut live = Vec::new();
    for c in 0..6 {
        let id = format!("live-{c}");
        creator
            .watch("/d", &id, &attempts.endpoint(Answer::Accept).await)
            .await;
        live.push(id);
    }
    let before = nodes(creator).await;
    assert_eq!(before.len(), 3, "{before:?}");
    let apis: Vec<Api> = (0..3).map(|i| cluster.node(i).api.clone()).collect();
    let publisher = Publisher::start(apis, "/d/e", Duration::from_millis(50));
    // Five lease periods, watched from another node.
    let until = Instant::now() + LEASE * 5;
    while Instant::now() < until {
        let now = nodes(&cluster.node(1).api).await;
        let started: Vec<_> = now.iter().map(|(id, (s, _))| (id, s)).collect();
        let first: Vec<_> = before.iter().map(|(id, (s, _))| (id, s)).collect();
        assert_eq!(
            started, first,
            "a healthy node was taken for dead and joined again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acked = publisher.stop().await;
    until_delivered(&attempts, &live, &acked).await;
    let owned: u64 = nodes(creator).await.values().map(|(_, c)| c).sum();
    assert_eq!(
        owned,
        dead + live.len() as u64,
        "every channel has an owner"
    );
    ownership
        .assert_every_attempt_by_its_owner(&attempts.all())
        .await;
    drop(holes);
}

/// A node whose event loop crawls (stopped and continued over and over, so its timers
/// and renewals run late), then is cut off from the database while it runs on, with
/// deliveries going on and half the endpoints failing (attempts wait for their backed-off
/// hosts) and some channels paced to one attempt a second (a worker waits for its next
/// slot with the lease already checked): whatever happens to its lease, every attempt
/// comes from the node that owned the channel at that moment, and every acknowledged
/// event arrives. The node cut off keeps running, so an attempt it starts reaches its
/// receiver at once: one that arrived after the takeover was started after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_node_never_attempts_a_channel_it_no_longer_owns() {
    let Some(mut cluster) = Cluster::start(2, "slow") else {
        return;
    };
    let proxy = cluster.node_0_behind_proxy().await;
    let ownership = OwnershipLog::install(&cluster).await;
    let attempts = Attempts::default();
    let mut live = Vec::new();
    // Three failing channels to one answering, through both nodes, so each node owns
    // some of each.
    for c in 0..32 {
        let id = format!("slow-{c}");
        let answer = if c % 4 == 0 {
            Answer::Accept
        } else {
            Answer::Fail
        };
        cluster
            .node((c / 4) % 2)
            .watch("/s", &id, &attempts.endpoint(answer).await)
            .await;
        if c % 4 == 0 {
            live.push(id);
        }
    }
    for c in 0..8 {
        let address = attempts.endpoint(Answer::Accept).await;
        cluster
            .node(c % 2)
            .watch_with(
                "/s",
                json!({"id": format!("paced-{c}"), "type": "web_hook", "address": address,
                       "params": {"maxRate": "1"}}),
            )
            .await;
    }
    let apis = vec![cluster.node(1).api.clone()];
    let publisher = Publisher::start(apis, "/s/e", Duration::from_millis(20));
    // Node 0 runs a fifth of the time, in slices shorter than a lease's safety margin,
    // for four lease periods, then runs freely again.
    let pid = cluster.node(0).pid();
    tokio::task::spawn_blocking(move || {
        let until = Instant::now() + LEASE * 4;
        while Instant::now() < until {
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    // Then cut off past its lease: node 1 takes everything over while node 0's
    // workers wait for their hosts and their slots.
    proxy.cut();
    tokio::time::sleep(LEASE * 2 + Duration::from_secs(1)).await;
    proxy.heal();
    tokio::time::sleep(LEASE).await;
    let acked = publisher.stop().await;
    until_delivered(&attempts, &live, &acked).await;
    ownership
        .assert_every_attempt_by_its_owner(&attempts.all())
        .await;
}

/// Whether the channels are spread as evenly as they can be over `count` nodes.
fn spread(counts: &BTreeMap<String, (String, u64)>, count: usize) -> bool {
    let owned: Vec<u64> = counts.values().map(|(_, c)| *c).collect();
    owned.len() == count && owned.iter().max().unwrap() - owned.iter().min().unwrap() <= 1
}

/// Waits until `GET /v1/cluster` shows the channels spread evenly over `count` nodes.
pub(crate) async fn until_spread(api: &Api, count: usize, what: &str) {
    let deadline = Instant::now() + LEASE * 6;
    loop {
        let now = nodes(api).await;
        if spread(&now, count) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ten channels created through one node spread evenly over three; a node that stops
/// and starts again gets its share back within a few lease periods; through it all no
/// event is delivered twice and every attempt comes from the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_spread_evenly_and_a_node_that_rejoins_gets_its_share() {
    let Some(mut cluster) = Cluster::start(3, "spread") else {
        return;
    };
    let ownership = OwnershipLog::install(&cluster).await;
    let attempts = Attempts::default();
    let mut live = Vec::new();
    for c in 0..10 {
        let id = format!("spread-{c}");
        cluster
            .node(0)
            .watch("/r", &id, &attempts.endpoint(Answer::Accept).await)
            .await;
        live.push(id);
    }
    until_spread(
        &cluster.node(1).api,
        3,
        "channels did not spread over three",
    )
    .await;
    let apis = vec![cluster.node(0).api.clone(), cluster.node(1).api.clone()];
    let publisher = Publisher::start(apis, "/r/e", Duration::from_millis(20));
    cluster.sigterm(2);
    until_spread(&cluster.node(1).api, 2, "channels did not spread over two").await;
    cluster.up(2);
    until_spread(
        &cluster.node(1).api,
        3,
        "the node that rejoined got no share",
    )
    .await;
    let acked = publisher.stop().await;
    until_delivered(&attempts, &live, &acked).await;
    let all = attempts.all();
    let mut twice = Vec::new();
    let mut per_channel: HashMap<(&str, u64), usize> = HashMap::new();
    for attempt in &all {
        *per_channel
            .entry((&attempt.channel, attempt.number))
            .or_default() += 1;
    }
    twice.extend(per_channel.iter().filter(|(_, n)| **n > 1));
    assert!(twice.is_empty(), "delivered twice while healthy: {twice:?}");
    ownership.assert_every_attempt_by_its_owner(&all).await;
}
