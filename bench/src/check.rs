//! A figure against its target: what the report's tables list, whether the target
//! comes from the run's evaluation of single-store figures or from a scenario that
//! judges its own (the cluster's failover bounds and delivery checks).

use serde::{Deserialize, Serialize};

/// One target against what was measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}
