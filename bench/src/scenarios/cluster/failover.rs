//! The failover runs, one per `--lease-ttl`, each on a fresh cluster: channels spread,
//! events flowing through every node, then `kill -9` of the node delivering the most
//! channels and later SIGTERM of the busiest survivor, each timed from the signal to
//! the first delivery of each of its channels by another node.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::nodes::{Nodes, SPREAD_PATIENCE};
use super::results::{Delivery, Takeover};
use super::steady::{event_index, Steady, COLLECTION};
use super::tally::{
    busiest, channels_of, connections_of, count_by_node, order_and_duplicates, takeover,
};
use crate::clock;
use crate::format::duration_arg;
use crate::postgres::Database;
use crate::receiver::Receiver;
use crate::scenarios::{create_channels, Ctx, Endpoint};

/// How long past its target a takeover is waited for before it counts as missing.
pub(super) const TAKEOVER_GRACE: Duration = Duration::from_secs(10);
/// A handover's target (docs/api.md §13).
const HANDOVER_TARGET_SECONDS: f64 = 2.0;
/// A failover's target past the lease (docs/api.md §13).
const FAILOVER_MARGIN_SECONDS: f64 = 5.0;
/// How often the scenario looks at what the receiver recorded while it waits.
const POLL: Duration = Duration::from_millis(20);

/// A fresh cluster with `--lease-ttl ttl`: its channels spread, events flowing, then a
/// `kill -9` and a SIGTERM; see the module's documentation.
pub(super) async fn lease_run(
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
        Endpoint::WEBHOOK,
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
