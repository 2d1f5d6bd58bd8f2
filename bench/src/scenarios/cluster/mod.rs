//! cluster: `cluster_nodes` gateways on one PostgreSQL schema (docs/api.md §13), every
//! node started as `watchwire serve --database-url <the same URL> --node-id nK
//! --lease-ttl <d>`. Only with `--database-url`.
//!
//! - **Side by side.** The fan-out, publish and latency measurements of
//!   [`super::fanout::measure`], [`super::publish::measure`] and
//!   [`super::latency::point`], at the same sizes, once on one PostgreSQL gateway and
//!   once on the cluster: channels created through the nodes in turn and spread (every
//!   node owns some, as `/v1/cluster` says) before anything is measured, publishes sent
//!   through the nodes in turn.
//! - **Failover and handover**, once per `--lease-ttl` of `cluster_lease_ttls`, each on
//!   a fresh cluster: channels spread, events published at a steady rate through the
//!   live nodes, then `kill -9` of the node owning the most channels, and later SIGTERM
//!   of the surviving node owning the most. For each channel of the stopped node: the
//!   time from the signal to its first delivery by another node. A delivery's sender
//!   is told by the connection it arrived on (one process each): the stopped node's
//!   connections are those that carried its channels while ownership stood still.
//! - **Checks** from every notification the receiver recorded: no acknowledged event
//!   lost on any channel (events carry their index), each channel's first receipts in
//!   message-number order, and no duplicate while every node was healthy (duplicates
//!   after a kill are allowed and counted).
//!
//! Files: [`results`] (what the scenario returns), [`side_by_side`] (one node against
//! the cluster), [`nodes`] (a running cluster and what it says about itself),
//! [`steady`] (the publisher of the failover runs), [`failover`] (the `kill -9` and
//! SIGTERM runs), [`tally`] (arithmetic over what the receiver recorded) and [`checks`].

mod checks;
mod failover;
mod nodes;
mod results;
mod side_by_side;
mod steady;
mod tally;

use std::sync::Arc;

use anyhow::Context;

pub use results::Cluster;

use super::Ctx;
use crate::format::duration_arg;
use crate::postgres::Database;

pub async fn run(ctx: &Ctx, database: &Arc<Database>) -> anyhow::Result<Cluster> {
    let ctx = ctx.on_postgres(database.clone());
    let sizes = ctx.sizes.cluster.clone();
    anyhow::ensure!(sizes.nodes >= 2, "a cluster needs at least two nodes");
    let single = side_by_side::side(&ctx, database, None)
        .await
        .context("one node")?;
    let cluster = side_by_side::side(&ctx, database, Some(sizes.nodes))
        .await
        .context("the cluster")?;
    let mut failover = Vec::new();
    let mut handover = Vec::new();
    let mut delivery = Vec::new();
    for &ttl in &sizes.lease_ttls {
        let (kill, term, got) = failover::lease_run(&ctx, database, ttl)
            .await
            .with_context(|| format!("failover with --lease-ttl {}", duration_arg(ttl)))?;
        failover.push(kill);
        handover.push(term);
        delivery.push(got);
    }
    let side_by_side = side_by_side::compare(&single, &cluster);
    let checks = checks::checks(&cluster, &failover, &handover, &delivery);
    Ok(Cluster {
        nodes: sizes.nodes,
        fanout_channels: ctx.sizes.fanout_channels,
        latency_channels: ctx.sizes.latency_channels,
        latency_rate: ctx.sizes.latency_compare_rate,
        publish_connections: ctx.sizes.connections,
        sizes,
        single,
        cluster,
        side_by_side,
        failover,
        handover,
        delivery,
        checks,
    })
}
