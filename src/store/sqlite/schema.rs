//! Tables of the embedded store, and opening a connection the way every part needs it.

use rusqlite::Connection;

use super::read::backend;
use super::transaction::SqliteTx;
use crate::store::jobs;
use crate::store::sql::removed_channels_table;
use crate::store::writer::Transaction as _;
use crate::store::StoreError;

/// The schema as versioned steps: a database at `PRAGMA user_version` N gets steps
/// N.. applied in one transaction at open. Step 1 is idempotent (`IF NOT EXISTS`) so
/// that stores created before versioning (version 0, already holding it) pass it.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11];

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
const V2: &str = concat!(
    r#"
ALTER TABLE outcomes ADD COLUMN last_reason TEXT;
ALTER TABLE outcomes ADD COLUMN recent TEXT;
"#,
    removed_channels_table!(),
    r#"-- When a notification's first attempt began: the retry budget runs from it, across
-- restarts; notifications awaiting a retry are found at startup by the partial index.
ALTER TABLE outcomes ADD COLUMN first_attempt_ms INTEGER;
CREATE INDEX outcomes_pending ON outcomes (channel_pk) WHERE status = 'pending';
-- Live channels per owner, for the per-key quota: counted by the database in the
-- transaction that creates or removes a channel, never in a process's memory.
CREATE TABLE owner_counts (owner TEXT PRIMARY KEY, channels INTEGER NOT NULL CHECK (channels >= 0));
INSERT INTO owner_counts SELECT owner, COUNT(*) FROM channels GROUP BY owner;
-- Pruning removes polling entries whose events are all gone.
CREATE INDEX prefixes_by_seq ON prefixes (last_seq);
"#
);

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

/// The tables and reads both backends share: the node that delivers a channel (never
/// set here, as one process delivers every channel), and the log's head under the
/// name the shared statements read it by.
const V5: &str = r#"
ALTER TABLE channels ADD COLUMN owner_node TEXT;
CREATE VIEW log_head AS SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0) AS seq;
"#;

/// More names the shared reads use: where PostgreSQL's writers commit in parallel,
/// readers read the log and the polling index through views that show only what
/// every older transaction has settled; here, with one writer, they are the tables.
const V6: &str = r#"
CREATE VIEW visible_events AS SELECT * FROM events;
CREATE VIEW polling_index AS SELECT path, last_seq, last_ms, collection FROM prefixes;
"#;

/// A channel's filter (docs/api.md §16), in its canonical form; NULL: none.
const V7: &str = r#"
ALTER TABLE channels ADD COLUMN filter TEXT;
"#;

/// The last notification a channel sent, where its filter moved it past events it did
/// not send; NULL: its progress.
const V8: &str = r#"
ALTER TABLE channels ADD COLUMN sent_seq INTEGER;
UPDATE channels SET sent_seq = progress_seq WHERE synced;
"#;

/// How a channel authenticates to its endpoint (docs/api.md §17), secrets included;
/// NULL: it does not.
const V9: &str = r#"
ALTER TABLE channels ADD COLUMN auth TEXT;
"#;

/// The trace context of the publish that appended an event (docs/api.md §18), as its
/// `traceparent`; NULL: none.
const V10: &str = r#"
ALTER TABLE events ADD COLUMN trace_context TEXT;
"#;

/// The expiration a channel's `channel.expiring` event was published for (docs/api.md
/// §18); NULL: none yet.
const V11: &str = r#"
ALTER TABLE channels ADD COLUMN expiring_told_ms INTEGER;
"#;

/// The step that `jobs::upgrade_watchers` runs before.
const WATCHERS_UPGRADED: usize = 3;

/// Brings the schema up to the latest version, in one transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    let version = usize::try_from(version).unwrap_or(0);
    if version >= MIGRATIONS.len() {
        return Ok(());
    }
    let mut tx = SqliteTx::immediate(conn)?;
    for (index, step) in MIGRATIONS.iter().enumerate().skip(version) {
        if index == WATCHERS_UPGRADED {
            at_once(jobs::upgrade_watchers(&mut tx, crate::model::now_ms()))?;
        }
        tx.connection().execute_batch(step).map_err(backend)?;
    }
    tx.connection()
        .pragma_update(None, "user_version", MIGRATIONS.len() as i64)
        .map_err(backend)?;
    at_once(tx.commit()).map(drop)
}

/// Runs SQLite's side of a shared statement sequence: its statements never wait.
pub fn at_once<T>(work: impl std::future::Future<Output = T>) -> T {
    futures_util::FutureExt::now_or_never(work).expect("SQLite statements never wait")
}

/// The per-database secret for resource ids, created on first open, and how far the
/// log was pruned.
pub fn open_state(conn: &mut Connection) -> Result<(Vec<u8>, u64), StoreError> {
    let mut tx = SqliteTx::immediate(conn)?;
    let secret = at_once(jobs::instance_secret(&mut tx))?;
    let pruned_through = at_once(jobs::meta_u64(&mut tx, "pruned_through"))?;
    at_once(tx.commit())?;
    Ok((secret, pruned_through))
}
