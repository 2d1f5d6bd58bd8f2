//! The writer, the same for both backends: it takes every request queued while the
//! previous transaction committed and applies them all in one transaction (group
//! commit: one durable write for many requests), with the delivery bookkeeping riding
//! along; after the commit it puts the changes on the feed, in order, then answers the
//! callers. What a transaction does per request is in `jobs.rs`; what differs between
//! databases (positions, batching, locking) is the backend's [`Transaction`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::batch::{split, Done, Feed, Job, RecordsPolicy, Slot, WriteOp, MAX_BATCH};
use super::jobs;
use super::log_store::Shared;
use super::records::{PendingRecords, Records};
use super::sql::Statements;
use super::StoreError;
use crate::model::{now_ms, NewEvent, Seq, SharedEvent};
use crate::telemetry::LogGate;

/// Longest one transaction may take before the writer gives up on its connection.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// A database the writer opens transactions on.
#[allow(async_fn_in_trait)]
pub trait Database {
    type Tx<'a>: Transaction
    where
        Self: 'a;

    /// A transaction that will append at most `appending` events.
    async fn begin(&mut self, appending: usize) -> Result<Self::Tx<'_>, StoreError>;

    /// Whether readers see what the committed transaction `xid` appended (see
    /// [`Visibility`]).
    async fn visible(&mut self, xid: i64) -> Result<bool, StoreError> {
        let _ = xid;
        Ok(true)
    }

    /// A transaction failed: whatever state its connection is in is not to be trusted.
    fn reset(&mut self) {}
}

/// One writing transaction: the statements of `jobs.rs`, and what each database does
/// its own way.
#[allow(async_fn_in_trait)]
pub trait Transaction: Statements {
    /// This process's node id, stored as the owner of the channels it creates; `None`
    /// for a store only one process uses.
    fn node(&self) -> Option<&str>;

    /// The log's head as this transaction sees it: every event answered before this
    /// transaction began is at or below it, and every event appended after it commits
    /// is above it.
    async fn head(&mut self) -> Result<Seq, StoreError>;

    /// Gives events their positions, after every position taken before.
    async fn append(
        &mut self,
        events: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<SharedEvent>, StoreError>;

    /// A channel another node delivered was removed: that node must stop it.
    async fn removed_elsewhere(&mut self, pk: i64, node: &str, now: i64) -> Result<(), StoreError>;

    /// The writes that close the transaction: what `append` left to write, the polling
    /// index for the events appended, and the delivery bookkeeping.
    async fn finish(&mut self, records: &Records, now: i64) -> Result<(), StoreError>;

    /// How the log and the delivery log are stored, for pruning (`jobs::prune`, which
    /// decides what is due): `None` where their rows are deleted one by one (SQLite);
    /// otherwise the ranges of positions each is stored in, every one dropped whole
    /// (PostgreSQL's partitions).
    async fn partitions(&mut self) -> Result<Option<Partitions>, StoreError> {
        Ok(None)
    }

    /// Drops a partition with everything in it, which is nothing after `through`:
    /// when `through` is below its last position, the positions after it get a
    /// partition of their own. `false` when that cannot be done at once (readers hold
    /// the table, or it holds something after `through` after all): a later step
    /// tries again.
    async fn drop_partition(&mut self, p: &Partition, through: Seq) -> Result<bool, StoreError> {
        let _ = (p, through);
        Err(StoreError::Backend("this store has no partitions".into()))
    }

    /// Makes transactions that create channels for any of `owners` (sorted, each
    /// once) wait for each other to commit, where writers commit in parallel: what
    /// creating a channel checks first (the id taken, §9's watcher rules) must not
    /// change before it commits.
    async fn serialise_owners(&mut self, owners: &[&str]) -> Result<(), StoreError> {
        let _ = owners;
        Ok(())
    }

    /// Brings the polling index up to date before pruning it, where writers append
    /// to it rather than update it in place (PostgreSQL's `polling_index.rs`).
    async fn fold_polling_index(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Makes the partitions the logs will need next, ahead of their head, sized for how
    /// fast the log grows.
    async fn partition_ahead(&mut self, growth: &Growth) -> Result<(), StoreError> {
        let _ = growth;
        Ok(())
    }

    async fn commit(self) -> Result<Visibility, StoreError>;
}

/// When readers see what a committed transaction appended. Where writers commit in
/// parallel (PostgreSQL), readers see a transaction's events only once every older
/// transaction has finished, so that positions become visible in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// At once (it appended nothing, or nothing older can be in progress).
    Now,
    /// Once every transaction older than this one (its id) has finished.
    Once(i64),
}

/// The two logs pruning removes from by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    Events,
    /// The delivery log.
    Outcomes,
}

/// Positions `first..=last` of one log, stored apart and removed whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub log: Log,
    pub first: Seq,
    pub last: Seq,
    /// About how many rows it holds (the database's estimate).
    pub rows: u64,
}

/// The partitions of each log, oldest first; positions in none of the delivery log's
/// are kept apart (PostgreSQL's default partition) and pruned row by row.
#[derive(Debug, Clone, Default)]
pub struct Partitions {
    pub events: Vec<Partition>,
    pub outcomes: Vec<Partition>,
}

/// How fast the log grows and how long each log keeps what it holds: what the
/// partitions made ahead are sized by.
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    pub head: Seq,
    /// The oldest event the log holds, with its time.
    pub oldest: Option<(Seq, i64)>,
    pub now: i64,
    pub events_retention_ms: i64,
    pub outcomes_retention_ms: i64,
}

pub struct Writer<D: Database> {
    pub database: D,
    /// The dispatcher's feed (shared with a tailer of other processes' commits).
    pub feed: Arc<Mutex<Feed>>,
    /// Delivery bookkeeping, committed with the next transaction.
    pub records: Arc<PendingRecords>,
    pub shared: Arc<Shared>,
    /// Keeps a failure that repeats every retry from flooding the log.
    pub failure_log: LogGate,
    /// The bound below which no channel owes an event, as last read (see
    /// `jobs::min_progress`).
    pub min_progress: Option<(Instant, Seq)>,
}

impl<D: Database> Writer<D> {
    pub fn new(
        database: D,
        feed: Arc<Mutex<Feed>>,
        records: Arc<PendingRecords>,
        shared: Arc<Shared>,
    ) -> Writer<D> {
        Writer {
            database,
            feed,
            records,
            shared,
            failure_log: LogGate::default(),
            min_progress: None,
        }
    }

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
            // A commit may leave records of its own (operational events of removals).
            if !self.records.is_empty() {
                policy.nudged();
            }
        }
        // Every sender is gone: commit the last records.
        if !self.records.is_empty() {
            self.commit(Vec::new(), Vec::new()).await;
        }
    }

    /// One transaction for the jobs and every pending record; then the answers.
    /// `false` when it failed (the records are pending again).
    async fn commit(&mut self, mut jobs: Vec<Job>, mut slots: Vec<Slot>) -> bool {
        let records = self.records.take();
        // Operational events go first, as an append nobody waits for, so that they are
        // committed with the records of the changes they tell of.
        if !records.events.is_empty() {
            jobs.insert(0, Job::Append(records.events.clone(), None));
            slots.insert(0, Slot::Append(tokio::sync::oneshot::channel().0));
        }
        let attempt = tokio::time::timeout(TRANSACTION_TIMEOUT, self.transaction(jobs, &records));
        let error = match attempt.await {
            Ok(Ok((done, visibility))) => {
                metrics::counter!("watchwire_store_commits_total").increment(1);
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                if self.shared.write_health.succeeded() {
                    tracing::info!("the store writes again");
                }
                let visible = match visibility {
                    Visibility::Now => true,
                    // Not known: the tailer finds out (the events are committed).
                    Visibility::Once(xid) => self.database.visible(xid).await.unwrap_or(false),
                };
                let mut feed = self.feed.lock().unwrap();
                for (slot, done) in slots.into_iter().zip(done) {
                    feed.answer(slot, done, visible);
                }
                return true;
            }
            Ok(Err(e)) => e,
            Err(_) => {
                StoreError::Backend("the database did not finish a transaction in time".into())
            }
        };
        self.database.reset();
        self.records.restore(records);
        self.shared.write_health.failed(now_ms());
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

    /// Runs the jobs and writes the records in one transaction; each job's answer.
    async fn transaction(
        &mut self,
        jobs: Vec<Job>,
        records: &Records,
    ) -> Result<(Vec<Done>, Visibility), StoreError> {
        let now = now_ms();
        let mut pruned_through = self.shared.pruned_through.load(Ordering::Relaxed);
        let min_progress = &mut self.min_progress;
        let appending = jobs
            .iter()
            .map(|job| match job {
                Job::Append(events, _) => events.len(),
                _ => 0,
            })
            .sum();
        let mut owners: Vec<Box<str>> = jobs
            .iter()
            .filter_map(|job| match job {
                Job::Create(spec, _) => Some(spec.owner.clone()),
                _ => None,
            })
            .collect();
        owners.sort_unstable();
        owners.dedup();
        let mut tx = self.database.begin(appending).await?;
        if !owners.is_empty() {
            let owners: Vec<&str> = owners.iter().map(AsRef::as_ref).collect();
            tx.serialise_owners(&owners).await?;
        }
        let mut done = Vec::with_capacity(jobs.len());
        let mut told = Vec::new();
        for job in jobs {
            done.push(match job {
                Job::Append(events, idempotency) => {
                    Done::Append(jobs::append(&mut tx, events, idempotency, now).await?)
                }
                Job::Create(spec, max) => {
                    Done::Create(jobs::create_channel(&mut tx, spec, max, now).await?)
                }
                Job::Remove(removal) => {
                    Done::Remove(jobs::remove_channels(&mut tx, removal, now, &mut told).await?)
                }
                Job::Renew(pk, to) => {
                    Done::Renew(pk, jobs::renew_channel(&mut tx, pk, to, now).await?)
                }
                Job::Prune(events_before, outcomes_before) => {
                    let safe = jobs::min_progress(&mut tx, min_progress).await?;
                    let report = jobs::prune(
                        &mut tx,
                        pruned_through,
                        safe,
                        events_before,
                        outcomes_before,
                        now,
                    )
                    .await?;
                    pruned_through = report.pruned_through;
                    Done::Prune(report)
                }
                Job::Flush => Done::Flush,
                Job::Probe => {
                    jobs::probe(&mut tx, now).await?;
                    Done::Flush
                }
            });
        }
        tx.finish(records, now).await?;
        let visibility = tx.commit().await?;
        self.shared
            .pruned_through
            .store(pruned_through, Ordering::Relaxed);
        // Operational events of what this transaction removed: with the next one.
        for event in told {
            self.records.event(event);
        }
        Ok((done, visibility))
    }
}
