//! The embedded store's writing transactions: the only write connection, on the
//! writer's thread. `BEGIN IMMEDIATE` takes the database's write lock at once; an
//! event's position is its row id (`AUTOINCREMENT`: never reused, even after pruning
//! the newest); every statement stays prepared (parsing SQL was a quarter of the
//! writer's time when channels are created in bulk).

use std::collections::HashMap;

use rusqlite::{params, Connection, TransactionBehavior};

use super::checkpoint::Checkpointer;
use super::dir_lock::DirLock;
use super::read::{backend, run};
use crate::model::{NewEvent, Seq, SharedEvent};
use crate::store::records::Records;
use crate::store::rules;
use crate::store::sql::{Map, Params, Ran, Statements};
use crate::store::writer::{Database, Transaction, Visibility};
use crate::store::StoreError;

/// The write connection and what lives as long as the writer: fields drop in order,
/// so the checkpoints stop before the connection closes, and the data directory is
/// free only once both are done.
pub struct SqliteDatabase {
    /// Held for its drop: the checkpoint thread stops.
    pub _checkpointer: Checkpointer,
    pub conn: Connection,
    /// Held for its drop: the directory is free.
    pub _dir_lock: DirLock,
}

pub struct SqliteTx<'a> {
    tx: rusqlite::Transaction<'a>,
    /// Events appended in this transaction, for the polling index.
    appended: Vec<SharedEvent>,
}

impl<'a> SqliteTx<'a> {
    /// A transaction that holds the database's write lock from its start.
    pub fn immediate(conn: &'a mut Connection) -> Result<SqliteTx<'a>, StoreError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        Ok(SqliteTx {
            tx,
            appended: Vec::new(),
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.tx
    }
}

impl Database for SqliteDatabase {
    type Tx<'a> = SqliteTx<'a>;

    async fn begin(&mut self, _appending: usize) -> Result<SqliteTx<'_>, StoreError> {
        SqliteTx::immediate(&mut self.conn)
    }
}

impl Statements for SqliteTx<'_> {
    async fn run<T>(&mut self, sql: &str, params: Params, map: Option<Map<T>>) -> Ran<T> {
        run(&self.tx, sql, params, map)
    }
}

impl Transaction for SqliteTx<'_> {
    fn node(&self) -> Option<&str> {
        None
    }

    async fn head(&mut self) -> Result<Seq, StoreError> {
        log_head(&self.tx).map_err(backend)
    }

    async fn append(
        &mut self,
        events: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<SharedEvent>, StoreError> {
        let mut insert = self
            .tx
            .prepare_cached("INSERT INTO events (time_ms, resource, state, data, changed, metadata, trace_context) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .map_err(backend)?;
        let mut stored = Vec::with_capacity(events.len());
        for e in events {
            insert
                .execute(params![
                    now,
                    e.resource,
                    e.state.as_str(),
                    e.data.as_deref(),
                    e.changed.join(","),
                    e.metadata,
                    e.trace.map(|t| t.to_string())
                ])
                .map_err(backend)?;
            stored.push(e.at(self.tx.last_insert_rowid() as Seq, now));
        }
        self.appended.extend(stored.iter().cloned());
        Ok(stored)
    }

    /// Never called: no channel of an embedded store has an owner node.
    async fn removed_elsewhere(
        &mut self,
        _pk: i64,
        _node: &str,
        _now: i64,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn finish(&mut self, records: &Records, now: i64) -> Result<(), StoreError> {
        update_prefixes(&self.tx, &self.appended, now).map_err(backend)?;
        write_records(&self.tx, records).map_err(backend)
    }

    /// One writer: nothing older can be in progress.
    async fn commit(self) -> Result<Visibility, StoreError> {
        self.tx.commit().map_err(backend)?;
        Ok(Visibility::Now)
    }
}

/// The highest position ever given.
pub fn log_head(conn: &Connection) -> rusqlite::Result<Seq> {
    let head: i64 = conn
        .prepare_cached("SELECT seq FROM log_head")?
        .query_row([], |r| r.get(0))?;
    Ok(head as Seq)
}

/// Moves the polling index (docs/api.md §7) to the newest event on or below each path
/// the committed events touched, and marks their collections. Once per transaction,
/// not per publish: single-event publishes that share a commit mostly share their
/// ancestors too.
fn update_prefixes(tx: &Connection, events: &[SharedEvent], now: i64) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO prefixes (path, last_seq, last_ms, collection) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (path) DO UPDATE SET last_seq = excluded.last_seq, last_ms = excluded.last_ms,
                                          collection = MAX(collection, excluded.collection)",
    )?;
    for update in rules::prefix_updates(events.iter()) {
        upsert.execute(params![
            update.path,
            update.last_seq as i64,
            now,
            update.is_collection
        ])?;
    }
    Ok(())
}

/// The delivery bookkeeping, a row at a time: SQLite's statements cost no round trip.
/// A delivery-log row is written only for a channel that still exists (one removed
/// since the attempt gets none: its `pk` is never reused, but a pending row of it
/// would never be pruned). Whether it exists is asked once per channel and
/// transaction — the progress update answers it for most — rather than by each row's
/// statement: an `INSERT … SELECT … WHERE EXISTS` costs SQLite a statement journal
/// per row, about a fifth of the row's write.
fn write_records(tx: &Connection, records: &Records) -> rusqlite::Result<()> {
    let mut exists: HashMap<i64, bool> = HashMap::with_capacity(records.progress.len());
    let mut stmt = tx.prepare_cached(
        "UPDATE channels SET progress_seq = MAX(progress_seq, ?2), synced = 1,
             sent_seq = CASE WHEN ?3 IS NULL THEN sent_seq ELSE MAX(COALESCE(sent_seq, 0), ?3) END
         WHERE pk = ?1",
    )?;
    for (pk, progress) in &records.progress {
        let sent = progress.sent.map(|seq| seq as i64);
        let updated = stmt.execute(params![pk, progress.through as i64, sent])?;
        exists.insert(*pk, updated > 0);
    }
    let mut probe = tx.prepare_cached("SELECT 1 FROM channels WHERE pk = ?1")?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO outcomes (channel_pk, seq, message_number, state, status, attempts, last_status, last_error, at_ms, next_retry_ms, last_reason, recent, first_attempt_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (channel_pk, seq) DO UPDATE SET message_number = excluded.message_number,
             state = excluded.state, status = excluded.status, attempts = excluded.attempts,
             last_status = excluded.last_status, last_error = excluded.last_error,
             at_ms = excluded.at_ms, next_retry_ms = excluded.next_retry_ms,
             last_reason = excluded.last_reason, recent = excluded.recent,
             first_attempt_ms = excluded.first_attempt_ms",
    )?;
    for o in records.outcomes.values() {
        let live = match exists.get(&o.channel_pk) {
            Some(live) => *live,
            None => {
                let live = probe.exists(params![o.channel_pk])?;
                exists.insert(o.channel_pk, live);
                live
            }
        };
        if !live {
            continue;
        }
        let recent = (!o.recent.is_empty())
            .then(|| serde_json::to_string(&o.recent).expect("attempt records serialise"));
        stmt.execute(params![
            o.channel_pk,
            o.seq as i64,
            o.message_number as i64,
            o.state.as_str(),
            o.status.as_str(),
            o.attempts,
            o.last_status,
            o.last_error.as_ref().map(|f| &f.detail),
            o.at_ms,
            o.next_retry_ms,
            o.last_error.as_ref().map(|f| f.reason.as_str()),
            recent,
            o.first_attempt_ms,
        ])?;
    }
    let mut stmt = tx
        .prepare_cached("UPDATE channels SET failing_since_ms = ?2, disabled = ?3 WHERE pk = ?1")?;
    for (pk, (failing_since, disabled)) in &records.health {
        stmt.execute(params![pk, failing_since, disabled])?;
    }
    Ok(())
}
