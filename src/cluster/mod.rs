//! A cluster: every `serve` on one PostgreSQL database is a node of one gateway
//! (docs/api.md §13). Here, all of it: what a node needs of the shared database
//! ([`Membership`], on PostgreSQL in `postgres.rs`), how channels are spread
//! (`fair_share.rs`), what nodes tell each other (`messages.rs`), and the node itself
//! (`node.rs`): it joins, renews its lease, claims its share of the channels, hands
//! channels over, settles removals made through other nodes, and leaves. Its lease
//! (`delivery::lease`) is this node's right to start attempts.

pub mod fair_share;
pub mod messages;
pub mod node;
pub mod postgres;

use async_trait::async_trait;

pub use self::messages::ClusterMessage;
use crate::delivery::Adopted;
use crate::model::Seq;
use crate::store::StoreError;

/// A node of a gateway whose store other nodes share (docs/api.md §13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// Its public URL.
    pub address: String,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    pub lease_until_ms: i64,
    /// It is handing its channels over and stopping.
    pub leaving: bool,
    /// Live channels it delivers.
    pub channels: u64,
}

/// What one claim round gave a node.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// Channels it now delivers.
    pub adopted: Vec<Adopted>,
    /// How many of its channels it holds beyond its fair share (others have fewer):
    /// it should hand that many back.
    pub excess: usize,
    /// The log's head when the claim was made: `Adopted::owed` counts every event up
    /// to it.
    pub head: Seq,
    /// This node's channels removed through other nodes that it has not settled: the
    /// message telling it may have been lost (sent while its listener reconnected).
    pub removed: Vec<i64>,
}

/// How many times a node renews its lease per `--lease-ttl`. A renewal may take one
/// period: one that has not answered when the next is due is given up, and the next
/// tries on a new connection, so a node with one dead connection keeps its lease. Three,
/// so that one renewal can fail or be given up and the next still comes before the
/// node's own fence (`delivery::lease`) stops its attempts.
pub const RENEWALS_PER_LEASE: u32 = 3;

/// What the nodes of a cluster need of their shared store (docs/api.md §13): leases,
/// ownership of channels, and messages between nodes. Every call is one short
/// transaction; the rules (fair share, lapsed leases) are the database's clock's.
#[async_trait]
pub trait Membership: Send + Sync {
    fn node_id(&self) -> &str;

    /// Registers this node with a lease of `ttl`.
    async fn join(&self, address: &str, ttl: std::time::Duration) -> Result<(), StoreError>;

    /// Extends this node's lease by `ttl` from the database's now. `false` when its
    /// row is gone: the node was taken for dead and its channels were taken over. It
    /// answers within a renewal period (`ttl / RENEWALS_PER_LEASE`).
    async fn renew(&self, ttl: std::time::Duration) -> Result<bool, StoreError>;

    /// Reaps nodes whose lease lapsed (their channels become unowned), then takes up
    /// to `at_most` unowned channels, as far as this node's fair share goes.
    async fn claim(&self, at_most: usize) -> Result<Claim, StoreError>;

    /// Hands channels back, after this node stopped starting attempts on them.
    async fn release(&self, pks: &[i64]) -> Result<(), StoreError>;

    /// Marks this node as leaving (others stop counting it for their share).
    async fn leaving(&self) -> Result<(), StoreError>;

    /// Hands every channel back and removes this node.
    async fn leave(&self) -> Result<(), StoreError>;

    async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError>;

    /// Which node delivers a channel.
    async fn owner_of(&self, pk: i64) -> Result<Option<String>, StoreError>;

    /// Whether no attempt on removed channel `pk` can start any more: its node has
    /// stopped it, or that node's lease lapsed.
    async fn removal_settled(&self, pk: i64) -> Result<bool, StoreError>;

    /// This node has stopped these removed channels.
    async fn settle_removals(&self, pks: &[i64]) -> Result<(), StoreError>;

    /// Tells the other nodes.
    async fn tell(&self, message: &ClusterMessage) -> Result<(), StoreError>;

    /// The messages for this node. Only the first caller gets them.
    fn take_messages(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<ClusterMessage>>;
}
