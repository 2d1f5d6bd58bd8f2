//! The embedded store: SQLite in WAL mode with `synchronous=FULL`, one writer thread.
//!
//! `transaction.rs` is what the shared writer (`store::writer`) does SQLite's way
//! (positions as row ids, the bookkeeping a row at a time); `read.rs` the read-only
//! connections and SQLite's rows; `schema.rs` the versioned tables; `checkpoint.rs` the
//! WAL checkpoints on their own thread; `dir_lock.rs` the one process per directory.

mod checkpoint;
mod dir_lock;
mod read;
mod schema;
mod transaction;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use rusqlite::Connection;

use self::dir_lock::DirLock;
use self::read::{backend, ReadPool};
use self::transaction::{log_head, SqliteDatabase};
use super::log_store::{Backend, LogStore, Wiring, WriterHandle};
use super::StoreError;

/// The embedded store.
pub type SqliteStore = LogStore<Sqlite>;

/// A migrated database in memory, and a way to run the shared writing code on it, for
/// unit tests of that code (`store::jobs`).
#[cfg(test)]
pub(crate) mod in_memory {
    pub use super::schema::at_once;
    pub use super::transaction::SqliteTx;

    pub fn database() -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::schema::migrate(&mut conn).unwrap();
        conn
    }
}

/// What is SQLite's own: the read connections, and the files on disk.
pub struct Sqlite {
    readers: ReadPool,
}

impl SqliteStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let dir_lock = DirLock::acquire(dir)?;
        let path = dir.join("watchwire.db");
        let mut conn = Connection::open(&path).map_err(backend)?;
        conn.execute_batch(
            // The WAL is reused from its start after each full checkpoint; the size
            // limit gives back what a burst grew it to.
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
             PRAGMA journal_size_limit = 67108864;",
        )
        .map_err(backend)?;
        schema::migrate(&mut conn)?;
        // The writer's statements all stay prepared (rusqlite keeps 16 by default; the
        // writer has about thirty).
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::WRITER_BACKSTOP_PAGES,
        )
        .map_err(backend)?;
        let checkpointer = checkpoint::Checkpointer::spawn(&path)?;
        let (secret, pruned_through) = schema::open_state(&mut conn)?;
        let head = log_head(&conn).map_err(backend)?;

        let (wiring, ops) = Wiring::new(pruned_through);
        let database = SqliteDatabase {
            _checkpointer: checkpointer,
            conn,
            _dir_lock: dir_lock,
        };
        let writer = wiring.writer(database, wiring.feed(head, None));
        let writer_thread = thread::Builder::new()
            .name("watchwire-store-writer".into())
            .spawn(move || {
                // The connection blocks, so the writer has a thread of its own; a
                // runtime on it only times the wait for delivery bookkeeping.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("a runtime for the writer thread");
                runtime.block_on(writer.run(ops));
            })
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let readers = ReadPool {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        };
        Ok(wiring.into_store(
            Sqlite { readers },
            WriterHandle::Thread(writer_thread),
            secret,
            None,
        ))
    }
}

#[async_trait]
impl Backend for Sqlite {
    type Reads = ReadPool;

    fn reads(&self) -> &ReadPool {
        &self.readers
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        let db = &self.readers.path;
        Ok(["", "-wal", "-shm"]
            .iter()
            .filter_map(|suffix| {
                let mut name = db.clone().into_os_string();
                name.push(suffix);
                std::fs::metadata(name).ok()
            })
            .map(|m| m.len())
            .sum())
    }

    async fn reachable(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_store_on_one_directory_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let first = SqliteStore::open(dir.path()).unwrap();
        let refused = SqliteStore::open(dir.path()).err().expect("refused");
        let message = refused.to_string();
        assert!(
            message.contains("in use") && message.contains(&std::process::id().to_string()),
            "{message}"
        );
        first.close_now();
        SqliteStore::open(dir.path()).expect("free once the first closed");
    }
}
