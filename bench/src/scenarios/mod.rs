//! The scenarios, one file (or folder) each, and what they share: where gateways keep
//! their data and logs, channel creation, and the delivery checks. Each scenario
//! measures and returns its own results type; judging those against targets and
//! rendering them is for the layers above (`targets`, `report`), which import the
//! scenarios and never the other way round.

pub mod authed;
pub mod backlog;
pub mod brokers;
pub mod cluster;
pub mod fanout;
pub mod filtered;
pub mod latency;
pub mod publish;
pub mod raw;
pub mod scale;
mod sizes;
pub mod soak;
pub mod sse;
pub mod traced;
pub mod wide;

pub use sizes::{ClusterSizes, Sizes};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::gateway::{Gateway, Launch};
use crate::load;
use crate::postgres::{Cpu, Database};
use crate::receiver::Receiver;

/// What every scenario needs.
#[derive(Clone)]
pub struct Ctx {
    /// The `watchwire` binary under test.
    pub gateway: PathBuf,
    pub sizes: Sizes,
    /// Data directories of the gateways.
    pub work_dir: PathBuf,
    /// Gateway logs.
    pub log_dir: PathBuf,
    pub log_filter: String,
    /// Where the gateways keep their data: `None` for the embedded store, else a schema
    /// of their own each in this database.
    pub database: Option<Arc<Database>>,
    /// The brokers of the broker scenarios.
    pub brokers: brokers::BrokerUrls,
}

impl Ctx {
    /// The same, with every gateway's data in PostgreSQL.
    pub fn on_postgres(&self, database: Arc<Database>) -> Ctx {
        Ctx {
            database: Some(database),
            ..self.clone()
        }
    }

    /// The store, as the report names it.
    pub fn store(&self) -> &'static str {
        if self.database.is_some() {
            "PostgreSQL"
        } else {
            "embedded"
        }
    }

    /// A fresh data directory (and, on PostgreSQL, a fresh schema) and log file for one
    /// gateway.
    pub async fn launch(&self, name: &str) -> anyhow::Result<Launch> {
        let name = match self.database {
            Some(_) => format!("{name}-postgres"),
            None => name.to_string(),
        };
        let data_dir = self.work_dir.join(&name);
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)?;
        }
        std::fs::create_dir_all(&data_dir)?;
        let log_file = self.log_dir.join(format!("gateway-{name}.log"));
        let _ = std::fs::remove_file(&log_file);
        let launch = Launch::new(&self.gateway, &data_dir, &log_file, &self.log_filter);
        Ok(match &self.database {
            Some(database) => launch.on_postgres(database.create_schema(&name).await?),
            None => launch,
        })
    }

    /// Stops a gateway and removes its data (directory, or schema) once its scenario is
    /// done with it.
    pub async fn finish(&self, gateway: Gateway) -> anyhow::Result<()> {
        let data = gateway.data_dir.clone();
        let schema = gateway.schema.clone();
        if let (Some(database), Some(schema)) = (&self.database, &schema) {
            database.gateway_stopping(schema).await?;
        }
        gateway.stop().await?;
        let _ = std::fs::remove_dir_all(data);
        if let (Some(database), Some(schema)) = (&self.database, &schema) {
            database.drop_schema(schema).await?;
        }
        Ok(())
    }

    /// CPU time so far of the PostgreSQL server for `gateway` (its connections and the
    /// server's background processes); `None` on the embedded store. Two readings give
    /// the database's CPU over a measurement ([`crate::postgres::Cpu::since`]). The
    /// nodes of a cluster share one schema, so one node's reading covers them all.
    pub async fn database_cpu(&self, gateway: &Gateway) -> anyhow::Result<Option<Cpu>> {
        match &self.database {
            Some(database) => Ok(Some(database.cpu(gateway.schema.as_deref()).await?)),
            None => Ok(None),
        }
    }
}

/// Database CPU µs per unit of work between two [`Ctx::database_cpu`] readings.
pub fn database_us_per(before: &Option<Cpu>, after: &Option<Cpu>, work: u64) -> Option<f64> {
    match (before, after) {
        (Some(before), Some(after)) => Some(after.since(before) * 1e6 / work.max(1) as f64),
        _ => None,
    }
}

/// Endpoint authentication by a fixed header (docs/api.md §17): what a watch body's
/// `auth` holds, and the header every notification of the channel then carries.
#[derive(Debug, Clone)]
pub struct HeaderAuth {
    pub name: String,
    pub value: String,
}

impl HeaderAuth {
    /// `Authorization: Bearer <64 hex characters>`, the size of a common API token, new
    /// each time.
    pub fn bearer() -> HeaderAuth {
        let token = [uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()];
        HeaderAuth {
            name: "Authorization".into(),
            value: format!("Bearer {}{}", token[0], token[1]),
        }
    }

    /// The watch body's `auth` object: `{"type": "header", "name": …, "value": …}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"type": "header", "name": self.name, "value": self.value})
    }
}

/// Where the channels a scenario creates deliver.
#[derive(Clone, Copy)]
pub enum Endpoint<'a> {
    /// The receiver's webhook, every channel sending this header when given (the
    /// receiver then counts the notifications that carry it: [`check_authenticated`]).
    Webhook(Option<&'a HeaderAuth>),
    /// A broker: channel `i` to the destination's `i`th address, whose consumer counts
    /// what it reads into the receiver.
    Broker(&'a brokers::Destination),
}

impl Endpoint<'_> {
    /// The receiver's webhook, without authentication.
    pub const WEBHOOK: Endpoint<'static> = Endpoint::Webhook(None);
}

/// Creates `n` channels, channel `i` on `resource(i)`, all delivering to `to` (and so
/// counted by `receiver`), over `connections` concurrent connections, then waits for
/// every sync notification. Channel `i` is created through gateway `i % gateways.len()`:
/// with the nodes of a cluster, each delivers the channels created through it until
/// they spread.
/// Returns (seconds to create, seconds until the last sync arrived), both from the first
/// request.
pub async fn create_channels(
    gateways: &[Gateway],
    receiver: &Receiver,
    n: usize,
    connections: usize,
    stall: Duration,
    to: Endpoint<'_>,
    resource: impl Fn(u64) -> String + Send + Sync + 'static,
) -> anyhow::Result<(f64, f64)> {
    let client = load::client(connections)?;
    let urls = urls(gateways);
    let (channel_type, addresses, auth) = match to {
        Endpoint::Webhook(auth) => {
            if let Some(auth) = auth {
                receiver.expect_header(&auth.name, &auth.value);
            }
            let auth: Option<Arc<str>> = auth.map(|auth| auth.json().to_string().into());
            ("web_hook", vec![receiver.url("/notify")], auth)
        }
        Endpoint::Broker(destination) => {
            anyhow::ensure!(
                destination.addresses.len() >= n,
                "{} channels asked of a destination made for {}",
                n,
                destination.addresses.len()
            );
            (
                destination.kind.channel_type(),
                destination.addresses.clone(),
                None,
            )
        }
    };
    let addresses = Arc::new(addresses);
    let syncs_before = receiver
        .counts()
        .syncs
        .load(std::sync::atomic::Ordering::Relaxed);
    let began = std::time::Instant::now();
    let run = load::for_each(n, connections, move |i| {
        let client = client.clone();
        let url = urls[i as usize % urls.len()].clone();
        let resource = resource(i);
        let address = &addresses[i as usize % addresses.len()];
        let body = load::watch_body(channel_type, address, auth.as_deref());
        async move { load::watch(&client, &url, &resource, body).await }
    })
    .await?;
    anyhow::ensure!(run.done == n as u64, "created {} of {n} channels", run.done);
    let created = began.elapsed().as_secs_f64();
    receiver.wait_syncs(syncs_before + n as u64, stall).await?;
    Ok((created, began.elapsed().as_secs_f64()))
}

/// The base URLs of the gateways one measurement drives (one gateway, or every node of a
/// cluster); loads spread their requests over them round-robin.
pub fn urls(gateways: &[Gateway]) -> Arc<Vec<String>> {
    Arc::new(gateways.iter().map(|g| g.url.clone()).collect())
}

/// A counter of `/metrics` summed over `gateways` (0 where absent).
pub async fn value(
    gateways: &[Gateway],
    client: &reqwest::Client,
    name: &str,
) -> anyhow::Result<f64> {
    let mut sum = 0.0;
    for gateway in gateways {
        sum += gateway.value(client, name).await?;
    }
    Ok(sum)
}

/// CPU time so far of `gateways`' processes, summed, seconds.
pub fn cpu_seconds(gateways: &[Gateway]) -> anyhow::Result<f64> {
    gateways.iter().map(Gateway::cpu_seconds).sum()
}

/// Starts a gateway from `launch` and a receiver, and creates `n` channels on `resource`
/// delivering to it (see [`create_channels`]). Returns both and (seconds to create,
/// seconds until the last sync arrived).
pub async fn watched(
    ctx: &Ctx,
    launch: &Launch,
    n: usize,
    resource: &str,
) -> anyhow::Result<(Gateway, Receiver, (f64, f64))> {
    watched_with_auth(ctx, launch, n, resource, None).await
}

/// [`watched`], every channel authenticating with `auth` when given.
pub async fn watched_with_auth(
    ctx: &Ctx,
    launch: &Launch,
    n: usize,
    resource: &str,
    auth: Option<&HeaderAuth>,
) -> anyhow::Result<(Gateway, Receiver, (f64, f64))> {
    let gateway = Gateway::start(launch).await?;
    let receiver = Receiver::start().await?;
    let resource = resource.to_string();
    let times = create_channels(
        std::slice::from_ref(&gateway),
        &receiver,
        n,
        ctx.sizes.connections,
        ctx.sizes.stall(),
        Endpoint::Webhook(auth),
        move |_| resource.clone(),
    )
    .await?;
    Ok((gateway, receiver, times))
}

/// Ratio of a rate to the raw ceiling (`None` without a raw figure).
pub fn ratio(rate: f64, raw_per_second: Option<f64>) -> Option<f64> {
    raw_per_second.filter(|r| *r > 0.0).map(|r| rate / r)
}

/// Checks that every published notification arrived, in order per channel. Duplicates
/// (which at-least-once delivery allows, e.g. after a lost response) are counted by the
/// scenarios that report them, not failed.
pub fn check_delivery(receiver: &Receiver, expected_events: u64) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let counts = receiver.counts();
    let (distinct, out_of_order) = (
        counts.distinct.load(Relaxed),
        counts.out_of_order.load(Relaxed),
    );
    anyhow::ensure!(
        out_of_order == 0,
        "{out_of_order} notifications arrived out of order"
    );
    anyhow::ensure!(
        distinct == expected_events,
        "{distinct} distinct notifications arrived, expected {expected_events}"
    );
    Ok(())
}

/// Checks that every notification `receiver` got, sync and event, carried the header
/// its channels authenticate with ([`Endpoint::Webhook`] with an auth).
pub fn check_authenticated(receiver: &Receiver) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let counts = receiver.counts();
    let notifications = counts.syncs.load(Relaxed) + counts.events.load(Relaxed);
    let authenticated = counts.authenticated.load(Relaxed);
    anyhow::ensure!(
        notifications > 0 && authenticated == notifications,
        "{authenticated} of {notifications} notifications carried the channels' auth header"
    );
    Ok(())
}

/// Duplicate notifications the receiver got so far.
pub fn duplicates(receiver: &Receiver) -> u64 {
    receiver
        .counts()
        .duplicates
        .load(std::sync::atomic::Ordering::Relaxed)
}
