//! A figure against its target: what the report's tables list, whether the target
//! comes from the run's evaluation of single-store figures or from a scenario that
//! judges its own (the cluster's failover bounds and delivery checks).

use serde::{Deserialize, Serialize};

/// One target against what was measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub measured: f64,
    pub unit: String,
    pub ratio_to_raw: Option<f64>,
    /// As the target is written, e.g. "≥ 0.75 × raw"; empty when there is none.
    pub target: String,
    pub pass: Option<bool>,
    /// Size caveats: a figure measured below the target's size says so here.
    pub note: String,
    /// A figure judged as a ratio to raw: the gateway's CPU per unit (notification,
    /// event, channel), µs, from `/proc`.
    #[serde(default)]
    pub cpu_us_per_unit: Option<f64>,
    /// The raw path's CPU per request (the benchmark's client and receiver), µs: the mean
    /// of the raw measurements before and after the scenario.
    #[serde(default)]
    pub raw_cpu_us_per_request: Option<f64>,
    /// `cpu_us_per_unit / raw_cpu_us_per_request`: how many raw requests' worth of CPU
    /// one unit costs the gateway; unlike the throughput ratio, it does not move with
    /// what the machine's other tenants do to its cores.
    #[serde(default)]
    pub cpu_ratio: Option<f64>,
    /// The raw rate measured right before and right after the scenario; the ratio is to
    /// their mean.
    #[serde(default)]
    pub raw_before: Option<f64>,
    #[serde(default)]
    pub raw_after: Option<f64>,
    /// `|after − before| / mean`.
    #[serde(default)]
    pub raw_drift: Option<f64>,
    /// Whether raw held still (drift ≤ 15 %): otherwise the ratio is untrustworthy.
    #[serde(default)]
    pub raw_steady: Option<bool>,
}
