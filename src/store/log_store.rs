//! The [`Store`] contract implemented once, over either backend: writes go to the
//! backend's writer through [`Writes`] (group commit, `writer.rs`), reads run the
//! statements of this file on the backend's read connections. A [`Backend`] supplies
//! only what differs between databases: its read connections, its size on disk,
//! whether it answers, and how its writer is stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;

use std::time::Duration;

use tokio::sync::Notify;

use super::batch::{Feed, WriteHealth, WriteOp, Writes};
use super::records::PendingRecords;
use super::records::Progress;
use super::sql::{
    channel_from_row, collection_from_row, covered, event_at, event_from_row, opt_int_from_row,
    outcome_from_row, outcome_record_from_row, params, removed_from_row, single, Reads, Row, Value,
    CHANNEL_COLUMNS, COLLECTION_COLUMNS, EVENT_COLUMNS, OUTCOME_COLUMNS, REMOVED_COLUMNS,
};
use super::writer::{Database, Writer};
use super::{
    is_whole_namespace, Created, EventPage, FeedItem, Idempotency, PruneReport, PublishReceipt,
    Removal, Removed, Renewed, Store, StoreError,
};
use crate::model::{
    now_ms, ChannelKind, ChannelSpec, Collection, Coverage, NewEvent, Outcome, OutcomeRecord,
    OutcomeStatus, RemovedChannel, Seq, SharedEvent, StoredChannel,
};

/// What differs between databases on the read side, and around the writer.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    type Reads: Reads;

    /// The read connections.
    fn reads(&self) -> &Self::Reads;

    /// Bytes the store takes on disk.
    async fn size_bytes(&self) -> Result<u64, StoreError>;

    /// Whether the database answers at all (a store whose database is a file always
    /// does).
    async fn reachable(&self) -> Result<(), StoreError>;

    /// The newest collections of the polling index (docs/api.md §7) on or below `under`
    /// (a condition on `path`), after position `$2`, at most `$1`, newest first.
    fn collections_sql(under: &str) -> String {
        format!(
            "SELECT {COLLECTION_COLUMNS} FROM polling_index
             WHERE collection = TRUE AND last_seq > $2 AND {under}
             ORDER BY last_seq DESC LIMIT $1"
        )
    }

    /// Stops what the backend runs besides the writer (listeners, checkpoints), once
    /// the writer has committed everything queued.
    async fn close(&self);
}

/// The writer: a thread of its own (SQLite, whose connection blocks) or a task.
pub enum WriterHandle {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

/// What the writer and the store share.
#[derive(Default)]
pub struct Shared {
    pub commits: AtomicU64,
    pub pruned_through: AtomicU64,
    /// How the writer's transactions have been going, for `/healthz`.
    pub write_health: WriteHealth,
}

/// A store: a backend, the way into its writer, and what they share.
pub struct LogStore<B: Backend> {
    pub(super) backend: B,
    writes: Writes,
    writer: Mutex<Option<WriterHandle>>,
    shared: Arc<Shared>,
    secret: Vec<u8>,
    feed: Mutex<Option<mpsc::UnboundedReceiver<FeedItem>>>,
}

/// What joins a backend's writer to its store, made the same way for every backend:
/// the queue of writes, the bookkeeping buffer, the feed, and what they share.
pub struct Wiring {
    shared: Arc<Shared>,
    records: Arc<PendingRecords>,
    feed_tx: mpsc::UnboundedSender<FeedItem>,
    feed_rx: mpsc::UnboundedReceiver<FeedItem>,
    ops_tx: mpsc::UnboundedSender<WriteOp>,
}

impl Wiring {
    /// The wiring of a store whose log was pruned through `pruned_through`, and the
    /// queue its writer runs on.
    pub fn new(pruned_through: Seq) -> (Wiring, mpsc::UnboundedReceiver<WriteOp>) {
        let shared = Arc::new(Shared::default());
        shared
            .pruned_through
            .store(pruned_through, Ordering::Relaxed);
        let (feed_tx, feed_rx) = mpsc::unbounded_channel();
        let (ops_tx, ops) = mpsc::unbounded_channel();
        let wiring = Wiring {
            shared,
            records: Arc::new(PendingRecords::default()),
            feed_tx,
            feed_rx,
            ops_tx,
        };
        (wiring, ops)
    }

    /// The feed, from the log's `head`; with a `gap_reader` where other processes
    /// commit to the same log too (`Feed::with_gap_reader`).
    pub fn feed(&self, head: Seq, gap_reader: Option<Arc<Notify>>) -> Arc<Mutex<Feed>> {
        let tx = self.feed_tx.clone();
        Arc::new(Mutex::new(match gap_reader {
            Some(reader) => Feed::with_gap_reader(tx, head, reader),
            None => Feed::new(tx, head),
        }))
    }

    /// The writer over `database`, feeding `feed`.
    pub fn writer<D: Database>(&self, database: D, feed: Arc<Mutex<Feed>>) -> Writer<D> {
        Writer::new(database, feed, self.records.clone(), self.shared.clone())
    }

    /// The store, once its writer runs. `answer_within`: how long a write may wait for
    /// the writer before it answers with that error (a database that can hang).
    pub fn into_store<B: Backend>(
        self,
        backend: B,
        writer: WriterHandle,
        secret: Vec<u8>,
        answer_within: Option<(Duration, fn() -> StoreError)>,
    ) -> LogStore<B> {
        let ops = self.ops_tx;
        LogStore {
            backend,
            writes: Writes::new(move |op| ops.send(op).is_ok(), self.records, answer_within),
            writer: Mutex::new(Some(writer)),
            shared: self.shared,
            secret,
            feed: Mutex::new(Some(self.feed_rx)),
        }
    }
}

impl<B: Backend> LogStore<B> {
    /// The backend underneath, for what only it does (a cluster's membership).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Stops the writer after it has committed everything queued, waiting for it on
    /// this thread.
    pub fn close_now(&self) {
        self.writes.close();
        match self.writer.lock().unwrap().take() {
            Some(WriterHandle::Thread(thread)) => drop(thread.join()),
            // A task ends on its own once the writes are closed.
            Some(WriterHandle::Task(_)) | None => {}
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        sql: String,
        params: Vec<Value>,
        map: fn(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.backend.reads().read(sql, params, map).await
    }
}

impl<B: Backend> Drop for LogStore<B> {
    fn drop(&mut self) {
        self.close_now();
    }
}

/// `EVENT_COLUMNS` of the table `alias`.
fn event_columns_of(alias: &str) -> String {
    EVENT_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The numbers of keys `load_channels_by_pk` reads with one statement.
const LOAD_BY_PK_SIZES: [usize; 4] = [1, 8, 64, 256];

#[async_trait]
impl<B: Backend> Store for LogStore<B> {
    async fn append(
        &self,
        events: Vec<NewEvent>,
        idempotency: Option<Idempotency>,
    ) -> Result<PublishReceipt, StoreError> {
        self.writes.append(events, idempotency).await
    }

    async fn create_channel(
        &self,
        channel: ChannelSpec,
        max_per_owner: u64,
    ) -> Result<Created, StoreError> {
        self.writes.create_channel(channel, max_per_owner).await
    }

    async fn remove_channels(&self, removal: Removal) -> Result<Removed, StoreError> {
        self.writes.remove_channels(removal).await
    }

    async fn renew_channel(&self, pk: i64, expiration_ms: i64) -> Result<Renewed, StoreError> {
        self.writes.renew_channel(pk, Some(expiration_ms)).await
    }

    async fn reread_expiration(&self, pk: i64) -> Result<Renewed, StoreError> {
        self.writes.renew_channel(pk, None).await
    }

    fn record_progress(&self, pk: i64, seq: Seq) {
        let sent = Some(seq);
        self.writes
            .record_progress(pk, Progress { through: seq, sent });
    }

    fn record_passed(&self, pk: i64, seq: Seq) {
        let sent = None;
        self.writes
            .record_progress(pk, Progress { through: seq, sent });
    }

    fn record_outcome(&self, outcome: Outcome) {
        self.writes.record_outcome(outcome);
    }

    fn record_health(
        &self,
        pk: i64,
        failing_since_ms: Option<i64>,
        disabled: bool,
        event: Option<NewEvent>,
    ) {
        self.writes
            .record_health(pk, failing_since_ms, disabled, event);
    }

    fn record_event(&self, event: NewEvent) {
        self.writes.record_event(event);
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.writes.flush().await
    }

    async fn close(&self) {
        self.writes.close();
        let writer = self.writer.lock().unwrap().take();
        match writer {
            // Joined on a blocking thread: the writer may still be committing.
            Some(WriterHandle::Thread(thread)) => {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            Some(WriterHandle::Task(task)) => drop(task.await),
            None => {}
        }
        self.backend.close().await;
    }

    /// Healthy while the database answers and no write failed in the last seconds;
    /// after a failed write, a small write tells whether writing works again.
    async fn probe(&self) -> Result<(), StoreError> {
        let health = &self.shared.write_health;
        health.check(now_ms())?;
        self.backend.reachable().await?;
        if health.is_failing() {
            self.writes.probe().await?;
        }
        Ok(())
    }

    async fn prune(
        &self,
        events_before_ms: i64,
        outcomes_before_ms: i64,
    ) -> Result<PruneReport, StoreError> {
        self.writes
            .prune(events_before_ms, outcomes_before_ms)
            .await
    }

    fn pruned_through(&self) -> Seq {
        self.shared.pruned_through.load(Ordering::Relaxed)
    }

    fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        self.backend.size_bytes().await
    }

    async fn load_channels(
        &self,
        after_pk: i64,
        limit: usize,
    ) -> Result<Vec<StoredChannel>, StoreError> {
        let sql =
            format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE pk > $1 ORDER BY pk LIMIT $2");
        let limit = limit.min(i64::MAX as usize) as u64;
        self.read(sql, params![after_pk, limit], channel_from_row)
            .await
    }

    async fn load_channels_by_pk(&self, pks: &[i64]) -> Result<Vec<StoredChannel>, StoreError> {
        let mut pks = pks.to_vec();
        pks.sort_unstable();
        pks.dedup();
        let mut channels = Vec::with_capacity(pks.len());
        for chunk in pks.chunks(LOAD_BY_PK_SIZES[LOAD_BY_PK_SIZES.len() - 1]) {
            // A few statement sizes, the keys padded with the last one, so that the
            // statements prepared stay few whatever the number of keys.
            let size = *LOAD_BY_PK_SIZES
                .iter()
                .find(|&&s| s >= chunk.len())
                .unwrap();
            let placeholders: Vec<String> = (1..=size).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT {CHANNEL_COLUMNS} FROM channels WHERE pk IN ({})",
                placeholders.join(", ")
            );
            let last = chunk[chunk.len() - 1];
            let params = (0..size)
                .map(|i| Value::Int(chunk.get(i).copied().unwrap_or(last)))
                .collect();
            channels.extend(self.read(sql, params, channel_from_row).await?);
        }
        Ok(channels)
    }

    async fn awaiting_retry(&self) -> Result<Vec<Outcome>, StoreError> {
        let sql = format!("SELECT {OUTCOME_COLUMNS} FROM outcomes o WHERE o.status = 'pending'");
        self.read(sql, Vec::new(), outcome_from_row).await
    }

    async fn find_channel(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<Option<StoredChannel>, StoreError> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE owner = $1 AND id = $2");
        let rows = self.read(sql, params![owner, id], channel_from_row).await?;
        Ok(rows.into_iter().next())
    }

    async fn find_removed(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<Option<RemovedChannel>, StoreError> {
        let sql =
            format!("SELECT {REMOVED_COLUMNS} FROM removed_channels WHERE owner = $1 AND id = $2");
        let rows = self.read(sql, params![owner, id], removed_from_row).await?;
        Ok(rows.into_iter().next())
    }

    async fn list_channels(
        &self,
        owner: Option<&str>,
        kind: ChannelKind,
        after_pk: i64,
        limit: usize,
    ) -> Result<Vec<StoredChannel>, StoreError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels
             WHERE (CAST($1 AS TEXT) IS NULL OR owner = $1) AND kind = $2 AND pk > $3 ORDER BY pk LIMIT $4"
        );
        let params = params![owner, kind.as_str(), after_pk, limit as u64];
        self.read(sql, params, channel_from_row).await
    }

    async fn list_outcomes(
        &self,
        pk: i64,
        status: Option<OutcomeStatus>,
        after_seq: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<OutcomeRecord>, StoreError> {
        // The sync's entry sits at the channel's start, which may be seq 0.
        let after = after_seq.map_or(-1, |s| s as i64);
        let sql = format!(
            "SELECT {OUTCOME_COLUMNS}, e.resource, e.metadata
             FROM outcomes o LEFT JOIN events e ON e.seq = o.seq AND o.message_number > 1
             WHERE o.channel_pk = $1 AND o.seq > $2 AND (CAST($3 AS TEXT) IS NULL OR o.status = $3)
             ORDER BY o.seq LIMIT $4"
        );
        let params = params![pk, after, status.map(OutcomeStatus::as_str), limit as u64];
        self.read(sql, params, outcome_record_from_row).await
    }

    async fn read_log(&self, after: Seq, limit: usize) -> Result<Vec<SharedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM visible_events WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        self.read(sql, params![after, limit as u64], event_from_row)
            .await
    }

    async fn read_matching(
        &self,
        coverage: &Coverage,
        after: Seq,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let mut params = params![after, limit as u64];
        let under = covered("resource", coverage, &mut params);
        // One statement, one snapshot: the head it reports is the one it read under.
        let sql = format!(
            "SELECT h.seq, {} FROM log_head h LEFT JOIN (
                 SELECT {EVENT_COLUMNS} FROM visible_events WHERE seq > $1 AND {under} ORDER BY seq LIMIT $2
             ) e ON TRUE ORDER BY e.seq",
            event_columns_of("e")
        );
        fn head_and_event(row: &dyn Row) -> Result<(Seq, Option<SharedEvent>), StoreError> {
            let event = match row.opt_int(1)? {
                Some(_) => Some(event_at(row, 1)?),
                None => None,
            };
            Ok((row.int(0)? as Seq, event))
        }
        let rows = self.read(sql, params, head_and_event).await?;
        let head = rows.first().map_or(0, |(head, _)| *head);
        let events = rows.into_iter().filter_map(|(_, event)| event).collect();
        Ok(EventPage { events, head })
    }

    async fn count_matching(&self, coverage: &Coverage, after: Seq) -> Result<u64, StoreError> {
        let mut params = params![after];
        let under = covered("resource", coverage, &mut params);
        let sql = format!("SELECT COUNT(*) FROM visible_events WHERE seq > $1 AND {under}");
        let count = single(self.read(sql, params, opt_int_from_row).await?)?;
        Ok(count.unwrap_or(0) as u64)
    }

    async fn latest_seq_under(&self, coverage: &Coverage) -> Result<Option<Seq>, StoreError> {
        let mut params = Vec::new();
        let sql = if is_whole_namespace(coverage) {
            "SELECT MAX(seq) FROM visible_events".to_string()
        } else {
            let paths = super::sql::bind_paths(coverage, &mut params).join(", ");
            format!("SELECT MAX(last_seq) FROM polling_index WHERE path IN ({paths})")
        };
        let latest = single(self.read(sql, params, opt_int_from_row).await?)?;
        Ok(latest.map(|seq| seq as Seq))
    }

    async fn list_collections(
        &self,
        coverage: &Coverage,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Collection>, StoreError> {
        let mut params = params![limit as u64, after];
        let under = covered("path", coverage, &mut params);
        let sql = B::collections_sql(&under);
        self.read(sql, params, collection_from_row).await
    }

    async fn head(&self) -> Result<Seq, StoreError> {
        let sql = "SELECT seq FROM log_head".to_string();
        let head = single(self.read(sql, Vec::new(), opt_int_from_row).await?)?;
        Ok(head.unwrap_or(0) as Seq)
    }

    fn instance_secret(&self) -> &[u8] {
        &self.secret
    }

    fn take_feed(&self) -> Option<mpsc::UnboundedReceiver<FeedItem>> {
        self.feed.lock().unwrap().take()
    }
}
