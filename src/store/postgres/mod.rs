//! The PostgreSQL store (`serve --database-url`): the same contract as the embedded
//! store, on a database several gateways can share (docs/api.md §13).
//!
//! `transaction.rs` is what the shared writer (`store::writer`) does PostgreSQL's way
//! (every writing transaction locks the log's head row, which orders positions; the
//! end of a transaction is a few statements over arrays, pipelined); `pool.rs` the
//! connections for reads; `rows.rs` PostgreSQL's rows and parameters; `schema.rs` the
//! migrations; `cluster.rs` what the nodes of a cluster share in the database.

mod cluster;
mod pool;
mod rows;
mod schema;
mod transaction;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_postgres::Config;
use tokio_util::sync::CancellationToken;

use self::pool::{pg, unreachable_database, Pool};
use self::rows::On;
use self::transaction::PgDatabase;
use super::batch::{Feed, Writes};
use super::log_store::{Backend, LogStore, Shared, WriterHandle};
use super::records::PendingRecords;
use super::sql::{opt_int_from_row, single, Reads, Statements};
use super::writer::Writer;
use super::{ClusterMessage, Membership, StoreError};
use crate::model::Seq;

/// Connections for reads (the writer has one more of its own).
const READ_CONNECTIONS: usize = 8;

/// The PostgreSQL store.
pub type PgStore = LogStore<Postgres>;

/// What is PostgreSQL's own: the read connections, and this process as a node of the
/// cluster the database's processes form.
pub struct Postgres {
    /// This process's id as a node of the cluster.
    node_id: String,
    readers: Arc<Pool>,
    /// A connection only the lease's renewals use, so that no amount of other work
    /// queued for connections can delay them.
    lease: Pool,
    /// Messages from the other nodes, until the node runtime takes them.
    messages: Mutex<Option<mpsc::UnboundedReceiver<ClusterMessage>>>,
    /// Stops the listener and the tailer.
    background: CancellationToken,
    /// This gateway's notification channels.
    channels: cluster::Channels,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), migrates the schema, and
    /// starts the writer, the listener of notifications and the tailer of other nodes'
    /// commits, as node `node_id`.
    pub async fn open(url: &str, node_id: &str) -> Result<PgStore, StoreError> {
        let mut config: Config = url.parse().map_err(|e| {
            StoreError::Backend(format!(
                "it is not a PostgreSQL URL like postgres://user@host:5432/db ({e})"
            ))
        })?;
        pool::keep_alive(&mut config);
        let mut setup = pool::connect(&config).await?;
        schema::migrate(&mut setup).await?;
        let (secret, pruned_through) = schema::open_state(&setup).await?;
        let head = single(
            On(&setup)
                .query("SELECT seq FROM log_head", Vec::new(), opt_int_from_row)
                .await?,
        )?
        .unwrap_or(0) as Seq;
        let shared = Arc::new(Shared::default());
        shared
            .pruned_through
            .store(pruned_through, Ordering::Relaxed);
        let (feed_tx, feed_rx) = mpsc::unbounded_channel();
        let (op_tx, op_rx) = mpsc::unbounded_channel();
        let records = Arc::new(PendingRecords::default());
        let log = Arc::new(tokio::sync::Notify::new());
        let feed = Arc::new(Mutex::new(Feed::with_gap_reader(
            feed_tx,
            head,
            log.clone(),
        )));
        let channels = cluster::Channels::of(&secret);
        let writer = Writer::new(
            PgDatabase {
                node_id: node_id.to_string(),
                channels: channels.clone(),
                config: config.clone(),
                client: Some(setup),
                statements: HashMap::new(),
            },
            feed.clone(),
            records.clone(),
            shared.clone(),
        );
        let writer_task = tokio::spawn(writer.run(op_rx));
        let readers = Arc::new(Pool::new(config.clone(), READ_CONNECTIONS));
        let background = CancellationToken::new();
        let (messages_tx, messages) = mpsc::unbounded_channel();
        cluster::spawn_listener(
            config.clone(),
            channels.clone(),
            log.clone(),
            messages_tx,
            background.clone(),
        );
        cluster::spawn_tailer(readers.clone(), feed, log, background.clone());
        Ok(LogStore::new(
            Postgres {
                node_id: node_id.to_string(),
                readers,
                lease: Pool::new(config, 1),
                messages: Mutex::new(Some(messages)),
                background,
                channels,
            },
            Writes::new(
                move |op| op_tx.send(op).is_ok(),
                records,
                Some((pool::WAIT, unreachable_database)),
            ),
            WriterHandle::Task(writer_task),
            shared,
            secret,
            feed_rx,
        ))
    }
}

impl Postgres {
    /// Runs one statement on a pooled connection, answering within the read timeout;
    /// the number of rows it changed.
    async fn execute(
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
    async fn query(
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

    fn membership(&self) -> Option<&dyn Membership> {
        Some(self)
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        let sql = "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c
                   WHERE c.relkind = 'r' AND c.relname IN ('meta', 'log_head', 'events', 'prefixes', 'channels', 'owner_counts',
                         'outcomes', 'removed_channels', 'idempotency') AND c.relnamespace = current_schema()::regnamespace";
        let size = single(
            self.readers
                .read(sql.to_string(), Vec::new(), opt_int_from_row)
                .await?,
        )?;
        Ok(size.unwrap_or(0) as u64)
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
