//! PostgreSQL's writing transactions: one connection of the writer's own, its hot
//! statements prepared once per connection. Writers on every node commit in parallel
//! (docs/api.md §13): a transaction that appends takes its positions first, with its
//! transaction id, under a lock held for that one statement (`take_positions`, see the
//! schema), and readers see only what transactions older than every one in progress
//! wrote (`visible_events`), so positions still become visible in order. The polling
//! index is appended to, never updated in place (`polling_index.rs` folds it). The
//! events, the polling index and the delivery bookkeeping are written at the end, each
//! in one statement over arrays, sent together (pipelined: one round trip).

use std::collections::HashMap;

use futures_util::try_join;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::notify::{removal_notice, Topics, WakeUps};
use super::partitions::{self, PartitionSize};
use super::polling_index::{self, Lock};
use super::pool::{connect, pg};
use super::rows::On;
use super::tls::Config;
use crate::model::{NewEvent, Seq, SharedEvent};
use crate::store::records::Records;
use crate::store::rules;
use crate::store::sql::{Map, Params, Ran, Statements};
use crate::store::writer::{Database, Growth, Partition, Partitions, Transaction, Visibility};
use crate::store::StoreError;

/// The writer's connection, and what it needs to know of its node.
pub struct PgDatabase {
    /// This node's id: the channels it creates are its own to deliver.
    pub node_id: String,
    /// Where other nodes hear of removals.
    pub topics: Topics,
    /// Where other nodes hear of new events, after each commit.
    pub wake_ups: WakeUps,
    pub config: Config,
    pub client: Option<Client>,
    pub statements: HashMap<&'static str, Statement>,
    /// How wide the partitions of the log and the delivery log are made.
    pub partition_size: PartitionSize,
    /// Positions up to which both logs have partitions, as last seen (they only grow):
    /// a transaction that appends past it makes more first.
    pub covered: Option<Seq>,
}

pub struct PgTx<'a> {
    tx: tokio_postgres::Transaction<'a>,
    statements: Prepared,
    node_id: &'a str,
    topics: &'a Topics,
    wake_ups: &'a WakeUps,
    /// Positions taken for this transaction and not used yet (`next..=last`); any left
    /// at the commit are never used.
    positions: Option<(Seq, Seq)>,
    /// This transaction's id, when it appends.
    xid: Option<i64>,
    /// The log's head as this transaction sees it, once asked.
    head: Option<Seq>,
    /// Events appended in this transaction, inserted at its end.
    appended: Vec<SharedEvent>,
    partition_size: PartitionSize,
    covered: &'a mut Option<Seq>,
}

impl PgDatabase {
    async fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let client = self.client.as_ref().expect("connected before statements");
        let statement = client.prepare(sql).await.map_err(pg)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    async fn prepare_all(&mut self) -> Result<Prepared, StoreError> {
        Ok(Prepared {
            take_positions: self
                .statement("SELECT last, tx::text::int8 FROM take_positions($1)")
                .await?,
            insert_events: self
                .statement(
                    "INSERT INTO events (seq, time_ms, resource, state, data, changed, metadata, trace_context)
                     SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[], $8::text[])",
                )
                .await?,
            insert_prefixes: self
                .statement(
                    "INSERT INTO prefix_changes (path, last_seq, last_ms, collection)
                     SELECT u.path, u.seq, $3, u.collection FROM UNNEST($1::text[], $2::int8[], $4::bool[]) AS u(path, seq, collection)",
                )
                .await?,
            progress: self
                .statement(
                    "UPDATE channels c SET progress_seq = GREATEST(c.progress_seq, v.seq), synced = TRUE,
                        sent_seq = GREATEST(c.sent_seq, v.sent)
                     FROM UNNEST($1::int8[], $2::int8[], $3::int8[]) AS v(pk, seq, sent) WHERE c.pk = v.pk",
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
        })
    }
}

impl Database for PgDatabase {
    type Tx<'a> = PgTx<'a>;

    async fn begin(&mut self, appending: usize) -> Result<PgTx<'_>, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&self.config).await?);
            self.statements.clear();
        }
        let statements = self.prepare_all().await?;
        let PgDatabase {
            node_id,
            topics,
            wake_ups,
            client,
            partition_size,
            covered,
            ..
        } = self;
        let tx = client
            .as_mut()
            .expect("just connected")
            .transaction()
            .await
            .map_err(pg)?;
        // First, before anything else writes (see `take_positions`).
        let (positions, xid) = if appending > 0 {
            let n = appending as i64;
            let row = tx
                .query_one(&statements.take_positions, &[&n])
                .await
                .map_err(pg)?;
            let last = row.get::<_, i64>(0) as Seq;
            (
                Some((last + 1 - appending as Seq, last)),
                Some(row.get::<_, i64>(1)),
            )
        } else {
            (None, None)
        };
        Ok(PgTx {
            tx,
            statements,
            node_id,
            topics,
            wake_ups,
            positions,
            xid,
            head: None,
            appended: Vec::new(),
            partition_size: *partition_size,
            covered,
        })
    }

    /// Whether every transaction older than `xid` has finished, so that readers see
    /// what `xid` wrote.
    async fn visible(&mut self, xid: i64) -> Result<bool, StoreError> {
        let statement = self
            .statement("SELECT pg_snapshot_xmin(pg_current_snapshot()) > $1::text::xid8")
            .await?;
        let client = self.client.as_ref().expect("connected");
        let row = client
            .query_one(&statement, &[&xid.to_string()])
            .await
            .map_err(pg)?;
        Ok(row.get(0))
    }

    /// The connection's state is unknown: the next transaction opens a new one.
    fn reset(&mut self) {
        self.client = None;
        self.statements.clear();
        // What a failed transaction made was rolled back with it.
        self.covered = None;
    }
}

impl Statements for PgTx<'_> {
    async fn run<T>(&mut self, sql: &str, params: Params, map: Option<Map<T>>) -> Ran<T> {
        On(&self.tx).run(sql, params, map).await
    }
}

impl Transaction for PgTx<'_> {
    fn node(&self) -> Option<&str> {
        Some(self.node_id)
    }

    /// The last position this transaction appended at; before it appends, the newest
    /// visible one (every event acknowledged so far is at or below it).
    async fn head(&mut self) -> Result<Seq, StoreError> {
        if let Some(last) = self.appended.last() {
            return Ok(last.seq);
        }
        if let Some(head) = self.head {
            return Ok(head);
        }
        let row = self
            .tx
            .query_one("SELECT seq FROM log_head", &[])
            .await
            .map_err(pg)?;
        let head = row.get::<_, i64>(0) as Seq;
        self.head = Some(head);
        Ok(head)
    }

    /// Gives the events positions this transaction took when it began.
    async fn append(
        &mut self,
        events: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<SharedEvent>, StoreError> {
        let Some((next, last)) = self.positions else {
            return Err(StoreError::Backend(
                "a transaction appended without positions".into(),
            ));
        };
        if next + events.len() as Seq > last + 1 {
            return Err(StoreError::Backend(
                "a transaction appended more than it took positions for".into(),
            ));
        }
        let stored: Vec<SharedEvent> = events
            .into_iter()
            .zip(next..)
            .map(|(e, seq)| e.at(seq, now))
            .collect();
        self.positions = Some((next + stored.len() as Seq, last));
        self.appended.extend(stored.iter().cloned());
        Ok(stored)
    }

    /// Writes `removals`, which that node clears once it has stopped the channel, and
    /// wakes it.
    async fn removed_elsewhere(&mut self, pk: i64, node: &str, now: i64) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO removals (pk, owner_node, removed_ms) VALUES ($1, $2, $3) ON CONFLICT (pk) DO NOTHING",
                &[&pk, &node, &now],
            )
            .await
            .map_err(pg)?;
        self.tx
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&self.topics.cluster, &removal_notice(pk, node)],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn finish(&mut self, records: &Records, now: i64) -> Result<(), StoreError> {
        let range = self.appended.first().zip(self.appended.last());
        if let Some((first, last)) = range.map(|(f, l)| (f.seq, l.seq)) {
            if self.covered.is_none_or(|up_to| last > up_to) {
                let covered = partitions::cover(&self.tx, first, last, self.partition_size).await?;
                *self.covered = Some(covered);
            }
        }
        // The writes below depend on no answer of each other: they are polled
        // together, so tokio-postgres pipelines them (sent at once, one round trip
        // instead of one each). The server still runs them in the order sent.
        let (tx, statements) = (&self.tx, &self.statements);
        let appended = &self.appended;
        let write_events = async {
            if appended.is_empty() {
                return Ok(());
            }
            try_join!(
                insert_events(tx, statements, appended),
                append_prefixes(tx, statements, appended, now),
            )
            .map(|_| ())
        };
        try_join!(write_events, write_records(tx, statements, records)).map(drop)
    }

    /// The partitions of both logs, under the lock that makes and drops them one node
    /// at a time (held to the commit).
    async fn partitions(&mut self) -> Result<Option<Partitions>, StoreError> {
        partitions::lock(&self.tx).await?;
        partitions::read(&self.tx).await.map(Some)
    }

    async fn drop_partition(&mut self, p: &Partition, through: Seq) -> Result<bool, StoreError> {
        partitions::drop(&self.tx, p, through).await
    }

    /// In order, so that two transactions never wait for each other both ways.
    async fn serialise_owners(&mut self, owners: &[&str]) -> Result<(), StoreError> {
        for owner in owners {
            self.tx
                .execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ' watchwire owner ' || $1, 0))",
                    &[owner],
                )
                .await
                .map_err(pg)?;
        }
        Ok(())
    }

    async fn fold_polling_index(&mut self) -> Result<(), StoreError> {
        polling_index::fold_in(&self.tx, Lock::Wait).await.map(drop)
    }

    async fn partition_ahead(&mut self, growth: &Growth) -> Result<(), StoreError> {
        if let Some(covered) = partitions::ahead(&self.tx, growth, self.partition_size).await? {
            *self.covered = Some(covered);
        }
        Ok(())
    }

    async fn commit(self) -> Result<Visibility, StoreError> {
        self.tx.commit().await.map_err(pg)?;
        let (Some(xid), Some(last)) = (self.xid, self.appended.last()) else {
            return Ok(Visibility::Now);
        };
        // Other nodes wake on it (docs/api.md §13). Sent after the commit, not inside
        // it: a transaction that notifies takes a database-wide lock while it commits,
        // which would put every node's commits in one line.
        self.wake_ups.committed(last.seq);
        Ok(Visibility::Once(xid))
    }
}

/// The writer's hot statements, prepared once per connection.
struct Prepared {
    take_positions: Statement,
    insert_events: Statement,
    insert_prefixes: Statement,
    progress: Statement,
    outcomes: Statement,
    health: Statement,
}

async fn insert_events(
    tx: &tokio_postgres::Transaction<'_>,
    statements: &Prepared,
    events: &[SharedEvent],
) -> Result<(), StoreError> {
    let seqs: Vec<i64> = events.iter().map(|e| e.seq as i64).collect();
    let times: Vec<i64> = events.iter().map(|e| e.time_ms).collect();
    let resources: Vec<&str> = events.iter().map(|e| e.resource.as_str()).collect();
    let states: Vec<&str> = events.iter().map(|e| e.state.as_str()).collect();
    let data: Vec<Option<&[u8]>> = events.iter().map(|e| e.data.as_deref()).collect();
    let changed: Vec<String> = events.iter().map(|e| e.changed.join(",")).collect();
    let metadata: Vec<Option<&str>> = events.iter().map(|e| e.metadata.as_deref()).collect();
    let traces: Vec<Option<String>> = events
        .iter()
        .map(|e| e.trace.map(|t| t.to_string()))
        .collect();
    tx.execute(
        &statements.insert_events,
        &[
            &seqs, &times, &resources, &states, &data, &changed, &metadata, &traces,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn append_prefixes(
    tx: &tokio_postgres::Transaction<'_>,
    statements: &Prepared,
    events: &[SharedEvent],
    now: i64,
) -> Result<(), StoreError> {
    let updates = rules::prefix_updates(events.iter());
    let paths: Vec<&str> = updates.iter().map(|u| u.path).collect();
    let seqs: Vec<i64> = updates.iter().map(|u| u.last_seq as i64).collect();
    let collections: Vec<bool> = updates.iter().map(|u| u.is_collection).collect();
    tx.execute(
        &statements.insert_prefixes,
        &[&paths, &seqs, &now, &collections],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn write_records(
    tx: &tokio_postgres::Transaction<'_>,
    statements: &Prepared,
    records: &Records,
) -> Result<(), StoreError> {
    // Three independent writes, pipelined (see `transaction`).
    let progress = async {
        if records.progress.is_empty() {
            return Ok(());
        }
        let mut progress: Vec<(i64, i64, Option<i64>)> = records
            .progress
            .iter()
            .map(|(pk, p)| (*pk, p.through as i64, p.sent.map(|seq| seq as i64)))
            .collect();
        progress.sort_unstable();
        let pks: Vec<i64> = progress.iter().map(|p| p.0).collect();
        let seqs: Vec<i64> = progress.iter().map(|p| p.1).collect();
        let sent: Vec<Option<i64>> = progress.iter().map(|p| p.2).collect();
        execute(tx, &statements.progress, &[&pks, &seqs, &sent]).await
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
    tx: &tokio_postgres::Transaction<'_>,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), StoreError> {
    tx.execute(statement, params).await.map(|_| ()).map_err(pg)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::model::Coverage;
    use crate::store::conformance::{event, Place};
    use crate::store::postgres::pool::connect;

    /// Writers commit in parallel (docs/api.md §13): a publish commits while an older
    /// transaction that took a position before it is still open, and yet no reader sees
    /// it, nor is it answered, until that one has finished; then both are read in
    /// position order. A reader never sees a position appear below one it has seen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_publish_commits_beside_an_older_transaction_and_is_seen_after_it() {
        let Some((place, url)) = Place::postgres_and_url().await else {
            return;
        };
        let store = place.open().await;
        store.append(vec![event("/r/first")], None).await.unwrap();
        let mut older = connect(&url.parse().unwrap()).await.unwrap();
        let older = older.transaction().await.unwrap();
        let taken: i64 = older
            .query_one("SELECT last FROM take_positions(1)", &[])
            .await
            .unwrap()
            .get(0);
        older
            .execute(
                "INSERT INTO events (seq, time_ms, resource, state) VALUES ($1, 0, '/r/older', 'exists')",
                &[&taken],
            )
            .await
            .unwrap();

        let publishing = tokio::spawn({
            let store = store.clone();
            async move { store.append(vec![event("/r/newer")], None).await }
        });
        // Committed, though the older transaction is open: nothing it holds kept it.
        let look = connect(&url.parse().unwrap()).await.unwrap();
        let committed = async {
            loop {
                let rows = look
                    .query("SELECT seq FROM events WHERE resource = '/r/newer'", &[])
                    .await
                    .unwrap();
                if let Some(row) = rows.first() {
                    return row.get::<_, i64>(0);
                }
                tokio::task::yield_now().await;
            }
        };
        let newer = tokio::time::timeout(Duration::from_secs(10), committed)
            .await
            .expect("the publish committed while an older transaction was open");
        assert_eq!(newer, taken + 1, "positions in the order they were taken");

        // Neither seen nor answered while the older one is open.
        let seen: Vec<i64> = store
            .read_log(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq as i64)
            .collect();
        assert_eq!(
            seen,
            [taken - 1],
            "only what came before the older transaction"
        );
        let latest = store.latest_seq_under(&Coverage::path("/r")).await.unwrap();
        assert!(
            latest.is_none_or(|seq| (seq as i64) < taken),
            "the polling index shows {latest:?}"
        );
        assert_eq!(store.head().await.unwrap() as i64, taken - 1);
        assert!(
            !publishing.is_finished(),
            "answered before readers could see it"
        );

        older.commit().await.unwrap();
        let receipt = tokio::time::timeout(Duration::from_secs(10), publishing)
            .await
            .expect("answered once the older transaction finished")
            .unwrap()
            .unwrap();
        assert_eq!(receipt.last_seq as i64, newer);
        let seen: Vec<(i64, String)> = store
            .read_log(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| (e.seq as i64, e.resource.to_string()))
            .collect();
        assert_eq!(
            seen,
            [
                (taken - 1, "/r/first".to_string()),
                (taken, "/r/older".to_string()),
                (newer, "/r/newer".to_string())
            ]
        );
        assert_eq!(
            store.latest_seq_under(&Coverage::path("/r")).await.unwrap(),
            Some(newer as u64)
        );
        store.close().await;
    }
}
