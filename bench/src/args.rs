//! The command line: which scenarios to run, at what sizes, against which gateway
//! binary and (with `--database-url`) which database.

use std::path::PathBuf;

use anyhow::Context;

use crate::scenarios::brokers::{BrokerUrls, Kind};
use crate::scenarios::Sizes;

/// The scenarios, in the order a full run takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Raw,
    Fanout,
    /// The fan-out with a filter on every channel (docs/api.md §16).
    Filtered,
    /// The fan-out's headline point with header authentication on every channel
    /// (docs/api.md §17).
    Authed,
    /// The fan-out's headline point with OpenTelemetry export on (docs/api.md §18).
    Traced,
    /// The fan-out's headline point into NATS JetStream (docs/api.md §20).
    Nats,
    /// The fan-out's headline point into RabbitMQ, with publisher confirms.
    Amqp,
    /// The fan-out's headline point into Redis Streams.
    Redis,
    /// The three broker scenarios (nats, amqp, redis).
    Brokers,
    Publish,
    Latency,
    /// Only with `--database-url`.
    Cluster,
    Wide,
    /// Server-Sent Events: N streams on one resource, 100 events each (docs/api.md §7.1).
    Sse,
    Scale,
    Backlog,
    Soak,
}

/// Every scenario a run may take, in order (`brokers` stands for three of them).
const ALL: [Scenario; 16] = [
    Scenario::Raw,
    Scenario::Fanout,
    Scenario::Filtered,
    Scenario::Authed,
    Scenario::Traced,
    Scenario::Nats,
    Scenario::Amqp,
    Scenario::Redis,
    Scenario::Publish,
    Scenario::Latency,
    Scenario::Cluster,
    Scenario::Wide,
    Scenario::Sse,
    Scenario::Scale,
    Scenario::Backlog,
    Scenario::Soak,
];

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "watchwire-bench",
    version,
    about = "Measure the watchwire gateway's throughput, latency and memory on this machine (see BENCHMARKS.md)"
)]
pub struct BenchArgs {
    /// The `watchwire` binary to benchmark, run as `watchwire serve` child processes
    /// (default: the `watchwire` next to this executable, where `cargo build --release`
    /// puts both).
    #[arg(long, env = "WATCHWIRE_BENCH_GATEWAY", value_name = "PATH")]
    pub gateway: Option<PathBuf>,

    /// The CI smoke: every scenario at tiny sizes (seconds in all), still checking that
    /// each delivered everything. Its numbers mean nothing.
    #[arg(long)]
    pub quick: bool,

    /// Directory for results.json, results.md, chart.svg and the gateways' logs.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,

    /// Run only this scenario (repeatable). The raw ceiling always runs too.
    #[arg(long = "scenario", value_enum)]
    pub scenarios: Vec<Scenario>,

    /// Leave this scenario out (repeatable), e.g. one whose broker is not there.
    #[arg(long = "skip-scenario", value_enum, value_name = "SCENARIO")]
    pub skipped: Vec<Scenario>,

    /// Where the gateways keep their data (default: a directory under the system's temp
    /// dir). Use a real disk: the fsync cost is part of every figure.
    #[arg(long)]
    pub data_root: Option<PathBuf>,

    /// Keep the gateways' data directories afterwards.
    #[arg(long)]
    pub keep_data: bool,

    /// Also run the fan-out (headline channel count), publish and latency scenarios on
    /// the PostgreSQL store, each right after its embedded run, and report both side by
    /// side. Every gateway gets a schema of its own in this database
    /// (`postgres://user@host:port/db`), dropped with its data.
    #[arg(
        long,
        env = "WATCHWIRE_BENCH_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Nodes of the cluster scenario (`--database-url` only).
    #[arg(long)]
    pub cluster_nodes: Option<usize>,

    /// The cluster scenario's leases, seconds, one failover run each, e.g. 10,2.
    #[arg(long, value_delimiter = ',')]
    pub cluster_lease_ttls: Option<Vec<f64>>,

    /// Channels of each failover run of the cluster scenario.
    #[arg(long)]
    pub cluster_channels: Option<usize>,

    /// Events per second published during the cluster scenario's failover runs.
    #[arg(long)]
    pub cluster_rate: Option<u64>,

    /// The NATS server (with JetStream) of the nats scenario: the gateway's `--broker`,
    /// and where the benchmark makes its stream and consumes.
    #[arg(long, default_value = "nats://127.0.0.1:4222", value_name = "URL")]
    pub nats_url: String,

    /// The RabbitMQ of the amqp scenario, credentials included (never printed).
    #[arg(
        long,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        value_name = "URL",
        hide_default_value = true
    )]
    pub amqp_url: String,

    /// The Redis of the redis scenario.
    #[arg(long, default_value = "redis://127.0.0.1:6379/0", value_name = "URL")]
    pub redis_url: String,

    /// Log filter of the gateways (their logs go to OUT/gateway-*.log).
    #[arg(long, default_value = "warn")]
    pub gateway_log: String,

    /// Concurrent connections of the raw, publish and channel-creation loads.
    #[arg(long)]
    pub connections: Option<usize>,

    /// Seconds the raw and publish loads run.
    #[arg(long)]
    pub seconds: Option<f64>,

    /// Channels of the headline fan-out figure (and of the header-auth fan-out).
    #[arg(long)]
    pub fanout_channels: Option<usize>,

    /// Channel counts of the throughput-vs-channels sweep, e.g. 1,10,50,200,1000.
    #[arg(long, value_delimiter = ',')]
    pub fanout_sweep: Option<Vec<usize>>,

    /// Notifications each fan-out point delivers.
    #[arg(long)]
    pub fanout_notifications: Option<u64>,

    /// Events per publish in the fan-out load.
    #[arg(long)]
    pub batch: Option<usize>,

    /// Publishes per second of the latency scenario.
    #[arg(long)]
    pub latency_rate: Option<u64>,

    /// Lower publish rates also measured by the latency scenario, e.g. 500,1000,2500.
    #[arg(long, value_delimiter = ',')]
    pub latency_sweep: Option<Vec<u64>>,

    /// The publish rate at which the stores are compared side by side (always measured).
    #[arg(long)]
    pub latency_compare_rate: Option<u64>,

    /// Channels of the latency scenario.
    #[arg(long)]
    pub latency_channels: Option<usize>,

    /// Seconds the latency scenario publishes.
    #[arg(long)]
    pub latency_seconds: Option<f64>,

    /// Channels on the one resource of the wide fan-out.
    #[arg(long)]
    pub wide_channels: Option<usize>,

    /// Open streams of the sse scenario (each a connection of its own; the gateway and
    /// the benchmark each need one file descriptor per stream).
    #[arg(long)]
    pub sse_streams: Option<usize>,

    /// Events published to the sse scenario's resource (each to every stream).
    #[arg(long)]
    pub sse_events: Option<u64>,

    /// Channels registered in the scale scenario.
    #[arg(long)]
    pub scale_channels: Option<usize>,

    /// Events pending on the dead endpoint of the backlog scenario.
    #[arg(long)]
    pub backlog_events: Option<usize>,

    /// Seconds the soak publishes. Its gateway prunes with 2m retention every 10s, so only
    /// what comes after 130 s shows whether store and memory stay flat.
    #[arg(long)]
    pub soak_seconds: Option<f64>,

    /// Events per second of the soak (each to every soak channel).
    #[arg(long)]
    pub soak_rate: Option<u64>,

    /// Channels of the soak, all on one collection.
    #[arg(long)]
    pub soak_channels: Option<usize>,

    /// The soak reads no `/metrics` (its gauges are then null): a gateway nobody scrapes.
    #[arg(long)]
    pub soak_no_metrics: bool,
}

impl BenchArgs {
    pub fn sizes(&self) -> Sizes {
        let mut s = if self.quick {
            Sizes::quick()
        } else {
            Sizes::full()
        };
        macro_rules! set {
            ($($field:ident),*) => {$( if let Some(v) = self.$field.clone() { s.$field = v; } )*};
        }
        set!(
            connections,
            seconds,
            fanout_channels,
            fanout_sweep,
            fanout_notifications,
            batch,
            latency_rate,
            latency_sweep,
            latency_compare_rate,
            latency_channels,
            latency_seconds,
            wide_channels,
            sse_streams,
            sse_events,
            scale_channels,
            backlog_events,
            soak_seconds,
            soak_rate,
            soak_channels
        );
        if self.soak_no_metrics {
            s.soak_scrape_metrics = false;
        }
        let c = &mut s.cluster;
        c.nodes = self.cluster_nodes.unwrap_or(c.nodes);
        c.lease_ttls = self
            .cluster_lease_ttls
            .clone()
            .unwrap_or(c.lease_ttls.clone());
        c.failover_channels = self.cluster_channels.unwrap_or(c.failover_channels);
        c.failover_rate = self.cluster_rate.unwrap_or(c.failover_rate);
        s
    }

    /// The gateway binary: `--gateway`, or `watchwire` next to this executable.
    pub fn gateway(&self) -> anyhow::Result<PathBuf> {
        let path = match &self.gateway {
            Some(path) => path.clone(),
            None => std::env::current_exe()
                .context("finding this executable")?
                .with_file_name(format!("watchwire{}", std::env::consts::EXE_SUFFIX)),
        };
        anyhow::ensure!(
            path.is_file(),
            "no gateway binary at {}: build it (cargo build --release) or name it with --gateway PATH (or WATCHWIRE_BENCH_GATEWAY)",
            path.display()
        );
        Ok(path)
    }

    /// The scenarios to run, in order; the cluster only with `--database-url`.
    pub fn selected(&self) -> Vec<Scenario> {
        let named = |list: &[Scenario], s: Scenario| list.iter().any(|n| n.covers(s));
        ALL.into_iter()
            .filter(|s| {
                *s == Scenario::Raw
                    || ((self.scenarios.is_empty() || named(&self.scenarios, *s))
                        && !named(&self.skipped, *s))
            })
            .filter(|s| *s != Scenario::Cluster || self.database_url.is_some())
            .collect()
    }

    /// The brokers of the broker scenarios.
    pub fn brokers(&self) -> BrokerUrls {
        BrokerUrls {
            nats: self.nats_url.clone(),
            amqp: self.amqp_url.clone(),
            redis: self.redis_url.clone(),
        }
    }
}

impl Scenario {
    /// The broker of a broker scenario.
    pub fn broker(self) -> Option<Kind> {
        match self {
            Scenario::Nats => Some(Kind::Nats),
            Scenario::Amqp => Some(Kind::Amqp),
            Scenario::Redis => Some(Kind::Redis),
            _ => None,
        }
    }

    /// Whether raw is measured right before and after it: a scenario judged as a ratio
    /// to raw.
    pub fn bracketed(self) -> bool {
        matches!(self, Scenario::Fanout | Scenario::Publish | Scenario::Scale)
    }

    /// Whether naming `self` names `scenario`: itself, or (`brokers`) a broker scenario.
    fn covers(self, scenario: Scenario) -> bool {
        self == scenario || (self == Scenario::Brokers && scenario.broker().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn selected(args: &[&str]) -> Vec<Scenario> {
        let mut line = vec!["watchwire-bench"];
        line.extend(args);
        BenchArgs::parse_from(line).selected()
    }

    #[test]
    fn brokers_names_the_three_broker_scenarios_and_a_skip_wins() {
        use Scenario::*;
        assert_eq!(
            selected(&["--scenario", "fanout", "--scenario", "brokers"]),
            [Raw, Fanout, Nats, Amqp, Redis]
        );
        assert_eq!(
            selected(&["--scenario", "brokers", "--skip-scenario", "amqp"]),
            [Raw, Nats, Redis]
        );
        let all = selected(&["--skip-scenario", "brokers", "--skip-scenario", "raw"]);
        assert!(all.contains(&Raw) && all.contains(&Soak));
        assert!(!all
            .iter()
            .any(|s| s.broker().is_some() || *s == Brokers || *s == Cluster));
    }
}
