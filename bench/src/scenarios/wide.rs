//! wide: one event to `wide_channels` channels on one resource; the time from the
//! publish until the last of them is delivered. Channel creation is timed too.

use std::sync::atomic::Ordering::Relaxed;

use serde::{Deserialize, Serialize};

use super::{check_delivery, ratio, watched, Ctx};
use crate::clock;
use crate::load;

const RESOURCE: &str = "/bench/wide";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Wide {
    pub channels: usize,
    pub create_seconds: f64,
    pub create_per_second: f64,
    /// From the first watch request until the last sync notification arrived.
    pub synced_seconds: f64,
    /// Publish sent → first and last notification received.
    pub first_delivery_seconds: f64,
    pub last_delivery_seconds: f64,
    /// channels / last_delivery_seconds, and that as a ratio to the raw ceiling.
    pub delivered_per_second: f64,
    pub ratio_to_raw: Option<f64>,
    /// Attempts the gateway had to retry (connection failures and the like).
    pub retried_attempts: f64,
    /// Notifications that arrived twice (a retry after a lost answer).
    pub duplicates: u64,
    pub gateway_peak_rss_bytes: u64,
}

pub async fn run(ctx: &Ctx, raw_per_second: Option<f64>) -> anyhow::Result<Wide> {
    let sizes = &ctx.sizes;
    let channels = sizes.wide_channels;
    let launch = ctx.launch("wide").await?;
    let (gateway, receiver, (create_seconds, synced_seconds)) =
        watched(ctx, &launch, channels, RESOURCE).await?;
    println!("  wide: {channels} channels created in {create_seconds:.1} s, synced in {synced_seconds:.1} s");

    let client = load::client(1)?;
    let retried_before = gateway
        .metric_with(
            &client,
            "watchwire_notifications_total",
            "outcome=\"retried\"",
        )
        .await?
        .unwrap_or(0.0);
    let began = clock::now_us();
    load::publish(
        &client,
        &gateway.url,
        load::event_json(&format!("{RESOURCE}/item")),
    )
    .await?;
    receiver.wait_events(channels as u64, sizes.stall()).await?;
    let counts = receiver.counts();
    let first = clock::secs_between(began, counts.first_event_us.load(Relaxed));
    let last = clock::secs_between(began, counts.last_event_us.load(Relaxed));
    check_delivery(&receiver, channels as u64)?;
    let retried_attempts = gateway
        .metric_with(
            &client,
            "watchwire_notifications_total",
            "outcome=\"retried\"",
        )
        .await?
        .unwrap_or(0.0)
        - retried_before;
    let peak = gateway.peak_rss()?;
    ctx.finish(gateway).await?;
    let delivered_per_second = channels as f64 / last.max(1e-9);
    Ok(Wide {
        channels,
        create_seconds,
        create_per_second: channels as f64 / create_seconds.max(1e-9),
        synced_seconds,
        first_delivery_seconds: first,
        last_delivery_seconds: last,
        delivered_per_second,
        ratio_to_raw: ratio(delivered_per_second, raw_per_second),
        retried_attempts,
        duplicates: super::duplicates(&receiver),
        gateway_peak_rss_bytes: peak,
    })
}
