//! What one node tells the others, and its wire form: a short text sent with
//! PostgreSQL's `NOTIFY` on the gateway's cluster topic (`store::postgres::notify`).

use crate::model::Seq;
use crate::store::postgres::notify::{removal_notice, REBALANCE};

/// What one node tells the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterMessage {
    /// Channel `pk`, delivered by `node`, was removed: that node stops it and settles
    /// the removal. The store sends it in the removing transaction.
    Removed { pk: i64, node: String },
    /// Channels were handed back, or a node joined or left: claim again now.
    Rebalance,
    /// A disabled channel was enabled through another node: its node resumes it.
    Enable { pk: i64 },
    /// A replay was asked through another node: its node replays.
    Replay { pk: i64, since: Seq },
    /// Channel `pk`, delivered by `node`, was renewed through another node (docs/api.md
    /// §8.6): that node reads its expiration again from the store.
    Renewed { pk: i64, node: String },
}

impl ClusterMessage {
    pub fn encode(&self) -> String {
        match self {
            ClusterMessage::Removed { pk, node } => removal_notice(*pk, node),
            ClusterMessage::Rebalance => REBALANCE.into(),
            ClusterMessage::Enable { pk } => format!("enable {pk}"),
            ClusterMessage::Replay { pk, since } => format!("replay {pk} {since}"),
            ClusterMessage::Renewed { pk, node } => format!("renewed {pk} {node}"),
        }
    }

    /// `None` for a text no node of this version sends.
    pub fn decode(text: &str) -> Option<ClusterMessage> {
        let mut words = text.split(' ');
        let message = match (words.next()?, words.next(), words.next()) {
            ("removed", Some(pk), Some(node)) => ClusterMessage::Removed {
                pk: pk.parse().ok()?,
                node: node.to_string(),
            },
            (REBALANCE, None, None) => ClusterMessage::Rebalance,
            ("enable", Some(pk), None) => ClusterMessage::Enable {
                pk: pk.parse().ok()?,
            },
            ("replay", Some(pk), Some(since)) => ClusterMessage::Replay {
                pk: pk.parse().ok()?,
                since: since.parse().ok()?,
            },
            ("renewed", Some(pk), Some(node)) => ClusterMessage::Renewed {
                pk: pk.parse().ok()?,
                node: node.to_string(),
            },
            _ => return None,
        };
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [
            ClusterMessage::Removed {
                pk: 7,
                node: "host-ab12".into(),
            },
            ClusterMessage::Rebalance,
            ClusterMessage::Enable { pk: 9 },
            ClusterMessage::Replay { pk: 9, since: 42 },
            ClusterMessage::Renewed {
                pk: 9,
                node: "host-ab12".into(),
            },
        ] {
            assert_eq!(ClusterMessage::decode(&message.encode()), Some(message));
        }
        assert_eq!(ClusterMessage::decode("nonsense 1"), None);
    }
}
