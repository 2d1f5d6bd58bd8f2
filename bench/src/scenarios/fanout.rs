//! fanout: N channels on one collection, batched publishes of 512-byte events below it;
//! delivered notifications per second from the first publish to the last delivery. Run
//! at several channel counts (the sweep); the headline is `fanout_channels` (50 in a
//! full run, the count the fan-out target is set at).

use serde::{Deserialize, Serialize};

use super::{
    check_authenticated, check_delivery, cpu_seconds, database_us_per, ratio, urls, value,
    watched_with_auth, Ctx, HeaderAuth, Sizes,
};
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
        let events = events(sizes, channels);
        let (point, _) = point(
            ctx,
            "fanout",
            channels,
            events,
            raw_per_second,
            &Variant::default(),
        )
        .await?;
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

/// Events each fan-out point publishes to `channels` channels: `fanout_notifications`
/// notifications in all, at least a batch.
pub fn events(sizes: &Sizes, channels: usize) -> u64 {
    (sizes.fanout_notifications / channels as u64).max(sizes.batch as u64)
}

/// How a fan-out point differs from the plain one.
#[derive(Default)]
pub struct Variant<'a> {
    /// Every channel authenticates with this header.
    pub auth: Option<&'a HeaderAuth>,
    /// Options the gateway starts with.
    pub args: Vec<(&'a str, String)>,
    /// Metrics read from the gateway once everything is delivered (summed over labels),
    pub metrics: &'a [&'a str],
    /// once the first of them reaches this (waiting at most 10 s: what the gateway
    /// counts in the background, such as exported spans, lags the deliveries).
    pub first_reaches: Option<f64>,
}

/// One point on a gateway of its own (data and log named `{name}-{channels}`): creates
/// the channels, every one authenticating with `variant.auth` when given, and
/// [`measure`]s; with the values of `variant.metrics` afterwards. With `auth`, also
/// checks that every notification carried its header.
pub async fn point(
    ctx: &Ctx,
    name: &str,
    channels: usize,
    events: u64,
    raw_per_second: Option<f64>,
    variant: &Variant<'_>,
) -> anyhow::Result<(Point, Vec<f64>)> {
    let auth = variant.auth;
    let mut launch = ctx.launch(&format!("{name}-{channels}")).await?;
    for (flag, value) in &variant.args {
        launch = launch.arg(flag, value);
    }
    let (gateway, receiver, _) =
        watched_with_auth(ctx, &launch, channels, COLLECTION, auth).await?;
    let point = measure(
        ctx,
        std::slice::from_ref(&gateway),
        &receiver,
        channels,
        events,
        raw_per_second,
    )
    .await?;
    if auth.is_some() {
        check_authenticated(&receiver)?;
    }
    let client = reqwest::Client::new();
    if let (Some(first), Some(wanted)) = (variant.metrics.first(), variant.first_reaches) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while gateway.value(&client, first).await? < wanted && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let mut metrics = Vec::with_capacity(variant.metrics.len());
    for name in variant.metrics {
        metrics.push(gateway.value(&client, name).await?);
    }
    ctx.finish(gateway).await?;
    Ok((point, metrics))
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
