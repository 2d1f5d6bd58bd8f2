//! The results of one run, as `results.json` holds them: each scenario's own results
//! type, the machine, the checks against the targets (filled in by `targets`) and what
//! failed. Rendering them is the report's business alone.

use serde::{Deserialize, Serialize};

use crate::check::Check;
use crate::cpu::Foreign;
use crate::postgres::DatabaseInfo;
use crate::scenarios::authed::Authed;
use crate::scenarios::backlog::Backlog;
use crate::scenarios::brokers::Broker;
use crate::scenarios::cluster::Cluster;
use crate::scenarios::fanout::Fanout;
use crate::scenarios::filtered::Filtered;
use crate::scenarios::latency::Latency;
use crate::scenarios::publish::Publish;
use crate::scenarios::raw::{Bracket, Raw};
use crate::scenarios::scale::Scale;
use crate::scenarios::soak::Soak;
use crate::scenarios::sse::Sse;
use crate::scenarios::traced::Traced;
use crate::scenarios::wide::Wide;
use crate::scenarios::Sizes;

/// The machine the run measured, as the results describe it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    pub memory_total_mib: u64,
}

impl Machine {
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            memory_total_mib: memory_kib / 1024,
        }
    }
}

/// The scenarios run again on PostgreSQL (`--database-url`), each right after its
/// embedded run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostgresResults {
    pub database: DatabaseInfo,
    /// At the headline channel count only.
    pub fanout: Option<Fanout>,
    pub publish: Option<Publish>,
    pub latency: Option<Latency>,
}

/// One figure measured on both stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub name: String,
    pub unit: String,
    pub embedded: Option<f64>,
    pub postgres: Option<f64>,
    /// `postgres / embedded`.
    pub ratio: Option<f64>,
    /// PostgreSQL's target, e.g. "≥ 0.8 × embedded"; empty when none.
    pub target: String,
    pub pass: Option<bool>,
}

/// Everything one run measured and judged: what `results.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub watchwire_version: String,
    pub quick: bool,
    /// "release" or "debug", of this harness and so of the gateway next to it (the
    /// default `--gateway`): debug figures mean nothing.
    pub build: String,
    pub command: String,
    pub machine: Machine,
    pub sizes: Sizes,
    pub wall_seconds: f64,
    pub raw: Option<Raw>,
    /// Raw measured right before and right after each scenario judged as a ratio to raw
    /// (fanout, publish, scale): that scenario's ratios are to their mean.
    #[serde(default)]
    pub raw_brackets: Vec<Bracket>,
    pub fanout: Option<Fanout>,
    pub publish: Option<Publish>,
    pub latency: Option<Latency>,
    #[serde(default)]
    pub filtered: Option<Filtered>,
    #[serde(default)]
    pub authed: Option<Authed>,
    pub traced: Option<Traced>,
    /// The broker scenarios run (nats, amqp, redis), in that order.
    #[serde(default)]
    pub brokers: Vec<Broker>,
    pub wide: Option<Wide>,
    /// Server-Sent Events streams on one resource: delivery and memory per stream.
    #[serde(default)]
    pub sse: Option<Sse>,
    pub scale: Option<Scale>,
    pub backlog: Option<Backlog>,
    pub soak: Option<Soak>,
    /// With `--database-url`: several nodes on one PostgreSQL database against one node,
    /// failover, handover, and what the receiver got meanwhile.
    #[serde(default)]
    pub cluster: Option<Cluster>,
    /// With `--database-url`: the same scenarios on the PostgreSQL store.
    #[serde(default)]
    pub postgres: Option<PostgresResults>,
    /// With `--database-url`: both stores' figures side by side, against PostgreSQL's
    /// targets.
    #[serde(default)]
    pub side_by_side: Vec<Comparison>,
    /// Scenarios that failed, with why.
    pub failures: Vec<String>,
    pub checks: Vec<Check>,
    /// CPU that other processes used during each scenario (the machine is shared).
    pub foreign_cpu: Vec<Foreign>,
}

impl Results {
    /// The raw measurements around `scenario` (its lower-case name), if it had them.
    pub fn bracket(&self, scenario: &str) -> Option<&Bracket> {
        self.raw_brackets.iter().find(|b| b.scenario == scenario)
    }
}
