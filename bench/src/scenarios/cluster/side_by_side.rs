//! One node against the cluster: the fan-out, publish and latency measurements of the
//! other scenarios, at the same sizes, on one PostgreSQL gateway and on the nodes of a
//! cluster, and the rows that put them side by side.

use super::nodes::Nodes;
use super::results::{Row, Side};
use crate::format::format_count;
use crate::gateway::Gateway;
use crate::load;
use crate::postgres::Database;
use crate::receiver::Receiver;
use crate::scenarios::fanout::{self, COLLECTION as FANOUT_COLLECTION};
use crate::scenarios::latency::{self, COLLECTION as LATENCY_COLLECTION};
use crate::scenarios::publish;
use crate::scenarios::{create_channels, duplicates, watched, Ctx, Endpoint};

/// The fan-out, publish and latency figures on one gateway (`nodes` = `None`) or on a
/// cluster of `nodes`, each measurement on fresh gateways.
pub(super) async fn side(
    ctx: &Ctx,
    database: &Database,
    nodes: Option<usize>,
) -> anyhow::Result<Side> {
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
    let latency_duplicates = duplicates(&receiver);
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
                Endpoint::WEBHOOK,
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

/// The side-by-side rows.
pub(super) fn compare(single: &Side, cluster: &Side) -> Vec<Row> {
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
    format_count(rate as f64)
}
