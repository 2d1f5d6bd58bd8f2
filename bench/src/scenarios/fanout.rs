//! fanout: N channels on one collection, batched publishes of 512-byte events below it;
//! delivered notifications per second from the first publish to the last delivery. Run
//! at several channel counts (the sweep); the headline is `fanout_channels` (50 in a
//! full run, the count the fan-out target is set at).

use serde::{Deserialize, Serialize};

use super::{check_delivery, cpu_seconds, database_us_per, ratio, urls, value, watched, Ctx};
use crate::clock;
use crate::gateway::Gateway;
use crate::load;
use crate::receiver::Receiver;
use crate::stats::Percentiles;

/// The collection every fan-out channel watches.
pub const COLLECTION: &str = "/bench/fanout";

/// Concurrent publishers (each sends one batch at a time).
pub const PUBLISHERS: usize = 4;
/// Distinct resources the events are spread over, all below the collection.
pub const ITEMS: u64 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub channels: usize,
    pub events: u64,
    pub notifications: u64,
    pub seconds: f64,
    pub delivered_per_second: f64,
    pub ratio_to_raw: Option<f64>,
    /// Publish→delivery latency at saturation (every event published as fast as it goes).
    pub latency: Percentiles,
    /// Gateway CPU time per delivered notification, µs (over 2 cores, 2 s per s at most).
    pub gateway_cpu_us_per_notification: f64,
    /// On PostgreSQL: the server's CPU time per delivered notification, µs (the
    /// gateway's connections and the server's background processes; null on the
    /// embedded store, whose work is inside the gateway's).
    #[serde(default)]
    pub database_cpu_us_per_notification: Option<f64>,
    /// Store transactions (each an fsync) during the point.
    pub store_commits: f64,
    /// Notifications that arrived twice (a retry after a lost answer).
    pub duplicates: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fanout {
    pub batch: usize,
    /// The headline point (50 channels in a full run, where the fan-out target is set).
    pub headline: Point,
    /// Throughput against channel count.
    pub sweep: Vec<Point>,
}

pub async fn run(ctx: &Ctx, raw_per_second: Option<f64>) -> anyhow::Result<Fanout> {
    let sizes = &ctx.sizes;
    let mut counts = sizes.fanout_sweep.clone();
    counts.push(sizes.fanout_channels);
    counts.sort_unstable();
    counts.dedup();
    let mut sweep = Vec::new();
    for channels in counts {
        let events = (sizes.fanout_notifications / channels as u64).max(sizes.batch as u64);
        let point = point(ctx, channels, events, raw_per_second).await?;
        println!(
            "  fanout {channels:>5} channels ({}): {:>9.0} notifications/s ({} in {:.2} s)",
            ctx.store(),
            point.delivered_per_second,
            point.notifications,
            point.seconds
        );
        sweep.push(point);
    }
    let headline = sweep
        .iter()
        .find(|p| p.channels == sizes.fanout_channels)
        .cloned()
        .expect("the sweep includes the headline count");
    Ok(Fanout {
        batch: sizes.batch,
        headline,
        sweep,
    })
}

async fn point(
    ctx: &Ctx,
    channels: usize,
    events: u64,
    raw_per_second: Option<f64>,
) -> anyhow::Result<Point> {
    let launch = ctx.launch(&format!("fanout-{channels}")).await?;
    let (gateway, receiver, _) = watched(ctx, &launch, channels, COLLECTION).await?;
    let point = measure(
        ctx,
        std::slice::from_ref(&gateway),
        &receiver,
        channels,
        events,
        raw_per_second,
    )
    .await?;
    ctx.finish(gateway).await?;
    Ok(point)
}

/// A fan-out load: `events` published below `collection`, `notifications` expected.
pub struct Published {
    pub collection: &'static str,
    pub events: u64,
    pub notifications: u64,
}

impl Published {
    /// Publishes (see [`publish_batches`]) and waits until `receiver` has every
    /// notification; the seconds from the first publish to the last delivery.
    pub async fn until_delivered(
        &self,
        ctx: &Ctx,
        client: &reqwest::Client,
        gateways: &[Gateway],
        receiver: &Receiver,
    ) -> anyhow::Result<f64> {
        let began = clock::now_us();
        let batch = ctx.sizes.batch as u64;
        publish_batches(client, gateways, self.collection, self.events, batch).await?;
        receiver
            .wait_events(self.notifications, ctx.sizes.stall())
            .await?;
        let last = receiver
            .counts()
            .last_event_us
            .load(std::sync::atomic::Ordering::Relaxed);
        Ok(clock::secs_between(began, last))
    }
}

/// Publishes `events` in batches of `batch` from [`PUBLISHERS`] connections, through
/// `gateways` in turn, spread over [`ITEMS`] resources below `collection`
/// (`{collection}/items/{i % ITEMS}`).
pub async fn publish_batches(
    client: &reqwest::Client,
    gateways: &[Gateway],
    collection: &'static str,
    events: u64,
    batch: u64,
) -> anyhow::Result<()> {
    let urls = urls(gateways);
    let publisher = client.clone();
    load::for_each(events.div_ceil(batch) as usize, PUBLISHERS, move |b| {
        let client = publisher.clone();
        let url = urls[b as usize % urls.len()].clone();
        let (first, last) = (b * batch, ((b + 1) * batch).min(events));
        let resources: Vec<String> = (first..last)
            .map(|i| format!("{collection}/items/{}", i % ITEMS))
            .collect();
        async move {
            load::publish(
                &client,
                &url,
                load::batch_json(resources.iter().map(String::as_str)),
            )
            .await
        }
    })
    .await?;
    Ok(())
}

/// Publishes `events` in batches below [`COLLECTION`], which `channels` channels
/// delivering to a fresh `receiver` watch, through `gateways` in turn (one gateway, or
/// the nodes of a cluster), and measures until the last notification arrived.
pub async fn measure(
    ctx: &Ctx,
    gateways: &[Gateway],
    receiver: &Receiver,
    channels: usize,
    events: u64,
    raw_per_second: Option<f64>,
) -> anyhow::Result<Point> {
    let client = load::client(PUBLISHERS)?;
    let commits_before = value(gateways, &client, "watchwire_store_commits_total").await?;
    let cpu_before = cpu_seconds(gateways)?;
    let database_before = ctx.database_cpu(&gateways[0]).await?;
    receiver.record_latency(true);
    let notifications = events * channels as u64;
    let publish = Published {
        collection: COLLECTION,
        events,
        notifications,
    };
    let seconds = publish
        .until_delivered(ctx, &client, gateways, receiver)
        .await?;
    let cpu = cpu_seconds(gateways)? - cpu_before;
    let database_after = ctx.database_cpu(&gateways[0]).await?;
    let commits = value(gateways, &client, "watchwire_store_commits_total").await? - commits_before;
    check_delivery(receiver, notifications)?;
    let delivered_per_second = notifications as f64 / seconds.max(1e-9);
    Ok(Point {
        channels,
        events,
        notifications,
        seconds,
        delivered_per_second,
        ratio_to_raw: ratio(delivered_per_second, raw_per_second),
        latency: Percentiles::of_micros(receiver.take_latencies()),
        gateway_cpu_us_per_notification: cpu * 1e6 / notifications as f64,
        database_cpu_us_per_notification: database_us_per(
            &database_before,
            &database_after,
            notifications,
        ),
        store_commits: commits,
        duplicates: super::duplicates(receiver),
    })
}
