//! The scenarios, one file each, and what they share: sizes, where gateways keep their
//! data and logs, and channel creation.

pub mod backlog;
pub mod cluster;
pub mod fanout;
pub mod latency;
pub mod publish;
pub mod raw;
pub mod scale;
pub mod soak;
pub mod wide;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::gateway::{Gateway, Launch};
use crate::load;
use crate::postgres::{Cpu, Database};
use crate::receiver::Receiver;

/// How big each scenario runs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sizes {
    /// Concurrent connections of the raw, publish and channel-creation loads.
    pub connections: usize,
    /// How long the raw and publish loads run, seconds.
    pub seconds: f64,
    /// Channels of the headline fan-out figure.
    pub fanout_channels: usize,
    /// Channel counts of the throughput-vs-channels sweep (includes `fanout_channels`).
    pub fanout_sweep: Vec<usize>,
    /// Notifications each sweep point delivers (events = this / channels).
    pub fanout_notifications: u64,
    /// Events per publish in the fan-out and backlog loads.
    pub batch: usize,
    /// Publishes per second of the headline latency figure.
    pub latency_rate: u64,
    /// Lower rates also measured, to show where the knee is.
    pub latency_sweep: Vec<u64>,
    /// The rate at which the stores are compared side by side (`--database-url`; the
    /// issue's 1k events/s). Always measured, as part of the sweep.
    pub latency_compare_rate: u64,
    pub latency_channels: usize,
    pub latency_seconds: f64,
    pub wide_channels: usize,
    pub scale_channels: usize,
    /// Channels per resource in the scale scenario.
    pub scale_per_resource: usize,
    pub backlog_events: usize,
    /// How long the soak publishes, seconds.
    pub soak_seconds: f64,
    /// Events per second of the soak, each to every one of `soak_channels` channels.
    pub soak_rate: u64,
    pub soak_channels: usize,
    /// The soak gateway's `--retention`, `--log-retention` and `--prune-interval`, seconds.
    pub soak_retention_seconds: f64,
    pub soak_log_retention_seconds: f64,
    pub soak_prune_interval_seconds: f64,
    /// How often the soak samples store size and memory, seconds.
    pub soak_sample_seconds: f64,
    /// Whether each soak sample also reads the gateway's `/metrics` (its store-size and
    /// prune-lag gauges). Off, nobody scrapes the gateway, as in a deployment without
    /// Prometheus: what it keeps for a scrape that never comes shows in its memory.
    #[serde(default = "yes")]
    pub soak_scrape_metrics: bool,
    /// A scenario fails when nothing arrives for this long, seconds.
    pub stall_seconds: f64,
    /// The cluster scenario's own sizes (`--database-url` only).
    #[serde(default)]
    pub cluster: cluster::ClusterSizes,
}

fn yes() -> bool {
    true
}

impl Sizes {
    /// The sizes, sized to finish in about ten minutes on two cores (plus the
    /// soak's eight).
    pub fn full() -> Sizes {
        Sizes {
            connections: 64,
            seconds: 5.0,
            fanout_channels: 50,
            fanout_sweep: vec![1, 10, 50, 200, 1000],
            fanout_notifications: 300_000,
            batch: 100,
            latency_rate: 5000,
            latency_sweep: vec![500, 1000, 2500],
            latency_compare_rate: 1000,
            latency_channels: 10,
            latency_seconds: 10.0,
            wide_channels: 100_000,
            scale_channels: 1_000_000,
            scale_per_resource: 1000,
            backlog_events: 1_000_000,
            soak_seconds: 480.0,
            soak_rate: 200,
            soak_channels: 20,
            soak_retention_seconds: 120.0,
            soak_log_retention_seconds: 120.0,
            soak_prune_interval_seconds: 10.0,
            soak_sample_seconds: 10.0,
            soak_scrape_metrics: true,
            stall_seconds: 60.0,
            cluster: cluster::ClusterSizes::full(),
        }
    }

    /// The CI smoke: every scenario, tiny, a few seconds in all even in a debug build.
    pub fn quick() -> Sizes {
        Sizes {
            connections: 16,
            seconds: 0.3,
            fanout_channels: 5,
            fanout_sweep: vec![1, 5],
            fanout_notifications: 200,
            batch: 10,
            latency_rate: 200,
            latency_sweep: vec![100],
            latency_compare_rate: 100,
            latency_channels: 3,
            latency_seconds: 0.5,
            wide_channels: 200,
            scale_channels: 500,
            scale_per_resource: 50,
            backlog_events: 2000,
            soak_seconds: 12.0,
            soak_rate: 50,
            soak_channels: 5,
            soak_retention_seconds: 3.0,
            soak_log_retention_seconds: 3.0,
            soak_prune_interval_seconds: 1.0,
            soak_sample_seconds: 1.0,
            soak_scrape_metrics: true,
            stall_seconds: 20.0,
            cluster: cluster::ClusterSizes::quick(),
        }
    }

    pub fn stall(&self) -> Duration {
        Duration::from_secs_f64(self.stall_seconds)
    }
}

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

/// Creates `n` channels, channel `i` on `resource(i)`, all delivering to `receiver`, over
/// `connections` concurrent connections, then waits for every sync notification.
/// Channel `i` is created through gateway `i % gateways.len()`: with the nodes of a
/// cluster, each delivers the channels created through it until they spread.
/// Returns (seconds to create, seconds until the last sync arrived), both from the first
/// request.
pub async fn create_channels(
    gateways: &[Gateway],
    receiver: &Receiver,
    n: usize,
    connections: usize,
    stall: Duration,
    resource: impl Fn(u64) -> String + Send + Sync + 'static,
) -> anyhow::Result<(f64, f64)> {
    let client = load::client(connections)?;
    let address = Arc::new(receiver.url("/notify"));
    let urls = urls(gateways);
    let syncs_before = receiver
        .counts()
        .syncs
        .load(std::sync::atomic::Ordering::Relaxed);
    let began = std::time::Instant::now();
    let run = load::for_each(n, connections, move |i| {
        let (client, address) = (client.clone(), address.clone());
        let url = urls[i as usize % urls.len()].clone();
        let resource = resource(i);
        async move { load::watch(&client, &url, &resource, load::watch_body(&address)).await }
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
    let gateway = Gateway::start(launch).await?;
    let receiver = Receiver::start().await?;
    let resource = resource.to_string();
    let times = create_channels(
        std::slice::from_ref(&gateway),
        &receiver,
        n,
        ctx.sizes.connections,
        ctx.sizes.stall(),
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

/// Duplicate notifications the receiver got so far.
pub fn duplicates(receiver: &Receiver) -> u64 {
    receiver
        .counts()
        .duplicates
        .load(std::sync::atomic::Ordering::Relaxed)
}
