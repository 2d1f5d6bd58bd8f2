//! The PostgreSQL store (`serve --database-url`): the same contract as the embedded
//! store, on a database several gateways can share (docs/api.md §13).
//!
//! `writer.rs` is the writer task (group commit on a connection of its own; every
//! writing transaction locks the log's head row, which orders positions); `pool.rs`
//! the connections for reads; `schema.rs` the migrations; `read.rs` the row mappings.

mod cluster;
mod pool;
mod read;
mod schema;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, Row};
use tokio_util::sync::CancellationToken;

use self::pool::{pg, unreachable_database, Pool};
use self::read::{
    bind_paths, channel_from_row, coverage_sql, event_at, event_from_row, outcome_from_row,
    removed_from_row, CHANNEL_COLUMNS, EVENT_COLUMNS, OUTCOME_COLUMNS, REMOVED_COLUMNS,
};
use self::writer::Writer;
use super::batch::{Feed, WriteHealth, Writes};
use super::records::PendingRecords;
use super::{
    is_whole_namespace, ClusterMessage, Created, EventPage, FeedItem, Idempotency, Membership,
    PruneReport, PublishReceipt, Removal, Removed, Store, StoreError,
};
use crate::model::{
    now_ms, ChannelKind, ChannelSpec, Collection, Coverage, NewEvent, Outcome, OutcomeRecord,
    OutcomeStatus, RemovedChannel, Seq, SharedEvent, StoredChannel,
};
use crate::telemetry::LogGate;

/// Connections for reads (the writer has one more of its own).
const READ_CONNECTIONS: usize = 8;
/// Longest a read may take before the call answers `503`.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PgStore {
    /// This process's id as a node of the cluster.
    node_id: String,
    /// The way into the writer task.
    writes: Writes,
    writer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    readers: Arc<Pool>,
    /// A connection only the lease's renewals use, so that no amount of other work
    /// queued for connections can delay them.
    lease: Pool,
    /// Messages from the other nodes, until the node runtime takes them.
    messages: Mutex<Option<mpsc::UnboundedReceiver<ClusterMessage>>>,
    /// Stops the listener and the tailer.
    background: CancellationToken,
    /// This gateway's notification channels.
    channels: cluster::Channels,
    secret: Vec<u8>,
    feed: Mutex<Option<mpsc::UnboundedReceiver<FeedItem>>>,
    pruned_through: Arc<AtomicU64>,
    write_health: Arc<WriteHealth>,
    commits: Arc<AtomicU64>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), migrates the schema, and
    /// starts the writer, the listener of notifications and the tailer of other nodes'
    /// commits, as node `node_id`.
    pub async fn open(url: &str, node_id: &str) -> Result<PgStore, StoreError> {
        let config: Config = url.parse().map_err(|e| {
            StoreError::Backend(format!(
                "it is not a PostgreSQL URL like postgres://user@host:5432/db ({e})"
            ))
        })?;
        let mut setup = pool::connect(&config).await?;
        schema::migrate(&mut setup).await?;
        let secret = schema::instance_secret(&setup).await?;
        let pruned_through = Arc::new(AtomicU64::new(schema::pruned_through(&setup).await?));
        let head: i64 = setup
            .query_one("SELECT seq FROM log_head", &[])
            .await
            .map_err(pg)?
            .get(0);
        let (feed_tx, feed_rx) = mpsc::unbounded_channel();
        let (op_tx, op_rx) = mpsc::unbounded_channel();
        let records = Arc::new(PendingRecords::default());
        let write_health = Arc::new(WriteHealth::default());
        let commits = Arc::new(AtomicU64::new(0));
        let log = Arc::new(tokio::sync::Notify::new());
        let feed = Arc::new(Mutex::new(Feed::with_gap_reader(
            feed_tx,
            head as Seq,
            log.clone(),
        )));
        let channels = cluster::Channels::of(&secret);
        let writer = Writer {
            node_id: node_id.to_string(),
            channels: channels.clone(),
            config: config.clone(),
            client: Some(setup),
            statements: HashMap::new(),
            feed: feed.clone(),
            records: records.clone(),
            write_health: write_health.clone(),
            failure_log: LogGate::default(),
            pruned_through: pruned_through.clone(),
            commits: commits.clone(),
            min_progress: None,
        };
        let writer_task = tokio::spawn(writer.run(op_rx));
        let readers = Arc::new(Pool::new(config.clone(), READ_CONNECTIONS));
        let lease = Pool::new(config.clone(), 1);
        let background = CancellationToken::new();
        let (messages_tx, messages) = mpsc::unbounded_channel();
        cluster::spawn_listener(
            config,
            channels.clone(),
            log.clone(),
            messages_tx,
            background.clone(),
        );
        cluster::spawn_tailer(readers.clone(), feed, log, background.clone());
        Ok(PgStore {
            node_id: node_id.to_string(),
            writes: Writes::new(
                move |op| op_tx.send(op).is_ok(),
                records,
                Some((pool::WAIT, unreachable_database)),
            ),
            writer_task: Mutex::new(Some(writer_task)),
            readers,
            lease,
            messages: Mutex::new(Some(messages)),
            background,
            channels,
            secret,
            feed: Mutex::new(Some(feed_rx)),
            pruned_through,
            write_health,
            commits,
        })
    }

    /// Runs one statement on a pooled connection, answering within [`READ_TIMEOUT`];
    /// the number of rows it changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let write = async {
            let client = self.readers.get().await?;
            client.execute(sql, params).await.map_err(pg)
        };
        tokio::time::timeout(READ_TIMEOUT, write)
            .await
            .map_err(|_| unreachable_database())?
    }

    /// Runs one read on a pooled connection, answering within [`READ_TIMEOUT`].
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let read = async {
            let client = self.readers.get().await?;
            client.query(sql, params).await.map_err(pg)
        };
        tokio::time::timeout(READ_TIMEOUT, read)
            .await
            .map_err(|_| unreachable_database())?
    }
}

#[async_trait]
impl Store for PgStore {
    fn membership(&self) -> Option<&dyn Membership> {
        Some(self)
    }

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

    fn record_progress(&self, pk: i64, seq: Seq) {
        self.writes.record_progress(pk, seq);
    }

    fn record_outcome(&self, outcome: Outcome) {
        self.writes.record_outcome(outcome);
    }

    fn record_health(&self, pk: i64, failing_since_ms: Option<i64>, disabled: bool) {
        self.writes.record_health(pk, failing_since_ms, disabled);
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.writes.flush().await
    }

    async fn close(&self) {
        self.background.cancel();
        self.writes.close();
        let task = self.writer_task.lock().unwrap().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Healthy while the database answers and no write failed in the last seconds.
    async fn probe(&self) -> Result<(), StoreError> {
        self.write_health.check(now_ms())?;
        self.query("SELECT 1", &[]).await?;
        if self.write_health.is_failing() {
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
        self.pruned_through.load(Ordering::Relaxed)
    }

    fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c
                 WHERE c.relkind = 'r' AND c.relname IN ('meta', 'log_head', 'events', 'prefixes', 'channels', 'owner_counts',
                       'outcomes', 'removed_channels', 'idempotency') AND c.relnamespace = current_schema()::regnamespace",
                &[],
            )
            .await?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    async fn load_channels(&self) -> Result<Vec<StoredChannel>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY pk"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(channel_from_row).collect())
    }

    async fn awaiting_retry(&self) -> Result<Vec<Outcome>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {OUTCOME_COLUMNS} FROM outcomes o WHERE o.status = 'pending'"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| outcome_from_row(r).outcome).collect())
    }

    async fn find_channel(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<Option<StoredChannel>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE owner = $1 AND id = $2"),
                &[&owner, &id],
            )
            .await?;
        Ok(rows.first().map(channel_from_row))
    }

    async fn find_removed(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<Option<RemovedChannel>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {REMOVED_COLUMNS} FROM removed_channels WHERE owner = $1 AND id = $2"
                ),
                &[&owner, &id],
            )
            .await?;
        Ok(rows.first().map(removed_from_row))
    }

    async fn list_channels(
        &self,
        owner: Option<&str>,
        kind: ChannelKind,
        after_pk: i64,
        limit: usize,
    ) -> Result<Vec<StoredChannel>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {CHANNEL_COLUMNS} FROM channels WHERE ($1::TEXT IS NULL OR owner = $1) AND kind = $2 AND pk > $3 ORDER BY pk LIMIT $4"
                ),
                &[&owner, &kind.as_str(), &after_pk, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(channel_from_row).collect())
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
        let status = status.map(OutcomeStatus::as_str);
        let rows = self
            .query(
                &format!(
                    "SELECT {OUTCOME_COLUMNS}, e.resource, e.metadata
                     FROM outcomes o LEFT JOIN events e ON e.seq = o.seq AND o.message_number > 1
                     WHERE o.channel_pk = $1 AND o.seq > $2 AND ($3::text IS NULL OR o.status = $3)
                     ORDER BY o.seq LIMIT $4"
                ),
                &[&pk, &after, &status, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(outcome_from_row).collect())
    }

    async fn read_log(&self, after: Seq, limit: usize) -> Result<Vec<SharedEvent>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&(after as i64), &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    async fn read_matching(
        &self,
        coverage: &Coverage,
        after: Seq,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let (after, limit) = (after as i64, limit as i64);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&after, &limit];
        let under = coverage_sql("resource", coverage, &mut params);
        // One statement, one snapshot: the head it reports is the one it read under.
        let rows = self
            .query(
                &format!(
                    "SELECT h.seq, {} FROM log_head h LEFT JOIN LATERAL (
                         SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 AND {under} ORDER BY seq LIMIT $2
                     ) e ON TRUE",
                    EVENT_COLUMNS
                        .split(", ")
                        .map(|c| format!("e.{c}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                &params,
            )
            .await?;
        let head = rows.first().map_or(0, |r| r.get::<_, i64>(0) as Seq);
        let events = rows
            .iter()
            .filter(|r| r.get::<_, Option<i64>>(1).is_some())
            .map(|r| event_at(r, 1))
            .collect();
        Ok(EventPage { events, head })
    }

    async fn count_matching(&self, coverage: &Coverage, after: Seq) -> Result<u64, StoreError> {
        let after = after as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&after];
        let under = coverage_sql("resource", coverage, &mut params);
        let rows = self
            .query(
                &format!("SELECT COUNT(*) FROM events WHERE seq > $1 AND {under}"),
                &params,
            )
            .await?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    async fn latest_seq_under(&self, coverage: &Coverage) -> Result<Option<Seq>, StoreError> {
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let sql = if is_whole_namespace(coverage) {
            "SELECT MAX(seq) FROM events".to_string()
        } else {
            let paths = bind_paths(coverage, &mut params).join(", ");
            format!("SELECT MAX(last_seq) FROM prefixes WHERE path IN ({paths})")
        };
        let rows = self.query(&sql, &params).await?;
        Ok(rows[0].get::<_, Option<i64>>(0).map(|seq| seq as Seq))
    }

    async fn list_collections(
        &self,
        coverage: &Coverage,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Collection>, StoreError> {
        let (limit, after) = (limit as i64, after as i64);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&limit, &after];
        let under = coverage_sql("path", coverage, &mut params);
        let rows = self
            .query(
                &format!(
                    "SELECT path, last_seq, last_ms FROM prefixes
                     WHERE collection AND last_seq > $2 AND {under}
                     ORDER BY last_seq DESC LIMIT $1"
                ),
                &params,
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Collection {
                path: r.get(0),
                last_seq: r.get::<_, i64>(1) as Seq,
                last_ms: r.get(2),
            })
            .collect())
    }

    async fn head(&self) -> Result<Seq, StoreError> {
        let rows = self.query("SELECT seq FROM log_head", &[]).await?;
        Ok(rows[0].get::<_, i64>(0) as Seq)
    }

    fn instance_secret(&self) -> &[u8] {
        &self.secret
    }

    fn take_feed(&self) -> Option<mpsc::UnboundedReceiver<FeedItem>> {
        self.feed.lock().unwrap().take()
    }
}
