//! How big each scenario runs: a full run's sizes, the CI smoke's tiny ones, and the
//! cluster scenario's own.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How big each scenario runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sizes {
    /// Concurrent connections of the raw, publish and channel-creation loads.
    pub connections: usize,
    /// How long the raw and publish loads run, seconds.
    pub seconds: f64,
    /// Channels of the headline fan-out figure, and of the header-auth fan-out (which
    /// publishes the same events, to compare with it).
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
    /// The rate at which the stores are compared side by side (`--database-url`; 1k
    /// events/s, the rate PostgreSQL's latency target is set at). Always measured, as
    /// part of the sweep.
    pub latency_compare_rate: u64,
    pub latency_channels: usize,
    pub latency_seconds: f64,
    pub wide_channels: usize,
    /// Open streams of the sse scenario, all on one resource.
    #[serde(default = "full_sse_streams")]
    pub sse_streams: usize,
    /// Events the sse scenario publishes, each to every stream.
    #[serde(default = "full_sse_events")]
    pub sse_events: u64,
    /// Channels of the filtered fan-out, each with a filter of its own.
    #[serde(default = "full_filtered_channels")]
    pub filtered_channels: usize,
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
    pub cluster: ClusterSizes,
}

fn full_filtered_channels() -> usize {
    1000
}

fn full_sse_streams() -> usize {
    10_000
}

fn full_sse_events() -> u64 {
    100
}

fn yes() -> bool {
    true
}

impl Sizes {
    /// The sizes the targets are set at (100k channels on one resource, 1M channels, 1M
    /// pending), sized to finish in about ten minutes on two cores (plus the soak's eight).
    pub fn full() -> Sizes {
        Sizes {
            connections: 64,
            seconds: 5.0,
            fanout_channels: 50,
            fanout_sweep: vec![1, 10, 50, 200, 1000],
            fanout_notifications: 300_000,
            batch: 100,
            latency_rate: 2500,
            latency_sweep: vec![500, 1000],
            latency_compare_rate: 1000,
            latency_channels: 10,
            latency_seconds: 10.0,
            wide_channels: 100_000,
            sse_streams: full_sse_streams(),
            sse_events: full_sse_events(),
            filtered_channels: full_filtered_channels(),
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
            cluster: ClusterSizes::full(),
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
            sse_streams: 200,
            sse_events: full_sse_events(),
            filtered_channels: 20,
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
            cluster: ClusterSizes::quick(),
        }
    }

    pub fn stall(&self) -> Duration {
        Duration::from_secs_f64(self.stall_seconds)
    }
}

/// The sizes of the cluster scenario (the side-by-side part also uses the fan-out's
/// channel count, the publish load and the latency scenario's channels and comparison
/// rate).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSizes {
    pub nodes: usize,
    /// Notifications of the side-by-side fan-out (events = this / channels).
    pub fanout_notifications: u64,
    /// How long the side-by-side latency point publishes, seconds.
    pub latency_seconds: f64,
    /// One failover run (a fresh cluster) per lease, seconds.
    pub lease_ttls: Vec<f64>,
    /// Channels of each failover run.
    pub failover_channels: usize,
    /// Events per second published through the live nodes during a failover run, each to
    /// every channel.
    pub failover_rate: u64,
    /// How long every node is healthy and publishing before the kill, seconds (also the
    /// window in which ownership must stand still).
    pub steady_seconds: f64,
}

impl ClusterSizes {
    pub fn full() -> ClusterSizes {
        ClusterSizes {
            nodes: 3,
            fanout_notifications: 150_000,
            latency_seconds: 5.0,
            lease_ttls: vec![10.0, 2.0],
            failover_channels: 30,
            failover_rate: 50,
            steady_seconds: 5.0,
        }
    }

    pub fn quick() -> ClusterSizes {
        ClusterSizes {
            nodes: 3,
            fanout_notifications: 300,
            latency_seconds: 0.5,
            lease_ttls: vec![2.0],
            failover_channels: 6,
            failover_rate: 20,
            steady_seconds: 1.0,
        }
    }
}

impl Default for ClusterSizes {
    fn default() -> ClusterSizes {
        ClusterSizes::full()
    }
}
