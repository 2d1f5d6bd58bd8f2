//! filtered: `filtered_channels` channels on one collection, each with a filter of its
//! own (docs/api.md §16) that matches a tenth of the events: the channel's digit against
//! the last digit of the event's resource, plus a condition on the event's data that
//! always holds and names the channel, so that no two filters are alike and each is
//! evaluated on its own. Batched publishes as in `fanout`; delivered notifications per
//! second, and the gateway's CPU per event against what the notifications it sent cost
//! unfiltered (the `fanout` scenario's CPU per notification, same run) plus 1 µs per
//! filter evaluated.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::fanout::{Published, ITEMS, PUBLISHERS};
use super::{check_delivery, cpu_seconds, Ctx};
use crate::gateway::Gateway;
use crate::load;
use crate::receiver::Receiver;

/// The collection every filtered channel watches.
const COLLECTION: &str = "/bench/filtered";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Filtered {
    pub channels: usize,
    pub events: u64,
    /// Notifications sent: each event matches a tenth of the channels.
    pub notifications: u64,
    pub seconds: f64,
    pub delivered_per_second: f64,
    pub gateway_cpu_us_per_event: f64,
    pub gateway_cpu_us_per_notification: f64,
    /// What the target allows per event: 1.5 × the unfiltered CPU of the notifications
    /// sent per event, plus 1 µs per filter evaluated (`None` without a `fanout` run).
    pub budget_us_per_event: Option<f64>,
}

/// `unfiltered_us`: the gateway's CPU per notification of the unfiltered fan-out.
pub async fn run(ctx: &Ctx, unfiltered_us: Option<f64>) -> anyhow::Result<Filtered> {
    let sizes = &ctx.sizes;
    let channels = sizes.filtered_channels;
    let launch = ctx.launch(&format!("filtered-{channels}")).await?;
    let gateway = Gateway::start(&launch).await?;
    let receiver = Receiver::start().await?;
    create_filtered(&gateway, &receiver, channels, ctx).await?;

    // Events per channel as in the fan-out sweep, at least a batch.
    let events = (sizes.fanout_notifications * 10 / channels as u64).max(sizes.batch as u64 * 10);
    let matching = |i: u64| {
        (0..channels as u64)
            .filter(|k| k % 10 == (i % ITEMS) % 10)
            .count() as u64
    };
    let notifications: u64 = (0..events).map(matching).sum();
    let client = load::client(PUBLISHERS)?;
    let gateways = std::slice::from_ref(&gateway);
    let cpu_before = cpu_seconds(gateways)?;
    receiver.record_latency(false);
    let publish = Published {
        collection: COLLECTION,
        events,
        notifications,
    };
    let seconds = publish
        .until_delivered(ctx, &client, gateways, &receiver)
        .await?;
    let cpu = cpu_seconds(gateways)? - cpu_before;
    check_delivery(&receiver, notifications)?;
    ctx.finish(gateway).await?;
    let per_event = notifications as f64 / events as f64;
    Ok(Filtered {
        channels,
        events,
        notifications,
        seconds,
        delivered_per_second: notifications as f64 / seconds.max(1e-9),
        gateway_cpu_us_per_event: cpu * 1e6 / events as f64,
        gateway_cpu_us_per_notification: cpu * 1e6 / notifications as f64,
        budget_us_per_event: unfiltered_us.map(|us| 1.5 * us * per_event + channels as f64),
    })
}

/// Channel `k` gets the events whose resource ends in the digit `k % 10`.
async fn create_filtered(
    gateway: &Gateway,
    receiver: &Receiver,
    channels: usize,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let client = load::client(ctx.sizes.connections)?;
    let address = Arc::new(receiver.url("/notify"));
    let url = gateway.url.clone();
    let run = load::for_each(channels, ctx.sizes.connections, move |k| {
        let (client, address, url) = (client.clone(), address.clone(), url.clone());
        let filter = serde_json::json!({
            "resource": {"$endsWith": (k % 10).to_string()},
            "data.t": {"$neq": format!("channel {k}")},
        });
        let body = serde_json::json!({
            "id": format!("filtered-{k}"), "type": "web_hook", "address": *address,
            "params": {"filter": filter.to_string()},
        });
        async move { load::watch(&client, &url, COLLECTION, body.to_string()).await }
    })
    .await?;
    anyhow::ensure!(
        run.done == channels as u64,
        "created {} of {channels} channels",
        run.done
    );
    receiver
        .wait_syncs(channels as u64, ctx.sizes.stall())
        .await?;
    Ok(())
}
