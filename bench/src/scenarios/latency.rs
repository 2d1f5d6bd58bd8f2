//! latency: publish→delivery at fixed rates. Single-event publishes are sent on a
//! schedule (an open loop: a slow answer does not delay the next publish) to a
//! collection that `latency_channels` channels watch. Each payload carries the time its
//! publish was sent; the receiver subtracts it on arrival (same process, same clock).
//!
//! The headline rate is the one the latency targets are set at (2.5k events/s, so 25k
//! notifications/s with 10 channels); lower rates (`latency_sweep`, plus `latency_compare_rate`, at which the
//! stores are compared) show where the knee is. Rates run lowest
//! first on one gateway, each after the previous one has been delivered completely.

use serde::{Deserialize, Serialize};

use super::{check_delivery, cpu_seconds, database_us_per, urls, value, watched, Ctx};
use crate::gateway::Gateway;
use crate::load;
use crate::receiver::Receiver;
use crate::stats::Percentiles;

/// The collection every latency channel watches.
pub const COLLECTION: &str = "/bench/latency";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub target_rate: u64,
    pub achieved_rate: f64,
    /// Notifications per second asked of the gateway: rate × channels.
    pub notifications_per_second: f64,
    pub seconds: f64,
    pub events: u64,
    pub notifications: u64,
    /// Publish sent → notification received.
    pub delivery: Percentiles,
    /// Publish sent → its durable `200`.
    pub ack: Percentiles,
    /// How late the load generator sent publishes against its schedule (its own limit).
    pub schedule_lag: Percentiles,
    /// Store transactions from the first publish until everything was delivered, and how
    /// many events each carried on average (the delivery bookkeeping rides along).
    #[serde(default)]
    pub store_commits: f64,
    #[serde(default)]
    pub events_per_commit: f64,
    /// Gateway CPU time per notification over the same span, µs.
    #[serde(default)]
    pub gateway_cpu_us_per_notification: f64,
    /// On PostgreSQL: the server's CPU time per notification, µs (null on the embedded
    /// store).
    #[serde(default)]
    pub database_cpu_us_per_notification: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub channels: usize,
    /// At the rate the latency targets are set at (`latency_rate`).
    pub headline: Point,
    /// Every rate run, lowest first (the headline included).
    pub sweep: Vec<Point>,
    /// `headline.delivery.p50` over the raw unloaded round trip (set by the caller).
    pub p50_over_raw_round_trip: Option<f64>,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Latency> {
    let sizes = &ctx.sizes;
    let channels = sizes.latency_channels;
    let launch = ctx.launch("latency").await?;
    let (gateway, receiver, _) = watched(ctx, &launch, channels, COLLECTION).await?;

    let client = load::client(sizes.connections)?;
    let gateways = std::slice::from_ref(&gateway);
    warm_up(&client, gateways, sizes.connections).await?;

    let mut rates: Vec<u64> = sizes.latency_sweep.clone();
    rates.push(sizes.latency_compare_rate);
    rates.retain(|r| *r < sizes.latency_rate);
    rates.sort_unstable();
    rates.dedup();
    let mut sweep = Vec::new();
    let mut expected = 0;
    for rate in rates {
        let seconds = sizes.latency_seconds / 2.0;
        let p = point(
            ctx,
            gateways,
            &receiver,
            &client,
            rate,
            seconds,
            &mut expected,
        )
        .await?;
        print_point(ctx, &p);
        sweep.push(p);
    }
    let headline = point(
        ctx,
        gateways,
        &receiver,
        &client,
        sizes.latency_rate,
        sizes.latency_seconds,
        &mut expected,
    )
    .await?;
    print_point(ctx, &headline);
    sweep.push(headline.clone());
    ctx.finish(gateway).await?;
    Ok(Latency {
        channels,
        headline,
        sweep,
        p50_over_raw_round_trip: None,
    })
}

fn print_point(ctx: &Ctx, p: &Point) {
    println!(
        "  latency at {:>5} ev/s ({:>6.0} notifications/s, {}): p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
        p.target_rate,
        p.notifications_per_second,
        ctx.store(),
        p.delivery.p50_ms,
        p.delivery.p99_ms,
        p.delivery.p999_ms
    );
}

/// Opens `connections` connections to each of `gateways`, outside any measurement.
pub async fn warm_up(
    client: &reqwest::Client,
    gateways: &[Gateway],
    connections: usize,
) -> anyhow::Result<()> {
    let urls = urls(gateways);
    let client = client.clone();
    load::for_each(connections * urls.len(), connections, move |i| {
        let client = client.clone();
        let url = urls[i as usize % urls.len()].clone();
        async move {
            client
                .get(format!("{url}/healthz"))
                .send()
                .await
                .map(|_| ())
                .map_err(Into::into)
        }
    })
    .await?;
    Ok(())
}

/// Publishes at `rate` for `seconds` through `gateways` in turn (one gateway, or the
/// nodes of a cluster), to the `latency_channels` channels on `/bench/latency` that
/// deliver to `receiver`, then waits until every notification arrived. `expected`
/// counts the notifications of every point so far.
pub async fn point(
    ctx: &Ctx,
    gateways: &[Gateway],
    receiver: &Receiver,
    client: &reqwest::Client,
    rate: u64,
    seconds: f64,
    expected: &mut u64,
) -> anyhow::Result<Point> {
    let channels = ctx.sizes.latency_channels as u64;
    let commits_before = value(gateways, client, "watchwire_store_commits_total").await?;
    let cpu_before = cpu_seconds(gateways)?;
    let database_before = ctx.database_cpu(&gateways[0]).await?;
    receiver.record_latency(true);
    let events = ((rate as f64 * seconds).round() as u64).max(1);
    let sent = load::paced(client, &urls(gateways), rate, events, |i| {
        load::event_json(&format!("{COLLECTION}/items/{}", i % 100))
    })
    .await?;
    let sending = sent.sending.as_secs_f64();
    let notifications = events * channels;
    *expected += notifications;
    receiver.wait_events(*expected, ctx.sizes.stall()).await?;
    receiver.record_latency(false);
    let cpu = cpu_seconds(gateways)? - cpu_before;
    let database_after = ctx.database_cpu(&gateways[0]).await?;
    let commits = value(gateways, client, "watchwire_store_commits_total").await? - commits_before;
    check_delivery(receiver, *expected)?;
    let samples = receiver.take_latencies();
    anyhow::ensure!(
        samples.len() as u64 == notifications,
        "{} latency samples for {notifications} notifications",
        samples.len()
    );
    Ok(Point {
        target_rate: rate,
        achieved_rate: events as f64 / (sending + 1.0 / rate as f64),
        notifications_per_second: (rate * channels) as f64,
        seconds: sending,
        events,
        notifications,
        delivery: Percentiles::of_micros(samples),
        ack: Percentiles::of_micros(sent.acks_us),
        schedule_lag: Percentiles::of_micros(sent.lags_us),
        store_commits: commits,
        events_per_commit: events as f64 / commits.max(1.0),
        gateway_cpu_us_per_notification: cpu * 1e6 / notifications as f64,
        database_cpu_us_per_notification: database_us_per(
            &database_before,
            &database_after,
            notifications,
        ),
    })
}
