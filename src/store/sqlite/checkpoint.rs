//! WAL checkpoints on their own thread.
//!
//! A checkpoint copies committed pages from the WAL into the database file and fsyncs
//! it. SQLite runs them inside whichever commit crosses its threshold, which put about
//! a quarter of the writer thread's time on the publish path (BENCHMARKS.md). Here a
//! separate connection runs PASSIVE checkpoints, which never block the writer or the
//! readers; the writer keeps a far higher threshold of its own only as a backstop in
//! case this thread falls behind.

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rusqlite::Connection;

use super::read::backend;
use crate::store::StoreError;
use crate::telemetry::LogGate;

/// How often the checkpointer copies the WAL into the database.
const INTERVAL: Duration = Duration::from_millis(250);
/// WAL pages after which the writer checkpoints by itself (about 80 MB).
pub(super) const WRITER_BACKSTOP_PAGES: u32 = 20_000;

pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub fn spawn(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("watchwire-store-checkpoint".into())
            .spawn(move || {
                let mut failures = LogGate::default();
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        if let Some(suppressed) = failures.admit(crate::model::now_ms()) {
                            tracing::warn!(error = %e, suppressed, "WAL checkpoint failed; retrying");
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
