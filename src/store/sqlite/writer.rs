//! The writer thread: the only write connection. It takes every request queued while
//! the previous transaction was committing and applies them all in one
//! `BEGIN IMMEDIATE` transaction (group commit: one fsync for many requests). After the
//! commit it puts the changes on the feed, in order, then answers the callers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::checkpoint::Checkpointer;
use super::schema::log_head;
use crate::model::{
    now_ms, ChannelKind, ChannelSpec, Event, NewEvent, Seq, SharedEvent, StoredChannel,
};
use crate::store::batch::{
    split, Done, Feed, Job, RecordsPolicy, Slot, WriteHealth, WriteOp, MAX_BATCH,
};
use crate::store::records::{PendingRecords, Records};
use crate::store::rules::{
    self, idempotent_answer, Ended, RememberedPublish, IDEMPOTENCY_WINDOW_MS,
};
use crate::store::{Idempotency, PruneReport, PublishReceipt, Removal, StoreError};
use crate::telemetry::LogGate;

/// Most rows one prune step deletes, so a prune never holds the writer for long.
const PRUNE_CHUNK: i64 = 10_000;

pub(super) struct Writer {
    pub conn: Connection,
    pub feed: Feed,
    pub commits: Arc<AtomicU64>,
    pub pruned_through: Arc<AtomicU64>,
    /// Delivery bookkeeping, committed with the next transaction.
    pub records: Arc<PendingRecords>,
    /// Stopped when the writer ends, before its connection closes.
    pub checkpointer: Option<Checkpointer>,
    /// How transactions have been going (a full disk, an I/O error), for `/healthz`.
    pub write_health: Arc<WriteHealth>,
    /// Keeps a failure that repeats every retry from flooding the log.
    pub failure_log: LogGate,
    /// The bound below which no channel owes an event, as last read, and when: a
    /// prune pass takes many steps, and one reading serves them (see `min_progress`).
    pub min_progress: Option<(Instant, Seq)>,
}

/// How long a reading of the lowest channel progress serves prune steps.
const MIN_PROGRESS_TTL: Duration = Duration::from_secs(5);

/// A bound below which no stored channel owes an event: the lowest progress, or the
/// log's head when there is no channel. The lowest progress is read at most every
/// [`MIN_PROGRESS_TTL`]; it stays a safe bound meanwhile, since progress only grows
/// and a channel created since starts at the head of its creation, above it.
fn min_progress(tx: &Connection, cached: &mut Option<(Instant, Seq)>) -> rusqlite::Result<Seq> {
    if let Some((at, bound)) = *cached {
        if at.elapsed() < MIN_PROGRESS_TTL {
            return Ok(bound);
        }
    }
    let lowest: Option<i64> =
        tx.query_row("SELECT MIN(progress_seq) FROM channels", [], |r| r.get(0))?;
    let head = log_head(tx)?;
    match lowest {
        // Without channels the head is the bound, read afresh each step: cheap, and
        // it must not hold back pruning for the time a cached reading would.
        None => Ok(head),
        Some(lowest) => {
            let bound = (lowest as Seq).min(head);
            *cached = Some((Instant::now(), bound));
            Ok(bound)
        }
    }
}

impl Writer {
    pub fn run(mut self, ops: std_mpsc::Receiver<WriteOp>) {
        let mut policy = RecordsPolicy::default();
        loop {
            let first = match policy.wait() {
                None => match ops.recv() {
                    Ok(op) => op,
                    Err(_) => break,
                },
                Some(wait) => match ops.recv_timeout(wait) {
                    Ok(op) => op,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => WriteOp::RecordsPending,
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            let (jobs, slots, nudged) = split(batch);
            if nudged {
                policy.nudged();
            }
            if policy.due(!jobs.is_empty(), self.records.len()) && !self.commit(jobs, slots) {
                policy.retry_later();
            }
        }
        // Every sender is gone: commit the last records.
        if !self.records.is_empty() {
            self.commit(Vec::new(), Vec::new());
        }
        drop(self.checkpointer.take());
    }

    /// One transaction for the jobs and every pending record; then the answers.
    /// `false` when it failed (the records are pending again).
    fn commit(&mut self, jobs: Vec<Job>, slots: Vec<Slot>) -> bool {
        let records = self.records.take();
        match self.transaction(jobs, &records) {
            Ok(done) => {
                metrics::counter!("watchwire_store_commits_total").increment(1);
                self.commits.fetch_add(1, Ordering::Relaxed);
                if self.write_health.succeeded() {
                    tracing::info!("the store writes again");
                }
                for (slot, done) in slots.into_iter().zip(done) {
                    self.feed.answer(slot, done);
                }
                true
            }
            Err(e) => {
                self.records.restore(records);
                self.write_health.failed(now_ms());
                if let Some(suppressed) = self.failure_log.admit(now_ms()) {
                    tracing::error!(error = %e, suppressed, "store transaction failed; nothing of it was written");
                }
                for slot in slots {
                    slot.fail(StoreError::Backend(format!(
                        "the store could not commit: {e}"
                    )));
                }
                false
            }
        }
    }

    fn transaction(&mut self, jobs: Vec<Job>, records: &Records) -> rusqlite::Result<Vec<Done>> {
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut done = Vec::with_capacity(jobs.len());
        let mut pruned_through = self.pruned_through.load(Ordering::Relaxed);
        for job in jobs {
            done.push(match job {
                Job::Append(events, idempotency) => {
                    Done::Append(append(&tx, events, idempotency, now)?)
                }
                Job::Create(channel, max) => Done::Create(create_channel(&tx, channel, max, now)?),
                Job::Remove(removal) => {
                    Done::Remove(remove_channels(&tx, removal, now)?.map(|pks| (pks, Vec::new())))
                }
                Job::Prune(events_before, outcomes_before) => {
                    let min_progress = min_progress(&tx, &mut self.min_progress)?;
                    let report = prune(
                        &tx,
                        pruned_through,
                        min_progress,
                        events_before,
                        outcomes_before,
                    )?;
                    pruned_through = report.pruned_through;
                    Done::Prune(report)
                }
                Job::Flush => Done::Flush,
                Job::Probe => {
                    tx.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_probe_ms', ?1)",
                        params![now],
                    )?;
                    Done::Flush
                }
            });
        }
        // Once per transaction, not per publish: single-event publishes that share a
        // commit mostly share their ancestors too.
        update_prefixes(
            &tx,
            done.iter().flat_map(|d| match d {
                Done::Append(Ok((_, events))) => events.as_slice(),
                _ => &[],
            }),
            now,
        )?;
        write_records(&tx, records)?;
        tx.commit()?;
        self.pruned_through.store(pruned_through, Ordering::Relaxed);
        Ok(done)
    }
}

/// Moves the polling index (docs/api.md §7) to the newest event on or below each path the
/// committed events touched, and marks their collections.
fn update_prefixes<'a>(
    tx: &Connection,
    events: impl Iterator<Item = &'a SharedEvent>,
    now: i64,
) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO prefixes (path, last_seq, last_ms, collection) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (path) DO UPDATE SET last_seq = excluded.last_seq, last_ms = excluded.last_ms,
                                          collection = MAX(collection, excluded.collection)",
    )?;
    for update in rules::prefix_updates(events) {
        upsert.execute(params![
            update.path,
            update.last_seq as i64,
            now,
            update.is_collection
        ])?;
    }
    Ok(())
}

fn write_records(tx: &Connection, records: &Records) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "UPDATE channels SET progress_seq = MAX(progress_seq, ?2), synced = 1 WHERE pk = ?1",
    )?;
    for (pk, seq) in &records.progress {
        stmt.execute(params![pk, *seq as i64])?;
    }
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO outcomes (channel_pk, seq, message_number, state, status, attempts, last_status, last_error, at_ms, next_retry_ms, last_reason, recent, first_attempt_ms)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13 WHERE EXISTS (SELECT 1 FROM channels WHERE pk = ?1)",
    )?;
    for o in records.outcomes.values() {
        let recent = (!o.recent.is_empty())
            .then(|| serde_json::to_string(&o.recent).expect("attempt records serialise"));
        stmt.execute(params![
            o.channel_pk,
            o.seq as i64,
            o.message_number as i64,
            o.state,
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

fn append(
    tx: &Connection,
    events: Vec<NewEvent>,
    idempotency: Option<Idempotency>,
    now: i64,
) -> rusqlite::Result<Result<(PublishReceipt, Vec<SharedEvent>), StoreError>> {
    if let Some(idem) = &idempotency {
        let remembered = tx
            .prepare_cached(
                "SELECT body_hash, last_seq, count, created_ms FROM idempotency WHERE owner = ?1 AND key = ?2",
            )?
            .query_row(
                params![idem.owner, idem.key],
                |r| {
                    Ok(RememberedPublish {
                        body_hash: r.get(0)?,
                        last_seq: r.get::<_, i64>(1)? as Seq,
                        count: r.get::<_, i64>(2)? as usize,
                        created_ms: r.get(3)?,
                    })
                },
            )
            .optional()?;
        if let Some(answer) = idempotent_answer(remembered, idem, now) {
            return Ok(answer.map(|receipt| (receipt, Vec::new())));
        }
    }
    let mut insert = tx.prepare_cached("INSERT INTO events (time_ms, resource, state, data, changed, metadata) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    let mut stored = Vec::with_capacity(events.len());
    for e in events {
        insert.execute(params![
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
    spec: ChannelSpec,
    max_per_owner: u64,
    now: i64,
) -> rusqlite::Result<Result<(StoredChannel, Option<i64>), StoreError>> {
    let existing: Option<(i64, Option<i64>)> = tx
        .prepare_cached("SELECT pk, expiration_ms FROM channels WHERE owner = ?1 AND id = ?2")?
        .query_row(params![spec.owner, spec.id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if spec.kind == ChannelKind::Watcher {
        if let Some(conflict) = watcher_conflict(tx, &spec)? {
            return Ok(Err(conflict));
        }
    }
    let mut replaced = None;
    if let Some((pk, expiration)) = existing {
        let ended = match rules::take_over_id(&spec.id, expiration, now) {
            Ok(ended) => ended,
            Err(refused) => return Ok(Err(refused)),
        };
        delete_channel(tx, pk, &ended)?;
        replaced = Some(pk);
    }
    if !take_quota(tx, &spec.owner, max_per_owner)? {
        return Ok(Err(StoreError::TooManyChannels(max_per_owner)));
    }
    let head = log_head(tx)?;
    // Cached, as every statement of the writer: parsing SQL was a quarter of the
    // writer's time when channels are created in bulk.
    tx.prepare_cached(
        "INSERT INTO channels (kind, owner, id, resource, resource_id, resource_uri, address, token, expiration_ms, params, payload,
                               signing_secret, created_ms, start_seq, progress_seq, synced, within)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, 0, ?15)",
    )?
    .execute(params![
            spec.kind.as_str(),
            spec.owner,
            spec.id,
            spec.resource,
            spec.resource_id,
            spec.resource_uri,
            spec.address,
            spec.token,
            spec.expiration_ms,
            spec.params_json(),
            spec.payload,
            spec.signing_secret,
            spec.created_ms,
            head as i64,
            spec.within.as_ref().map(|w| w.to_lines()),
        ],
    )?;
    let pk = tx.last_insert_rowid();
    let channel = StoredChannel {
        pk,
        spec: Arc::new(spec),
        start_seq: head,
        progress_seq: head,
        synced: false,
        disabled: false,
        failing_since_ms: None,
    };
    Ok(Ok((channel, replaced)))
}

/// The owner's watchers on the new watcher's endpoint, checked by the rules of
/// docs/api.md §9 (`store::rules`). The writer thread serialises every creation.
fn watcher_conflict(tx: &Connection, spec: &ChannelSpec) -> rusqlite::Result<Option<StoreError>> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, resource FROM channels WHERE owner = ?1 AND address = ?2 AND kind = 'watcher'",
    )?;
    let existing = stmt
        .query_map(params![spec.owner, spec.address], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
    Ok(rules::watcher_conflict(spec, existing))
}

/// Takes one of the owner's `max` channel places, counted in `owner_counts`;
/// `false` when all are taken.
fn take_quota(tx: &Connection, owner: &str, max: u64) -> rusqlite::Result<bool> {
    tx.prepare_cached("INSERT OR IGNORE INTO owner_counts (owner, channels) VALUES (?1, 0)")?
        .execute(params![owner])?;
    let taken = tx
        .prepare_cached(
            "UPDATE owner_counts SET channels = channels + 1 WHERE owner = ?1 AND channels < ?2",
        )?
        // SQLite's integers are signed: a larger quota is as good as none.
        .execute(params![owner, max.min(i64::MAX as u64) as i64])?;
    Ok(taken == 1)
}

/// Deletes a channel and its delivery log, leaving a record of how it ended. `false`
/// when there was no such channel. An expired channel ended at its expiration, which
/// the API showed before the sweep came.
pub(super) fn delete_channel(tx: &Connection, pk: i64, ended: &Ended) -> rusqlite::Result<bool> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO removed_channels (owner, id, kind, resource, resource_id, resource_uri, address, expiration_ms, params, created_ms, state, reason, removed_ms)
         SELECT owner, id, kind, resource, resource_id, resource_uri, address, expiration_ms, params, created_ms, ?2, ?3,
                CASE WHEN ?2 = 'expired' THEN MIN(COALESCE(expiration_ms, ?4), ?4) ELSE ?4 END
         FROM channels WHERE pk = ?1",
    )?
    .execute(params![pk, ended.state, ended.reason, ended.at_ms])?;
    let owner: Option<String> = tx
        .query_row(
            "DELETE FROM channels WHERE pk = ?1 RETURNING owner",
            params![pk],
            |r| r.get(0),
        )
        .optional()?;
    tx.execute("DELETE FROM outcomes WHERE channel_pk = ?1", params![pk])?;
    if let Some(owner) = &owner {
        tx.prepare_cached("UPDATE owner_counts SET channels = channels - 1 WHERE owner = ?1")?
            .execute(params![owner])?;
    }
    Ok(owner.is_some())
}

fn remove_channels(
    tx: &Connection,
    removal: Removal,
    now: i64,
) -> rusqlite::Result<Result<Vec<i64>, StoreError>> {
    let owned = |owner: &str, id: &str, kind: &str| -> rusqlite::Result<Option<(i64, String)>> {
        tx.query_row(
            "SELECT pk, resource_id FROM channels WHERE owner = ?1 AND id = ?2 AND kind = ?3",
            params![owner, id, kind],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
    };
    let ended = Ended::by(&removal, now);
    let pks: Vec<i64> = match removal {
        Removal::Stop {
            owner,
            id,
            resource_id,
        } => match owned(&owner, &id, "channel")? {
            Some((pk, stored)) if stored == resource_id => vec![pk],
            _ => return Ok(Err(StoreError::NotFound)),
        },
        Removal::Watcher { owner, id } => match owned(&owner, &id, "watcher")? {
            Some((pk, _)) => vec![pk],
            None => return Ok(Err(StoreError::NotFound)),
        },
        Removal::Gone { pk, .. } => vec![pk],
        Removal::ExpiredAt { now_ms } => {
            tx.execute(
                "DELETE FROM idempotency WHERE created_ms <= ?1",
                params![now - IDEMPOTENCY_WINDOW_MS],
            )?;
            let mut stmt = tx.prepare_cached(
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
        if delete_channel(tx, pk, &ended)? {
            removed.push(pk);
        }
    }
    Ok(Ok(removed))
}

/// One bounded prune step (see `Store::prune`). No stored channel owes an event at
/// or below `safe`; events above it may still be owed and are kept.
fn prune(
    tx: &Connection,
    pruned_through: Seq,
    safe: Seq,
    events_before_ms: i64,
    outcomes_before_ms: i64,
) -> rusqlite::Result<PruneReport> {
    let safe = safe as i64;
    let old_enough: Option<i64> = tx.query_row(
        "SELECT MAX(seq) FROM (SELECT seq, time_ms FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2) WHERE time_ms < ?3",
        params![pruned_through as i64, PRUNE_CHUNK, events_before_ms],
        |r| r.get(0),
    )?;
    let upto = old_enough.unwrap_or(0).min(safe);
    let mut report = PruneReport {
        pruned_through,
        ..PruneReport::default()
    };
    if upto > pruned_through as i64 {
        report.events = tx.execute(
            "DELETE FROM events WHERE seq > ?1 AND seq <= ?2",
            params![pruned_through as i64, upto],
        )? as u64;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('pruned_through', ?1)",
            params![upto],
        )?;
        report.pruned_through = upto as Seq;
    }
    let chunk = |sql: &str, bound: i64| -> rusqlite::Result<u64> {
        Ok(tx
            .prepare_cached(sql)?
            .execute(params![bound, PRUNE_CHUNK])? as u64)
    };
    report.collections = chunk(
        "DELETE FROM prefixes WHERE path IN (SELECT path FROM prefixes WHERE last_seq <= ?1 LIMIT ?2)",
        report.pruned_through as i64,
    )?;
    report.outcomes = chunk(
        "DELETE FROM outcomes WHERE rowid IN (SELECT rowid FROM outcomes WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
        outcomes_before_ms,
    )?;
    report.removed_channels = chunk(
        "DELETE FROM removed_channels WHERE rowid IN (SELECT rowid FROM removed_channels WHERE removed_ms < ?1 LIMIT ?2)",
        outcomes_before_ms,
    )?;
    let full = PRUNE_CHUNK as u64;
    // A full events chunk may have been cut short by the chunk, not by age.
    report.more = report.events >= full.saturating_sub(1)
        || [report.collections, report.outcomes, report.removed_channels].contains(&full);
    report.oldest_event_ms = tx
        .query_row(
            "SELECT time_ms FROM events WHERE seq > ?1 ORDER BY seq LIMIT 1",
            params![report.pruned_through as i64],
            |r| r.get(0),
        )
        .optional()?;
    report.oldest_outcome_ms = tx.query_row("SELECT MIN(at_ms) FROM outcomes", [], |r| r.get(0))?;
    Ok(report)
}
