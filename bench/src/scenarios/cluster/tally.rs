//! Arithmetic over what the failover runs observed, kept apart from the waiting and
//! signalling so it can be tested alone: who delivers what, which connections were a
//! node's, a takeover's figures, and duplicates and order in the receiver's record.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::results::Takeover;
use crate::receiver::Receipt;

pub(super) fn count_by_node(owners: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for node in owners.values() {
        *counts.entry(node.clone()).or_insert(0) += 1;
    }
    counts
}

/// The node delivering the most channels (the first by id among equals).
pub(super) fn busiest(owners: &BTreeMap<String, String>) -> String {
    let counts = count_by_node(owners);
    let most = counts.values().copied().max().unwrap_or(0);
    counts
        .into_iter()
        .find(|(_, n)| *n == most)
        .map(|(id, _)| id)
        .unwrap_or_default()
}

pub(super) fn channels_of(owners: &BTreeMap<String, String>, node: &str) -> Vec<String> {
    owners
        .iter()
        .filter(|(_, owner)| *owner == node)
        .map(|(id, _)| id.clone())
        .collect()
}

/// The connections `node` delivered on: those that carried its channels in `window`,
/// less any that also carried another node's (none should).
pub(super) fn connections_of(
    window: &[Receipt],
    owners: &BTreeMap<String, String>,
    node: &str,
) -> HashSet<u64> {
    let (mut its, mut others) = (HashSet::new(), HashSet::new());
    for r in window {
        match owners.get(&*r.channel) {
            Some(owner) if owner == node => its.insert(r.connection),
            _ => others.insert(r.connection),
        };
    }
    its.difference(&others).copied().collect()
}
#[allow(clippy::too_many_arguments)]
pub(super) fn takeover(
    ttl: f64,
    signal: &str,
    node: &str,
    nodes_before: usize,
    channels: &[String],
    seconds: Vec<Option<f64>>,
    target: f64,
    after: &BTreeMap<String, String>,
) -> Takeover {
    let mut done: Vec<f64> = seconds.iter().flatten().copied().collect();
    done.sort_by(f64::total_cmp);
    let median = (!done.is_empty()).then(|| done[(done.len() - 1) / 2]);
    let max = done.last().copied();
    let mut new_owners = BTreeMap::new();
    for c in channels {
        let owner = after.get(c).cloned().unwrap_or_default();
        *new_owners.entry(owner).or_insert(0) += 1;
    }
    Takeover {
        lease_ttl_seconds: ttl,
        signal: signal.to_string(),
        node: node.to_string(),
        nodes_before,
        channels: channels.len(),
        taken_over: done.len(),
        pass: !channels.is_empty()
            && done.len() == channels.len()
            && max.is_some_and(|m| m <= target),
        seconds,
        median_seconds: median,
        max_seconds: max,
        target_seconds: target,
        new_owners,
    }
}

/// From every receipt in arrival order: the notifications before `killed_at`, the repeats
/// before and after it, and the first receipts that came below an earlier one on their
/// channel.
pub(super) fn order_and_duplicates(receipts: &[Receipt], killed_at: u64) -> (u64, u64, u64, u64) {
    let mut seen: HashMap<&str, (HashSet<u64>, u64)> = HashMap::new();
    let (mut healthy, mut healthy_duplicates, mut later_duplicates, mut out_of_order) =
        (0, 0, 0, 0);
    for r in receipts {
        let before = r.at_us < killed_at;
        healthy += u64::from(before);
        let (numbers, highest) = seen.entry(&r.channel).or_default();
        if !numbers.insert(r.number) {
            if before {
                healthy_duplicates += 1;
            } else {
                later_duplicates += 1;
            }
        } else if r.number < *highest {
            out_of_order += 1;
        }
        *highest = (*highest).max(r.number);
    }
    (healthy, healthy_duplicates, later_duplicates, out_of_order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(channel: &str, number: u64, at_us: u64, connection: u64) -> Receipt {
        Receipt {
            channel: channel.into(),
            number,
            at_us,
            connection,
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn repeats_count_as_healthy_before_the_kill_and_order_only_counts_first_receipts() {
        let receipts = [
            receipt("a", 2, 10, 1),
            receipt("a", 2, 11, 1),
            receipt("a", 5, 12, 1),
            receipt("b", 3, 13, 2),
            // After the kill at 20: 5 again (allowed), then 4 for the first time (not).
            receipt("a", 5, 21, 3),
            receipt("a", 4, 22, 3),
            receipt("a", 7, 23, 3),
        ];
        assert_eq!(order_and_duplicates(&receipts, 20), (4, 1, 1, 1));
    }

    #[test]
    fn a_nodes_connections_are_those_only_its_channels_used() {
        let owners: BTreeMap<String, String> = [("a", "n1"), ("b", "n2"), ("c", "n1")]
            .into_iter()
            .map(|(c, n)| (c.to_string(), n.to_string()))
            .collect();
        let window = [
            receipt("a", 2, 1, 1),
            receipt("c", 2, 2, 4),
            receipt("b", 2, 3, 2),
        ];
        assert_eq!(
            connections_of(&window, &owners, "n1"),
            HashSet::from([1, 4])
        );
        assert_eq!(busiest(&owners), "n1");
        assert_eq!(
            channels_of(&owners, "n1"),
            vec!["a".to_string(), "c".to_string()]
        );
    }

    #[test]
    fn a_takeover_passes_only_when_every_channel_came_back_in_time() {
        let channels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let after = BTreeMap::new();
        let t = takeover(
            2.0,
            "kill -9",
            "n1",
            3,
            &channels,
            vec![Some(3.0), Some(1.0), Some(2.0)],
            7.0,
            &after,
        );
        assert!(t.pass);
        assert_eq!((t.median_seconds, t.max_seconds), (Some(2.0), Some(3.0)));
        let t = takeover(
            2.0,
            "kill -9",
            "n1",
            3,
            &channels,
            vec![Some(3.0), None, Some(2.0)],
            7.0,
            &after,
        );
        assert!(!t.pass);
        assert_eq!(t.taken_over, 2);
        let t = takeover(
            2.0,
            "SIGTERM",
            "n1",
            3,
            &channels,
            vec![Some(3.0); 3],
            2.0,
            &after,
        );
        assert!(!t.pass);
        assert!(!takeover(2.0, "SIGTERM", "n1", 3, &[], vec![], 2.0, &after).pass);
    }
}
