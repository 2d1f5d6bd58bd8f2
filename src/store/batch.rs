//! The write side every backend shares: requests queue up while a transaction
//! commits and the next transaction takes all of them (group commit). This file holds
//! what does not depend on the database: the requests ([`WriteOp`]), their split into
//! work for the transaction ([`Job`]) and who waits for it ([`Slot`]), the policy for
//! delivery bookkeeping ([`RecordsPolicy`]), the way into a writer that both `Store`
//! implementations use ([`Writes`]), and the answers, which put committed changes on
//! the dispatcher's feed before they reply ([`Feed`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};

use super::records::{PendingRecords, Progress};
use super::{
    Committed, Created, FeedItem, Idempotency, PruneReport, PublishReceipt, Removal, Removed,
    Renewed, StoreError,
};
use crate::model::{ChannelSpec, NewEvent, Outcome, Seq, SharedEvent, StoredChannel};

/// Most requests folded into one transaction.
pub const MAX_BATCH: usize = 4096;

pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub enum WriteOp {
    Append {
        events: Vec<NewEvent>,
        idempotency: Option<Idempotency>,
        reply: Reply<PublishReceipt>,
    },
    CreateChannel {
        channel: ChannelSpec,
        max_per_owner: u64,
        reply: Reply<Created>,
    },
    RemoveChannels {
        removal: Removal,
        reply: Reply<Removed>,
    },
    /// Moves channel `pk`'s expiration `to` this; with `None`, only reads it.
    RenewChannel {
        pk: i64,
        to: Option<i64>,
        reply: Reply<Renewed>,
    },
    Prune {
        events_before_ms: i64,
        outcomes_before_ms: i64,
        reply: Reply<PruneReport>,
    },
    /// Delivery bookkeeping arrived in an empty `PendingRecords`.
    RecordsPending,
    Flush {
        reply: Reply<()>,
    },
    /// Writes a little, to learn whether the store can write again.
    Probe {
        reply: Reply<()>,
    },
}

/// How `Writes` reaches its writer (a thread's or a task's channel).
type SendOp = Box<dyn Fn(WriteOp) -> bool + Send + Sync>;

/// The way into a backend's writer, the same for both backends: every write a `Store`
/// makes is a [`WriteOp`] sent to it and, where the caller needs one, an answer.
/// Delivery bookkeeping gathers in [`PendingRecords`]; the first record after a commit
/// wakes the writer.
pub struct Writes {
    /// Sends one operation; `false` once the writer is gone. `None` after `close`.
    send: Mutex<Option<SendOp>>,
    records: Arc<PendingRecords>,
    /// Longest a caller waits for its answer, and the error it gets then (a writer
    /// waiting for an unreachable database answers `503`, not never). `None`: no limit.
    answer_within: Option<(Duration, fn() -> StoreError)>,
}

impl Writes {
    pub fn new(
        send: impl Fn(WriteOp) -> bool + Send + Sync + 'static,
        records: Arc<PendingRecords>,
        answer_within: Option<(Duration, fn() -> StoreError)>,
    ) -> Writes {
        Writes {
            send: Mutex::new(Some(Box::new(send))),
            records,
            answer_within,
        }
    }

    fn send(&self, op: WriteOp) -> Result<(), StoreError> {
        match &*self.send.lock().unwrap() {
            Some(send) if send(op) => Ok(()),
            _ => Err(StoreError::Closed),
        }
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> WriteOp) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        match self.answer_within {
            None => rx.await.map_err(|_| StoreError::Closed)?,
            Some((limit, late)) => match tokio::time::timeout(limit, rx).await {
                Ok(answer) => answer.map_err(|_| StoreError::Closed)?,
                Err(_) => Err(late()),
            },
        }
    }

    pub async fn append(
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

    pub async fn create_channel(
        &self,
        channel: ChannelSpec,
        max_per_owner: u64,
    ) -> Result<Created, StoreError> {
        self.call(|reply| WriteOp::CreateChannel {
            channel,
            max_per_owner,
            reply,
        })
        .await
    }

    pub async fn remove_channels(&self, removal: Removal) -> Result<Removed, StoreError> {
        self.call(|reply| WriteOp::RemoveChannels { removal, reply })
            .await
    }

    /// Renews channel `pk` `to` an expiration; with `None`, reads it again.
    pub async fn renew_channel(&self, pk: i64, to: Option<i64>) -> Result<Renewed, StoreError> {
        self.call(|reply| WriteOp::RenewChannel { pk, to, reply })
            .await
    }

    pub async fn prune(
        &self,
        events_before_ms: i64,
        outcomes_before_ms: i64,
    ) -> Result<PruneReport, StoreError> {
        self.call(|reply| WriteOp::Prune {
            events_before_ms,
            outcomes_before_ms,
            reply,
        })
        .await
    }

    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call(|reply| WriteOp::Flush { reply }).await
    }

    pub async fn probe(&self) -> Result<(), StoreError> {
        self.call(|reply| WriteOp::Probe { reply }).await
    }

    pub fn record_progress(&self, pk: i64, progress: Progress) {
        if self.records.progress(pk, progress) {
            self.nudge();
        }
    }

    pub fn record_outcome(&self, outcome: Outcome) {
        if self.records.outcome(outcome) {
            self.nudge();
        }
    }

    pub fn record_health(
        &self,
        pk: i64,
        failing_since_ms: Option<i64>,
        disabled: bool,
        event: Option<NewEvent>,
    ) {
        if self.records.health(pk, failing_since_ms, disabled, event) {
            self.nudge();
        }
    }

    pub fn record_event(&self, event: NewEvent) {
        if self.records.event(event) {
            self.nudge();
        }
    }

    fn nudge(&self) {
        let _ = self.send(WriteOp::RecordsPending);
    }

    /// No more writes: the writer commits what is queued, then ends.
    pub fn close(&self) {
        self.send.lock().unwrap().take();
    }
}

/// The part of a request that runs inside the transaction.
pub enum Job {
    Append(Vec<NewEvent>, Option<Idempotency>),
    Create(ChannelSpec, u64),
    Remove(Removal),
    Renew(i64, Option<i64>),
    Prune(i64, i64),
    Flush,
    Probe,
}

/// Who waits for a job's answer.
pub enum Slot {
    Append(Reply<PublishReceipt>),
    Create(Reply<Created>),
    Remove(Reply<Removed>),
    Renew(Reply<Renewed>),
    Prune(Reply<PruneReport>),
    Flush(Reply<()>),
}

impl Slot {
    pub fn fail(self, error: StoreError) {
        match self {
            Slot::Append(reply) => drop(reply.send(Err(error))),
            Slot::Create(reply) => drop(reply.send(Err(error))),
            Slot::Remove(reply) => drop(reply.send(Err(error))),
            Slot::Renew(reply) => drop(reply.send(Err(error))),
            Slot::Prune(reply) => drop(reply.send(Err(error))),
            Slot::Flush(reply) => drop(reply.send(Err(error))),
        }
    }
}

/// A job's answer. A database error aborts the whole transaction; these inner errors
/// concern one request only.
pub enum Done {
    Append(Result<(PublishReceipt, Vec<SharedEvent>), StoreError>),
    Create(Result<(StoredChannel, Option<i64>), StoreError>),
    /// The removed channels, and those of them another node delivered.
    Remove(Result<(Vec<i64>, Vec<i64>), StoreError>),
    /// The channel, and its expiration as stored with the node delivering it.
    Renew(i64, Result<(i64, Option<String>), StoreError>),
    Prune(PruneReport),
    Flush,
}

/// Splits a batch into the requests that need the transaction, with who waits for
/// each, and whether bookkeeping records started waiting.
pub fn split(batch: Vec<WriteOp>) -> (Vec<Job>, Vec<Slot>, bool) {
    let mut jobs = Vec::with_capacity(batch.len());
    let mut slots = Vec::with_capacity(batch.len());
    let mut nudged = false;
    for op in batch {
        match op {
            WriteOp::RecordsPending => nudged = true,
            WriteOp::Append {
                events,
                idempotency,
                reply,
            } => {
                jobs.push(Job::Append(events, idempotency));
                slots.push(Slot::Append(reply));
            }
            WriteOp::CreateChannel {
                channel,
                max_per_owner,
                reply,
            } => {
                jobs.push(Job::Create(channel, max_per_owner));
                slots.push(Slot::Create(reply));
            }
            WriteOp::RemoveChannels { removal, reply } => {
                jobs.push(Job::Remove(removal));
                slots.push(Slot::Remove(reply));
            }
            WriteOp::RenewChannel { pk, to, reply } => {
                jobs.push(Job::Renew(pk, to));
                slots.push(Slot::Renew(reply));
            }
            WriteOp::Prune {
                events_before_ms,
                outcomes_before_ms,
                reply,
            } => {
                jobs.push(Job::Prune(events_before_ms, outcomes_before_ms));
                slots.push(Slot::Prune(reply));
            }
            WriteOp::Flush { reply } => {
                jobs.push(Job::Flush);
                slots.push(Slot::Flush(reply));
            }
            WriteOp::Probe { reply } => {
                jobs.push(Job::Probe);
                slots.push(Slot::Flush(reply));
            }
        }
    }
    (jobs, slots, nudged)
}

/// When delivery bookkeeping (progress, outcomes, health) is committed: it rides along
/// with the next request's transaction, or waits at most [`RecordsPolicy::DELAY`], or
/// goes at once when [`RecordsPolicy::MAX_PENDING`] records wait. Losing it in a crash
/// only means a redelivery with the same message numbers.
#[derive(Debug, Default)]
pub struct RecordsPolicy {
    /// When records first waited uncommitted.
    since: Option<Instant>,
}

impl RecordsPolicy {
    pub const DELAY: Duration = Duration::from_millis(25);
    pub const MAX_PENDING: usize = 50_000;

    /// Records started waiting (a `RecordsPending` nudge).
    pub fn nudged(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    /// How long the writer may wait for the next request before committing records
    /// alone; `None` when nothing waits.
    pub fn wait(&self) -> Option<Duration> {
        self.since
            .map(|since| Self::DELAY.saturating_sub(since.elapsed()))
    }

    /// Whether to commit now, given whether requests need a transaction and how many
    /// records wait. Resets the clock when it says yes.
    pub fn due(&mut self, jobs: bool, pending: usize) -> bool {
        let overdue = self
            .since
            .is_some_and(|since| since.elapsed() >= Self::DELAY);
        let due = jobs || overdue || pending >= Self::MAX_PENDING;
        if due {
            self.since = None;
        }
        due
    }

    /// A commit failed and put its records back: try them again later.
    pub fn retry_later(&mut self) {
        self.since = Some(Instant::now());
    }
}

/// The dispatcher's feed, numbered, and the answers that go through it. Events go on
/// it in position order, each once: a backend with more than one source of events (its
/// own commits and a tailer of other processes' commits) shares one `Feed` between
/// them, and what was already fed is dropped.
pub struct Feed {
    tx: mpsc::UnboundedSender<FeedItem>,
    no: u64,
    /// Every event at or below this position is on the feed.
    fed_head: Seq,
    /// Woken when events arrive that do not continue the feed or that readers may not
    /// see yet; it reads the log from the feed's head (the PostgreSQL tailer). `None`:
    /// one writer, every commit is visible at once and continues the feed.
    gap_reader: Option<Arc<Notify>>,
    /// Publishes committed but not yet answered: their events are not on the feed yet
    /// (readers may not see them yet, or events before them are still to be read).
    /// Each is answered once the feed reaches its last event, in order.
    parked: VecDeque<Parked>,
}

struct Parked {
    last: Seq,
    reply: Reply<PublishReceipt>,
    receipt: PublishReceipt,
    since: Instant,
}

impl Feed {
    /// A feed whose events start after `head` (what recovery reads from the store).
    pub fn new(tx: mpsc::UnboundedSender<FeedItem>, head: Seq) -> Feed {
        Feed {
            tx,
            no: 0,
            fed_head: head,
            gap_reader: None,
            parked: VecDeque::new(),
        }
    }

    /// A feed that several writers' commits reach: events after a gap (other
    /// processes committed positions this one has not fed yet) or not visible to
    /// readers yet are left to `gap_reader`, which is woken to read everything after
    /// the feed's head in order.
    pub fn with_gap_reader(
        tx: mpsc::UnboundedSender<FeedItem>,
        head: Seq,
        gap_reader: Arc<Notify>,
    ) -> Feed {
        Feed {
            gap_reader: Some(gap_reader),
            ..Feed::new(tx, head)
        }
    }

    /// Every event at or below this is on the feed.
    pub fn fed_head(&self) -> Seq {
        self.fed_head
    }

    /// Since when the oldest publish still waiting for readers to see its events has
    /// waited.
    pub fn waiting_since(&self) -> Option<Instant> {
        self.parked.front().map(|p| p.since)
    }

    /// Puts committed events on the feed, dropping those already there. Events after
    /// a gap go to the gap reader instead: the feed never skips a position (visibility
    /// is in position order, so a reader of the log from the feed's head finds them
    /// and everything before them). `false` when they went to the gap reader.
    pub fn events(&mut self, events: Vec<SharedEvent>) -> bool {
        let fresh: Vec<SharedEvent> = events
            .into_iter()
            .filter(|e| e.seq > self.fed_head)
            .collect();
        let Some(first) = fresh.first().map(|e| e.seq) else {
            return true;
        };
        if first != self.fed_head + 1 {
            if let Some(reader) = &self.gap_reader {
                reader.notify_one();
                return false;
            }
            debug_assert!(false, "the feed skipped a position");
        }
        self.feed(fresh);
        true
    }

    /// Puts events the gap reader read on the feed: everything readers see after the
    /// feed's head, in order (positions between them were never used), and answers
    /// the publishes that waited for them.
    pub fn read(&mut self, events: Vec<SharedEvent>) {
        let fresh: Vec<SharedEvent> = events
            .into_iter()
            .filter(|e| e.seq > self.fed_head)
            .collect();
        if !fresh.is_empty() {
            self.feed(fresh);
        }
    }

    fn feed(&mut self, fresh: Vec<SharedEvent>) {
        self.fed_head = fresh.last().map_or(self.fed_head, |e| e.seq);
        self.publish(Committed::Events(fresh));
        while self.parked.front().is_some_and(|p| p.last <= self.fed_head) {
            let parked = self.parked.pop_front().expect("just looked");
            let _ = parked.reply.send(Ok(parked.receipt));
        }
    }

    /// Puts a job's committed changes on the feed, then answers its caller, so that a
    /// caller who waits for the dispatcher to reach the feed number finds them routed.
    /// `visible`: readers see the events the transaction appended (see
    /// `writer::Visibility`); when they may not yet, the publish is answered once the
    /// gap reader finds them.
    pub fn answer(&mut self, slot: Slot, done: Done, visible: bool) {
        match (slot, done) {
            (Slot::Append(reply), Done::Append(result)) => {
                let (receipt, events) = match result {
                    Ok(done) => done,
                    Err(e) => return drop(reply.send(Err(e))),
                };
                let Some(last) = events.last().map(|e| e.seq) else {
                    // A repeat of a publish (its Idempotency-Key): answered long since.
                    return drop(reply.send(Ok(receipt)));
                };
                if visible && self.events(events) && self.fed_head >= last {
                    return drop(reply.send(Ok(receipt)));
                }
                self.parked.push_back(Parked {
                    last,
                    reply,
                    receipt,
                    since: Instant::now(),
                });
                if let Some(reader) = &self.gap_reader {
                    reader.notify_one();
                }
            }
            (Slot::Create(reply), Done::Create(result)) => {
                let result = result.map(|(channel, replaced)| {
                    if let Some(pk) = replaced {
                        self.publish(Committed::ChannelRemoved { pk });
                    }
                    let no = self.publish(Committed::ChannelCreated(channel.clone()));
                    Created {
                        channel,
                        feed_no: no,
                    }
                });
                let _ = reply.send(result);
            }
            (Slot::Remove(reply), Done::Remove(result)) => {
                let result = result.map(|(pks, elsewhere)| {
                    let mut last = 0;
                    for &pk in &pks {
                        last = self.publish(Committed::ChannelRemoved { pk });
                    }
                    Removed {
                        pks,
                        feed_no: last,
                        elsewhere,
                    }
                });
                let _ = reply.send(result);
            }
            (Slot::Renew(reply), Done::Renew(pk, result)) => {
                let result = result.map(|(expiration_ms, node)| {
                    let feed_no = self.publish(Committed::ChannelRenewed { pk, expiration_ms });
                    Renewed {
                        expiration_ms,
                        node,
                        feed_no,
                    }
                });
                let _ = reply.send(result);
            }
            (Slot::Prune(reply), Done::Prune(report)) => drop(reply.send(Ok(report))),
            (Slot::Flush(reply), Done::Flush) => drop(reply.send(Ok(()))),
            _ => unreachable!("slots and results are built pairwise in the same order"),
        }
    }

    fn publish(&mut self, change: Committed) -> u64 {
        self.no += 1;
        // The dispatcher may be gone during shutdown; the change is durable regardless.
        let _ = self.tx.send(FeedItem {
            no: self.no,
            change,
        });
        self.no
    }
}

/// Whether the writer can write, as its transactions tell: set on each commit.
#[derive(Default)]
pub struct WriteHealth {
    /// No transaction has succeeded since the last one failed.
    failing: AtomicBool,
    /// When a transaction last failed, ms since the epoch (0: never).
    last_failure_ms: AtomicI64,
}

impl WriteHealth {
    /// How long after a failed write `/healthz` still reports it: a nearly full disk
    /// may take a small write between failed large ones.
    const WINDOW_MS: i64 = 5_000;

    pub fn failed(&self, now_ms: i64) {
        self.failing.store(true, Ordering::Relaxed);
        self.last_failure_ms.store(now_ms, Ordering::Relaxed);
    }

    /// `true` when this success ends a run of failures.
    pub fn succeeded(&self) -> bool {
        self.failing.swap(false, Ordering::Relaxed)
    }

    /// `Err` while a write failed within the window.
    pub fn check(&self, now_ms: i64) -> Result<(), StoreError> {
        let at = self.last_failure_ms.load(Ordering::Relaxed);
        match at > 0 && now_ms - at < Self::WINDOW_MS {
            true => Err(StoreError::Backend(format!(
                "a write failed {} ms ago",
                now_ms - at
            ))),
            false => Ok(()),
        }
    }

    /// No write has succeeded since the last one failed.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;
    use futures_util::FutureExt;

    fn events(seqs: &[Seq]) -> Vec<SharedEvent> {
        seqs.iter().map(|&seq| Event::at(seq)).collect()
    }

    fn fed(rx: &mut mpsc::UnboundedReceiver<FeedItem>) -> Vec<Seq> {
        let mut seqs = Vec::new();
        while let Ok(item) = rx.try_recv() {
            if let Committed::Events(events) = item.change {
                seqs.extend(events.iter().map(|e| e.seq));
            }
        }
        seqs
    }

    /// Events after a gap wait for the reader of the log: the feed stays gap-free,
    /// and what arrives twice goes on it once.
    #[test]
    fn events_after_a_gap_go_to_the_gap_reader_and_the_feed_never_skips() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reader = Arc::new(Notify::new());
        let mut feed = Feed::with_gap_reader(tx, 0, reader.clone());
        feed.events(events(&[1, 2]));
        assert_eq!(fed(&mut rx), vec![1, 2]);
        assert!(reader.notified().now_or_never().is_none(), "no gap yet");

        // Another node committed 3 and 4; this node's own commit is 5.
        feed.events(events(&[5]));
        assert_eq!(fed(&mut rx), Vec::<Seq>::new(), "5 must wait for 3 and 4");
        assert_eq!(feed.fed_head(), 2);
        assert!(
            reader.notified().now_or_never().is_some(),
            "the reader is woken"
        );

        // The reader reads the log from the feed's head; a late copy of 5 is dropped.
        feed.read(events(&[3, 4, 5]));
        feed.events(events(&[5]));
        assert_eq!(fed(&mut rx), vec![3, 4, 5]);
        assert_eq!(feed.fed_head(), 5);
    }

    fn publish(
        feed: &mut Feed,
        seqs: &[Seq],
        visible: bool,
    ) -> oneshot::Receiver<Result<PublishReceipt, StoreError>> {
        let (reply, answer) = oneshot::channel();
        let receipt = PublishReceipt {
            last_seq: *seqs.last().unwrap(),
            count: seqs.len(),
            replayed: false,
        };
        feed.answer(
            Slot::Append(reply),
            Done::Append(Ok((receipt, events(seqs)))),
            visible,
        );
        answer
    }

    /// A publish whose events readers may not see yet, or that follow positions not
    /// fed yet, is answered only once the reader of the log has fed them: an answered
    /// publish is one every reader sees. Positions the reader skips were never used.
    #[test]
    fn a_publish_is_answered_once_its_events_are_on_the_feed() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reader = Arc::new(Notify::new());
        let mut feed = Feed::with_gap_reader(tx, 0, reader.clone());
        let mut answer = publish(&mut feed, &[1], true);
        assert_eq!(
            answer.try_recv().unwrap().unwrap().last_seq,
            1,
            "visible and next: at once"
        );

        let mut hidden = publish(&mut feed, &[2, 3], false);
        let mut after_gap = publish(&mut feed, &[6], true);
        assert!(hidden.try_recv().is_err() && after_gap.try_recv().is_err());
        assert!(feed.waiting_since().is_some());
        assert!(
            reader.notified().now_or_never().is_some(),
            "the reader is woken"
        );
        assert_eq!(fed(&mut rx), vec![1]);

        feed.read(events(&[2, 3]));
        assert_eq!(hidden.try_recv().unwrap().unwrap().last_seq, 3);
        assert!(after_gap.try_recv().is_err(), "4 and 5 not read yet");
        // 4 and 5 were taken by a transaction that used neither.
        feed.read(events(&[6]));
        assert_eq!(after_gap.try_recv().unwrap().unwrap().last_seq, 6);
        assert_eq!(fed(&mut rx), vec![2, 3, 6]);
        assert!(feed.waiting_since().is_none());
    }
}
