//! The cluster's targets (failover within the lease plus 5 s, handover within 2 s) and
//! its delivery checks (nothing acknowledged lost, order kept, no duplicate while every
//! node is healthy), each with pass/fail.

use super::results::{Delivery, Side, Takeover};
use crate::check::Check;
use crate::format::duration_arg;

/// The targets (failover, handover) and the delivery checks, each with pass/fail.
pub(super) fn checks(
    cluster: &Side,
    failover: &[Takeover],
    handover: &[Takeover],
    delivery: &[Delivery],
) -> Vec<Check> {
    let check =
        |name: String, measured: f64, unit: &str, target: &str, pass: bool, note: String| Check {
            name,
            measured,
            unit: unit.to_string(),
            ratio_to_raw: None,
            target: target.to_string(),
            pass: Some(pass),
            note,
            ..Check::default()
        };
    let mut checks = Vec::new();
    for t in failover.iter().chain(handover) {
        let what = if t.signal == "SIGTERM" {
            "handover"
        } else {
            "failover"
        };
        checks.push(check(
            format!(
                "{what} ({}), --lease-ttl {}: max",
                t.signal,
                duration_arg(t.lease_ttl_seconds)
            ),
            t.max_seconds.unwrap_or(f64::NAN),
            "s",
            &format!("≤ {} s", t.target_seconds),
            t.pass,
            format!(
                "{} of {}'s {} channels delivered by another node; median {}; {} nodes before",
                t.taken_over,
                t.node,
                t.channels,
                t.median_seconds
                    .map_or("—".to_string(), |m| format!("{m:.2} s")),
                t.nodes_before
            ),
        ));
    }
    let lost: u64 = delivery.iter().map(|d| d.lost).sum();
    let pairs: u64 = delivery.iter().map(|d| d.events * d.channels as u64).sum();
    let failures: u64 = delivery.iter().map(|d| d.publish_failures).sum();
    checks.push(check(
        "acknowledged events lost".into(),
        lost as f64,
        "notifications",
        "0",
        lost == 0 && pairs > 0,
        format!("of {pairs} (channel, acknowledged event) pairs across kills and stops; {failures} publishes failed"),
    ));
    let out_of_order: u64 = delivery.iter().map(|d| d.out_of_order).sum();
    checks.push(check(
        "first receipts out of message-number order".into(),
        out_of_order as f64,
        "notifications",
        "0",
        out_of_order == 0,
        "per channel, across kills and stops (the side-by-side runs fail on any)".into(),
    ));
    let healthy = delivery.iter().map(|d| d.healthy_duplicates).sum::<u64>()
        + cluster.fanout.duplicates
        + cluster.latency_duplicates;
    let healthy_notifications = delivery
        .iter()
        .map(|d| d.healthy_notifications)
        .sum::<u64>()
        + cluster.fanout.notifications
        + cluster.latency.notifications;
    let after: u64 = delivery.iter().map(|d| d.duplicates_after_kill).sum();
    checks.push(check(
        "duplicates while every node is healthy".into(),
        healthy as f64,
        "notifications",
        "0",
        healthy == 0 && healthy_notifications > 0,
        format!(
            "of {healthy_notifications} (the cluster's fan-out and latency runs, and the steady phases before each kill); {after} after a kill (allowed)"
        ),
    ));
    checks
}
