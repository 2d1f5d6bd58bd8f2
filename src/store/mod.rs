//! The storage contract: the durable event log, channels and their delivery progress,
//! with two backends — `sqlite` (embedded, the default) and `postgres` (a database
//! several processes can share). `conformance.rs` runs one suite against both.
//!
//! The contract is implemented once (`log_store.rs` for reads, `writer.rs` and
//! `jobs.rs` for writes, `sql.rs` for the statements, columns and row mappings both
//! databases share); a backend holds only what differs: its connections, how it gives
//! events positions, how it batches the bookkeeping, its schema.
//!
//! Invariants every backend keeps:
//! - **Durable before answered.** `append` returns only once the events are durable
//!   (fsync'd / committed). A batch is one transaction: all of it or none of it.
//! - **Positions.** Each event gets a `Seq` larger than every `Seq` ever assigned
//!   (SQLite leaves no gaps; on PostgreSQL positions a transaction took and did not
//!   use, or that rolled back, are never used).
//! - **Commit-ordered visibility.** Positions become visible in order: once any reader,
//!   in any process, has read position `P`, no event below `P` can appear later. The
//!   log is the change stream any process can tail (`read_log(after)`); SQLite has one
//!   writer; PostgreSQL's writers commit in parallel and readers see only what
//!   transactions older than every one in progress wrote (`postgres/transaction.rs`).
//!   An append is answered only once every reader can see it.
//! - **The feed** is this process's fast path: every change it commits (events, a
//!   channel created, renewed or removed) is put on it in commit order before the caller is
//!   answered, so a caller who waits for the router to reach the feed number (a stop)
//!   finds it applied. A channel's `start_seq` is the head of the log its creation
//!   saw: every event answered before it is at or below it, every event published
//!   after its answer above it. Events another process committed are put on the feed
//!   before the next local commit's own.
//! - **Rules where every writer sees them**: the per-key quota is counted by the
//!   database (`owner_counts`), the watcher rules and the Idempotency-Key window are
//!   decided by `rules` inside the same transaction that writes, and on PostgreSQL
//!   transactions creating channels of one owner wait for each other
//!   (`Transaction::serialise_owners`); an Idempotency-Key is claimed by its insert
//!   before anything is appended.
//! - **Bookkeeping** (progress, outcomes, health) is recorded asynchronously and
//!   batched (`records`); `flush` makes what was recorded so far durable. Losing it in
//!   a crash only means redelivery with the same message numbers.
//! - **Pruning** never removes an event above any stored channel's progress, nor a
//!   delivery-log entry awaiting a retry, and `pruned_through` tells readers below
//!   which cursor the log is incomplete: every event at or below it is gone, every
//!   event above it is still there.
//! - **Trouble** is `StoreError::Backend` (a `503`), within 5 s for a database that
//!   does not answer, never a hang; a backend reconnects by itself.

pub mod batch;
#[cfg(test)]
pub(crate) mod conformance;
mod jobs;
pub mod log_store;
pub mod postgres;
pub mod records;
pub mod rules;
pub mod sql;
pub mod sqlite;
mod writer;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::model::{
    ChannelKind, ChannelSpec, Collection, Coverage, NewEvent, Outcome, OutcomeRecord,
    OutcomeStatus, RemovedChannel, Seq, SharedEvent, StoredChannel,
};
use crate::protocol::resource::WHOLE_NAMESPACE;

/// Whether `coverage` is the whole namespace: its latest event is the log's latest, which
/// no polling entry records.
pub fn is_whole_namespace(coverage: &Coverage) -> bool {
    coverage.paths() == [WHOLE_NAMESPACE]
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("a live channel with id {0:?} already exists")]
    DuplicateChannel(String),
    #[error("the owner already holds {0} live channels")]
    TooManyChannels(u64),
    /// A watcher rule (docs/api.md §9): `rule` is the rule's message; `existing` is the
    /// watcher it conflicts with, as (id, pattern).
    #[error("{rule}")]
    WatcherConflict {
        rule: &'static str,
        existing: (String, String),
    },
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
    ChannelCreated(StoredChannel),
    ChannelRemoved {
        pk: i64,
    },
    /// Channel `pk` expires at `expiration_ms` (a renewal, docs/api.md §8.6, or its
    /// expiration read again for a node catching up with one).
    ChannelRenewed {
        pk: i64,
        expiration_ms: i64,
    },
}

/// One feed entry. `no` increases by one per entry.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub no: u64,
    pub change: Committed,
}

/// A channel or watcher just stored.
#[derive(Debug, Clone)]
pub struct Created {
    pub channel: StoredChannel,
    /// The feed number of its `ChannelCreated` entry.
    pub feed_no: u64,
}

/// Channels just removed.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    pub pks: Vec<i64>,
    /// The feed number of the last `ChannelRemoved` entry (0 when none was removed):
    /// once the router has applied it, no attempt on them starts here.
    pub feed_no: u64,
    /// Those another node of a cluster was delivering: no attempt on them starts once
    /// `Membership::removal_settled` says so.
    pub elsewhere: Vec<i64>,
}

/// A channel's expiration as a renewal left it (docs/api.md §8.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    /// Its expiration as stored now.
    pub expiration_ms: i64,
    /// The node of a cluster delivering it as the renewal committed; `None` when no
    /// node does (one that takes it reads the new expiration), and for a store only
    /// one process uses.
    pub node: Option<String>,
    /// The feed number of its `ChannelRenewed` entry: once the router has applied it,
    /// this process's copy of the channel, if it delivers it, expires then too.
    pub feed_no: u64,
}

/// Events read from the log, and the head of the log that read saw: every matching
/// event at or below `head` is in `events`, unless the read's limit cut it.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    pub events: Vec<SharedEvent>,
    pub head: Seq,
}

/// What makes a publish idempotent (docs/api.md §6).
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
    /// `channels.stop` by its owner (docs/api.md §3): id and resourceId must both match.
    Stop {
        owner: String,
        id: String,
        resource_id: String,
    },
    /// `DELETE /v1/watchers/{id}` by its owner.
    Watcher { owner: String, id: String },
    /// The receiver answered 410 Gone; `reason` says to which notification.
    Gone { pk: i64, reason: String },
    /// Every channel whose expiration is at or before this instant.
    /// Channels expiring within `notice_ms` after it get their `channel.expiring` event
    /// (docs/api.md §18), once per expiration.
    ExpiredAt { now_ms: i64, notice_ms: i64 },
}

/// What one prune step removed, and what it left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Events removed (by partition: the positions removed, events but for gaps).
    pub events: u64,
    /// Delivery-log entries removed (by partition: the database's estimate).
    pub outcomes: u64,
    /// Polling entries whose events were all pruned.
    pub collections: u64,
    /// Records of removed channels past the delivery-log retention.
    pub removed_channels: u64,
    pub pruned_through: Seq,
    /// A chunk limit was reached, or a partition dropped: another step may have more to
    /// remove now.
    pub more: bool,
    /// Time of the oldest event and delivery-log entry left, for the prune lag.
    pub oldest_event_ms: Option<i64>,
    pub oldest_outcome_ms: Option<i64>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends events durably, in order. All or nothing.
    async fn append(
        &self,
        events: Vec<NewEvent>,
        idempotency: Option<Idempotency>,
    ) -> Result<PublishReceipt, StoreError>;

    /// Stores a channel or watcher. Its `start_seq` is the log head at commit. At most
    /// `max_per_owner` per owner. Returns the channel and the feed number of its
    /// `ChannelCreated` entry.
    async fn create_channel(
        &self,
        channel: ChannelSpec,
        max_per_owner: u64,
    ) -> Result<Created, StoreError>;

    /// Removes channels durably.
    async fn remove_channels(&self, removal: Removal) -> Result<Removed, StoreError>;

    /// Moves the expiration of channel `pk` to `expiration_ms`, durably (docs/api.md
    /// §8.6). Only a live watch channel is renewed: `NotFound` for a watcher (it never
    /// expires), for a channel whose expiration has passed (expired, whether or not
    /// the sweep has removed it yet) and for one that is gone. Its `ChannelRenewed`
    /// feed entry carries the new expiration to the router.
    async fn renew_channel(&self, pk: i64, expiration_ms: i64) -> Result<Renewed, StoreError>;

    /// Puts channel `pk`'s stored expiration on the feed, in commit order with this
    /// process's other changes, and changes nothing: how a node of a cluster catches
    /// up with a renewal made through another node. `NotFound` when it is gone.
    async fn reread_expiration(&self, pk: i64) -> Result<Renewed, StoreError>;

    /// Records that channel `pk` is done with every matched event up to `seq` (and with
    /// its sync). Batched; durable after the next commit.
    fn record_progress(&self, pk: i64, seq: Seq);

    /// Records that channel `pk` went past every event up to `seq` without sending
    /// them (its filter matched none): it still owes nothing up to there, and its last
    /// notification sent stays what it was. Batched.
    fn record_passed(&self, pk: i64, seq: Seq);

    /// Records where a notification stands (docs/api.md §8). Batched.
    fn record_outcome(&self, outcome: Outcome);

    /// Records a channel's endpoint health (docs/api.md §5), and the operational event
    /// its change makes (docs/api.md §18), in the same transaction. Batched.
    fn record_health(
        &self,
        pk: i64,
        failing_since_ms: Option<i64>,
        disabled: bool,
        event: Option<NewEvent>,
    );

    /// Appends an operational event (docs/api.md §18) with the next transaction.
    /// Batched: nobody waits for it.
    fn record_event(&self, event: NewEvent);

    /// Makes everything recorded so far durable.
    async fn flush(&self) -> Result<(), StoreError>;

    /// Commits what is queued and stops writing; the store answers `Closed` after.
    async fn close(&self);

    /// Whether the store can serve writes: fine while the last write succeeded;
    /// after a failed one (a full disk, a lost database), tries a small write.
    async fn probe(&self) -> Result<(), StoreError>;

    /// One bounded step of pruning: events older than `events_before_ms` that every
    /// channel is past (and the polling entries left without events), delivery-log
    /// entries (but pending ones) and removed-channel records older than
    /// `outcomes_before_ms`; row by row or, on PostgreSQL, a partition at a time.
    /// Callers repeat it while `more` says there may be more due now.
    async fn prune(
        &self,
        events_before_ms: i64,
        outcomes_before_ms: i64,
    ) -> Result<PruneReport, StoreError>;

    /// Every event at or below this was pruned: the log is complete only above it.
    fn pruned_through(&self) -> Seq;

    /// Transactions this process has committed (each one durable write): many
    /// concurrent requests share one (group commit).
    fn commits(&self) -> u64;

    /// Bytes the store takes on disk (for the `watchwire_store_bytes` gauge).
    async fn size_bytes(&self) -> Result<u64, StoreError>;

    /// Stored channels with their progress, by `pk`: at most `limit` with
    /// `pk > after_pk` (startup reads them all a page at a time, so that a million
    /// channels' specs are never in memory at once).
    async fn load_channels(
        &self,
        after_pk: i64,
        limit: usize,
    ) -> Result<Vec<StoredChannel>, StoreError>;

    /// The stored channels of these keys that still exist, in no particular order:
    /// what the specs of idle channels that wake up are read from, many in one read
    /// (`delivery/outbox/spec_loader.rs`). A key given twice is one channel.
    async fn load_channels_by_pk(&self, pks: &[i64]) -> Result<Vec<StoredChannel>, StoreError>;

    /// The delivery-log entries of notifications awaiting a retry (at most one per
    /// channel: its head). At startup they resume their attempt count and their retry
    /// budget, which runs from their first attempt, not from the restart.
    async fn awaiting_retry(&self) -> Result<Vec<Outcome>, StoreError>;

    /// One owner's channel or watcher by id.
    async fn find_channel(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<Option<StoredChannel>, StoreError>;

    /// What is left of one owner's removed channel or watcher, for the delivery-log
    /// retention window.
    async fn find_removed(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<Option<RemovedChannel>, StoreError>;

    /// One owner's channels (or watchers), or every owner's with `None`, with
    /// `pk > after_pk`, by `pk`.
    async fn list_channels(
        &self,
        owner: Option<&str>,
        kind: ChannelKind,
        after_pk: i64,
        limit: usize,
    ) -> Result<Vec<StoredChannel>, StoreError>;

    /// A channel's delivery log, oldest first: from the start, or after `after_seq`.
    async fn list_outcomes(
        &self,
        pk: i64,
        status: Option<OutcomeStatus>,
        after_seq: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<OutcomeRecord>, StoreError>;

    /// Events with `seq > after`, oldest first.
    async fn read_log(&self, after: Seq, limit: usize) -> Result<Vec<SharedEvent>, StoreError>;

    /// Events `coverage` covers with `seq > after`, oldest first, and the log head this
    /// read saw (every event at or below it that matches is in the answer, unless
    /// `limit` cut it).
    async fn read_matching(
        &self,
        coverage: &Coverage,
        after: Seq,
        limit: usize,
    ) -> Result<EventPage, StoreError>;

    /// How many events `coverage` covers have `seq > after`.
    async fn count_matching(&self, coverage: &Coverage, after: Seq) -> Result<u64, StoreError>;

    /// The seq of the latest event `coverage` covers, as far as the log still holds it.
    async fn latest_seq_under(&self, coverage: &Coverage) -> Result<Option<Seq>, StoreError>;

    /// Collections (parents of published resources) `coverage` covers that changed after
    /// `after`, newest first.
    async fn list_collections(
        &self,
        coverage: &Coverage,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Collection>, StoreError>;

    /// The highest `Seq` assigned so far (0 for an empty log).
    async fn head(&self) -> Result<Seq, StoreError>;

    /// A secret generated once per database, for deriving resource ids.
    fn instance_secret(&self) -> &[u8];

    /// The feed of committed changes. Only the first caller gets it.
    fn take_feed(&self) -> Option<mpsc::UnboundedReceiver<FeedItem>>;
}
