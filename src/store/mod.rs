//! The storage interface: the durable event log, channels and their delivery progress.
//!
//! Invariants every backend keeps:
//! - `append` returns only once the events are durable (fsync'd / committed), and
//!   assigns each a `Seq` larger than every `Seq` ever assigned before.
//! - Every committed change that the dispatcher must see (events, channel created or
//!   removed) is put on the feed in commit order, each with a larger feed number; a
//!   channel's `start_seq` is the head of the log at the point its creation committed,
//!   so every event routed after it on the feed is one the channel must get.
//! - Progress and outcomes are recorded asynchronously and batched; `flush` makes what
//!   was recorded so far durable.

pub mod sqlite;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::model::{Channel, NewChannel, NewEvent, Outcome, Seq, SharedEvent};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a live channel with id {0:?} already exists")]
    DuplicateChannel(String),
    #[error("the owner already holds {0} live channels")]
    TooManyChannels(u64),
    #[error("not found")]
    NotFound,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyConflict,
    #[error("storage failure: {0}")]
    Backend(String),
    #[error("the store is shut down")]
    Closed,
}

/// A committed change, as the dispatcher sees it.
#[derive(Debug, Clone)]
pub enum Committed {
    Events(Vec<SharedEvent>),
    ChannelCreated(Channel),
    ChannelRemoved { pk: i64 },
}

/// One feed entry. `no` increases by one per entry.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub no: u64,
    pub change: Committed,
}

/// What makes a publish idempotent (SPEC §6).
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub owner: String,
    pub key: String,
    /// Hash of the request body: the same key with a different body is a conflict.
    pub body_hash: String,
}

/// The answer to a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReceipt {
    pub last_seq: Seq,
    pub count: usize,
    /// True when an earlier publish with the same Idempotency-Key answered this.
    pub replayed: bool,
}

/// Which channel(s) to remove.
#[derive(Debug, Clone)]
pub enum Removal {
    /// `channels.stop` by its owner (SPEC §3): id and resourceId must both match.
    Stop {
        owner: String,
        id: String,
        resource_id: String,
    },
    /// The receiver answered 410 Gone.
    Gone { pk: i64 },
    /// Every channel whose expiration is at or before this instant.
    ExpiredAt { now_ms: i64 },
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends events durably, in order. All or nothing.
    async fn append(
        &self,
        events: Vec<NewEvent>,
        idempotency: Option<Idempotency>,
    ) -> Result<PublishReceipt, StoreError>;

    /// Stores a channel. Its `start_seq` is the log head at commit. Returns the channel
    /// and the feed number of its `ChannelCreated` entry.
    /// At most `max_per_owner` live channels per owner (`TooManyChannels` beyond).
    async fn create_channel(&self, channel: NewChannel, max_per_owner: u64) -> Result<(Channel, u64), StoreError>;

    /// Removes channels durably. Returns the removed keys and the feed number of the
    /// last `ChannelRemoved` entry (0 when none was removed).
    async fn remove_channels(&self, removal: Removal) -> Result<(Vec<i64>, u64), StoreError>;

    /// Records that channel `pk` is done with every matched event up to `seq` (and with
    /// its sync). Batched; durable after the next commit.
    fn record_progress(&self, pk: i64, seq: Seq);

    /// Records the outcome of a notification that failed or needed retries.
    fn record_outcome(&self, outcome: Outcome);

    /// Makes everything recorded so far durable.
    async fn flush(&self) -> Result<(), StoreError>;

    /// Every stored channel with its progress.
    async fn load_channels(&self) -> Result<Vec<Channel>, StoreError>;

    /// Events with `seq > after`, oldest first.
    async fn read_log(&self, after: Seq, limit: usize) -> Result<Vec<SharedEvent>, StoreError>;

    /// Events on `resource` or below it with `seq > after`, oldest first, and the log
    /// head this read saw (every event at or below it that matches is in the answer,
    /// unless `limit` cut it).
    async fn read_matching(
        &self,
        resource: &str,
        after: Seq,
        limit: usize,
    ) -> Result<(Vec<SharedEvent>, Seq), StoreError>;

    /// The highest `Seq` assigned so far (0 for an empty log).
    async fn head(&self) -> Result<Seq, StoreError>;

    /// A secret generated once per database, for deriving resource ids.
    fn instance_secret(&self) -> &[u8];

    /// The feed of committed changes. Only the first caller gets it.
    fn take_feed(&self) -> Option<mpsc::UnboundedReceiver<FeedItem>>;
}
