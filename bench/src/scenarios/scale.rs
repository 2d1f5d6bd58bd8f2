//! scale: `scale_channels` channels registered (spread over resources of
//! `scale_per_resource` channels each): the creation rate, resident memory per idle
//! channel, and the time from restarting the gateway until it is healthy and delivering
//! again (a probe event on one resource, every channel on it delivered).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{create_channels, ratio, Ctx, Endpoint};
use crate::clock;
use crate::gateway::Gateway;
use crate::load;
use crate::receiver::Receiver;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scale {
    pub channels: usize,
    pub resources: usize,
    pub create_seconds: f64,
    pub create_per_second: f64,
    pub create_ratio_to_raw: Option<f64>,
    /// The gateway's CPU from the first watch until the last sync notification arrived,
    /// per channel, µs (its creation, durable, and its sync notification).
    #[serde(default)]
    pub gateway_cpu_us_per_channel: f64,
    /// From the first watch until the last sync notification arrived.
    pub synced_seconds: f64,
    pub rss_empty_bytes: u64,
    pub rss_loaded_bytes: u64,
    /// (loaded − empty) / channels, with every channel idle after its sync.
    pub bytes_per_channel: f64,
    /// The same after the restart: channels loaded from the store in one go.
    pub rss_restarted_bytes: u64,
    pub bytes_per_channel_restarted: f64,
    pub shutdown_seconds: f64,
    /// From spawning the new process: its listening line, `/healthz` answering `200`,
    /// and the probe event's first and last notification.
    pub restart_listening_seconds: f64,
    pub restart_healthy_seconds: f64,
    pub restart_first_delivery_seconds: f64,
    pub restart_delivering_seconds: f64,
    pub probe_channels: u64,
    /// Sync notifications sent again after the restart (should be 0).
    pub syncs_repeated: u64,
}

pub async fn run(ctx: &Ctx, raw_per_second: Option<f64>) -> anyhow::Result<Scale> {
    let sizes = &ctx.sizes;
    let launch = ctx.launch("scale").await?;
    let gateway = Gateway::start(&launch).await?;
    let receiver = Receiver::start().await?;
    let channels = sizes.scale_channels;
    let per_resource = sizes.scale_per_resource.max(1);
    let resources = channels.div_ceil(per_resource);
    let rss_empty = gateway.rss()?;
    let cpu_before = gateway.cpu_seconds()?;
    let (create_seconds, synced_seconds) = create_channels(
        std::slice::from_ref(&gateway),
        &receiver,
        channels,
        sizes.connections,
        sizes.stall(),
        Endpoint::WEBHOOK,
        move |i| format!("/bench/scale/r{}", i % resources as u64),
    )
    .await?;
    let gateway_cpu_us_per_channel =
        (gateway.cpu_seconds()? - cpu_before) * 1e6 / channels.max(1) as f64;
    let create_per_second = channels as f64 / create_seconds.max(1e-9);
    println!("  scale: {channels} channels created in {create_seconds:.1} s ({create_per_second:.0}/s), synced in {synced_seconds:.1} s");
    let rss_loaded = gateway.rss()?;

    let client = load::client(1)?;
    let shutdown_seconds = gateway.stop().await?.as_secs_f64();
    let syncs_before = receiver.counts().syncs.load(Relaxed);
    let spawned = clock::now_us();
    let began = Instant::now();
    let gateway = Gateway::start(&launch).await?;
    let listening = gateway.started_in.as_secs_f64();
    anyhow::ensure!(
        gateway.healthy(&client).await,
        "/healthz did not answer 200 after the restart"
    );
    let healthy = began.elapsed().as_secs_f64();
    let probe_channels = channels.div_ceil(resources) as u64;
    load::publish(
        &client,
        &gateway.url,
        load::event_json("/bench/scale/r0/probe"),
    )
    .await?;
    receiver.wait_events(probe_channels, sizes.stall()).await?;
    let counts = receiver.counts();
    let first = clock::secs_between(spawned, counts.first_event_us.load(Relaxed));
    let last = clock::secs_between(spawned, counts.last_event_us.load(Relaxed));
    super::check_delivery(&receiver, probe_channels)?;
    let live = gateway.value(&client, "watchwire_channels_live").await?;
    anyhow::ensure!(
        live as usize == channels,
        "{live} channels live after the restart, expected {channels}"
    );
    let rss_restarted = gateway.rss()?;
    let syncs_repeated = receiver.counts().syncs.load(Relaxed) - syncs_before;
    ctx.finish(gateway).await?;
    let per_channel = |rss: u64| rss.saturating_sub(rss_empty) as f64 / channels as f64;
    Ok(Scale {
        channels,
        resources,
        create_seconds,
        create_per_second,
        create_ratio_to_raw: ratio(create_per_second, raw_per_second),
        gateway_cpu_us_per_channel,
        synced_seconds,
        rss_empty_bytes: rss_empty,
        rss_loaded_bytes: rss_loaded,
        bytes_per_channel: per_channel(rss_loaded),
        rss_restarted_bytes: rss_restarted,
        bytes_per_channel_restarted: per_channel(rss_restarted),
        shutdown_seconds,
        restart_listening_seconds: listening,
        restart_healthy_seconds: healthy,
        restart_first_delivery_seconds: first,
        restart_delivering_seconds: last,
        probe_channels,
        syncs_repeated,
    })
}
