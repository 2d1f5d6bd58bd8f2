//! The polling index (docs/api.md §7: the newest position on or below each path) on a
//! database several writers share. An index kept as one row per path, updated by each
//! transaction, would make every writer whose events share a parent (`/`, a busy
//! collection) wait for the others to commit. Instead each transaction appends what it
//! changes to `prefix_changes`; readers read both (`polling_index`, which shows only
//! the changes of settled transactions, as `visible_events` does the log), and one node
//! at a time folds settled changes into `prefixes` every [`FOLD_EVERY`].

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::GenericClient;
use tokio_util::sync::CancellationToken;

use super::pool::{pg, Pool, READ_TIMEOUT};
use crate::store::StoreError;

/// How often settled changes are folded: what readers scan besides `prefixes` is what
/// the writers appended in about this long.
const FOLD_EVERY: Duration = Duration::from_secs(1);

/// The newest collections, for `Backend::collections_sql`: the newest of `prefixes`
/// (enough of them: a path not among them is older than all of them) and every
/// settled change, newest per path.
pub fn collections_sql(under: &str) -> String {
    format!(
        "SELECT path, MAX(last_seq), MAX(last_ms) FROM (
             (SELECT path, last_seq, last_ms FROM prefixes
              WHERE collection AND last_seq > $2 AND {under} ORDER BY last_seq DESC LIMIT $1)
             UNION ALL
             SELECT c.path, c.last_seq, c.last_ms FROM prefix_changes c
             WHERE c.tx < (SELECT pg_snapshot_xmin(pg_current_snapshot())) AND c.last_seq > $2 AND {under}
               AND (c.collection OR EXISTS (SELECT 1 FROM prefixes p WHERE p.path = c.path AND p.collection))
         ) AS newest GROUP BY path ORDER BY 2 DESC LIMIT $1"
    )
}

/// Folds settled changes into `prefixes` every [`FOLD_EVERY`] until `stop`.
pub(super) fn spawn_folder(pool: Arc<Pool>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(FOLD_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let folded = pool.within(READ_TIMEOUT, fold(&pool));
            if let Err(e) = folded.await {
                tracing::debug!(error = %e, "could not fold the polling index; trying again");
            }
        }
    });
}

/// One fold in a transaction of its own, unless another node is folding.
async fn fold(pool: &Pool) -> Result<u64, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await.map_err(pg)?;
    let folded = fold_in(&tx, Lock::UnlessTaken).await?;
    tx.commit().await.map_err(pg)?;
    Ok(folded)
}

/// Whether a fold waits for another to finish.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    Wait,
    UnlessTaken,
}

/// Folds settled changes into `prefixes` within transaction `tx`, one fold at a time
/// (the upserts of two could deadlock); 0 when `lock` says not to wait and another
/// fold is under way.
pub async fn fold_in(tx: &(impl GenericClient + Sync), lock: Lock) -> Result<u64, StoreError> {
    let key = "hashtextextended(current_schema() || ' watchwire polling index', 0)";
    let sql = match lock {
        Lock::Wait => format!("SELECT pg_advisory_xact_lock({key}) IS NOT NULL"),
        Lock::UnlessTaken => format!("SELECT pg_try_advisory_xact_lock({key})"),
    };
    let ours: bool = tx.query_one(&sql, &[]).await.map_err(pg)?.get(0);
    if !ours {
        return Ok(0);
    }
    tx.execute(
        "WITH settled AS (
             DELETE FROM prefix_changes WHERE tx < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
             RETURNING path, last_seq, last_ms, collection)
         INSERT INTO prefixes (path, last_seq, last_ms, collection)
         SELECT path, MAX(last_seq), MAX(last_ms), bool_or(collection) FROM settled GROUP BY path ORDER BY path
         ON CONFLICT (path) DO UPDATE SET last_seq = GREATEST(prefixes.last_seq, EXCLUDED.last_seq),
             last_ms = GREATEST(prefixes.last_ms, EXCLUDED.last_ms),
             collection = prefixes.collection OR EXCLUDED.collection",
        &[],
    )
    .await
    .map_err(pg)
}
