//! What the cluster scenario returns: both sides' figures, each takeover, what the
//! receiver got, and the checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::Check;
use crate::scenarios::fanout;
use crate::scenarios::latency;
use crate::scenarios::publish::Publish;
use crate::scenarios::ClusterSizes;

/// The fan-out, publish and latency figures of one side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    pub fanout: fanout::Point,
    pub publish: Publish,
    pub latency: latency::Point,
    /// Notifications of the latency point that arrived twice.
    pub latency_duplicates: u64,
}

/// One figure on one node and on the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub unit: String,
    pub single: f64,
    pub cluster: f64,
    /// `cluster / single`.
    pub ratio: Option<f64>,
}

/// A node stopped while its channels were delivering, and how soon others took over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Takeover {
    pub lease_ttl_seconds: f64,
    /// `kill -9` or `SIGTERM`.
    pub signal: String,
    pub node: String,
    /// Nodes running before the signal.
    pub nodes_before: usize,
    /// Channels the node delivered when signalled.
    pub channels: usize,
    /// Of those, the channels another node delivered to within the target plus
    /// the takeover grace (`failover::TAKEOVER_GRACE`).
    pub taken_over: usize,
    /// Per channel: from the signal to the first delivery by another node, seconds
    /// (`null`: none came).
    pub seconds: Vec<Option<f64>>,
    pub median_seconds: Option<f64>,
    pub max_seconds: Option<f64>,
    pub target_seconds: f64,
    pub pass: bool,
    /// The nodes delivering its channels afterwards, as `/v1/channels` says, with how
    /// many each.
    pub new_owners: BTreeMap<String, usize>,
}

/// What the receiver got during one failover run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub lease_ttl_seconds: f64,
    pub channels: usize,
    pub rate: u64,
    /// Events acknowledged (`200`), each owed to every channel.
    pub events: u64,
    /// Publishes not answered `200` (the scenario sends none to a node it stops, so any is
    /// a failure of a live node).
    pub publish_failures: u64,
    /// Channels per node when the run began.
    pub spread: BTreeMap<String, usize>,
    /// From creating the channels until every node delivered some, seconds.
    pub spread_seconds: f64,
    /// While every node was healthy: how long, the notifications and the repeats.
    pub healthy_seconds: f64,
    pub healthy_notifications: u64,
    pub healthy_duplicates: u64,
    /// Repeats after the kill (at-least-once allows them: an attempt in flight when the
    /// node died).
    pub duplicates_after_kill: u64,
    /// (channel, acknowledged event) pairs never delivered.
    pub lost: u64,
    /// First receipts below an earlier first receipt on the same channel.
    pub out_of_order: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    pub nodes: usize,
    pub sizes: ClusterSizes,
    pub fanout_channels: usize,
    pub latency_channels: usize,
    pub latency_rate: u64,
    pub publish_connections: usize,
    /// One PostgreSQL gateway.
    pub single: Side,
    /// `nodes` nodes on one schema.
    pub cluster: Side,
    pub side_by_side: Vec<Row>,
    /// `kill -9`, one per lease.
    pub failover: Vec<Takeover>,
    /// SIGTERM, one per lease (after that lease's failover: one node fewer).
    pub handover: Vec<Takeover>,
    pub delivery: Vec<Delivery>,
    /// The targets and the delivery checks, with pass/fail.
    pub checks: Vec<Check>,
}
