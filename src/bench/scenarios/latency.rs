//! latency: publish→delivery at a fixed rate. Single-event publishes are sent on a
//! schedule (an open loop: a slow answer does not delay the next publish) to a
//! collection that `latency_channels` channels watch. Each payload carries the time its
//! publish was sent; the receiver subtracts it on arrival (same process, same clock).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{check_delivery, create_channels, Ctx};
use crate::bench::gateway::Gateway;
use crate::bench::load;
use crate::bench::receiver::Receiver;
use crate::bench::stats::Percentiles;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub target_rate: u64,
    pub achieved_rate: f64,
    pub channels: usize,
    pub seconds: f64,
    pub events: u64,
    pub notifications: u64,
    /// Publish sent → notification received.
    pub delivery: Percentiles,
    /// Publish sent → its durable `200`.
    pub ack: Percentiles,
    /// How late the load generator sent publishes against its schedule (its own limit).
    pub schedule_lag: Percentiles,
    /// `delivery.p50` over the raw unloaded round trip (set by the caller).
    pub p50_over_raw_round_trip: Option<f64>,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Latency> {
    let sizes = &ctx.sizes;
    let gateway = Gateway::start(&ctx.launch("latency")?).await?;
    let receiver = Receiver::start().await?;
    let channels = sizes.latency_channels;
    create_channels(&gateway, &receiver, channels, sizes.connections, sizes.stall(), |_| "/bench/latency".to_string()).await?;

    let client = load::client(sizes.connections)?;
    // Open the connections the publishes will use, outside the measurement.
    let warm = (client.clone(), Arc::new(gateway.url.clone()));
    load::for_each(sizes.connections, sizes.connections, move |_| {
        let (client, url) = (warm.0.clone(), warm.1.clone());
        async move { client.get(format!("{url}/healthz")).send().await.map(|_| ()).map_err(Into::into) }
    })
    .await?;

    receiver.record_latency(true);
    let events = (sizes.latency_rate as f64 * sizes.latency_seconds).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / sizes.latency_rate as f64);
    let url = Arc::new(gateway.url.clone());
    let mut sent = JoinSet::new();
    let mut lags = Vec::with_capacity(events as usize);
    let start = Instant::now();
    for i in 0..events {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due).await;
        lags.push(due.elapsed().as_micros().min(u32::MAX as u128) as u32);
        let (client, url) = (client.clone(), url.clone());
        sent.spawn(async move {
            let began = std::time::Instant::now();
            let body = load::event_json(&format!("/bench/latency/items/{}", i % 100));
            load::publish(&client, &url, body).await?;
            anyhow::Ok(began.elapsed().as_micros().min(u32::MAX as u128) as u32)
        });
    }
    let sending = start.elapsed().as_secs_f64();
    let mut acks = Vec::with_capacity(events as usize);
    while let Some(done) = sent.join_next().await {
        acks.push(done??);
    }
    let notifications = events * channels as u64;
    receiver.wait_events(notifications, sizes.stall()).await?;
    receiver.record_latency(false);
    check_delivery(&receiver, notifications)?;
    let samples = receiver.take_latencies();
    anyhow::ensure!(samples.len() as u64 == notifications, "{} latency samples for {notifications} notifications", samples.len());
    let data = gateway.data_dir.clone();
    gateway.stop().await?;
    ctx.discard(&data);
    Ok(Latency {
        target_rate: sizes.latency_rate,
        achieved_rate: events as f64 / sending.max(1e-9),
        channels,
        seconds: sending,
        events,
        notifications,
        delivery: Percentiles::of_micros(samples),
        ack: Percentiles::of_micros(acks),
        schedule_lag: Percentiles::of_micros(lags),
        p50_over_raw_round_trip: None,
    })
}
