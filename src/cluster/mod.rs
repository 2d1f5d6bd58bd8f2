//! A cluster: every `serve` on one PostgreSQL database is a node of one gateway
//! (docs/api.md §13). Its lease (`delivery::lease`) is this node's right to start attempts; `node.rs`
//! runs the node: it joins, renews its lease, claims its share of the channels, hands
//! channels over, settles removals made through other nodes, and leaves.

pub mod node;
