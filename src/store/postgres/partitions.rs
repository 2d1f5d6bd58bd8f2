//! PostgreSQL keeps the log (`events`) and the delivery log (`outcomes`) in partitions
//! by position (`RANGE (seq)`), so that retention drops whole partitions: deleting
//! their rows instead left autovacuum a table's worth of dead rows to clear for every
//! retention window, forever, at the rate of publishing.
//!
//! Why the delivery log by position, not by time: its key `(channel_pk, seq)` holds the
//! position, so it stays the table's primary key (a partitioned table's unique keys
//! must hold the partition key), the upsert of each attempt keeps its `ON CONFLICT`,
//! and an entry lives in one partition for good (by time, every attempt would move it
//! to another). Readers ask for a channel's entries by position, and those reads
//! prune to the partitions they need.
//!
//! Each log is a chain of partitions `events_<first>_<last>` (positions `first..=last`,
//! inclusive), each created ahead of need: by the prune step, a partition's width
//! ahead of the head, and by the writer itself when a transaction appends past the
//! last one (`cover`), so no insert ever finds no partition. The delivery log also has
//! a default partition, for entries written at a position whose partition was dropped
//! already (a replay of an old event): it stays small and is pruned row by row. The
//! newest partition, which reaches past the head, can go too once every channel is at
//! the head and all it holds is due: its positions after the head get a partition of
//! their own in the same transaction, so a small log is pruned whole too.
//! `jobs::prune` decides what is due; this file only reads, makes and drops partitions.
//!
//! Partitions are made and dropped inside the writer's transactions, one node at a
//! time (an advisory lock of the schema, [`lock`]). Making one takes no lock that
//! stops reads or writes of the log (it is created apart, then attached). Dropping one
//! takes the log's table for the rest of the transaction: the drop waits at most
//! [`DDL_LOCK_TIMEOUT`] for readers to finish, else it is left to a later step.

use tokio_postgres::error::SqlState;
use tokio_postgres::GenericClient;

use super::pool::pg;
use super::rows::On;
use crate::model::Seq;
use crate::store::jobs;
use crate::store::sql::{single, Row, Statements};
use crate::store::writer::{Growth, Log, Partition, Partitions};
use crate::store::StoreError;

/// How many partitions a log's retention window spans: the log keeps at most about a
/// sixteenth of its retention more than it must (the partition that is not yet all
/// old enough), and a query that cannot prune by position (a channel's delivery log
/// from its start, the pending entries at startup) plans and locks about seventeen
/// partitions, whatever the rate. A fixed number of positions could not do both: at
/// 1,000 events/s and the default retentions (24 h, 7 d), partitions of 100,000
/// positions would be 864 for the log and over 6,000 for the delivery log, and one
/// such query would lock several thousand relations.
pub const PARTITIONS_PER_RETENTION: u64 = 16;

/// The fewest positions in a partition: below it, partitions would only multiply
/// tables for logs so slow that a thousand events are small whatever their age.
pub const MIN_PARTITION_POSITIONS: Seq = 1_000;

/// The most positions in a partition, whatever the rate measured (a burst, a clock
/// that jumped): a partition as wide as this still fills within hours at any rate at
/// which it matters.
pub const MAX_PARTITION_POSITIONS: Seq = 10_000_000;

/// Longest a prune step waits for readers to let go of a log before it drops one of
/// its partitions (or attaches one to the delivery log, whose default partition it
/// must check). Meanwhile readers of that log and every writer wait behind it, so it
/// is short; readers' statements are.
pub const DDL_LOCK_TIMEOUT: &str = "200ms";

/// How wide the partitions made are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PartitionSize {
    /// Sized by the rate measured on the log ([`PARTITIONS_PER_RETENTION`]).
    #[default]
    Adaptive,
    /// Always this many positions (tests, which need partitions at known positions).
    Fixed(Seq),
}

impl PartitionSize {
    /// The width of the partitions the prune step makes ahead for a log kept
    /// `retention_ms`: what the log grows by in a sixteenth of that.
    pub fn ahead(self, growth: &Growth, retention_ms: i64) -> Seq {
        let Self::Adaptive = self else {
            return self.fixed();
        };
        let Some((oldest, oldest_ms)) = growth.oldest else {
            return MIN_PARTITION_POSITIONS;
        };
        let positions = u128::from(growth.head.saturating_sub(oldest) + 1);
        let over_ms = growth.now.saturating_sub(oldest_ms).max(1) as u128;
        let retention_ms = retention_ms.max(0) as u128;
        let width = positions * retention_ms / (over_ms * u128::from(PARTITIONS_PER_RETENTION));
        clamp(width.min(u128::from(u64::MAX)) as u64)
    }

    /// The width of a partition the writer makes because a transaction appends past
    /// the last one: the log grows faster than the last partitions were sized for, so
    /// twice the last one's.
    pub fn catch_up(self, last_width: Seq) -> Seq {
        match self {
            Self::Adaptive => clamp(last_width.saturating_mul(2)),
            Self::Fixed(_) => self.fixed(),
        }
    }

    /// The width of the partitions that `positions` positions already in a log are
    /// split into (the migration): that log spans about its retention window.
    pub fn split(self, positions: Seq) -> Seq {
        match self {
            Self::Adaptive => clamp(positions.div_ceil(PARTITIONS_PER_RETENTION)),
            Self::Fixed(_) => self.fixed(),
        }
    }

    fn fixed(self) -> Seq {
        match self {
            Self::Fixed(width) => width.max(1),
            Self::Adaptive => MIN_PARTITION_POSITIONS,
        }
    }
}

fn clamp(width: Seq) -> Seq {
    width.clamp(MIN_PARTITION_POSITIONS, MAX_PARTITION_POSITIONS)
}

fn table(log: Log) -> &'static str {
    match log {
        Log::Events => "events",
        Log::Outcomes => "outcomes",
    }
}

/// The table of partition `first..=last` of `log`.
fn name(log: Log, first: Seq, last: Seq) -> String {
    format!("{}_{first}_{last}", table(log))
}

/// Positions `first..=last` from a partition's table name; `None` for another table
/// (the default partition).
fn parse(log: Log, name: &str) -> Option<(Seq, Seq)> {
    let bounds = name.strip_prefix(table(log))?.strip_prefix('_')?;
    let (first, last) = bounds.split_once('_')?;
    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
    (first <= last).then_some((first, last))
}

fn chain(partitions: &Partitions, log: Log) -> &[Partition] {
    match log {
        Log::Events => &partitions.events,
        Log::Outcomes => &partitions.outcomes,
    }
}

/// The partitions of both logs, oldest first, as the catalog has them.
pub async fn read(client: &(impl GenericClient + Sync)) -> Result<Partitions, StoreError> {
    fn row(row: &dyn Row) -> Result<(String, String, i64), StoreError> {
        Ok((row.text(0)?, row.text(1)?, row.int(2)?))
    }
    let rows = On(client)
        .query(
            "SELECT parent.relname::text, child.relname::text, GREATEST(child.reltuples, 0)::int8
             FROM pg_inherits i JOIN pg_class child ON child.oid = i.inhrelid JOIN pg_class parent ON parent.oid = i.inhparent
             WHERE i.inhparent IN ('events'::regclass, 'outcomes'::regclass)",
            Vec::new(),
            row,
        )
        .await?;
    let mut partitions = Partitions::default();
    for (parent, child, rows) in rows {
        let (log, into) = match parent.as_str() {
            "events" => (Log::Events, &mut partitions.events),
            _ => (Log::Outcomes, &mut partitions.outcomes),
        };
        if let Some((first, last)) = parse(log, &child) {
            let rows = rows as u64;
            into.push(Partition {
                log,
                first,
                last,
                rows,
            });
        }
    }
    partitions.events.sort_by_key(|p| p.first);
    partitions.outcomes.sort_by_key(|p| p.first);
    Ok(partitions)
}

/// Makes partitions of this schema one node at a time, to the end of the transaction.
pub async fn lock(client: &(impl GenericClient + Sync)) -> Result<(), StoreError> {
    client
        .batch_execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ' watchwire partitions', 0))",
        )
        .await
        .map_err(pg)
}

/// Makes partition `first..=last` of `log`: a table like the log's, then attached
/// (which, unlike `CREATE TABLE … PARTITION OF`, lets reads and writes of the log go
/// on; it makes the partition's indexes).
fn create_sql(log: Log, first: Seq, last: Seq) -> String {
    let (table, name) = (table(log), name(log, first, last));
    let end = last + 1;
    format!(
        "CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION);
         ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({first}) TO ({end});"
    )
}

/// Drops `partition`, which holds nothing after `through`: all of it, or
/// when `through` is below its last position, what it holds, its positions after
/// `through` getting a partition of their own. `false` when that could not be done
/// now: readers held the log past [`DDL_LOCK_TIMEOUT`], or it holds something after
/// `through` after all (a writer of another node committed there meanwhile).
pub async fn drop(
    client: &(impl GenericClient + Sync),
    partition: &Partition,
    through: Seq,
) -> Result<bool, StoreError> {
    let log = partition.log;
    let (table, name) = (table(log), name(log, partition.first, partition.last));
    let mut sql = format!("DROP TABLE {name};");
    if through < partition.last {
        sql += &create_sql(log, through + 1, partition.last);
    }
    let dropped = async {
        // The log's table first, as readers lock it: then no writer is inserting into
        // the partition while it is looked at.
        let lock = format!("LOCK TABLE ONLY {table} IN ACCESS EXCLUSIVE MODE");
        client.batch_execute(&lock).await?;
        if through < partition.last {
            let after = format!("SELECT EXISTS (SELECT 1 FROM {name} WHERE seq > {through})");
            if client.query_one(&after, &[]).await?.get::<_, bool>(0) {
                return Ok(false);
            }
        }
        client.batch_execute(&sql).await.map(|()| true)
    };
    within_lock_timeout(client, &sql, dropped).await
}

/// Runs `ddl` in a savepoint, its statements waiting at most [`DDL_LOCK_TIMEOUT`] for
/// a lock. What it answers, or `false` when it did not get a lock in time or failed
/// otherwise (said in the log, naming `what`): then it is rolled back and the
/// transaction goes on.
async fn within_lock_timeout(
    client: &(impl GenericClient + Sync),
    what: &str,
    ddl: impl std::future::Future<Output = Result<bool, tokio_postgres::Error>>,
) -> Result<bool, StoreError> {
    let begin = format!("SAVEPOINT partition_ddl; SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'");
    client.batch_execute(&begin).await.map_err(pg)?;
    let done = match ddl.await {
        Ok(done) => done,
        Err(e) => {
            if e.code() != Some(&SqlState::LOCK_NOT_AVAILABLE) {
                let error = pg(e);
                tracing::warn!(%error, statement = what, "could not change the log's partitions; a later prune step tries again");
            }
            false
        }
    };
    let end = match done {
        true => "RELEASE SAVEPOINT partition_ddl; SET LOCAL lock_timeout TO DEFAULT",
        false => "ROLLBACK TO SAVEPOINT partition_ddl; RELEASE SAVEPOINT partition_ddl",
    };
    client.batch_execute(end).await.map_err(pg)?;
    Ok(done)
}

/// Partitions ahead of the head, for the prune step: each log gets partitions until a
/// whole partition's width (sized by [`PartitionSize::ahead`]) lies past the head.
/// The positions both logs' partitions now cover up to, or `None` when a lock was not
/// to be had (a later step makes them; the writer makes what it needs meanwhile).
pub async fn ahead(
    client: &(impl GenericClient + Sync),
    growth: &Growth,
    size: PartitionSize,
) -> Result<Option<Seq>, StoreError> {
    lock(client).await?;
    let partitions = read(client).await?;
    let mut covered = Seq::MAX;
    for (log, retention_ms) in [
        (Log::Events, growth.events_retention_ms),
        (Log::Outcomes, growth.outcomes_retention_ms),
    ] {
        let width = size.ahead(growth, retention_ms);
        let mut next = chain(&partitions, log)
            .last()
            .map_or(growth.head + 1, |p| p.last + 1);
        while next <= growth.head + width {
            let sql = create_sql(log, next, next + width - 1);
            let created = client.batch_execute(&sql);
            if !within_lock_timeout(client, &sql, async { created.await.map(|()| true) }).await? {
                return Ok(None);
            }
            next += width;
        }
        covered = covered.min(next - 1);
    }
    Ok(Some(covered))
}

/// Partitions for every position up to `through`, for the writer: a transaction
/// appends past the last partition when the log grows faster than the prune step made
/// them ahead. A chain without partitions starts at `from`. The positions both logs'
/// partitions now cover up to.
pub async fn cover(
    client: &(impl GenericClient + Sync),
    from: Seq,
    through: Seq,
    size: PartitionSize,
) -> Result<Seq, StoreError> {
    lock(client).await?;
    let partitions = read(client).await?;
    let mut covered = Seq::MAX;
    for log in [Log::Events, Log::Outcomes] {
        let newest = chain(&partitions, log).last();
        let (mut next, mut width) = newest.map_or((from, size.catch_up(0)), |p| {
            (p.last + 1, size.catch_up(p.last - p.first + 1))
        });
        while next <= through {
            client
                .batch_execute(&create_sql(log, next, next + width - 1))
                .await
                .map_err(pg)?;
            next += width;
            width = size.catch_up(width);
        }
        covered = covered.min(next - 1);
    }
    Ok(covered)
}

/// A view on the log or the delivery log, set aside while they are made anew.
pub struct View {
    name: String,
    definition: String,
}

/// The views that read the log or the delivery log (an earlier migration may have
/// made some), in an order they can be made again in, dropped: a view follows its
/// table through a rename, and would hold on to the old one.
pub async fn set_aside_views(
    client: &(impl GenericClient + Sync),
) -> Result<Vec<View>, StoreError> {
    fn view(row: &dyn Row) -> Result<View, StoreError> {
        Ok(View {
            name: row.text(0)?,
            definition: row.text(1)?,
        })
    }
    let views = On(client)
        .query(
            "WITH RECURSIVE reads (oid, depth) AS (
                 SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
                 WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid IN ('events'::regclass, 'outcomes'::regclass)
                 UNION ALL
                 SELECT r.ev_class, reads.depth + 1 FROM reads
                 JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = reads.oid
                 JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid AND r.ev_class <> reads.oid
             )
             SELECT format('%I.%I', n.nspname, c.relname), pg_get_viewdef(c.oid) FROM reads
             JOIN pg_class c ON c.oid = reads.oid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'v' GROUP BY c.oid, n.nspname, c.relname ORDER BY MAX(reads.depth), c.relname",
            Vec::new(),
            view,
        )
        .await?;
    if !views.is_empty() {
        let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
        let sql = format!("DROP VIEW {}", names.join(", "));
        client.batch_execute(&sql).await.map_err(pg)?;
    }
    Ok(views)
}

/// The migration's second half, after its step renamed the plain tables
/// `events_unpartitioned` and `outcomes_unpartitioned` and made the partitioned ones
/// like them: partitions for what they hold and a width ahead, the rows moved, the old
/// tables dropped and the views set aside made again.
pub async fn convert(
    client: &(impl GenericClient + Sync),
    size: PartitionSize,
    views: Vec<View>,
) -> Result<(), StoreError> {
    type Bounds = (Option<i64>, Option<i64>, Option<i64>);
    fn bounds(row: &dyn Row) -> Result<Bounds, StoreError> {
        Ok((row.opt_int(0)?, row.opt_int(1)?, row.opt_int(2)?))
    }
    let mut on = On(client);
    let pruned_through = jobs::meta_u64(&mut on, "pruned_through").await?;
    // Delivery-log entries start at a channel's start (its sync).
    let sql = "SELECT MIN(seq), MAX(seq),
                      LEAST((SELECT MIN(seq) FROM outcomes_unpartitioned), (SELECT MIN(start_seq) FROM channels))
               FROM events_unpartitioned";
    let (lowest_event, newest_event, lowest_outcome) =
        single(on.query(sql, Vec::new(), bounds).await?)?;
    let head = (newest_event.unwrap_or(0).max(0) as Seq).max(pruned_through);
    let events_from = (pruned_through + 1).min(lowest_event.map_or(Seq::MAX, |s| s.max(0) as Seq));
    let outcomes_from = lowest_outcome.map_or(head, |s| (s.max(0) as Seq).min(head));
    for (log, from) in [(Log::Events, events_from), (Log::Outcomes, outcomes_from)] {
        let width = size.split(head.saturating_sub(from) + 1);
        let mut next = from;
        // What the log holds, and a partition's width past its head.
        while next <= head + width {
            client
                .batch_execute(&create_sql(log, next, next + width - 1))
                .await
                .map_err(pg)?;
            next += width;
        }
    }
    client
        .batch_execute(
            "INSERT INTO events SELECT * FROM events_unpartitioned;
             INSERT INTO outcomes SELECT * FROM outcomes_unpartitioned;
             DROP TABLE events_unpartitioned, outcomes_unpartitioned;",
        )
        .await
        .map_err(pg)?;
    for view in views {
        let sql = format!("CREATE VIEW {} AS {}", view.name, view.definition);
        client.batch_execute(&sql).await.map_err(pg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{now_ms, OutcomeStatus};
    use crate::store::conformance::{
        channel, entry, event, stored, Place, TEST_PARTITION_POSITIONS,
    };
    use crate::store::Store;

    /// The tables of `log`'s partitions in the schema at `url`, oldest first.
    fn tables(url: &str, log: &str) -> Vec<String> {
        let sql = format!(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = '{log}'::regclass ORDER BY (regexp_match(c.relname, '_([0-9]+)_'))[1]::int8 NULLS LAST"
        );
        let rows = test_support::query(url, &sql).unwrap();
        rows.into_iter().map(|row| row[0].clone()).collect()
    }

    /// The table a row of `log` at `seq` is stored in.
    fn stored_in(url: &str, log: &str, seq: Seq) -> String {
        let sql = format!("SELECT tableoid::regclass::text FROM {log} WHERE seq = {seq}");
        test_support::query(url, &sql).unwrap()[0][0].clone()
    }

    async fn prune_all(store: &dyn Store, events_before: i64, outcomes_before: i64) -> u64 {
        let mut events = 0;
        loop {
            let step = store.prune(events_before, outcomes_before).await.unwrap();
            events += step.events;
            if !step.more {
                return events;
            }
        }
    }

    /// A partition with nothing up to the head is not dropped to start it past the
    /// head: with publishes moving the head, every prune step would otherwise drop and
    /// make it again (each time locking the log), and never report that it is done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_partition_past_the_head_is_left_alone() {
        let Some((place, url)) = Place::postgres_and_url().await else {
            return;
        };
        let store = place.open().await;
        store.append(vec![event("/r/a")], None).await.unwrap();
        let everything = now_ms() + 1;
        let before = tables(&url, "outcomes");
        for round in 0..3 {
            // No channel: the delivery log is empty, and all of it is due.
            let step = store.prune(0, everything).await.unwrap();
            assert!(
                !step.more,
                "round {round}: nothing was pruned, so nothing is left"
            );
            assert_eq!(tables(&url, "outcomes"), before, "round {round}");
            store.append(vec![event("/r/b")], None).await.unwrap();
        }
        store.close().await;
    }

    /// Retention on PostgreSQL drops whole partitions, exactly as far as pruning may go:
    /// `pruned_through` is the last position of the last partition dropped, a partition
    /// holding a pending delivery-log entry stays, and inserts after a drop land in a
    /// partition (the writer makes the ones it reaches, the prune step those ahead).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_drops_whole_partitions_and_keeps_pending_entries() {
        let Some((place, url)) = Place::postgres_and_url().await else {
            return;
        };
        assert_eq!(
            TEST_PARTITION_POSITIONS, 1_000,
            "the positions below assume it"
        );
        let store = place.open().await;
        let pk = stored(&store, channel("o", "c", "/r")).await;
        for b in 0..3 {
            let batch = (0..1000).map(|i| event(&format!("/r/{b}/{i}"))).collect();
            store.append(batch, None).await.unwrap();
        }
        assert_eq!(
            tables(&url, "events"),
            ["events_1_1000", "events_1001_2000", "events_2001_3000"],
            "the writer made a partition for each thousand positions it reached"
        );
        let long_ago = now_ms() - 60_000;
        store.record_outcome(entry(pk, 10, OutcomeStatus::Delivered, long_ago));
        store.record_outcome(entry(pk, 1500, OutcomeStatus::Pending, long_ago));
        store.record_outcome(entry(pk, 2500, OutcomeStatus::Delivered, long_ago));
        store.record_progress(pk, 2600);
        store.flush().await.unwrap();
        let outcomes_before = tables(&url, "outcomes");
        assert_eq!(
            outcomes_before[..4],
            [
                "outcomes_0_999",
                "outcomes_1000_1999",
                "outcomes_2000_2999",
                "outcomes_3000_3999"
            ]
        );
        assert_eq!(outcomes_before.last().unwrap(), "outcomes_default");

        let everything = now_ms() + 1;
        let pruned = prune_all(&*store, everything, everything).await;
        // The channel is at 2600: the partitions through 2000 go, 2001..=3000 stays
        // whole, and one is made ahead of the head.
        assert_eq!(pruned, 2000);
        assert_eq!(
            store.pruned_through(),
            2000,
            "exactly the last position dropped"
        );
        assert_eq!(
            tables(&url, "events"),
            ["events_2001_3000", "events_3001_4000"]
        );
        let oldest = store.read_log(0, 1).await.unwrap();
        assert_eq!(oldest[0].seq, 2001, "nothing above pruned_through went");
        assert_eq!(
            tables(&url, "outcomes")[..3],
            ["outcomes_1000_1999", "outcomes_2000_2999", "outcomes_3000_3999"],
            "0..=999 went; 1000..=1999 holds a pending entry; 2000..=2999 is not all below the channel"
        );
        let left = store.list_outcomes(pk, None, None, 10).await.unwrap();
        let seqs: Vec<Seq> = left.iter().map(|e| e.outcome.seq).collect();
        assert_eq!(seqs, [1500, 2500]);

        // Inserts after the drops: in the partition made ahead, then in one the writer
        // makes; an entry at a dropped position (a replay) in the default partition,
        // which is pruned row by row.
        let batch = (0..1500).map(|i| event(&format!("/r/late/{i}"))).collect();
        let head = store.append(batch, None).await.unwrap().last_seq;
        assert_eq!(head, 4500);
        assert_eq!(stored_in(&url, "events", 3001), "events_3001_4000");
        assert_eq!(stored_in(&url, "events", 4500), "events_4001_5000");
        store.record_outcome(entry(pk, 12, OutcomeStatus::Delivered, long_ago));
        store.flush().await.unwrap();
        assert_eq!(stored_in(&url, "outcomes", 12), "outcomes_default");
        prune_all(&*store, 0, everything).await;
        let left = store.list_outcomes(pk, None, Some(0), 10).await.unwrap();
        assert_eq!(
            left[0].outcome.seq, 1500,
            "the default partition was pruned too"
        );

        store.close().await;
        let store = place.open().await;
        assert_eq!(store.pruned_through(), 2000, "and it is kept");
    }

    fn growth(head: Seq, oldest: Option<(Seq, i64)>, now: i64) -> Growth {
        Growth {
            head,
            oldest,
            now,
            events_retention_ms: 0,
            outcomes_retention_ms: 0,
        }
    }

    #[test]
    fn partitions_ahead_span_a_sixteenth_of_the_retention_at_the_rate_measured() {
        let adaptive = PartitionSize::Adaptive;
        // 1,000 events/s for the last day: a sixteenth of a day is 5,400,000 positions;
        // a sixteenth of 2 minutes is 7,500.
        let day = 86_400_000;
        let steady = growth(86_400_000, Some((1, 0)), day);
        assert_eq!(adaptive.ahead(&steady, day), 5_400_000);
        assert_eq!(adaptive.ahead(&steady, 120_000), 7_500);
        // Seven days of it would be wider than the widest.
        assert_eq!(adaptive.ahead(&steady, 7 * day), MAX_PARTITION_POSITIONS);
        // Slow, empty, or everything due: the narrowest.
        assert_eq!(
            adaptive.ahead(&growth(10, Some((1, 0)), day), day),
            MIN_PARTITION_POSITIONS
        );
        assert_eq!(
            adaptive.ahead(&growth(0, None, day), day),
            MIN_PARTITION_POSITIONS
        );
        assert_eq!(adaptive.ahead(&steady, -1), MIN_PARTITION_POSITIONS);
        // A log older than its clock says (a node's clock behind): no division by zero.
        assert_eq!(
            adaptive.ahead(&growth(5_000, Some((1, day)), 0), day),
            MAX_PARTITION_POSITIONS
        );
        assert_eq!(PartitionSize::Fixed(1_000).ahead(&steady, day), 1_000);
    }

    #[test]
    fn the_writer_doubles_and_the_migration_splits() {
        let adaptive = PartitionSize::Adaptive;
        assert_eq!(adaptive.catch_up(0), MIN_PARTITION_POSITIONS);
        assert_eq!(adaptive.catch_up(4_000), 8_000);
        assert_eq!(
            adaptive.catch_up(MAX_PARTITION_POSITIONS),
            MAX_PARTITION_POSITIONS
        );
        assert_eq!(PartitionSize::Fixed(500).catch_up(4_000), 500);
        assert_eq!(adaptive.split(1), MIN_PARTITION_POSITIONS);
        assert_eq!(adaptive.split(1_600_001), 100_001);
        assert_eq!(PartitionSize::Fixed(500).split(1_600_001), 500);
    }

    #[test]
    fn partition_names_hold_their_positions() {
        assert_eq!(name(Log::Events, 1, 1_000), "events_1_1000");
        assert_eq!(parse(Log::Events, "events_1_1000"), Some((1, 1_000)));
        assert_eq!(parse(Log::Outcomes, "outcomes_0_999"), Some((0, 999)));
        assert_eq!(parse(Log::Outcomes, "outcomes_default"), None);
        assert_eq!(parse(Log::Events, "events_9_1"), None);
        assert_eq!(parse(Log::Events, "events_unpartitioned"), None);
    }
}
