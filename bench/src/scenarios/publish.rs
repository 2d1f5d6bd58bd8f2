//! publish: single-event publishes (512-byte data) from `connections` concurrent
//! connections, each answered only once durable (`synchronous=FULL`, or PostgreSQL's
//! commit); events per second.
//! No channels, so this is the publish path alone.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{cpu_seconds, database_us_per, ratio, urls, value, Ctx};
use crate::gateway::Gateway;
use crate::load;
use crate::stats::Percentiles;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Publish {
    pub connections: usize,
    pub seconds: f64,
    pub events: u64,
    pub per_second: f64,
    pub ratio_to_raw: Option<f64>,
    /// From sending a publish to its durable `200`.
    pub ack: Percentiles,
    /// Store transactions (each one fsync) and how many publishes each carried.
    pub store_commits: f64,
    pub events_per_commit: f64,
    pub gateway_cpu_us_per_event: f64,
    /// On PostgreSQL: the server's CPU time per event, µs (null on the embedded store).
    #[serde(default)]
    pub database_cpu_us_per_event: Option<f64>,
}

pub async fn run(ctx: &Ctx, raw_per_second: Option<f64>) -> anyhow::Result<Publish> {
    let gateway = Gateway::start(&ctx.launch("publish").await?).await?;
    let publish = measure(ctx, std::slice::from_ref(&gateway), raw_per_second).await?;
    ctx.finish(gateway).await?;
    Ok(publish)
}

/// Single-event publishes through `gateways` in turn (one gateway, or the nodes of a
/// cluster) for `seconds`, after a warm-up that opens the connections.
pub async fn measure(
    ctx: &Ctx,
    gateways: &[Gateway],
    raw_per_second: Option<f64>,
) -> anyhow::Result<Publish> {
    let sizes = &ctx.sizes;
    let client = load::client(sizes.connections)?;
    let urls = urls(gateways);
    let op = {
        let client = client.clone();
        move |i: u64| {
            let client = client.clone();
            let url = urls[i as usize % urls.len()].clone();
            async move {
                let body = load::event_json(&format!("/bench/publish/items/{}", i % 1000));
                load::publish(&client, &url, body).await
            }
        }
    };
    // Warm-up: open the connections (to every gateway).
    let warm_up = sizes.connections * 2 * gateways.len();
    load::for_each(warm_up, sizes.connections, op.clone()).await?;
    let commits_before = value(gateways, &client, "watchwire_store_commits_total").await?;
    let published_before = value(gateways, &client, "watchwire_events_published_total").await?;
    let cpu_before = cpu_seconds(gateways)?;
    let database_before = ctx.database_cpu(&gateways[0]).await?;
    let run = load::for_duration(
        sizes.connections,
        Duration::from_secs_f64(sizes.seconds),
        op,
    )
    .await?;
    let cpu = cpu_seconds(gateways)? - cpu_before;
    let database_after = ctx.database_cpu(&gateways[0]).await?;
    let commits = value(gateways, &client, "watchwire_store_commits_total").await? - commits_before;
    let published =
        value(gateways, &client, "watchwire_events_published_total").await? - published_before;
    anyhow::ensure!(
        published as u64 == run.done,
        "the gateway counted {published} published events, the publishers {}",
        run.done
    );
    let per_second = run.per_second();
    Ok(Publish {
        connections: sizes.connections,
        seconds: run.elapsed.as_secs_f64(),
        events: run.done,
        per_second,
        ratio_to_raw: ratio(per_second, raw_per_second),
        ack: Percentiles::of_micros(run.latencies_us),
        store_commits: commits,
        events_per_commit: run.done as f64 / commits.max(1.0),
        gateway_cpu_us_per_event: cpu * 1e6 / run.done.max(1) as f64,
        database_cpu_us_per_event: database_us_per(&database_before, &database_after, run.done),
    })
}
