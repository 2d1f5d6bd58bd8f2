//! How a cluster spreads its channels over its nodes (docs/api.md §13), decided once
//! for every backend: each live node's share is the channels over the nodes, some
//! nodes one more when it does not divide. A node below its share claims unowned
//! channels; a node above it hands the surplus back, but only while another node lacks
//! channels the unowned ones cannot make up, so a cluster at balance stays put.

/// What one node should do, from what every live node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Share {
    /// Unowned channels it should take.
    pub claim: u64,
    /// Channels it should hand back for another node to take.
    pub surplus: u64,
}

/// The share of node `me`, given what each live node holds (`held`: node id and
/// channel count, `me` among them) and how many channels no node owns.
///
/// The nodes holding the most get the larger shares (ties by id), so a node is never
/// asked to move a channel only for another to take its place. Small imbalances in
/// large shares (a twentieth) are left alone: channels created through one node would
/// otherwise be handed around one at a time.
pub fn fair_share(held: &[(&str, u64)], unowned: u64, me: &str) -> Share {
    let Some(&(_, mine)) = held.iter().find(|(id, _)| *id == me) else {
        return Share::default();
    };
    let nodes = held.len() as u64;
    let total = held.iter().map(|(_, n)| n).sum::<u64>() + unowned;
    let (floor, larger) = (total / nodes, (total % nodes) as usize);
    let mut order: Vec<&(&str, u64)> = held.iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let target = |rank: usize| floor + u64::from(rank < larger);
    let (mut lacking, mut worst) = (0, 0);
    let mut my_target = floor;
    for (rank, (id, count)) in order.iter().enumerate() {
        let short = target(rank).saturating_sub(*count);
        lacking += short;
        worst = worst.max(short);
        if *id == me {
            my_target = target(rank);
        }
    }
    let tolerance = my_target / 20;
    let surplus = mine.saturating_sub(my_target);
    let hand_back = surplus > 0 && lacking > unowned && (surplus > tolerance || worst > tolerance);
    Share {
        claim: my_target.saturating_sub(mine).min(unowned),
        surplus: if hand_back { surplus } else { 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs claim rounds (each node in turn claims, then hands back, as the nodes do)
    /// until nothing moves; the counts it settles on.
    fn settle(mut held: Vec<(&'static str, u64)>, mut unowned: u64) -> Vec<u64> {
        for _ in 0..20 {
            let mut moved = false;
            for i in 0..held.len() {
                let share = fair_share(&held, unowned, held[i].0);
                held[i].1 += share.claim;
                unowned -= share.claim;
                held[i].1 -= share.surplus;
                unowned += share.surplus;
                moved |= share.claim > 0 || share.surplus > 0;
            }
            if !moved {
                assert_eq!(unowned, 0, "settled with channels nobody owns");
                return held.iter().map(|(_, n)| *n).collect();
            }
        }
        panic!("never settled: {held:?}, {unowned} unowned");
    }

    #[test]
    fn channels_created_through_one_node_spread_evenly() {
        assert_eq!(settle(vec![("a", 10), ("b", 0), ("c", 0)], 0), [4, 3, 3]);
        assert_eq!(settle(vec![("a", 0), ("b", 0), ("c", 0)], 10), [4, 3, 3]);
    }

    #[test]
    fn a_node_that_joins_gets_its_share_back() {
        // Two nodes split ten; a third joins with none.
        assert_eq!(settle(vec![("a", 5), ("b", 5), ("c", 0)], 0), [4, 3, 3]);
        let counts = settle(vec![("a", 5000), ("b", 5000), ("c", 0)], 0);
        assert!(
            counts.iter().all(|&n| (3200..=3400).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn a_cluster_at_balance_stays_put() {
        for held in [
            vec![("a", 4), ("b", 3), ("c", 3)],
            vec![("a", 3), ("b", 4), ("c", 3)],
            vec![("a", 0), ("b", 0)],
        ] {
            for (id, _) in &held {
                assert_eq!(fair_share(&held, 0, id), Share::default(), "{held:?}");
            }
        }
        // A few channels more on one node of a large share are not worth moving.
        let held = [("a", 1010), ("b", 1000), ("c", 1000)];
        assert_eq!(fair_share(&held, 0, "a"), Share::default());
    }

    #[test]
    fn unowned_channels_go_to_those_below_their_share_before_anything_moves() {
        // "a" holds more than its share, but "b" can make up its lack from the unowned.
        let held = [("a", 5), ("b", 1)];
        assert_eq!(fair_share(&held, 4, "a"), Share::default());
        assert_eq!(
            fair_share(&held, 4, "b"),
            Share {
                claim: 4,
                surplus: 0
            }
        );
    }

    #[test]
    fn a_node_not_among_the_live_ones_does_nothing() {
        assert_eq!(fair_share(&[("a", 3)], 2, "z"), Share::default());
    }
}
