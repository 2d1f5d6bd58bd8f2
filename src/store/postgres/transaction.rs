//! PostgreSQL's writing transactions: one connection of the writer's own, its hot
//! statements prepared once per connection. Each transaction first locks the log's
//! head row: transactions that write commit one after another, in the order of the
//! positions they take, so positions become visible in order (docs/api.md §13) and two
//! writers never deadlock. Nothing else is read under that lock: events other nodes
//! committed before this writer's own reach the feed through the tailer (`Feed` leaves
//! events after a gap to it), so the lock is held for the writes and the commit only.
//! Positions are taken in memory and the events, the polling index, the head and the
//! delivery bookkeeping are written at the end, each in one statement over arrays,
//! sent together (pipelined: one round trip).

use std::collections::HashMap;

use futures_util::try_join;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::notify::{removal_notice, Topics, WakeUps};
use super::partitions::{self, PartitionSize};
use super::pool::{connect, pg};
use super::rows::On;
use super::tls::Config;
use crate::model::{NewEvent, Seq, SharedEvent};
use crate::store::records::Records;
use crate::store::rules;
use crate::store::sql::{Map, Params, Ran, Statements};
use crate::store::writer::{Database, Growth, Partition, Partitions, Transaction};
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
    head_at_start: Seq,
    head: Seq,
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
        })
    }
}

impl Database for PgDatabase {
    type Tx<'a> = PgTx<'a>;

    async fn begin(&mut self) -> Result<PgTx<'_>, StoreError> {
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
        let row = tx.query_one(&statements.lock_head, &[]).await.map_err(pg)?;
        let head = row.get::<_, i64>(0) as Seq;
        Ok(PgTx {
            tx,
            statements,
            node_id,
            topics,
            wake_ups,
            head_at_start: head,
            head,
            appended: Vec::new(),
            partition_size: *partition_size,
            covered,
        })
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

    async fn head(&mut self) -> Result<Seq, StoreError> {
        Ok(self.head)
    }

    /// Takes positions after the head (in memory: the head row is locked and written
    /// once at the end).
    async fn append(
        &mut self,
        events: Vec<NewEvent>,
        now: i64,
    ) -> Result<Vec<SharedEvent>, StoreError> {
        let stored: Vec<SharedEvent> = events
            .into_iter()
            .map(|e| {
                self.head += 1;
                e.at(self.head, now)
            })
            .collect();
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
        if self.head != self.head_at_start && self.covered.is_none_or(|up_to| self.head > up_to) {
            let from = self.head_at_start + 1;
            let covered = partitions::cover(&self.tx, from, self.head, self.partition_size).await?;
            *self.covered = Some(covered);
        }
        // The writes below depend on no answer of each other: they are polled
        // together, so tokio-postgres pipelines them (sent at once, one round trip
        // instead of one each). The server still runs them in the order sent.
        let (tx, statements, head) = (&self.tx, &self.statements, self.head);
        let head_number = head as i64;
        let set_head: [&(dyn ToSql + Sync); 1] = [&head_number];
        let appended = &self.appended;
        let write_events = async {
            if head == self.head_at_start {
                return Ok(());
            }
            try_join!(
                insert_events(tx, statements, appended),
                update_prefixes(tx, statements, appended, now),
                execute(tx, &statements.set_head, &set_head),
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

    async fn partition_ahead(&mut self, growth: &Growth) -> Result<(), StoreError> {
        if let Some(covered) = partitions::ahead(&self.tx, growth, self.partition_size).await? {
            *self.covered = Some(covered);
        }
        Ok(())
    }

    async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(pg)?;
        // Other nodes wake on it (docs/api.md §13). Sent after the commit, not inside
        // it: a transaction that notifies takes a database-wide lock while it commits,
        // which would put every node's commits in one line.
        if self.head != self.head_at_start {
            self.wake_ups.committed(self.head);
        }
        Ok(())
    }
}

/// The writer's hot statements, prepared once per connection.
struct Prepared {
    lock_head: Statement,
    set_head: Statement,
    insert_events: Statement,
    upsert_prefixes: Statement,
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
    tx: &tokio_postgres::Transaction<'_>,
    statements: &Prepared,
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
    tx: &tokio_postgres::Transaction<'_>,
    statements: &Prepared,
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
    tx: &tokio_postgres::Transaction<'_>,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), StoreError> {
    tx.execute(statement, params).await.map(|_| ()).map_err(pg)
}
