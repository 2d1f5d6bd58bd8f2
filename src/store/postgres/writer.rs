//! The writer task: one connection of its own. Like the embedded store's writer thread
//! it takes every request queued while the previous transaction committed and applies
//! them in one transaction (group commit), with the delivery bookkeeping riding along.
//! Each transaction first locks the log's head row: transactions that write commit one
//! after another, in the order of the positions they take, so positions become visible
//! in order (docs/api.md §13) and two writers never deadlock. Nothing else is read
//! under that lock: events other nodes committed before this writer's own reach the
//! feed through the tailer (`Feed` leaves events after a gap to it), so the lock is
//! held for the writes and the commit only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::try_join;
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Statement, Transaction};

use super::pool::{connect, pg};
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

/// Longest one transaction may take before the writer gives up on its connection.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Most rows one prune step deletes.
const PRUNE_CHUNK: i64 = 10_000;
/// How long a reading of the lowest channel progress serves prune steps (see the
/// embedded store's writer for why a recent reading is a safe bound).
const MIN_PROGRESS_TTL: Duration = Duration::from_secs(5);

pub(super) struct Writer {
    /// This node's id: the channels it creates are its own to deliver.
    pub node_id: String,
    /// Where other nodes hear of new events and removals.
    pub channels: super::cluster::Channels,
    pub config: Config,
    pub client: Option<Client>,
    pub statements: HashMap<&'static str, Statement>,
    /// Shared with the tailer of other processes' commits.
    pub feed: Arc<Mutex<Feed>>,
    pub records: Arc<PendingRecords>,
    pub write_health: Arc<WriteHealth>,
    pub failure_log: LogGate,
    pub pruned_through: Arc<AtomicU64>,
    pub commits: Arc<AtomicU64>,
    pub min_progress: Option<(Instant, Seq)>,
}

/// What one transaction appended, to insert in one statement at its end.
#[derive(Default)]
struct Appended {
    events: Vec<SharedEvent>,
}

impl Writer {
    pub async fn run(mut self, mut ops: mpsc::UnboundedReceiver<WriteOp>) {
        let mut policy = RecordsPolicy::default();
        loop {
            let first = match policy.wait() {
                None => match ops.recv().await {
                    Some(op) => op,
                    None => break,
                },
                Some(wait) => match tokio::time::timeout(wait, ops.recv()).await {
                    Ok(Some(op)) => op,
                    Ok(None) => break,
                    Err(_) => WriteOp::RecordsPending,
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
            if policy.due(!jobs.is_empty(), self.records.len()) && !self.commit(jobs, slots).await {
                policy.retry_later();
            }
        }
        if !self.records.is_empty() {
            self.commit(Vec::new(), Vec::new()).await;
        }
    }

    /// One transaction for the jobs and every pending record; then the answers.
    /// `false` when it failed (the records are pending again).
    async fn commit(&mut self, jobs: Vec<Job>, slots: Vec<Slot>) -> bool {
        let records = self.records.take();
        let attempt = tokio::time::timeout(TRANSACTION_TIMEOUT, self.transaction(jobs, &records));
        let error = match attempt.await {
            Ok(Ok(done)) => {
                metrics::counter!("watchwire_store_commits_total").increment(1);
                self.commits.fetch_add(1, Ordering::Relaxed);
                if self.write_health.succeeded() {
                    tracing::info!("the store writes again");
                }
                let mut feed = self.feed.lock().unwrap();
                for (slot, done) in slots.into_iter().zip(done) {
                    feed.answer(slot, done);
                }
                return true;
            }
            Ok(Err(e)) => e,
            Err(_) => {
                StoreError::Backend("the database did not finish a transaction in time".into())
            }
        };
        // The connection's state is unknown: the next transaction opens a new one.
        self.client = None;
        self.statements.clear();
        self.records.restore(records);
        self.write_health.failed(now_ms());
        if let Some(suppressed) = self.failure_log.admit(now_ms()) {
            tracing::error!(error = %error, suppressed, "store transaction failed; nothing of it was written");
        }
        for slot in slots {
            slot.fail(StoreError::Backend(format!(
                "the store could not commit: {error}"
            )));
        }
        false
    }

    async fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let client = self.client.as_ref().expect("connected before statements");
        let statement = client.prepare(sql).await.map_err(pg)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs the jobs and writes the records in one transaction; each job's answer.
    async fn transaction(
        &mut self,
        jobs: Vec<Job>,
        records: &Records,
    ) -> Result<Vec<Done>, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&self.config).await?);
            self.statements.clear();
        }
        let statements = self.prepare_all().await?;
        let now = now_ms();
        let client = self.client.as_mut().expect("just connected");
        let tx = client.transaction().await.map_err(pg)?;
        let row = tx.query_one(&statements.lock_head, &[]).await.map_err(pg)?;
        let head_at_start = row.get::<_, i64>(0) as Seq;
        let mut head = head_at_start;
        let mut appended = Appended::default();
        let mut pruned_through = self.pruned_through.load(Ordering::Relaxed);
        let mut done = Vec::with_capacity(jobs.len());
        for job in jobs {
            done.push(match job {
                Job::Append(events, idempotency) => Done::Append(
                    append(&tx, &statements, events, idempotency, now, &mut head, &mut appended).await?,
                ),
                Job::Create(spec, max) => {
                    Done::Create(create_channel(&tx, spec, max, now, head, &self.node_id).await?)
                }
                Job::Remove(removal) => Done::Remove(
                    remove_channels(&tx, removal, now, &self.node_id, &self.channels).await?,
                ),
                Job::Prune(events_before, outcomes_before) => {
                    let safe = min_progress(&tx, &mut self.min_progress, head).await?;
                    let report = prune(&tx, pruned_through, safe, events_before, outcomes_before).await?;
                    pruned_through = report.pruned_through;
                    Done::Prune(report)
                }
                Job::Flush => Done::Flush,
                Job::Probe => {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES ('last_probe_ms', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        &[&now.to_string().into_bytes()],
                    )
                    .await
                    .map_err(pg)?;
                    Done::Flush
                }
            });
        }
        // The writes below depend on no answer of each other: they are polled
        // together, so tokio-postgres pipelines them (sent at once, one round trip
        // instead of one each). The server still runs them in the order sent.
        let (head_number, head_text) = (head as i64, head.to_string());
        let set_head: [&(dyn ToSql + Sync); 1] = [&head_number];
        // Other nodes wake on it (docs/api.md §13); delivered at commit.
        let notify: [&(dyn ToSql + Sync); 2] = [&self.channels.log, &head_text];
        let write_events = async {
            if head == head_at_start {
                return Ok(());
            }
            try_join!(
                insert_events(&tx, &statements, &appended.events),
                update_prefixes(&tx, &statements, &appended.events, now),
                execute(&tx, &statements.set_head, &set_head),
                execute(&tx, &statements.notify, &notify),
            )
            .map(|_| ())
        };
        try_join!(write_events, write_records(&tx, &statements, records))?;
        tx.commit().await.map_err(pg)?;
        self.pruned_through.store(pruned_through, Ordering::Relaxed);
        Ok(done)
    }

    async fn prepare_all(&mut self) -> Result<Statements, StoreError> {
        Ok(Statements {
            lock_head: self.statement("SELECT seq FROM log_head FOR UPDATE").await?,
            set_head: self.statement("UPDATE log_head SET seq = $1").await?,
            insert_events: self
                .statement(
                    "INSERT INTO events (seq, time_ms, resource, state, data, changed, metadata)
                     SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[])",
                )
                .await?,
            upsert_prefixes: self
                .statement(
                    "INSERT INTO prefixes (path, last_seq, last_ms, collection)
                     SELECT u.path, u.seq, $3, u.collection FROM UNNEST($1::text[], $2::int8[], $4::bool[]) AS u(path, seq, collection)
                     ON CONFLICT (path) DO UPDATE SET last_seq = GREATEST(prefixes.last_seq, EXCLUDED.last_seq),
                        last_ms = EXCLUDED.last_ms, collection = prefixes.collection OR EXCLUDED.collection",
                )
                .await?,
            progress: self
                .statement(
                    "UPDATE channels c SET progress_seq = GREATEST(c.progress_seq, v.seq), synced = TRUE
                     FROM UNNEST($1::int8[], $2::int8[]) AS v(pk, seq) WHERE c.pk = v.pk",
                )
                .await?,
            outcomes: self
                .statement(
                    "INSERT INTO outcomes (channel_pk, seq, message_number, state, status, attempts, last_status, last_error, at_ms,
                                           next_retry_ms, last_reason, recent, first_attempt_ms)
                     SELECT u.* FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::int4[], $7::int4[],
                                            $8::text[], $9::int8[], $10::int8[], $11::text[], $12::text[], $13::int8[])
                          AS u(channel_pk, seq, message_number, state, status, attempts, last_status, last_error, at_ms,
                               next_retry_ms, last_reason, recent, first_attempt_ms)
                     WHERE EXISTS (SELECT 1 FROM channels c WHERE c.pk = u.channel_pk)
                     ON CONFLICT (channel_pk, seq) DO UPDATE SET message_number = EXCLUDED.message_number, state = EXCLUDED.state,
                        status = EXCLUDED.status, attempts = EXCLUDED.attempts, last_status = EXCLUDED.last_status,
                        last_error = EXCLUDED.last_error, at_ms = EXCLUDED.at_ms, next_retry_ms = EXCLUDED.next_retry_ms,
                        last_reason = EXCLUDED.last_reason, recent = EXCLUDED.recent, first_attempt_ms = EXCLUDED.first_attempt_ms",
                )
                .await?,
            health: self
                .statement(
                    "UPDATE channels c SET failing_since_ms = v.since, disabled = v.disabled
                     FROM UNNEST($1::int8[], $2::int8[], $3::bool[]) AS v(pk, since, disabled) WHERE c.pk = v.pk",
                )
                .await?,
            notify: self.statement("SELECT pg_notify($1, $2)").await?,
        })
    }
}

/// The writer's prepared statements, for one connection.
struct Statements {
    lock_head: Statement,
    set_head: Statement,
    insert_events: Statement,
    upsert_prefixes: Statement,
    progress: Statement,
    outcomes: Statement,
    health: Statement,
    notify: Statement,
}

/// Takes positions for the events after `head` (in memory: the head row is locked
/// and written once at the end), answering from an earlier publish for a used
/// Idempotency-Key.
async fn append(
    tx: &Transaction<'_>,
    _statements: &Statements,
    events: Vec<NewEvent>,
    idempotency: Option<Idempotency>,
    now: i64,
    head: &mut Seq,
    appended: &mut Appended,
) -> Result<Result<(PublishReceipt, Vec<SharedEvent>), StoreError>, StoreError> {
    if let Some(idem) = &idempotency {
        let remembered = tx
            .query_opt(
                "SELECT body_hash, last_seq, count, created_ms FROM idempotency WHERE owner = $1 AND key = $2",
                &[&idem.owner, &idem.key],
            )
            .await
            .map_err(pg)?
            .map(|r| RememberedPublish {
                body_hash: r.get(0),
                last_seq: r.get::<_, i64>(1) as Seq,
                count: r.get::<_, i64>(2) as usize,
                created_ms: r.get(3),
            });
        if let Some(answer) = idempotent_answer(remembered, idem, now) {
            return Ok(answer.map(|receipt| (receipt, Vec::new())));
        }
    }
    let stored: Vec<SharedEvent> = events
        .into_iter()
        .map(|e| {
            *head += 1;
            Arc::new(Event {
                seq: *head,
                time_ms: now,
                resource: e.resource,
                state: e.state,
                data: e.data,
                changed: e.changed,
                metadata: e.metadata,
            })
        })
        .collect();
    let receipt = PublishReceipt {
        last_seq: *head,
        count: stored.len(),
        replayed: false,
    };
    if let Some(idem) = idempotency {
        tx.execute(
            "INSERT INTO idempotency (owner, key, body_hash, last_seq, count, created_ms) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (owner, key) DO UPDATE SET body_hash = EXCLUDED.body_hash, last_seq = EXCLUDED.last_seq,
                count = EXCLUDED.count, created_ms = EXCLUDED.created_ms",
            &[&idem.owner, &idem.key, &idem.body_hash, &(receipt.last_seq as i64), &(receipt.count as i64), &now],
        )
        .await
        .map_err(pg)?;
    }
    metrics::counter!("watchwire_events_published_total").increment(stored.len() as u64);
    appended.events.extend(stored.iter().cloned());
    Ok(Ok((receipt, stored)))
}

async fn insert_events(
    tx: &Transaction<'_>,
    statements: &Statements,
    events: &[SharedEvent],
) -> Result<(), StoreError> {
    let seqs: Vec<i64> = events.iter().map(|e| e.seq as i64).collect();
    let times: Vec<i64> = events.iter().map(|e| e.time_ms).collect();
    let resources: Vec<&str> = events.iter().map(|e| e.resource.as_str()).collect();
    let states: Vec<&str> = events.iter().map(|e| e.state.as_str()).collect();
    let data: Vec<Option<&[u8]>> = events.iter().map(|e| e.data.as_deref()).collect();
    let changed: Vec<String> = events.iter().map(|e| e.changed.join(",")).collect();
    let metadata: Vec<Option<&str>> = events.iter().map(|e| e.metadata.as_deref()).collect();
    tx.execute(
        &statements.insert_events,
        &[
            &seqs, &times, &resources, &states, &data, &changed, &metadata,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn update_prefixes(
    tx: &Transaction<'_>,
    statements: &Statements,
    events: &[SharedEvent],
    now: i64,
) -> Result<(), StoreError> {
    let mut updates = rules::prefix_updates(events.iter());
    // One order for every writer: rows are locked in it.
    updates.sort_by(|a, b| a.path.cmp(b.path));
    let paths: Vec<&str> = updates.iter().map(|u| u.path).collect();
    let seqs: Vec<i64> = updates.iter().map(|u| u.last_seq as i64).collect();
    let collections: Vec<bool> = updates.iter().map(|u| u.is_collection).collect();
    tx.execute(
        &statements.upsert_prefixes,
        &[&paths, &seqs, &now, &collections],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn write_records(
    tx: &Transaction<'_>,
    statements: &Statements,
    records: &Records,
) -> Result<(), StoreError> {
    // Three independent writes, pipelined (see `transaction`).
    let progress = async {
        if records.progress.is_empty() {
            return Ok(());
        }
        let mut progress: Vec<(i64, i64)> = records
            .progress
            .iter()
            .map(|(pk, seq)| (*pk, *seq as i64))
            .collect();
        progress.sort_unstable();
        let (pks, seqs): (Vec<i64>, Vec<i64>) = progress.into_iter().unzip();
        execute(tx, &statements.progress, &[&pks, &seqs]).await
    };
    let outcomes = async {
        if records.outcomes.is_empty() {
            return Ok(());
        }
        let mut outcomes: Vec<_> = records.outcomes.values().collect();
        outcomes.sort_unstable_by_key(|o| (o.channel_pk, o.seq));
        let column = |f: &dyn Fn(&crate::model::Outcome) -> i64| -> Vec<i64> {
            outcomes.iter().map(|o| f(o)).collect()
        };
        let pks = column(&|o| o.channel_pk);
        let seqs = column(&|o| o.seq as i64);
        let numbers = column(&|o| o.message_number as i64);
        let at = column(&|o| o.at_ms);
        let states: Vec<&str> = outcomes.iter().map(|o| o.state.as_str()).collect();
        let statuses: Vec<&str> = outcomes.iter().map(|o| o.status.as_str()).collect();
        let attempts: Vec<i32> = outcomes.iter().map(|o| o.attempts as i32).collect();
        let last_status: Vec<Option<i32>> = outcomes
            .iter()
            .map(|o| o.last_status.map(i32::from))
            .collect();
        let last_error: Vec<Option<&str>> = outcomes
            .iter()
            .map(|o| o.last_error.as_ref().map(|f| f.detail.as_str()))
            .collect();
        let next_retry: Vec<Option<i64>> = outcomes.iter().map(|o| o.next_retry_ms).collect();
        let reasons: Vec<Option<&str>> = outcomes
            .iter()
            .map(|o| o.last_error.as_ref().map(|f| f.reason.as_str()))
            .collect();
        let recent: Vec<Option<String>> = outcomes
            .iter()
            .map(|o| {
                (!o.recent.is_empty())
                    .then(|| serde_json::to_string(&o.recent).expect("attempt records serialise"))
            })
            .collect();
        let first: Vec<Option<i64>> = outcomes.iter().map(|o| o.first_attempt_ms).collect();
        execute(
            tx,
            &statements.outcomes,
            &[
                &pks,
                &seqs,
                &numbers,
                &states,
                &statuses,
                &attempts,
                &last_status,
                &last_error,
                &at,
                &next_retry,
                &reasons,
                &recent,
                &first,
            ],
        )
        .await
    };
    let health = async {
        if records.health.is_empty() {
            return Ok(());
        }
        let mut health: Vec<_> = records.health.iter().collect();
        health.sort_unstable_by_key(|(pk, _)| **pk);
        let pks: Vec<i64> = health.iter().map(|(pk, _)| **pk).collect();
        let since: Vec<Option<i64>> = health.iter().map(|(_, (since, _))| *since).collect();
        let disabled: Vec<bool> = health.iter().map(|(_, (_, disabled))| *disabled).collect();
        execute(tx, &statements.health, &[&pks, &since, &disabled]).await
    };
    try_join!(progress, outcomes, health).map(|_| ())
}

/// One statement, its row count dropped.
async fn execute(
    tx: &Transaction<'_>,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), StoreError> {
    tx.execute(statement, params).await.map(|_| ()).map_err(pg)
}

/// Stores a channel; an expired channel holding the same (owner, id) is replaced. The
/// head row lock serialises creations across processes, so the checks below see every
/// channel committed before.
async fn create_channel(
    tx: &Transaction<'_>,
    spec: ChannelSpec,
    max_per_owner: u64,
    now: i64,
    head: Seq,
    node_id: &str,
) -> Result<Result<(StoredChannel, Option<i64>), StoreError>, StoreError> {
    let existing = tx
        .query_opt(
            "SELECT pk, expiration_ms FROM channels WHERE owner = $1 AND id = $2",
            &[&spec.owner, &spec.id],
        )
        .await
        .map_err(pg)?
        .map(|r| (r.get::<_, i64>(0), r.get::<_, Option<i64>>(1)));
    if spec.kind == ChannelKind::Watcher {
        let rows = tx
            .query(
                "SELECT id, resource FROM channels WHERE owner = $1 AND address = $2 AND kind = 'watcher'",
                &[&spec.owner, &spec.address],
            )
            .await
            .map_err(pg)?;
        let watchers = rows.iter().map(|r| (r.get(0), r.get(1)));
        if let Some(conflict) = rules::watcher_conflict(&spec, watchers) {
            return Ok(Err(conflict));
        }
    }
    let mut replaced = None;
    if let Some((pk, expiration)) = existing {
        let ended = match rules::take_over_id(&spec.id, expiration, now) {
            Ok(ended) => ended,
            Err(refused) => return Ok(Err(refused)),
        };
        // An expired channel: no owner starts an attempt on it any more.
        delete_channel(tx, pk, &ended).await?;
        replaced = Some(pk);
    }
    tx.execute(
        "INSERT INTO owner_counts (owner, channels) VALUES ($1, 0) ON CONFLICT (owner) DO NOTHING",
        &[&spec.owner],
    )
    .await
    .map_err(pg)?;
    let taken = tx
        .execute(
            "UPDATE owner_counts SET channels = channels + 1 WHERE owner = $1 AND channels < $2",
            &[&spec.owner, &(max_per_owner.min(i64::MAX as u64) as i64)],
        )
        .await
        .map_err(pg)?;
    if taken == 0 {
        return Ok(Err(StoreError::TooManyChannels(max_per_owner)));
    }
    let params = spec.params_json();
    let within = spec.within.as_ref().map(|w| w.to_lines());
    let row = tx
        .query_one(
            "INSERT INTO channels (kind, owner, id, resource, resource_id, resource_uri, address, token, expiration_ms, params,
                                   payload, signing_secret, created_ms, start_seq, progress_seq, synced, owner_node, within)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, FALSE, $15, $16) RETURNING pk",
            &[
                &spec.kind.as_str(),
                &spec.owner,
                &spec.id,
                &spec.resource,
                &spec.resource_id,
                &spec.resource_uri,
                &spec.address,
                &spec.token,
                &spec.expiration_ms,
                &params,
                &spec.payload,
                &spec.signing_secret,
                &spec.created_ms,
                &(head as i64),
                &node_id,
                &within,
            ],
        )
        .await
        .map_err(pg)?;
    let channel = StoredChannel {
        pk: row.get(0),
        spec: Arc::new(spec),
        start_seq: head,
        progress_seq: head,
        synced: false,
        disabled: false,
        failing_since_ms: None,
    };
    Ok(Ok((channel, replaced)))
}

/// Deletes a channel and its delivery log, leaving a record of how it ended. `None`
/// when there was no such channel; else the node that delivered it, if any. An expired
/// channel ended at its expiration, which the API showed before the sweep came.
pub(super) async fn delete_channel(
    tx: &Transaction<'_>,
    pk: i64,
    ended: &Ended,
) -> Result<Option<Option<String>>, StoreError> {
    tx.execute(
        "INSERT INTO removed_channels (owner, id, kind, resource, resource_id, resource_uri, address, expiration_ms, params, created_ms,
                                       state, reason, removed_ms)
         SELECT owner, id, kind, resource, resource_id, resource_uri, address, expiration_ms, params, created_ms, $2, $3,
                CASE WHEN $2 = 'expired' THEN LEAST(expiration_ms, $4) ELSE $4 END
         FROM channels WHERE pk = $1
         ON CONFLICT (owner, id) DO UPDATE SET kind = EXCLUDED.kind, resource = EXCLUDED.resource, resource_id = EXCLUDED.resource_id,
            resource_uri = EXCLUDED.resource_uri, address = EXCLUDED.address, expiration_ms = EXCLUDED.expiration_ms,
            params = EXCLUDED.params, created_ms = EXCLUDED.created_ms, state = EXCLUDED.state, reason = EXCLUDED.reason,
            removed_ms = EXCLUDED.removed_ms",
        &[&pk, &ended.state, &ended.reason, &ended.at_ms],
    )
    .await
    .map_err(pg)?;
    let deleted: Option<(String, Option<String>)> = tx
        .query_opt(
            "DELETE FROM channels WHERE pk = $1 RETURNING owner, owner_node",
            &[&pk],
        )
        .await
        .map_err(pg)?
        .map(|r| (r.get(0), r.get(1)));
    tx.execute("DELETE FROM outcomes WHERE channel_pk = $1", &[&pk])
        .await
        .map_err(pg)?;
    let Some((owner, node)) = deleted else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE owner_counts SET channels = channels - 1 WHERE owner = $1",
        &[&owner],
    )
    .await
    .map_err(pg)?;
    Ok(Some(node))
}

/// Removes channels; those another node delivers are also written to `removals`,
/// which their node clears once it has stopped them, and that node is woken.
async fn remove_channels(
    tx: &Transaction<'_>,
    removal: Removal,
    now: i64,
    node_id: &str,
    channels: &super::cluster::Channels,
) -> Result<Result<(Vec<i64>, Vec<i64>), StoreError>, StoreError> {
    let owned = |owner: String, id: String, kind: &'static str| async move {
        tx.query_opt(
            "SELECT pk, resource_id FROM channels WHERE owner = $1 AND id = $2 AND kind = $3",
            &[&owner, &id, &kind],
        )
        .await
        .map_err(pg)
        .map(|row| row.map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1))))
    };
    let ended = Ended::by(&removal, now);
    let pks: Vec<i64> = match removal {
        Removal::Stop {
            owner,
            id,
            resource_id,
        } => match owned(owner, id, "channel").await? {
            Some((pk, stored)) if stored == resource_id => vec![pk],
            _ => return Ok(Err(StoreError::NotFound)),
        },
        Removal::Watcher { owner, id } => match owned(owner, id, "watcher").await? {
            Some((pk, _)) => vec![pk],
            None => return Ok(Err(StoreError::NotFound)),
        },
        Removal::Gone { pk, .. } => vec![pk],
        Removal::ExpiredAt { now_ms } => {
            tx.execute(
                "DELETE FROM idempotency WHERE created_ms <= $1",
                &[&(now - IDEMPOTENCY_WINDOW_MS)],
            )
            .await
            .map_err(pg)?;
            let rows = tx
                .query(
                    "SELECT pk FROM channels WHERE expiration_ms IS NOT NULL AND expiration_ms <= $1 ORDER BY pk",
                    &[&now_ms],
                )
                .await
                .map_err(pg)?;
            rows.iter().map(|r| r.get(0)).collect()
        }
    };
    let (mut removed, mut elsewhere) = (Vec::with_capacity(pks.len()), Vec::new());
    for pk in pks {
        let Some(node) = delete_channel(tx, pk, &ended).await? else {
            continue;
        };
        removed.push(pk);
        if let Some(node) = node.filter(|n| n != node_id) {
            tx.execute(
                "INSERT INTO removals (pk, owner_node, removed_ms) VALUES ($1, $2, $3) ON CONFLICT (pk) DO NOTHING",
                &[&pk, &node, &now],
            )
            .await
            .map_err(pg)?;
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&channels.cluster, &format!("removed {pk} {node}")],
            )
            .await
            .map_err(pg)?;
            elsewhere.push(pk);
        }
    }
    Ok(Ok((removed, elsewhere)))
}

/// The bound below which no stored channel owes an event (see the embedded writer).
async fn min_progress(
    tx: &Transaction<'_>,
    cached: &mut Option<(Instant, Seq)>,
    head: Seq,
) -> Result<Seq, StoreError> {
    if let Some((at, bound)) = *cached {
        if at.elapsed() < MIN_PROGRESS_TTL {
            return Ok(bound);
        }
    }
    let lowest: Option<i64> = tx
        .query_one("SELECT MIN(progress_seq) FROM channels", &[])
        .await
        .map_err(pg)?
        .get(0);
    match lowest {
        None => Ok(head),
        Some(lowest) => {
            let bound = (lowest as Seq).min(head);
            *cached = Some((Instant::now(), bound));
            Ok(bound)
        }
    }
}

/// One bounded prune step (see `Store::prune`).
async fn prune(
    tx: &Transaction<'_>,
    pruned_through: Seq,
    safe: Seq,
    events_before_ms: i64,
    outcomes_before_ms: i64,
) -> Result<PruneReport, StoreError> {
    let old_enough: Option<i64> = tx
        .query_one(
            "SELECT MAX(seq) FROM (SELECT seq, time_ms FROM events WHERE seq > $1 ORDER BY seq LIMIT $2) AS chunk WHERE time_ms < $3",
            &[&(pruned_through as i64), &PRUNE_CHUNK, &events_before_ms],
        )
        .await
        .map_err(pg)?
        .get(0);
    let upto = old_enough.unwrap_or(0).min(safe as i64);
    let mut report = PruneReport {
        pruned_through,
        ..PruneReport::default()
    };
    if upto > pruned_through as i64 {
        report.events = tx
            .execute(
                "DELETE FROM events WHERE seq > $1 AND seq <= $2",
                &[&(pruned_through as i64), &upto],
            )
            .await
            .map_err(pg)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('pruned_through', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&upto.to_string().into_bytes()],
        )
        .await
        .map_err(pg)?;
        report.pruned_through = upto as Seq;
    }
    let chunk = |sql: &'static str, bound: i64| async move {
        tx.execute(sql, &[&bound, &PRUNE_CHUNK]).await.map_err(pg)
    };
    report.collections = chunk(
        "DELETE FROM prefixes WHERE path IN (SELECT path FROM prefixes WHERE last_seq <= $1 LIMIT $2)",
        report.pruned_through as i64,
    )
    .await?;
    report.outcomes = chunk(
        "DELETE FROM outcomes WHERE ctid IN (SELECT ctid FROM outcomes WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
        outcomes_before_ms,
    )
    .await?;
    report.removed_channels = chunk(
        "DELETE FROM removed_channels WHERE ctid IN (SELECT ctid FROM removed_channels WHERE removed_ms < $1 LIMIT $2)",
        outcomes_before_ms,
    )
    .await?;
    let full = PRUNE_CHUNK as u64;
    report.more = report.events >= full.saturating_sub(1)
        || [report.collections, report.outcomes, report.removed_channels].contains(&full);
    report.oldest_event_ms = tx
        .query_opt(
            "SELECT time_ms FROM events WHERE seq > $1 ORDER BY seq LIMIT 1",
            &[&(report.pruned_through as i64)],
        )
        .await
        .map_err(pg)?
        .map(|r| r.get(0));
    report.oldest_outcome_ms = tx
        .query_one("SELECT MIN(at_ms) FROM outcomes", &[])
        .await
        .map_err(pg)?
        .get(0);
    Ok(report)
}
