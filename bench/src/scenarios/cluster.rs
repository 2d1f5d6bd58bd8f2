//! cluster: `cluster_nodes` gateways on one PostgreSQL schema (docs/api.md §13), every
//! node started as `watchwire serve --database-url <the same URL> --node-id nK
//! --lease-ttl <d>`. Only with `--database-url`.
//!
//! - **Side by side.** The fan-out, publish and latency measurements of
//!   [`fanout::measure`], [`publish::measure`] and [`latency::point`], at the same sizes,
//!   once on one PostgreSQL gateway and once on the cluster: channels created through
//!   the nodes in turn and spread (every node owns some, as `/v1/cluster` says) before
//!   anything is measured, publishes sent through the nodes in turn.
//! - **Failover and handover**, once per `--lease-ttl` of `cluster_lease_ttls`, each on
//!   a fresh cluster: channels spread, events published at a steady rate through the
//!   live nodes, then `kill -9` of the node owning the most channels, and later SIGTERM
//!   of the surviving node owning the most. For each channel of the stopped node: the
//!   time from the signal to its first delivery by another node. A delivery's sender
//!   is told by the connection it arrived on (one process each): the stopped node's
//!   connections are those that carried its channels while ownership stood still.
//! - **Checks** from every notification the receiver recorded: no acknowledged event
//!   lost on any channel (events carry their index), each channel's first receipts in
//!   message-number order, and no duplicate while every node was healthy (duplicates
//!   after a kill are allowed and counted).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::fanout::{self, COLLECTION as FANOUT_COLLECTION};
use super::latency::{self, COLLECTION as LATENCY_COLLECTION};
use super::publish::{self, Publish};
use super::soak::duration_arg;
use super::{create_channels, watched, Ctx};
use crate::clock;
use crate::gateway::Gateway;
use crate::load;
use crate::postgres::{Database, Schema};
use crate::receiver::{Receipt, Receiver};
use crate::report::Check;

/// The collection the channels of the failover runs watch.
const COLLECTION: &str = "/bench/cluster";
/// How long the channels may take to spread over the nodes.
const SPREAD_PATIENCE: Duration = Duration::from_secs(60);
/// How long past its target a takeover is waited for before it counts as missing.
const TAKEOVER_GRACE: Duration = Duration::from_secs(10);
/// A handover's target (docs/api.md §13).
const HANDOVER_TARGET_SECONDS: f64 = 2.0;
/// A failover's target past the lease (docs/api.md §13).
const FAILOVER_MARGIN_SECONDS: f64 = 5.0;
/// How often the scenario looks at what the receiver recorded while it waits.
const POLL: Duration = Duration::from_millis(20);

/// The sizes of the cluster scenario (the side-by-side part also uses the fan-out's
/// channel count, the publish load and the latency scenario's channels and comparison
/// rate).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSizes {
    pub nodes: usize,
    /// Notifications of the side-by-side fan-out (events = this / channels).
    pub fanout_notifications: u64,
    /// How long the side-by-side latency point publishes, seconds.
    pub latency_seconds: f64,
    /// One failover run (a fresh cluster) per lease, seconds.
    pub lease_ttls: Vec<f64>,
    /// Channels of each failover run.
    pub failover_channels: usize,
    /// Events per second published through the live nodes during a failover run, each to
    /// every channel.
    pub failover_rate: u64,
    /// How long every node is healthy and publishing before the kill, seconds (also the
    /// window in which ownership must stand still).
    pub steady_seconds: f64,
}

impl ClusterSizes {
    pub fn full() -> ClusterSizes {
        ClusterSizes {
            nodes: 3,
            fanout_notifications: 150_000,
            latency_seconds: 5.0,
            lease_ttls: vec![10.0, 2.0],
            failover_channels: 30,
            failover_rate: 50,
            steady_seconds: 5.0,
        }
    }

    pub fn quick() -> ClusterSizes {
        ClusterSizes {
            nodes: 3,
            fanout_notifications: 300,
            latency_seconds: 0.5,
            lease_ttls: vec![2.0],
            failover_channels: 6,
            failover_rate: 20,
            steady_seconds: 1.0,
        }
    }
}

impl Default for ClusterSizes {
    fn default() -> ClusterSizes {
        ClusterSizes::full()
    }
}

/// The fan-out, publish and latency figures of one side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    pub fanout: fanout::Point,
    pub publish: Publish,
    pub latency: latency::Point,
    /// Notifications of the latency point that arrived twice.
    pub latency_duplicates: u64,
}

/// One figure on one node and on the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub unit: String,
    pub single: f64,
    pub cluster: f64,
    /// `cluster / single`.
    pub ratio: Option<f64>,
}

/// A node stopped while its channels were delivering, and how soon others took over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Takeover {
    pub lease_ttl_seconds: f64,
    /// `kill -9` or `SIGTERM`.
    pub signal: String,
    pub node: String,
    /// Nodes running before the signal.
    pub nodes_before: usize,
    /// Channels the node delivered when signalled.
    pub channels: usize,
    /// Of those, the channels another node delivered to within the target plus
    /// [`TAKEOVER_GRACE`].
    pub taken_over: usize,
    /// Per channel: from the signal to the first delivery by another node, seconds
    /// (`null`: none came).
    pub seconds: Vec<Option<f64>>,
    pub median_seconds: Option<f64>,
    pub max_seconds: Option<f64>,
    pub target_seconds: f64,
    pub pass: bool,
    /// The nodes delivering its channels afterwards, as `/v1/channels` says, with how
    /// many each.
    pub new_owners: BTreeMap<String, usize>,
}

/// What the receiver got during one failover run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub lease_ttl_seconds: f64,
    pub channels: usize,
    pub rate: u64,
    /// Events acknowledged (`200`), each owed to every channel.
    pub events: u64,
    /// Publishes not answered `200` (the scenario sends none to a node it stops, so any is
    /// a failure of a live node).
    pub publish_failures: u64,
    /// Channels per node when the run began.
    pub spread: BTreeMap<String, usize>,
    /// From creating the channels until every node delivered some, seconds.
    pub spread_seconds: f64,
    /// While every node was healthy: how long, the notifications and the repeats.
    pub healthy_seconds: f64,
    pub healthy_notifications: u64,
    pub healthy_duplicates: u64,
    /// Repeats after the kill (at-least-once allows them: an attempt in flight when the
    /// node died).
    pub duplicates_after_kill: u64,
    /// (channel, acknowledged event) pairs never delivered.
    pub lost: u64,
    /// First receipts below an earlier first receipt on the same channel.
    pub out_of_order: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    pub nodes: usize,
    pub sizes: ClusterSizes,
    pub fanout_channels: usize,
    pub latency_channels: usize,
    pub latency_rate: u64,
    pub publish_connections: usize,
    /// One PostgreSQL gateway.
    pub single: Side,
    /// `nodes` nodes on one schema.
    pub cluster: Side,
    pub side_by_side: Vec<Row>,
    /// `kill -9`, one per lease.
    pub failover: Vec<Takeover>,
    /// SIGTERM, one per lease (after that lease's failover: one node fewer).
    pub handover: Vec<Takeover>,
    pub delivery: Vec<Delivery>,
    /// The targets and the delivery checks, with pass/fail.
    pub checks: Vec<Check>,
}

pub async fn run(ctx: &Ctx, database: &Arc<Database>) -> anyhow::Result<Cluster> {
    let ctx = ctx.on_postgres(database.clone());
    let sizes = ctx.sizes.cluster.clone();
    anyhow::ensure!(sizes.nodes >= 2, "a cluster needs at least two nodes");
    let single = side(&ctx, database, None).await.context("one node")?;
    let cluster = side(&ctx, database, Some(sizes.nodes))
        .await
        .context("the cluster")?;
    let mut failover = Vec::new();
    let mut handover = Vec::new();
    let mut delivery = Vec::new();
    for &ttl in &sizes.lease_ttls {
        let (kill, term, got) = lease_run(&ctx, database, ttl)
            .await
            .with_context(|| format!("failover with --lease-ttl {}", duration_arg(ttl)))?;
        failover.push(kill);
        handover.push(term);
        delivery.push(got);
    }
    let side_by_side = compare(&single, &cluster);
    let checks = checks(&cluster, &failover, &handover, &delivery);
    Ok(Cluster {
        nodes: sizes.nodes,
        fanout_channels: ctx.sizes.fanout_channels,
        latency_channels: ctx.sizes.latency_channels,
        latency_rate: ctx.sizes.latency_compare_rate,
        publish_connections: ctx.sizes.connections,
        sizes,
        single,
        cluster,
        side_by_side,
        failover,
        handover,
        delivery,
        checks,
    })
}

/// The fan-out, publish and latency figures on one gateway (`nodes` = `None`) or on a
/// cluster of `nodes`, each measurement on fresh gateways.
async fn side(ctx: &Ctx, database: &Database, nodes: Option<usize>) -> anyhow::Result<Side> {
    let sizes = &ctx.sizes;
    let label = match nodes {
        Some(n) => format!("{n} nodes"),
        None => "one node".to_string(),
    };
    let what = nodes.map_or("cluster-single".to_string(), |n| format!("cluster-{n}"));

    let channels = sizes.fanout_channels;
    let events = (sizes.cluster.fanout_notifications / channels as u64).max(sizes.batch as u64);
    let (gateways, receiver) = channels_on(
        ctx,
        database,
        nodes,
        &what,
        "fanout",
        channels,
        FANOUT_COLLECTION,
    )
    .await?;
    let fanout = fanout::measure(ctx, gateways.all(), &receiver, channels, events, None).await?;
    gateways.finish(ctx, database).await?;
    println!(
        "  cluster fan-out, {channels} channels ({label}): {:.0} notifications/s ({} in {:.2} s)",
        fanout.delivered_per_second, fanout.notifications, fanout.seconds
    );

    let gateways = Gateways::start(ctx, database, nodes, &what, "publish").await?;
    let publish = publish::measure(ctx, gateways.all(), None).await?;
    gateways.finish(ctx, database).await?;
    println!(
        "  cluster publishes ({label}): {:.0} events/s, ack p50 {:.2} ms p99 {:.2} ms",
        publish.per_second, publish.ack.p50_ms, publish.ack.p99_ms
    );

    let channels = sizes.latency_channels;
    let (gateways, receiver) = channels_on(
        ctx,
        database,
        nodes,
        &what,
        "latency",
        channels,
        LATENCY_COLLECTION,
    )
    .await?;
    let client = load::client(sizes.connections)?;
    latency::warm_up(&client, gateways.all(), sizes.connections).await?;
    let mut expected = 0;
    let latency = latency::point(
        ctx,
        gateways.all(),
        &receiver,
        &client,
        sizes.latency_compare_rate,
        sizes.cluster.latency_seconds,
        &mut expected,
    )
    .await?;
    let latency_duplicates = super::duplicates(&receiver);
    gateways.finish(ctx, database).await?;
    println!(
        "  cluster latency at {} ev/s ({label}): p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
        latency.target_rate,
        latency.delivery.p50_ms,
        latency.delivery.p99_ms,
        latency.delivery.p999_ms
    );
    Ok(Side {
        fanout,
        publish,
        latency,
        latency_duplicates,
    })
}

/// Gateways (one, or a cluster's nodes, started on `what`-`measurement`) and `channels`
/// channels on `collection` delivering to a fresh receiver, created through the nodes in
/// turn and spread over them.
async fn channels_on(
    ctx: &Ctx,
    database: &Database,
    nodes: Option<usize>,
    what: &str,
    measurement: &str,
    channels: usize,
    collection: &'static str,
) -> anyhow::Result<(Gateways, Receiver)> {
    match nodes {
        None => {
            let launch = ctx.launch(&format!("{what}-{measurement}")).await?;
            let (gateway, receiver, _) = watched(ctx, &launch, channels, collection).await?;
            Ok((Gateways::Single(gateway), receiver))
        }
        Some(_) => {
            let gateways = Gateways::start(ctx, database, nodes, what, measurement).await?;
            let Gateways::Cluster(nodes) = &gateways else {
                unreachable!("a cluster was asked for");
            };
            let receiver = Receiver::start().await?;
            create_channels(
                &nodes.gateways,
                &receiver,
                channels,
                ctx.sizes.connections,
                ctx.sizes.stall(),
                move |_| collection.to_string(),
            )
            .await?;
            nodes.wait_spread(channels).await?;
            Ok((gateways, receiver))
        }
    }
}

/// One PostgreSQL gateway in a schema of its own, or the nodes of a cluster.
enum Gateways {
    Single(Gateway),
    Cluster(Nodes),
}

impl Gateways {
    async fn start(
        ctx: &Ctx,
        database: &Database,
        nodes: Option<usize>,
        what: &str,
        measurement: &str,
    ) -> anyhow::Result<Gateways> {
        let name = format!("{what}-{measurement}");
        Ok(match nodes {
            None => Gateways::Single(Gateway::start(&ctx.launch(&name).await?).await?),
            Some(n) => Gateways::Cluster(Nodes::start(ctx, database, &name, n, 10.0).await?),
        })
    }

    fn all(&self) -> &[Gateway] {
        match self {
            Gateways::Single(gateway) => std::slice::from_ref(gateway),
            Gateways::Cluster(nodes) => &nodes.gateways,
        }
    }

    async fn finish(self, ctx: &Ctx, database: &Database) -> anyhow::Result<()> {
        match self {
            Gateways::Single(gateway) => ctx.finish(gateway).await,
            Gateways::Cluster(nodes) => nodes.finish(database).await,
        }
    }
}

/// The running nodes of one cluster, all on one schema; `ids[i]` is `gateways[i]`'s
/// `--node-id`.
struct Nodes {
    gateways: Vec<Gateway>,
    ids: Vec<String>,
    schema: Schema,
    client: reqwest::Client,
}

impl Nodes {
    /// Starts `n` nodes (`n1` …) on a fresh schema, at once, each with `--lease-ttl
    /// ttl`.
    async fn start(
        ctx: &Ctx,
        database: &Database,
        name: &str,
        n: usize,
        ttl_seconds: f64,
    ) -> anyhow::Result<Nodes> {
        let schema = database.create_schema(name).await?;
        // Data directories and logs of their own; the schema is the same for all.
        let local = Ctx {
            database: None,
            ..ctx.clone()
        };
        let mut starting = JoinSet::new();
        for i in 0..n {
            let id = format!("n{}", i + 1);
            let launch = local
                .launch(&format!("{name}-{id}-postgres"))
                .await?
                .on_postgres(schema.clone())
                .arg("--node-id", &id)
                .arg("--lease-ttl", &duration_arg(ttl_seconds));
            starting.spawn(async move { (i, id, Gateway::start(&launch).await) });
        }
        let mut started = Vec::new();
        while let Some(joined) = starting.join_next().await {
            let (i, id, gateway) = joined?;
            started.push((
                i,
                id,
                gateway.with_context(|| format!("starting node {}", i + 1))?,
            ));
        }
        started.sort_by_key(|(i, _, _)| *i);
        Ok(Nodes {
            ids: started.iter().map(|(_, id, _)| id.clone()).collect(),
            gateways: started.into_iter().map(|(_, _, g)| g).collect(),
            schema,
            client: load::client(4)?,
        })
    }

    fn urls(&self) -> Vec<String> {
        self.gateways.iter().map(|g| g.url.clone()).collect()
    }

    fn index(&self, id: &str) -> usize {
        self.ids
            .iter()
            .position(|i| i == id)
            .expect("a running node")
    }

    /// Takes node `id` out of the cluster's set (the caller stops it).
    fn take(&mut self, id: &str) -> Gateway {
        let i = self.index(id);
        self.ids.remove(i);
        self.gateways.remove(i)
    }

    /// Channels per running node, as `GET /v1/cluster` on the first running node says.
    async fn spread(&self) -> anyhow::Result<BTreeMap<String, usize>> {
        let url = format!("{}/v1/cluster", self.gateways[0].url);
        let shown = get_json(&self.client, &url).await?;
        let mut spread: BTreeMap<String, usize> =
            self.ids.iter().map(|id| (id.clone(), 0)).collect();
        for node in shown["nodes"]
            .as_array()
            .context("/v1/cluster lists no nodes")?
        {
            let id = node["id"].as_str().unwrap_or_default();
            if let Some(count) = spread.get_mut(id) {
                *count = node["channels"].as_u64().unwrap_or(0) as usize;
            }
        }
        Ok(spread)
    }

    /// Waits until every running node delivers some of the `channels` and they deliver
    /// all of them. Returns how long that took and the spread.
    async fn wait_spread(&self, channels: usize) -> anyhow::Result<(f64, BTreeMap<String, usize>)> {
        let began = Instant::now();
        loop {
            let spread = self.spread().await?;
            if spread.values().all(|n| *n > 0) && spread.values().sum::<usize>() == channels {
                return Ok((began.elapsed().as_secs_f64(), spread));
            }
            anyhow::ensure!(
                began.elapsed() < SPREAD_PATIENCE,
                "the {channels} channels did not spread over the nodes within {SPREAD_PATIENCE:?}: {spread:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Which node delivers each channel, as `GET /v1/channels` on the first running node
    /// says.
    async fn owners(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let url = format!("{}/v1/channels?maxResults=1000", self.gateways[0].url);
        let shown = get_json(&self.client, &url).await?;
        let mut owners = BTreeMap::new();
        for item in shown["items"]
            .as_array()
            .context("/v1/channels lists no items")?
        {
            let id = item["id"].as_str().context("a channel without id")?;
            let node = item["delivery"]["node"].as_str().unwrap_or_default();
            owners.insert(id.to_string(), node.to_string());
        }
        Ok(owners)
    }

    /// Stops every node and drops the schema.
    async fn finish(self, database: &Database) -> anyhow::Result<()> {
        database.gateway_stopping(&self.schema.name).await?;
        for gateway in self.gateways {
            let data = gateway.data_dir.clone();
            gateway.stop().await?;
            let _ = std::fs::remove_dir_all(data);
        }
        database.drop_schema(&self.schema.name).await
    }
}

/// `GET url`, answered `200` with JSON.
async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    let response = client.get(url).send().await?.error_for_status()?;
    let text = response.text().await?;
    serde_json::from_str(&text).with_context(|| format!("{url} answered {text:?}"))
}

/// Events published at a steady rate through the nodes that are still up, each carrying
/// its index.
struct Steady {
    shared: Arc<SteadyShared>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

#[derive(Default)]
struct SteadyShared {
    /// The nodes publishes go to, in turn.
    live: Mutex<Vec<Arc<str>>>,
    /// Publishes sent to each node and not answered yet.
    in_flight: Mutex<HashMap<Arc<str>, usize>>,
    acked: Mutex<Vec<u64>>,
    failures: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl Steady {
    fn start(urls: Vec<String>, rate: u64) -> anyhow::Result<Steady> {
        let shared = Arc::new(SteadyShared {
            live: Mutex::new(urls.iter().map(|u| Arc::from(u.as_str())).collect()),
            ..SteadyShared::default()
        });
        let stop = CancellationToken::new();
        let client = load::client(16)?;
        let task = tokio::spawn(publish_steadily(client, shared.clone(), rate, stop.clone()));
        Ok(Steady { shared, stop, task })
    }

    /// Sends nothing more to `url` and waits until what was sent there is answered.
    async fn retire(&self, url: &str) -> anyhow::Result<()> {
        self.shared.live.lock().unwrap().retain(|u| &**u != url);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let busy = self
                .shared
                .in_flight
                .lock()
                .unwrap()
                .get(url)
                .copied()
                .unwrap_or(0);
            if busy == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "publishes to {url} still unanswered after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops publishing, waits for every answer; returns the acknowledged indexes and the
    /// publishes that failed.
    async fn finish(self) -> anyhow::Result<(Vec<u64>, u64, Option<String>)> {
        self.stop.cancel();
        self.task.await??;
        let mut acked = std::mem::take(&mut *self.shared.acked.lock().unwrap());
        acked.sort_unstable();
        let first = self.shared.first_failure.lock().unwrap().take();
        Ok((acked, self.shared.failures.load(Relaxed), first))
    }
}

async fn publish_steadily(
    client: reqwest::Client,
    shared: Arc<SteadyShared>,
    rate: u64,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = tokio::time::Instant::now();
    let mut sent = JoinSet::new();
    for i in 0u64.. {
        tokio::select! {
            _ = tokio::time::sleep_until(start + interval.mul_f64(i as f64)) => {}
            _ = stop.cancelled() => break,
        }
        let url = {
            let live = shared.live.lock().unwrap();
            anyhow::ensure!(!live.is_empty(), "no node left to publish to");
            live[i as usize % live.len()].clone()
        };
        *shared
            .in_flight
            .lock()
            .unwrap()
            .entry(url.clone())
            .or_insert(0) += 1;
        let (client, shared) = (client.clone(), shared.clone());
        sent.spawn(async move {
            let outcome = load::publish(&client, &url, indexed_event(i)).await;
            match outcome {
                Ok(()) => shared.acked.lock().unwrap().push(i),
                Err(e) => {
                    shared.failures.fetch_add(1, Relaxed);
                    shared
                        .first_failure
                        .lock()
                        .unwrap()
                        .get_or_insert(format!("{e:#}"));
                }
            }
            *shared
                .in_flight
                .lock()
                .unwrap()
                .get_mut(&url)
                .expect("counted when sent") -= 1;
        });
        while sent.try_join_next().is_some() {}
    }
    while sent.join_next().await.is_some() {}
    Ok(())
}

/// Event `i` of a failover run: its data is `{"t":"<send time>","i":<i>}`.
fn indexed_event(i: u64) -> String {
    format!(
        r#"{{"resource":"{COLLECTION}/items/{}","state":"exists","data":{{"t":"{:020}","i":{i}}}}}"#,
        i % 100,
        clock::now_us()
    )
}

/// The index an [`indexed_event`]'s notification body carries.
fn event_index(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = &text[text.find("\"i\":")? + 4..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A fresh cluster with `--lease-ttl ttl`: its channels spread, events flowing, then a
/// `kill -9` and a SIGTERM; see the module's documentation.
async fn lease_run(
    ctx: &Ctx,
    database: &Database,
    ttl: f64,
) -> anyhow::Result<(Takeover, Takeover, Delivery)> {
    let sizes = &ctx.sizes;
    let channels = sizes.cluster.failover_channels;
    let rate = sizes.cluster.failover_rate;
    let steady = Duration::from_secs_f64(sizes.cluster.steady_seconds);
    let name = format!("cluster-failover-{}", duration_arg(ttl));
    let mut nodes = Nodes::start(ctx, database, &name, sizes.cluster.nodes, ttl).await?;
    let receiver = Receiver::start().await?;
    let created = Instant::now();
    create_channels(
        &nodes.gateways,
        &receiver,
        channels,
        sizes.connections,
        sizes.stall(),
        |_| COLLECTION.to_string(),
    )
    .await?;
    nodes.wait_spread(channels).await?;
    let spread_seconds = created.elapsed().as_secs_f64();

    receiver.trace(true);
    let healthy_from = clock::now_us();
    let publisher = Steady::start(nodes.urls(), rate)?;
    let (owners, window) = stable_owners(&nodes, &receiver, steady, 0).await?;
    let spread = count_by_node(&owners);
    println!(
        "  cluster --lease-ttl {}: {channels} channels spread {spread:?} in {spread_seconds:.1} s, {rate} events/s",
        duration_arg(ttl)
    );

    let (failover, from, killed_at) = stop_busiest(
        &mut nodes,
        &receiver,
        &publisher,
        (&owners, window),
        Stop::Kill,
        ttl,
    )
    .await?;
    let window = Duration::from_secs(1).min(steady);
    let (owners, window) = stable_owners(&nodes, &receiver, window, from).await?;
    let (handover, _, _) = stop_busiest(
        &mut nodes,
        &receiver,
        &publisher,
        (&owners, window),
        Stop::Term,
        ttl,
    )
    .await?;

    // Everything acknowledged must arrive on every channel.
    let (acked, publish_failures, first_failure) = publisher.finish().await?;
    if let Some(e) = &first_failure {
        eprintln!("   {publish_failures} publish(es) to live nodes failed, the first: {e}");
    }
    let ids: Vec<String> = owners.keys().cloned().collect();
    let lost = wait_all(&receiver, &ids, &acked, sizes.stall()).await;
    let receipts = receiver.receipts(0);
    let (healthy, healthy_duplicates, duplicates_after_kill, out_of_order) =
        order_and_duplicates(&receipts, killed_at);
    nodes.finish(database).await?;
    let delivery = Delivery {
        lease_ttl_seconds: ttl,
        channels,
        rate,
        events: acked.len() as u64,
        publish_failures,
        spread,
        spread_seconds,
        healthy_seconds: clock::secs_between(healthy_from, killed_at),
        healthy_notifications: healthy,
        healthy_duplicates,
        duplicates_after_kill,
        lost,
        out_of_order,
    };
    println!(
        "  cluster --lease-ttl {}: {} events to {channels} channels: {} lost, {} out of order, {} duplicates while healthy ({} after the kill)",
        duration_arg(ttl),
        delivery.events,
        delivery.lost,
        delivery.out_of_order,
        delivery.healthy_duplicates,
        delivery.duplicates_after_kill
    );
    Ok((failover, handover, delivery))
}

/// How a node is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// `kill -9`: the others take its channels once its lease lapsed.
    Kill,
    /// SIGTERM: it hands its channels over.
    Term,
}

/// Stops the node delivering the most channels of `owners` (which stood still over the
/// receipts `window`), after sending it no more publishes, and times the takeover of
/// each of its channels; waits until the others deliver every channel. Returns the
/// takeover, the receiver's record position at the signal and the signal's time.
async fn stop_busiest(
    nodes: &mut Nodes,
    receiver: &Receiver,
    publisher: &Steady,
    (owners, window): (&BTreeMap<String, String>, (usize, usize)),
    how: Stop,
    ttl: f64,
) -> anyhow::Result<(Takeover, usize, u64)> {
    let node = busiest(owners);
    let before = nodes.gateways.len();
    let in_window = receiver.receipts(window.0);
    let dead = connections_of(&in_window[..window.1 - window.0], owners, &node);
    publisher
        .retire(&nodes.gateways[nodes.index(&node)].url)
        .await?;
    let theirs = channels_of(owners, &node);
    let from = receiver.recorded();
    let at = clock::now_us();
    let gateway = nodes.take(&node);
    let (signal, target, stopping) = match how {
        Stop::Kill => {
            // Its connections' CPU time ends with them: the harness's reading misses it.
            gateway.kill().await?;
            ("kill -9", ttl + FAILOVER_MARGIN_SECONDS, None)
        }
        Stop::Term => (
            "SIGTERM",
            HANDOVER_TARGET_SECONDS,
            Some(tokio::spawn(gateway.stop())),
        ),
    };
    let times = first_by_others(receiver, from, at, &theirs, &dead, target).await;
    if let Some(stopping) = stopping {
        stopping.await?.context("the node stopped with SIGTERM")?;
    }
    nodes.wait_spread(owners.len()).await?;
    let after = nodes.owners().await?;
    let taken = takeover(ttl, signal, &node, before, &theirs, times, target, &after);
    print_takeover(&taken);
    Ok((taken, from, at))
}

/// Who delivers each channel, once it stood still for `window` (while events flow), and
/// the receipts (positions in the receiver's record, from `from` on) of that window.
async fn stable_owners(
    nodes: &Nodes,
    receiver: &Receiver,
    window: Duration,
    from: usize,
) -> anyhow::Result<(BTreeMap<String, String>, (usize, usize))> {
    let began = Instant::now();
    let mut owners = nodes.owners().await?;
    let mut start = receiver.recorded().max(from);
    loop {
        // A measurement window, not a wait for a condition: receipts accumulate in it.
        tokio::time::sleep(window).await;
        let now = nodes.owners().await?;
        let end = receiver.recorded();
        let delivering = count_by_node(&now);
        if now == owners
            && nodes
                .ids
                .iter()
                .all(|id| delivering.get(id).is_some_and(|n| *n > 0))
        {
            return Ok((now, (start, end)));
        }
        anyhow::ensure!(
            began.elapsed() < SPREAD_PATIENCE,
            "channels kept moving between nodes for {SPREAD_PATIENCE:?}: {delivering:?}"
        );
        (owners, start) = (now, end);
    }
}

fn count_by_node(owners: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for node in owners.values() {
        *counts.entry(node.clone()).or_insert(0) += 1;
    }
    counts
}

/// The node delivering the most channels (the first by id among equals).
fn busiest(owners: &BTreeMap<String, String>) -> String {
    let counts = count_by_node(owners);
    let most = counts.values().copied().max().unwrap_or(0);
    counts
        .into_iter()
        .find(|(_, n)| *n == most)
        .map(|(id, _)| id)
        .unwrap_or_default()
}

fn channels_of(owners: &BTreeMap<String, String>, node: &str) -> Vec<String> {
    owners
        .iter()
        .filter(|(_, owner)| *owner == node)
        .map(|(id, _)| id.clone())
        .collect()
}

/// The connections `node` delivered on: those that carried its channels in `window`,
/// less any that also carried another node's (none should).
fn connections_of(
    window: &[Receipt],
    owners: &BTreeMap<String, String>,
    node: &str,
) -> HashSet<u64> {
    let (mut its, mut others) = (HashSet::new(), HashSet::new());
    for r in window {
        match owners.get(&*r.channel) {
            Some(owner) if owner == node => its.insert(r.connection),
            _ => others.insert(r.connection),
        };
    }
    its.difference(&others).copied().collect()
}

/// Per channel of `channels`: seconds from `since_us` to its first receipt (recorded from
/// position `from` on) on a connection not in `dead`; waits at most `target` +
/// [`TAKEOVER_GRACE`].
async fn first_by_others(
    receiver: &Receiver,
    from: usize,
    since_us: u64,
    channels: &[String],
    dead: &HashSet<u64>,
    target: f64,
) -> Vec<Option<f64>> {
    let deadline = Instant::now() + Duration::from_secs_f64(target) + TAKEOVER_GRACE;
    let mut first: HashMap<&str, f64> = HashMap::new();
    let mut at = from;
    loop {
        let new = receiver.receipts(at);
        at += new.len();
        for r in &new {
            let Some(id) = channels.iter().find(|c| ***c == *r.channel) else {
                continue;
            };
            if r.at_us >= since_us && !dead.contains(&r.connection) {
                first
                    .entry(id.as_str())
                    .or_insert_with(|| clock::secs_between(since_us, r.at_us));
            }
        }
        if first.len() == channels.len() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    channels
        .iter()
        .map(|c| first.get(c.as_str()).copied())
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn takeover(
    ttl: f64,
    signal: &str,
    node: &str,
    nodes_before: usize,
    channels: &[String],
    seconds: Vec<Option<f64>>,
    target: f64,
    after: &BTreeMap<String, String>,
) -> Takeover {
    let mut done: Vec<f64> = seconds.iter().flatten().copied().collect();
    done.sort_by(f64::total_cmp);
    let median = (!done.is_empty()).then(|| done[(done.len() - 1) / 2]);
    let max = done.last().copied();
    let mut new_owners = BTreeMap::new();
    for c in channels {
        let owner = after.get(c).cloned().unwrap_or_default();
        *new_owners.entry(owner).or_insert(0) += 1;
    }
    Takeover {
        lease_ttl_seconds: ttl,
        signal: signal.to_string(),
        node: node.to_string(),
        nodes_before,
        channels: channels.len(),
        taken_over: done.len(),
        pass: !channels.is_empty()
            && done.len() == channels.len()
            && max.is_some_and(|m| m <= target),
        seconds,
        median_seconds: median,
        max_seconds: max,
        target_seconds: target,
        new_owners,
    }
}

fn print_takeover(t: &Takeover) {
    let s = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.2} s"));
    println!(
        "  cluster --lease-ttl {}: {} of {} ({} channels): {} of them delivered by others, median {}, max {} (target ≤ {:.0} s) → {:?}",
        duration_arg(t.lease_ttl_seconds),
        t.signal,
        t.node,
        t.channels,
        t.taken_over,
        s(t.median_seconds),
        s(t.max_seconds),
        t.target_seconds,
        t.new_owners
    );
}

/// Waits until every channel of `ids` got every acknowledged event (at most until nothing
/// new arrives for `stall`); returns the (channel, event) pairs still missing.
async fn wait_all(receiver: &Receiver, ids: &[String], acked: &[u64], stall: Duration) -> u64 {
    let mut got: HashMap<&str, HashSet<u64>> =
        ids.iter().map(|c| (c.as_str(), HashSet::new())).collect();
    let mut at = 0;
    let mut last_progress = Instant::now();
    loop {
        let new = receiver.receipts(at);
        at += new.len();
        if !new.is_empty() {
            last_progress = Instant::now();
        }
        for r in &new {
            if let (Some(seen), Some(i)) = (got.get_mut(&*r.channel), event_index(&r.body)) {
                seen.insert(i);
            }
        }
        let missing: u64 = got
            .values()
            .map(|seen| acked.iter().filter(|i| !seen.contains(i)).count() as u64)
            .sum();
        if missing == 0 || last_progress.elapsed() > stall {
            return missing;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// From every receipt in arrival order: the notifications before `killed_at`, the repeats
/// before and after it, and the first receipts that came below an earlier one on their
/// channel.
fn order_and_duplicates(receipts: &[Receipt], killed_at: u64) -> (u64, u64, u64, u64) {
    let mut seen: HashMap<&str, (HashSet<u64>, u64)> = HashMap::new();
    let (mut healthy, mut healthy_duplicates, mut later_duplicates, mut out_of_order) =
        (0, 0, 0, 0);
    for r in receipts {
        let before = r.at_us < killed_at;
        healthy += u64::from(before);
        let (numbers, highest) = seen.entry(&r.channel).or_default();
        if !numbers.insert(r.number) {
            if before {
                healthy_duplicates += 1;
            } else {
                later_duplicates += 1;
            }
        } else if r.number < *highest {
            out_of_order += 1;
        }
        *highest = (*highest).max(r.number);
    }
    (healthy, healthy_duplicates, later_duplicates, out_of_order)
}

/// The side-by-side rows.
fn compare(single: &Side, cluster: &Side) -> Vec<Row> {
    let row = |name: String, unit: &str, single: f64, cluster: f64| Row {
        name,
        unit: unit.to_string(),
        single,
        cluster,
        ratio: (single > 0.0).then(|| cluster / single),
    };
    let (s, c) = (single, cluster);
    let rate = format_rate(s.latency.target_rate);
    vec![
        row(
            format!("fan-out delivered, {} channels", s.fanout.channels),
            "notifications/s",
            s.fanout.delivered_per_second,
            c.fanout.delivered_per_second,
        ),
        row(
            format!(
                "single-event publishes, {} connections",
                s.publish.connections
            ),
            "events/s",
            s.publish.per_second,
            c.publish.per_second,
        ),
        row(
            format!("publish→delivery p50 at {rate} events/s"),
            "ms",
            s.latency.delivery.p50_ms,
            c.latency.delivery.p50_ms,
        ),
        row(
            format!("publish→delivery p99 at {rate} events/s"),
            "ms",
            s.latency.delivery.p99_ms,
            c.latency.delivery.p99_ms,
        ),
        row(
            "fan-out: gateway CPU per notification (all nodes)".into(),
            "µs",
            s.fanout.gateway_cpu_us_per_notification,
            c.fanout.gateway_cpu_us_per_notification,
        ),
        row(
            "publish: acknowledgement p99".into(),
            "ms",
            s.publish.ack.p99_ms,
            c.publish.ack.p99_ms,
        ),
    ]
}

fn format_rate(rate: u64) -> String {
    crate::chart::format_count(rate as f64)
}

/// The targets (failover, handover) and the delivery checks, each with pass/fail.
fn checks(
    cluster: &Side,
    failover: &[Takeover],
    handover: &[Takeover],
    delivery: &[Delivery],
) -> Vec<Check> {
    let check =
        |name: String, measured: f64, unit: &str, target: &str, pass: bool, note: String| Check {
            name,
            measured,
            unit: unit.to_string(),
            ratio_to_raw: None,
            target: target.to_string(),
            pass: Some(pass),
            note,
        };
    let mut checks = Vec::new();
    for t in failover.iter().chain(handover) {
        let what = if t.signal == "SIGTERM" {
            "handover"
        } else {
            "failover"
        };
        checks.push(check(
            format!(
                "{what} ({}), --lease-ttl {}: max",
                t.signal,
                duration_arg(t.lease_ttl_seconds)
            ),
            t.max_seconds.unwrap_or(f64::NAN),
            "s",
            &format!("≤ {} s", t.target_seconds),
            t.pass,
            format!(
                "{} of {}'s {} channels delivered by another node; median {}; {} nodes before",
                t.taken_over,
                t.node,
                t.channels,
                t.median_seconds
                    .map_or("—".to_string(), |m| format!("{m:.2} s")),
                t.nodes_before
            ),
        ));
    }
    let lost: u64 = delivery.iter().map(|d| d.lost).sum();
    let pairs: u64 = delivery.iter().map(|d| d.events * d.channels as u64).sum();
    let failures: u64 = delivery.iter().map(|d| d.publish_failures).sum();
    checks.push(check(
        "acknowledged events lost".into(),
        lost as f64,
        "notifications",
        "0",
        lost == 0 && pairs > 0,
        format!("of {pairs} (channel, acknowledged event) pairs across kills and stops; {failures} publishes failed"),
    ));
    let out_of_order: u64 = delivery.iter().map(|d| d.out_of_order).sum();
    checks.push(check(
        "first receipts out of message-number order".into(),
        out_of_order as f64,
        "notifications",
        "0",
        out_of_order == 0,
        "per channel, across kills and stops (the side-by-side runs fail on any)".into(),
    ));
    let healthy = delivery.iter().map(|d| d.healthy_duplicates).sum::<u64>()
        + cluster.fanout.duplicates
        + cluster.latency_duplicates;
    let healthy_notifications = delivery
        .iter()
        .map(|d| d.healthy_notifications)
        .sum::<u64>()
        + cluster.fanout.notifications
        + cluster.latency.notifications;
    let after: u64 = delivery.iter().map(|d| d.duplicates_after_kill).sum();
    checks.push(check(
        "duplicates while every node is healthy".into(),
        healthy as f64,
        "notifications",
        "0",
        healthy == 0 && healthy_notifications > 0,
        format!(
            "of {healthy_notifications} (the cluster's fan-out and latency runs, and the steady phases before each kill); {after} after a kill (allowed)"
        ),
    ));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(channel: &str, number: u64, at_us: u64, connection: u64) -> Receipt {
        Receipt {
            channel: channel.into(),
            number,
            at_us,
            connection,
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn an_indexed_event_carries_its_send_time_and_index() {
        let event = indexed_event(42);
        assert!(serde_json::from_str::<serde_json::Value>(&event).is_ok());
        // The notification's body is the data as published, byte for byte.
        let data = &event[event.find(r#""data":"#).unwrap() + 7..event.len() - 1];
        assert!(load::payload_timestamp(data.as_bytes()).is_some());
        assert_eq!(event_index(data.as_bytes()), Some(42));
        assert_eq!(event_index(b"{}"), None);
    }

    #[test]
    fn repeats_count_as_healthy_before_the_kill_and_order_only_counts_first_receipts() {
        let receipts = [
            receipt("a", 2, 10, 1),
            receipt("a", 2, 11, 1),
            receipt("a", 5, 12, 1),
            receipt("b", 3, 13, 2),
            // After the kill at 20: 5 again (allowed), then 4 for the first time (not).
            receipt("a", 5, 21, 3),
            receipt("a", 4, 22, 3),
            receipt("a", 7, 23, 3),
        ];
        assert_eq!(order_and_duplicates(&receipts, 20), (4, 1, 1, 1));
    }

    #[test]
    fn a_nodes_connections_are_those_only_its_channels_used() {
        let owners: BTreeMap<String, String> = [("a", "n1"), ("b", "n2"), ("c", "n1")]
            .into_iter()
            .map(|(c, n)| (c.to_string(), n.to_string()))
            .collect();
        let window = [
            receipt("a", 2, 1, 1),
            receipt("c", 2, 2, 4),
            receipt("b", 2, 3, 2),
        ];
        assert_eq!(
            connections_of(&window, &owners, "n1"),
            HashSet::from([1, 4])
        );
        assert_eq!(busiest(&owners), "n1");
        assert_eq!(
            channels_of(&owners, "n1"),
            vec!["a".to_string(), "c".to_string()]
        );
    }

    #[test]
    fn a_takeover_passes_only_when_every_channel_came_back_in_time() {
        let channels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let after = BTreeMap::new();
        let t = takeover(
            2.0,
            "kill -9",
            "n1",
            3,
            &channels,
            vec![Some(3.0), Some(1.0), Some(2.0)],
            7.0,
            &after,
        );
        assert!(t.pass);
        assert_eq!((t.median_seconds, t.max_seconds), (Some(2.0), Some(3.0)));
        let t = takeover(
            2.0,
            "kill -9",
            "n1",
            3,
            &channels,
            vec![Some(3.0), None, Some(2.0)],
            7.0,
            &after,
        );
        assert!(!t.pass);
        assert_eq!(t.taken_over, 2);
        let t = takeover(
            2.0,
            "SIGTERM",
            "n1",
            3,
            &channels,
            vec![Some(3.0); 3],
            2.0,
            &after,
        );
        assert!(!t.pass);
        assert!(!takeover(2.0, "SIGTERM", "n1", 3, &[], vec![], 2.0, &after).pass);
    }
}
