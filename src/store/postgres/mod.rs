//! The PostgreSQL store (`serve --database-url`): the same contract as the embedded
//! store, on a database several gateways can share (docs/api.md §13).
//!
//! `transaction.rs` is what the shared writer (`store::writer`) does PostgreSQL's way
//! (writers commit in parallel: positions are taken with the transaction's id, and
//! readers read only what transactions older than any in progress wrote; the end of a
//! transaction is a few statements over arrays, pipelined); `polling_index.rs` the
//! polling index, appended to and folded; `pool.rs` the
//! connections for reads; `rows.rs` PostgreSQL's rows and parameters; `schema.rs` the
//! migrations; `notify.rs` the notifications other nodes send (new events, messages
//! between nodes). What the nodes do with the database is the cluster's
//! (`cluster::postgres`). `tls.rs`: what the database URL asks for (its `sslmode` and
//! certificates) and the TLS connector every connection is made with.

pub mod notify;
mod partitions;
mod polling_index;
pub(crate) mod pool;
mod rows;
mod schema;
mod tls;
mod transaction;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::notify::{Topics, WakeUps};
pub use self::partitions::PartitionSize;
use self::pool::{pg, unreachable_database, Pool};
use self::rows::On;
use self::tls::Config;
use self::transaction::PgDatabase;
use super::log_store::{Backend, LogStore, Wiring, WriterHandle};
use super::sql::{opt_int_from_row, single, Reads, Statements};
use super::StoreError;
use crate::model::Seq;

/// Connections for reads (the writer has one more of its own).
const READ_CONNECTIONS: usize = 8;

/// The PostgreSQL store.
pub type PgStore = LogStore<Postgres>;

/// What is PostgreSQL's own: the read connections, and what this process needs as a
/// node of the cluster the database's processes form (`cluster::postgres`).
pub struct Postgres {
    /// This process's id as a node of the cluster: the channels it creates are its own.
    pub(crate) node_id: String,
    pub(crate) readers: Arc<Pool>,
    /// A connection only the lease's renewals use, so that no amount of other work
    /// queued for connections can delay them.
    pub(crate) lease: Pool,
    /// What other nodes told this one, as sent, until the cluster takes it.
    told: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    /// Stops the listener and the tailer.
    background: CancellationToken,
    /// This gateway's notification topics.
    pub(crate) topics: Topics,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), migrates the schema, and
    /// starts the writer, the listener of notifications and the tailer of other nodes'
    /// commits, as node `node_id`.
    pub async fn open(url: &str, node_id: &str) -> Result<PgStore, StoreError> {
        PgStore::open_with(url, node_id, PartitionSize::Adaptive).await
    }

    /// [`PgStore::open`], with the log's partitions made `partition_size` wide.
    pub async fn open_with(
        url: &str,
        node_id: &str,
        partition_size: PartitionSize,
    ) -> Result<PgStore, StoreError> {
        let mut config: Config = url.parse()?;
        pool::keep_alive(&mut config.server);
        let mut setup = pool::connect(&config).await?;
        schema::migrate(&mut setup, partition_size).await?;
        let (secret, pruned_through) = schema::open_state(&setup).await?;
        let head = single(
            On(&setup)
                .query("SELECT seq FROM log_head", Vec::new(), opt_int_from_row)
                .await?,
        )?
        .unwrap_or(0) as Seq;
        let (wiring, ops) = Wiring::new(pruned_through);
        let log = Arc::new(tokio::sync::Notify::new());
        let feed = wiring.feed(head, Some(log.clone()));
        let topics = Topics::of(&secret);
        let readers = Arc::new(Pool::new(config.clone(), READ_CONNECTIONS));
        let background = CancellationToken::new();
        // On a connection of its own: other nodes' deliveries wait for these, which must
        // not queue behind the API's reads.
        let wake_ups = WakeUps::spawn(
            Arc::new(Pool::new(notify::wake_up_config(&config), 1)),
            topics.clone(),
            head,
            background.clone(),
        );
        let database = PgDatabase {
            node_id: node_id.to_string(),
            topics: topics.clone(),
            wake_ups,
            config: config.clone(),
            client: Some(setup),
            statements: HashMap::new(),
            partition_size,
            covered: None,
        };
        let writer_task = tokio::spawn(wiring.writer(database, feed.clone()).run(ops));
        let (told_tx, told) = mpsc::unbounded_channel();
        notify::spawn_listener(
            config.clone(),
            topics.clone(),
            log.clone(),
            told_tx,
            background.clone(),
        );
        notify::spawn_tailer(readers.clone(), feed, log, background.clone());
        polling_index::spawn_folder(readers.clone(), background.clone());
        Ok(wiring.into_store(
            Postgres {
                node_id: node_id.to_string(),
                readers,
                lease: Pool::new(config, 1),
                told: Mutex::new(Some(told)),
                background,
                topics,
            },
            WriterHandle::Task(writer_task),
            secret,
            Some((pool::WAIT, unreachable_database)),
        ))
    }
}

impl Postgres {
    /// What other nodes told this one, as sent. Only the first caller gets it.
    pub(crate) fn take_told(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.told.lock().unwrap().take()
    }

    /// Runs one statement on a pooled connection, answering within the read timeout;
    /// the number of rows it changed.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let write = async {
            let client = self.readers.get().await?;
            client.execute(sql, params).await.map_err(pg)
        };
        self.readers.within(pool::READ_TIMEOUT, write).await
    }

    /// Runs one read on a pooled connection, answering within the read timeout.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let read = async {
            let client = self.readers.get().await?;
            client.query(sql, params).await.map_err(pg)
        };
        self.readers.within(pool::READ_TIMEOUT, read).await
    }
}

#[async_trait]
impl Backend for Postgres {
    type Reads = Pool;

    fn reads(&self) -> &Pool {
        &self.readers
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        // The log and the delivery log are the partitions of `events` and `outcomes`.
        let sql = "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c
                   WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
                     AND (c.relname IN ('meta', 'log_floor', 'prefixes', 'prefix_changes', 'channels', 'owner_counts', 'removed_channels', 'idempotency')
                          OR c.oid IN (SELECT relid FROM pg_partition_tree('events')
                                       UNION ALL SELECT relid FROM pg_partition_tree('outcomes')))";
        let size = single(
            self.readers
                .read(sql.to_string(), Vec::new(), opt_int_from_row)
                .await?,
        )?;
        Ok(size.unwrap_or(0) as u64)
    }

    fn collections_sql(under: &str) -> String {
        polling_index::collections_sql(under)
    }

    async fn reachable(&self) -> Result<(), StoreError> {
        self.readers
            .read("SELECT 1".to_string(), Vec::new(), opt_int_from_row)
            .await
            .map(drop)
    }

    async fn close(&self) {
        self.background.cancel();
    }
}
