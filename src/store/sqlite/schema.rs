//! Tables of the embedded store, and opening a connection the way every part needs it.

use rusqlite::{params, Connection, OptionalExtension};

use super::writer::delete_channel;
use crate::store::rules::{self, StoredWatcher};
use crate::store::StoreError;

/// The schema as versioned steps: a database at `PRAGMA user_version` N gets steps
/// N.. applied in one transaction at open. Step 1 is idempotent (`IF NOT EXISTS`) so
/// that stores created before versioning (version 0, already holding it) pass it.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

const V1: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);

-- The event log. AUTOINCREMENT: a seq is never reused, even after pruning the newest.
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    resource TEXT NOT NULL,
    state TEXT NOT NULL,
    data BLOB,
    changed TEXT NOT NULL DEFAULT '',
    metadata TEXT
);
CREATE INDEX IF NOT EXISTS events_by_resource ON events (resource, seq);

-- Latest change on or below every path that has seen one (polling, docs/api.md §7).
CREATE TABLE IF NOT EXISTS prefixes (
    path TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    collection INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS channels (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL DEFAULT 'channel',
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    resource TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_uri TEXT NOT NULL,
    address TEXT NOT NULL,
    token TEXT,
    expiration_ms INTEGER,
    params TEXT NOT NULL,
    payload INTEGER NOT NULL,
    signing_secret TEXT,
    created_ms INTEGER NOT NULL,
    start_seq INTEGER NOT NULL,
    progress_seq INTEGER NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    failing_since_ms INTEGER,
    UNIQUE (owner, id)
);
CREATE INDEX IF NOT EXISTS channels_by_address ON channels (owner, address);

-- The delivery log (docs/api.md §8): one row per notification attempted.
CREATE TABLE IF NOT EXISTS outcomes (
    channel_pk INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    message_number INTEGER NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    at_ms INTEGER NOT NULL,
    next_retry_ms INTEGER,
    PRIMARY KEY (channel_pk, seq)
);
CREATE INDEX IF NOT EXISTS outcomes_by_time ON outcomes (at_ms);

CREATE TABLE IF NOT EXISTS idempotency (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
);
"#;

/// The delivery log keeps why attempts failed and the last few attempts; removed
/// channels leave a record for the delivery-log retention window (docs/api.md §8).
const V2: &str = r#"
ALTER TABLE outcomes ADD COLUMN last_reason TEXT;
ALTER TABLE outcomes ADD COLUMN recent TEXT;
CREATE TABLE removed_channels (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_uri TEXT NOT NULL,
    address TEXT NOT NULL,
    expiration_ms INTEGER,
    params TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    removed_ms INTEGER NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX removed_channels_by_time ON removed_channels (removed_ms);
-- When a notification's first attempt began: the retry budget runs from it, across
-- restarts; notifications awaiting a retry are found at startup by the partial index.
ALTER TABLE outcomes ADD COLUMN first_attempt_ms INTEGER;
CREATE INDEX outcomes_pending ON outcomes (channel_pk) WHERE status = 'pending';
-- Live channels per owner, for the per-key quota: counted by the database in the
-- transaction that creates or removes a channel, never in a process's memory.
CREATE TABLE owner_counts (owner TEXT PRIMARY KEY, channels INTEGER NOT NULL CHECK (channels >= 0));
INSERT INTO owner_counts SELECT owner, COUNT(*) FROM channels GROUP BY owner;
-- Pruning removes polling entries whose events are all gone.
CREATE INDEX prefixes_by_seq ON prefixes (last_seq);
"#;

/// A channel on `/` of a key limited to prefixes covers those prefixes, one a line
/// (docs/api.md §10.1); NULL: it covers its resource.
const V3: &str = r#"
ALTER TABLE channels ADD COLUMN within TEXT;
"#;

/// Watcher endpoints are compared in their normal form (docs/api.md §9), and the
/// database itself refuses a second watcher of one owner with the same pattern and
/// endpoint. Before this step, code brings stored watchers up to the rules
/// ([`upgrade_watchers`]): SQL cannot normalise a URL.
const V4: &str = r#"
CREATE UNIQUE INDEX watchers_by_endpoint ON channels (owner, address, resource) WHERE kind = 'watcher';
"#;

/// The step that [`upgrade_watchers`] runs before.
const WATCHERS_UPGRADED: usize = 3;

/// Brings the schema up to the latest version.
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(0);
    if version >= MIGRATIONS.len() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for (index, step) in MIGRATIONS.iter().enumerate().skip(version) {
        if index == WATCHERS_UPGRADED {
            upgrade_watchers(&tx)?;
        }
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()
}

/// Watchers stored before endpoints were compared in their normal form, brought up to
/// the rules (`rules::upgrade_watchers`).
fn upgrade_watchers(tx: &Connection) -> rusqlite::Result<()> {
    let watchers = tx
        .prepare("SELECT pk, owner, id, resource, address FROM channels WHERE kind = 'watcher'")?
        .query_map([], |r| {
            Ok(StoredWatcher {
                pk: r.get(0)?,
                owner: r.get(1)?,
                id: r.get(2)?,
                pattern: r.get(3)?,
                address: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let upgrade = rules::upgrade_watchers(watchers, crate::model::now_ms());
    for (pk, ended) in &upgrade.removed {
        tracing::warn!(pk, reason = %ended.reason, "removed a watcher on upgrade");
        delete_channel(tx, *pk, ended)?;
    }
    for (pk, address) in &upgrade.normalised {
        tx.execute(
            "UPDATE channels SET address = ?2 WHERE pk = ?1",
            params![pk, address],
        )?;
    }
    Ok(())
}

/// Columns of `events` in the order `read::event_from_row` expects.
pub(super) const EVENT_COLUMNS: &str = "seq, time_ms, resource, state, data, changed, metadata";

/// Columns of `removed_channels` in the order `read::removed_from_row` expects.
pub(super) const REMOVED_COLUMNS: &str = "owner, id, kind, resource, resource_id, resource_uri, address, expiration_ms, params, created_ms, state, reason, removed_ms";

/// Columns of `channels` in the order `read::channel_from_row` expects.
pub(super) const CHANNEL_COLUMNS: &str = "pk, owner, id, resource, resource_id, resource_uri, address, token, expiration_ms, params, payload,
     signing_secret, created_ms, start_seq, progress_seq, synced, kind, disabled, failing_since_ms, within";

pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The highest seq ever assigned.
pub(super) fn log_head(conn: &Connection) -> rusqlite::Result<u64> {
    let head: i64 = conn
        .prepare_cached(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(head as u64)
}

pub(super) fn meta_u64(conn: &Connection, key: &str) -> rusqlite::Result<u64> {
    let value: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(value.unwrap_or(0) as u64)
}

/// The per-database secret for resource ids, created on first open.
pub(super) fn instance_secret(conn: &Connection) -> Result<Vec<u8>, StoreError> {
    let existing: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'instance_secret'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    if let Some(secret) = existing {
        return Ok(secret);
    }
    let secret: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('instance_secret', ?1)",
        params![secret],
    )
    .map_err(backend)?;
    Ok(secret)
}
