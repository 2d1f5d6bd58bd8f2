//! The embedded store: SQLite in WAL mode with `synchronous=FULL`.
//!
//! `writer.rs` holds the single writer thread (group commit, the feed); `read.rs` the
//! read-only connection pool and row mappings; `schema.rs` the tables.

mod checkpoint;
mod read;
mod schema;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection};
use tokio::sync::mpsc;

use self::read::{
    bind_paths, channel_from_row, coverage_sql, event_from_row, outcome_from_row, removed_from_row,
    ReadPool,
};
use self::schema::{backend, log_head, meta_u64, CHANNEL_COLUMNS, EVENT_COLUMNS, REMOVED_COLUMNS};
use self::writer::Writer;
use super::batch::{Feed, WriteHealth, Writes};
use super::records::PendingRecords;
use super::{
    is_whole_namespace, Created, EventPage, FeedItem, Idempotency, PruneReport, PublishReceipt,
    Removal, Removed, Store, StoreError,
};
use crate::model::{
    now_ms, ChannelKind, ChannelSpec, Collection, Coverage, NewEvent, Outcome, OutcomeRecord,
    OutcomeStatus, RemovedChannel, Seq, SharedEvent, StoredChannel,
};
use crate::telemetry::LogGate;

pub struct SqliteStore {
    /// The data directory's lock, held for the store's life (see [`DirLock`]).
    dir_lock: Mutex<Option<DirLock>>,
    /// The way into the writer thread.
    writes: Writes,
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    readers: ReadPool,
    secret: Vec<u8>,
    feed: Mutex<Option<mpsc::UnboundedReceiver<FeedItem>>>,
    commits: Arc<AtomicU64>,
    pruned_through: Arc<AtomicU64>,
    /// How the writer's transactions have been going, for `/healthz`.
    write_health: Arc<WriteHealth>,
}

impl SqliteStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let dir_lock = DirLock::acquire(dir)?;
        let path = dir.join("watchwire.db");
        let mut conn = Connection::open(&path).map_err(backend)?;
        conn.execute_batch(
            // The WAL is reused from its start after each full checkpoint; the size
            // limit gives back what a burst grew it to.
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
             PRAGMA journal_size_limit = 67108864;",
        )
        .map_err(backend)?;
        schema::migrate(&mut conn).map_err(backend)?;
        // The writer's statements all stay prepared (rusqlite keeps 16 by default;
        // the writer has about twenty).
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::WRITER_BACKSTOP_PAGES,
        )
        .map_err(backend)?;
        let checkpointer = checkpoint::Checkpointer::spawn(&path)?;
        let secret = schema::instance_secret(&conn)?;
        let pruned_through = Arc::new(AtomicU64::new(
            meta_u64(&conn, "pruned_through").map_err(backend)?,
        ));

        let (feed_tx, feed_rx) = mpsc::unbounded_channel();
        let (op_tx, op_rx) = std_mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let records = Arc::new(PendingRecords::default());
        let write_health = Arc::new(WriteHealth::default());
        let head = log_head(&conn).map_err(backend)?;
        let writer = Writer {
            conn,
            feed: Feed::new(feed_tx, head),
            commits: commits.clone(),
            pruned_through: pruned_through.clone(),
            records: records.clone(),
            checkpointer: Some(checkpointer),
            write_health: write_health.clone(),
            failure_log: LogGate::default(),
            min_progress: None,
        };
        let writer_thread = thread::Builder::new()
            .name("watchwire-store-writer".into())
            .spawn(move || writer.run(op_rx))
            .map_err(|e| StoreError::Backend(e.to_string()))?;

        Ok(SqliteStore {
            dir_lock: Mutex::new(Some(dir_lock)),
            writes: Writes::new(move |op| op_tx.send(op).is_ok(), records, None),
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: ReadPool {
                path,
                idle: Arc::new(Mutex::new(Vec::new())),
            },
            secret,
            feed: Mutex::new(Some(feed_rx)),
            commits,
            pruned_through,
            write_health,
        })
    }

    /// Stops the writer after it has committed everything queued.
    pub fn close_now(&self) {
        self.writes.close();
        if let Some(handle) = self.writer_thread.lock().unwrap().take() {
            let _ = handle.join();
        }
        // Only once the writer is done may another process open the directory.
        self.dir_lock.lock().unwrap().take();
    }
}

/// An exclusive OS lock on `watchwire.lock` in the data directory. Two processes on one
/// directory would each route only their own publishes, so events acknowledged by one
/// would never reach the other's channels: the second must refuse to start. The kernel
/// drops the lock when its holder dies, so a `kill -9` never leaves a stale lock.
struct DirLock {
    /// Holding the open file is holding the lock.
    _file: std::fs::File,
}

impl DirLock {
    const FILE: &'static str = "watchwire.lock";

    fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        use std::io::{Read, Seek, Write};
        let path = dir.join(Self::FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process".to_string(),
                    pid => format!("another watchwire process (pid {pid})"),
                };
                return Err(StoreError::Backend(format!(
                    "the data directory {} is in use by {holder}; stop it first, or give this one another --data-dir",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Backend(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )))
            }
        }
        // Name the holder for whoever tries next.
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not write the pid into the data directory's lock file");
        }
        Ok(DirLock { _file: file })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close_now();
    }
}

#[async_trait]
impl Store for SqliteStore {
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
        self.writes.close();
        let writer = self.writer_thread.lock().unwrap().take();
        if let Some(thread) = writer {
            // Joined on a blocking thread: the writer may still be committing.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.dir_lock.lock().unwrap().take();
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.write_health.check(now_ms())?;
        if !self.write_health.is_failing() {
            return Ok(());
        }
        self.writes.probe().await
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
        let db = &self.readers.path;
        Ok(["", "-wal", "-shm"]
            .iter()
            .filter_map(|suffix| {
                let mut name = db.clone().into_os_string();
                name.push(suffix);
                std::fs::metadata(name).ok()
            })
            .map(|m| m.len())
            .sum())
    }

    async fn load_channels(&self) -> Result<Vec<StoredChannel>, StoreError> {
        self.readers
            .with(|conn| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY pk"
                ))?;
                let rows = stmt.query_map([], channel_from_row)?;
                rows.collect()
            })
            .await
    }

    async fn awaiting_retry(&self) -> Result<Vec<Outcome>, StoreError> {
        self.readers
            .with(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT o.channel_pk, o.seq, o.message_number, o.state, o.status, o.attempts, o.last_status, o.last_error, o.at_ms,
                            o.next_retry_ms, NULL, NULL, o.last_reason, o.recent, o.first_attempt_ms
                     FROM outcomes o WHERE o.status = 'pending'",
                )?;
                let rows = stmt.query_map([], outcome_from_row)?;
                rows.map(|r| r.map(|record| record.outcome)).collect()
            })
            .await
    }

    async fn find_channel(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<Option<StoredChannel>, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.readers
            .with(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {CHANNEL_COLUMNS} FROM channels WHERE owner = ?1 AND id = ?2"
                ))?;
                let mut rows = stmt.query_map(params![owner, id], channel_from_row)?;
                rows.next().transpose()
            })
            .await
    }

    async fn find_removed(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<Option<RemovedChannel>, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.readers
            .with(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {REMOVED_COLUMNS} FROM removed_channels WHERE owner = ?1 AND id = ?2"
                ))?;
                let mut rows = stmt.query_map(params![owner, id], removed_from_row)?;
                rows.next().transpose()
            })
            .await
    }

    async fn list_channels(
        &self,
        owner: Option<&str>,
        kind: ChannelKind,
        after_pk: i64,
        limit: usize,
    ) -> Result<Vec<StoredChannel>, StoreError> {
        let owner = owner.map(str::to_string);
        self.readers
            .with(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {CHANNEL_COLUMNS} FROM channels WHERE (?1 IS NULL OR owner = ?1) AND kind = ?2 AND pk > ?3 ORDER BY pk LIMIT ?4"
                ))?;
                let rows = stmt.query_map(params![owner, kind.as_str(), after_pk, limit as i64], channel_from_row)?;
                rows.collect()
            })
            .await
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
        self.readers
            .with(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT o.channel_pk, o.seq, o.message_number, o.state, o.status, o.attempts, o.last_status, o.last_error, o.at_ms,
                            o.next_retry_ms, e.resource, e.metadata, o.last_reason, o.recent, o.first_attempt_ms
                     FROM outcomes o LEFT JOIN events e ON e.seq = o.seq AND o.message_number > 1
                     WHERE o.channel_pk = ?1 AND o.seq > ?2 AND (?3 IS NULL OR o.status = ?3)
                     ORDER BY o.seq LIMIT ?4",
                )?;
                let rows = stmt.query_map(params![pk, after, status.map(OutcomeStatus::as_str), limit as i64], outcome_from_row)?;
                rows.collect()
            })
            .await
    }

    async fn read_log(&self, after: Seq, limit: usize) -> Result<Vec<SharedEvent>, StoreError> {
        self.readers
            .with(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))?;
                let rows = stmt.query_map(params![after as i64, limit as i64], event_from_row)?;
                rows.collect()
            })
            .await
    }

    async fn read_matching(
        &self,
        coverage: &Coverage,
        after: Seq,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let mut values = vec![Value::Integer(after as i64), Value::Integer(limit as i64)];
        let under = coverage_sql("resource", coverage, &mut values);
        self.readers
            .with(move |conn| {
                // One read transaction, so the head we report is the snapshot we read.
                conn.execute_batch("BEGIN")?;
                let result = (|| {
                    let head = log_head(conn)?;
                    let mut stmt = conn.prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 AND {under} ORDER BY seq LIMIT ?2"
                    ))?;
                    let rows = stmt.query_map(params_from_iter(values), event_from_row)?;
                    let events = rows.collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok(EventPage { events, head })
                })();
                conn.execute_batch("COMMIT")?;
                result
            })
            .await
    }

    async fn count_matching(&self, coverage: &Coverage, after: Seq) -> Result<u64, StoreError> {
        let mut values = vec![Value::Integer(after as i64)];
        let under = coverage_sql("resource", coverage, &mut values);
        self.readers
            .with(move |conn| {
                let sql = format!("SELECT COUNT(*) FROM events WHERE seq > ?1 AND {under}");
                let n: i64 = conn
                    .prepare_cached(&sql)?
                    .query_row(params_from_iter(values), |r| r.get(0))?;
                Ok(n as u64)
            })
            .await
    }

    async fn latest_seq_under(&self, coverage: &Coverage) -> Result<Option<Seq>, StoreError> {
        let mut values = Vec::new();
        let sql = if is_whole_namespace(coverage) {
            "SELECT MAX(seq) FROM events".to_string()
        } else {
            let paths = bind_paths(coverage, &mut values).join(", ");
            format!("SELECT MAX(last_seq) FROM prefixes WHERE path IN ({paths})")
        };
        self.readers
            .with(move |conn| {
                let latest: Option<i64> = conn
                    .prepare_cached(&sql)?
                    .query_row(params_from_iter(values), |r| r.get(0))?;
                Ok(latest.map(|seq| seq as Seq))
            })
            .await
    }

    async fn list_collections(
        &self,
        coverage: &Coverage,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Collection>, StoreError> {
        let mut values = vec![Value::Integer(limit as i64), Value::Integer(after as i64)];
        let under = coverage_sql("path", coverage, &mut values);
        self.readers
            .with(move |conn| {
                let sql = format!(
                    "SELECT path, last_seq, last_ms FROM prefixes WHERE collection = 1 AND last_seq > ?2 AND {under} ORDER BY last_seq DESC LIMIT ?1"
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(params_from_iter(values), |r| {
                    Ok(Collection { path: r.get(0)?, last_seq: r.get::<_, i64>(1)? as Seq, last_ms: r.get(2)? })
                })?;
                rows.collect()
            })
            .await
    }

    async fn head(&self) -> Result<Seq, StoreError> {
        self.readers.with(log_head).await
    }

    fn instance_secret(&self) -> &[u8] {
        &self.secret
    }

    fn take_feed(&self) -> Option<mpsc::UnboundedReceiver<FeedItem>> {
        self.feed.lock().unwrap().take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_store_on_one_directory_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let first = SqliteStore::open(dir.path()).unwrap();
        let refused = SqliteStore::open(dir.path()).err().expect("refused");
        let message = refused.to_string();
        assert!(
            message.contains("in use") && message.contains(&std::process::id().to_string()),
            "{message}"
        );
        first.close_now();
        SqliteStore::open(dir.path()).expect("free once the first closed");
    }
}
