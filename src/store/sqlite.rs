//! The embedded store: SQLite in WAL mode with `synchronous=FULL`.
//!
//! One writer thread owns the only write connection. It takes every request queued
//! while the previous transaction was committing and applies them all in one
//! `BEGIN IMMEDIATE` transaction, so concurrent publishes share one fsync (group
//! commit). After the commit it puts the changes on the feed, in order, and answers
//! the callers. Reads go to a small pool of read-only connections on blocking threads.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{Committed, FeedItem, Idempotency, PublishReceipt, Removal, Store, StoreError};
use crate::model::{now_ms, Channel, Event, NewChannel, NewEvent, Outcome, Seq, SharedEvent};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    resource TEXT NOT NULL,
    state TEXT NOT NULL,
    data BLOB,
    changed TEXT NOT NULL DEFAULT '',
    metadata TEXT
);
CREATE INDEX IF NOT EXISTS events_by_resource ON events (resource, seq);
CREATE TABLE IF NOT EXISTS channels (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    resource TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_uri TEXT NOT NULL,
    address TEXT NOT NULL,
    token TEXT,
    expiration_ms INTEGER,
    params TEXT NOT NULL,
    payload INTEGER NOT NULL,
    signing_secret TEXT,
    created_ms INTEGER NOT NULL,
    start_seq INTEGER NOT NULL,
    progress_seq INTEGER NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0,
    UNIQUE (owner, id)
);
CREATE TABLE IF NOT EXISTS outcomes (
    channel_pk INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    message_number INTEGER NOT NULL,
    state TEXT NOT NULL,
    delivered INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (channel_pk, seq)
);
CREATE TABLE IF NOT EXISTS idempotency (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
);
"#;

/// How long an Idempotency-Key is remembered (SPEC §6).
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Most requests folded into one transaction.
const MAX_BATCH: usize = 4096;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum WriteOp {
    Append {
        events: Vec<NewEvent>,
        idempotency: Option<Idempotency>,
        reply: Reply<PublishReceipt>,
    },
    CreateChannel {
        channel: NewChannel,
        max_per_owner: u64,
        reply: Reply<(Channel, u64)>,
    },
    RemoveChannels {
        removal: Removal,
        reply: Reply<(Vec<i64>, u64)>,
    },
    Progress {
        pk: i64,
        seq: Seq,
    },
    Outcome(Outcome),
    Flush {
        reply: Reply<()>,
    },
}

pub struct SqliteStore {
    writer: Mutex<Option<std_mpsc::Sender<WriteOp>>>,
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    readers: ReadPool,
    secret: Vec<u8>,
    feed: Mutex<Option<mpsc::UnboundedReceiver<FeedItem>>>,
    commits: Arc<std::sync::atomic::AtomicU64>,
}

impl SqliteStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("watchwire.db");
        let conn = Connection::open(&path).map_err(backend)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        let secret = instance_secret(&conn)?;

        let (feed_tx, feed_rx) = mpsc::unbounded_channel();
        let (op_tx, op_rx) = std_mpsc::channel();
        let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = Writer {
            conn,
            feed: feed_tx,
            feed_no: 0,
            progress: HashMap::new(),
            outcomes: Vec::new(),
            commits: commits.clone(), owner_counts: HashMap::new(),
        };
        let writer_thread = thread::Builder::new()
            .name("watchwire-store-writer".into())
            .spawn(move || writer.run(op_rx))
            .map_err(|e| StoreError::Backend(e.to_string()))?;

        Ok(SqliteStore {
            writer: Mutex::new(Some(op_tx)),
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: ReadPool {
                path,
                idle: Arc::new(Mutex::new(Vec::new())),
            },
            secret,
            feed: Mutex::new(Some(feed_rx)),
            commits,
        })
    }

    /// Transactions committed so far (each is one fsync of the WAL).
    pub fn commit_count(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn send(&self, op: WriteOp) -> Result<(), StoreError> {
        let guard = self.writer.lock().unwrap();
        guard
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(op)
            .map_err(|_| StoreError::Closed)
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> WriteOp) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops the writer after it has committed everything queued.
    pub fn close(&self) {
        self.writer.lock().unwrap().take();
        if let Some(handle) = self.writer_thread.lock().unwrap().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn instance_secret(conn: &Connection) -> Result<Vec<u8>, StoreError> {
    let existing: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'instance_secret'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    if let Some(secret) = existing {
        return Ok(secret);
    }
    let secret: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('instance_secret', ?1)",
        params![secret],
    )
    .map_err(backend)?;
    Ok(secret)
}

struct Writer {
    conn: Connection,
    feed: mpsc::UnboundedSender<FeedItem>,
    feed_no: u64,
    /// Progress not yet committed, coalesced per channel.
    progress: HashMap<i64, Seq>,
    outcomes: Vec<Outcome>,
    commits: Arc<std::sync::atomic::AtomicU64>,
    /// Stored channels per owner, counted once per owner and then kept up to date.
    owner_counts: HashMap<String, u64>,
}

/// The part of a write request that runs inside the transaction.
enum Job {
    Append(Vec<NewEvent>, Option<Idempotency>),
    Create(NewChannel, u64),
    Remove(Removal),
    Flush,
}

/// Who is waiting for a job's answer.
enum Slot {
    Append(Reply<PublishReceipt>),
    Create(Reply<(Channel, u64)>),
    Remove(Reply<(Vec<i64>, u64)>),
    Flush(Reply<()>),
}

/// A job's answer. The outer `rusqlite::Result` of `run_job` aborts the whole
/// transaction; these inner errors concern one request only.
enum Done {
    Append(Result<(PublishReceipt, Vec<SharedEvent>), StoreError>),
    Create(Result<(Channel, Option<i64>), StoreError>),
    Remove(Result<Vec<i64>, StoreError>),
    Flush,
}

impl Writer {
    fn run(mut self, ops: std_mpsc::Receiver<WriteOp>) {
        while let Ok(first) = ops.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
        // All senders are gone: commit the last progress records.
        if !self.progress.is_empty() || !self.outcomes.is_empty() {
            self.commit_batch(Vec::new());
        }
    }

    fn commit_batch(&mut self, batch: Vec<WriteOp>) {
        let mut jobs = Vec::with_capacity(batch.len());
        let mut slots = Vec::with_capacity(batch.len());
        for op in batch {
            match op {
                WriteOp::Progress { pk, seq } => {
                    let entry = self.progress.entry(pk).or_insert(seq);
                    *entry = (*entry).max(seq);
                }
                WriteOp::Outcome(outcome) => self.outcomes.push(outcome),
                WriteOp::Append {
                    events,
                    idempotency,
                    reply,
                } => {
                    jobs.push(Job::Append(events, idempotency));
                    slots.push(Slot::Append(reply));
                }
                WriteOp::CreateChannel { channel, max_per_owner, reply } => {
                    jobs.push(Job::Create(channel, max_per_owner));
                    slots.push(Slot::Create(reply));
                }
                WriteOp::RemoveChannels { removal, reply } => {
                    jobs.push(Job::Remove(removal));
                    slots.push(Slot::Remove(reply));
                }
                WriteOp::Flush { reply } => {
                    jobs.push(Job::Flush);
                    slots.push(Slot::Flush(reply));
                }
            }
        }
        match self.transaction(jobs) {
            Ok(done) => {
                metrics::counter!("watchwire_store_commits_total").increment(1);
                self.commits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.progress.clear();
                self.outcomes.clear();
                for (slot, done) in slots.into_iter().zip(done) {
                    self.answer(slot, done);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store transaction failed; nothing of it was written");
                // The counts may have moved inside the rolled-back transaction.
                self.owner_counts.clear();
                let err = || StoreError::Backend(format!("the store could not commit: {e}"));
                for slot in slots {
                    match slot {
                        Slot::Append(reply) => drop(reply.send(Err(err()))),
                        Slot::Create(reply) => drop(reply.send(Err(err()))),
                        Slot::Remove(reply) => drop(reply.send(Err(err()))),
                        Slot::Flush(reply) => drop(reply.send(Err(err()))),
                    }
                }
            }
        }
    }

    fn transaction(&mut self, jobs: Vec<Job>) -> rusqlite::Result<Vec<Done>> {
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut done = Vec::with_capacity(jobs.len());
        for job in jobs {
            done.push(match job {
                Job::Append(events, idempotency) => {
                    Done::Append(append(&tx, events, idempotency, now)?)
                }
                Job::Create(channel, max) => Done::Create(create_channel(&tx, channel, max, now, &mut self.owner_counts)?),
                Job::Remove(removal) => Done::Remove(remove_channels(&tx, removal, now, &mut self.owner_counts)?),
                Job::Flush => Done::Flush,
            });
        }
        {
            let mut stmt = tx.prepare_cached("UPDATE channels SET progress_seq = MAX(progress_seq, ?2), synced = 1 WHERE pk = ?1")?;
            for (pk, seq) in &self.progress {
                stmt.execute(params![pk, *seq as i64])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO outcomes (channel_pk, seq, message_number, state, delivered, attempts, last_status, last_error, at_ms)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM channels WHERE pk = ?1)",
            )?;
            for o in &self.outcomes {
                stmt.execute(params![
                    o.channel_pk,
                    o.seq as i64,
                    o.message_number as i64,
                    o.state,
                    o.delivered,
                    o.attempts,
                    o.last_status,
                    o.last_error,
                    o.at_ms
                ])?;
            }
        }
        tx.commit()?;
        Ok(done)
    }

    /// Puts a job's committed changes on the feed, then answers its caller, so that a
    /// caller who waits for the dispatcher to reach the feed number finds them routed.
    fn answer(&mut self, slot: Slot, done: Done) {
        match (slot, done) {
            (Slot::Append(reply), Done::Append(result)) => {
                let result = result.map(|(receipt, events)| {
                    if !events.is_empty() {
                        self.publish(Committed::Events(events));
                    }
                    receipt
                });
                let _ = reply.send(result);
            }
            (Slot::Create(reply), Done::Create(result)) => {
                let result = result.map(|(channel, replaced)| {
                    if let Some(pk) = replaced {
                        self.publish(Committed::ChannelRemoved { pk });
                    }
                    let no = self.publish(Committed::ChannelCreated(channel.clone()));
                    (channel, no)
                });
                let _ = reply.send(result);
            }
            (Slot::Remove(reply), Done::Remove(result)) => {
                let result = result.map(|pks| {
                    let mut last = 0;
                    for &pk in &pks {
                        last = self.publish(Committed::ChannelRemoved { pk });
                    }
                    (pks, last)
                });
                let _ = reply.send(result);
            }
            (Slot::Flush(reply), Done::Flush) => drop(reply.send(Ok(()))),
            _ => unreachable!("slots and results are built pairwise in the same order"),
        }
    }

    fn publish(&mut self, change: Committed) -> u64 {
        self.feed_no += 1;
        // The dispatcher may be gone during shutdown; the change is durable regardless.
        let _ = self.feed.send(FeedItem {
            no: self.feed_no,
            change,
        });
        self.feed_no
    }
}

fn log_head(conn: &Connection) -> rusqlite::Result<Seq> {
    let head: i64 = conn.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
        [],
        |r| r.get(0),
    )?;
    Ok(head as Seq)
}

fn append(
    tx: &Connection,
    events: Vec<NewEvent>,
    idempotency: Option<Idempotency>,
    now: i64,
) -> rusqlite::Result<Result<(PublishReceipt, Vec<SharedEvent>), StoreError>> {
    if let Some(idem) = &idempotency {
        let previous: Option<(String, i64, i64)> = tx
            .query_row(
                "SELECT body_hash, last_seq, count FROM idempotency WHERE owner = ?1 AND key = ?2 AND created_ms > ?3",
                params![idem.owner, idem.key, now - IDEMPOTENCY_WINDOW_MS],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        if let Some((hash, last_seq, count)) = previous {
            return Ok(if hash == idem.body_hash {
                Ok((
                    PublishReceipt {
                        last_seq: last_seq as Seq,
                        count: count as usize,
                        replayed: true,
                    },
                    Vec::new(),
                ))
            } else {
                Err(StoreError::IdempotencyConflict)
            });
        }
    }
    let mut stmt = tx.prepare_cached("INSERT INTO events (time_ms, resource, state, data, changed, metadata) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    let mut stored = Vec::with_capacity(events.len());
    for e in events {
        stmt.execute(params![
            now,
            e.resource,
            e.state,
            e.data.as_deref(),
            e.changed.join(","),
            e.metadata
        ])?;
        let seq = tx.last_insert_rowid() as Seq;
        stored.push(Arc::new(Event {
            seq,
            time_ms: now,
            resource: e.resource,
            state: e.state,
            data: e.data,
            changed: e.changed,
            metadata: e.metadata,
        }));
    }
    let last_seq = stored.last().map_or(0, |e| e.seq);
    if let Some(idem) = idempotency {
        tx.execute(
            "INSERT OR REPLACE INTO idempotency (owner, key, body_hash, last_seq, count, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![idem.owner, idem.key, idem.body_hash, last_seq as i64, stored.len() as i64, now],
        )?;
    }
    metrics::counter!("watchwire_events_published_total").increment(stored.len() as u64);
    Ok(Ok((
        PublishReceipt {
            last_seq,
            count: stored.len(),
            replayed: false,
        },
        stored,
    )))
}

/// Stores a channel; an expired channel holding the same (owner, id) is replaced.
fn create_channel(
    tx: &Connection,
    spec: NewChannel,
    max_per_owner: u64,
    now: i64,
    counts: &mut HashMap<String, u64>,
) -> rusqlite::Result<Result<(Channel, Option<i64>), StoreError>> {
    let existing: Option<(i64, Option<i64>)> = tx
        .query_row(
            "SELECT pk, expiration_ms FROM channels WHERE owner = ?1 AND id = ?2",
            params![spec.owner, spec.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let mut replaced = None;
    if let Some((pk, expiration)) = existing {
        if expiration.is_none_or(|ms| ms > now) {
            return Ok(Err(StoreError::DuplicateChannel(spec.id)));
        }
        delete_channel(tx, pk, counts)?;
        replaced = Some(pk);
    }
    let held = owner_count(tx, &spec.owner, counts)?;
    if *held >= max_per_owner {
        return Ok(Err(StoreError::TooManyChannels(max_per_owner)));
    }
    *held += 1;
    let head = log_head(tx)?;
    tx.execute(
        "INSERT INTO channels (owner, id, resource, resource_id, resource_uri, address, token, expiration_ms, params, payload,
                               signing_secret, created_ms, start_seq, progress_seq, synced)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, 0)",
        params![
            spec.owner,
            spec.id,
            spec.resource,
            spec.resource_id,
            spec.resource_uri,
            spec.address,
            spec.token,
            spec.expiration_ms,
            serde_json::Value::Object(spec.params.clone()).to_string(),
            spec.payload,
            spec.signing_secret,
            spec.created_ms,
            head as i64,
        ],
    )?;
    let pk = tx.last_insert_rowid();
    Ok(Ok((
        Channel {
            pk,
            spec: Arc::new(spec),
            start_seq: head,
            progress_seq: head,
            synced: false,
        },
        replaced,
    )))
}

/// Channels stored for `owner`: counted with one query the first time, then kept.
fn owner_count<'a>(tx: &Connection, owner: &str, counts: &'a mut HashMap<String, u64>) -> rusqlite::Result<&'a mut u64> {
    if !counts.contains_key(owner) {
        let n: i64 = tx.query_row("SELECT COUNT(*) FROM channels WHERE owner = ?1", params![owner], |r| r.get(0))?;
        counts.insert(owner.to_string(), n as u64);
    }
    Ok(counts.get_mut(owner).expect("just inserted"))
}

/// Deletes a channel and its outcomes. `false` when there was no such channel.
fn delete_channel(tx: &Connection, pk: i64, counts: &mut HashMap<String, u64>) -> rusqlite::Result<bool> {
    let owner: Option<String> = tx.query_row("DELETE FROM channels WHERE pk = ?1 RETURNING owner", params![pk], |r| r.get(0)).optional()?;
    tx.execute("DELETE FROM outcomes WHERE channel_pk = ?1", params![pk])?;
    if let Some(count) = owner.as_ref().and_then(|o| counts.get_mut(o)) {
        *count = count.saturating_sub(1);
    }
    Ok(owner.is_some())
}

fn remove_channels(
    tx: &Connection,
    removal: Removal,
    now: i64,
    counts: &mut HashMap<String, u64>,
) -> rusqlite::Result<Result<Vec<i64>, StoreError>> {
    let pks: Vec<i64> = match removal {
        Removal::Stop {
            owner,
            id,
            resource_id,
        } => {
            let found: Option<(i64, String)> = tx
                .query_row(
                    "SELECT pk, resource_id FROM channels WHERE owner = ?1 AND id = ?2",
                    params![owner, id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match found {
                Some((pk, stored)) if stored == resource_id => vec![pk],
                _ => return Ok(Err(StoreError::NotFound)),
            }
        }
        Removal::Gone { pk } => vec![pk],
        Removal::ExpiredAt { now_ms } => {
            tx.execute(
                "DELETE FROM idempotency WHERE created_ms <= ?1",
                params![now - IDEMPOTENCY_WINDOW_MS],
            )?;
            let mut stmt = tx.prepare(
                "SELECT pk FROM channels WHERE expiration_ms IS NOT NULL AND expiration_ms <= ?1",
            )?;
            let pks = stmt
                .query_map(params![now_ms], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            pks
        }
    };
    let mut removed = Vec::with_capacity(pks.len());
    for pk in pks {
        if delete_channel(tx, pk, counts)? {
            removed.push(pk);
        }
    }
    Ok(Ok(removed))
}

/// Read-only connections, opened on demand and reused.
struct ReadPool {
    path: std::path::PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl ReadPool {
    async fn with<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let path = self.path.clone();
        let idle = self.idle.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = idle.lock().unwrap().pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    conn.busy_timeout(std::time::Duration::from_secs(5))?;
                    conn
                }
            };
            let result = read(&conn);
            idle.lock().unwrap().push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map_err(backend)
    }
}

const EVENT_COLUMNS: &str = "seq, time_ms, resource, state, data, changed, metadata";

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SharedEvent> {
    let changed: String = row.get(5)?;
    Ok(Arc::new(Event {
        seq: row.get::<_, i64>(0)? as Seq,
        time_ms: row.get(1)?,
        resource: row.get(2)?,
        state: row.get(3)?,
        data: row.get::<_, Option<Vec<u8>>>(4)?.map(Bytes::from),
        changed: changed
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        metadata: row.get(6)?,
    }))
}

fn channel_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Channel> {
    let params_json: String = row.get(9)?;
    let params = match serde_json::from_str(&params_json) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    Ok(Channel {
        pk: row.get(0)?,
        spec: Arc::new(NewChannel {
            owner: row.get(1)?,
            id: row.get(2)?,
            resource: row.get(3)?,
            resource_id: row.get(4)?,
            resource_uri: row.get(5)?,
            address: row.get(6)?,
            token: row.get(7)?,
            expiration_ms: row.get(8)?,
            params,
            payload: row.get(10)?,
            signing_secret: row.get(11)?,
            created_ms: row.get(12)?,
        }),
        start_seq: row.get::<_, i64>(13)? as Seq,
        progress_seq: row.get::<_, i64>(14)? as Seq,
        synced: row.get(15)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(
        &self,
        events: Vec<NewEvent>,
        idempotency: Option<Idempotency>,
    ) -> Result<PublishReceipt, StoreError> {
        self.call(|reply| WriteOp::Append {
            events,
            idempotency,
            reply,
        })
        .await
    }

    async fn create_channel(&self, channel: NewChannel, max_per_owner: u64) -> Result<(Channel, u64), StoreError> {
        self.call(|reply| WriteOp::CreateChannel { channel, max_per_owner, reply })
            .await
    }

    async fn remove_channels(&self, removal: Removal) -> Result<(Vec<i64>, u64), StoreError> {
        self.call(|reply| WriteOp::RemoveChannels { removal, reply })
            .await
    }

    fn record_progress(&self, pk: i64, seq: Seq) {
        let _ = self.send(WriteOp::Progress { pk, seq });
    }

    fn record_outcome(&self, outcome: Outcome) {
        let _ = self.send(WriteOp::Outcome(outcome));
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.call(|reply| WriteOp::Flush { reply }).await
    }

    async fn load_channels(&self) -> Result<Vec<Channel>, StoreError> {
        self.readers
            .with(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT pk, owner, id, resource, resource_id, resource_uri, address, token, expiration_ms, params, payload,
                            signing_secret, created_ms, start_seq, progress_seq, synced FROM channels ORDER BY pk",
                )?;
                let rows = stmt.query_map([], channel_from_row)?;
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
        resource: &str,
        after: Seq,
        limit: usize,
    ) -> Result<(Vec<SharedEvent>, Seq), StoreError> {
        let resource = resource.to_string();
        self.readers
            .with(move |conn| {
                // One read transaction, so the head we report is the snapshot we read.
                conn.execute_batch("BEGIN")?;
                let result = (|| {
                    let head = log_head(conn)?;
                    // Below `resource` = between "resource/" and "resource0" ('0' follows '/').
                    let mut stmt = conn.prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events
                         WHERE seq > ?1 AND (resource = ?2 OR (resource > ?2 || '/' AND resource < ?2 || '0'))
                         ORDER BY seq LIMIT ?3"
                    ))?;
                    let rows = stmt.query_map(params![after as i64, resource, limit as i64], event_from_row)?;
                    Ok((rows.collect::<rusqlite::Result<Vec<_>>>()?, head))
                })();
                conn.execute_batch("COMMIT")?;
                result
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

    fn event(resource: &str) -> NewEvent {
        NewEvent {
            resource: resource.into(),
            state: "exists".into(),
            data: Some(Bytes::from_static(b"{}")),
            changed: vec![],
            metadata: None,
        }
    }

    #[tokio::test]
    async fn concurrent_appends_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let before = store.commit_count();
        let appends = (0..200).map(|i| store.append(vec![event(&format!("/r/{i}"))], None));
        let receipts = futures_util::future::join_all(appends).await;
        let seqs: std::collections::BTreeSet<Seq> =
            receipts.into_iter().map(|r| r.unwrap().last_seq).collect();
        assert_eq!(seqs.len(), 200, "every append got its own position");
        let commits = store.commit_count() - before;
        assert!(
            commits < 20,
            "200 concurrent appends took {commits} commits; group commit should fold them"
        );
    }

    #[tokio::test]
    async fn log_survives_reopen_and_seqs_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let store = SqliteStore::open(dir.path()).unwrap();
            let receipt = store
                .append(vec![event("/a"), event("/a/b")], None)
                .await
                .unwrap();
            store.close();
            receipt.last_seq
        };
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.head().await.unwrap(), first);
        let (matching, head) = store.read_matching("/a", 0, 10).await.unwrap();
        assert_eq!(matching.len(), 2);
        assert_eq!(head, first);
        let (sibling, _) = store.read_matching("/a/b", 0, 10).await.unwrap();
        assert_eq!(sibling.len(), 1);
        let next = store.append(vec![event("/a")], None).await.unwrap();
        assert!(next.last_seq > first);
    }

    #[tokio::test]
    async fn idempotent_appends_replay_or_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let idem = |hash: &str| {
            Some(Idempotency {
                owner: "o".into(),
                key: "k".into(),
                body_hash: hash.into(),
            })
        };
        let first = store.append(vec![event("/a")], idem("h1")).await.unwrap();
        let again = store.append(vec![event("/a")], idem("h1")).await.unwrap();
        assert!(again.replayed && again.last_seq == first.last_seq);
        assert!(matches!(
            store.append(vec![event("/a")], idem("h2")).await,
            Err(StoreError::IdempotencyConflict)
        ));
        assert_eq!(
            store.head().await.unwrap(),
            first.last_seq,
            "nothing new was appended"
        );
    }
}
