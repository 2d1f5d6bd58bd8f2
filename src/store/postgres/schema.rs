//! Tables of the PostgreSQL store, as versioned migrations run at startup. Several
//! processes may start at once: a session advisory lock lets one migrate while the
//! others wait, then find nothing left to do.

use tokio_postgres::Client;

use super::pool::pg;
use super::rows::On;
use crate::store::jobs;
use crate::store::sql::removed_channels_table;
use crate::store::StoreError;

/// The key of the advisory lock that serialises migrations ("watchwire" in ASCII).
const MIGRATION_LOCK: i64 = 0x7761_7463_6877_6972;

/// Each step runs in its own transaction, once, in order. Paths and resources are
/// compared byte by byte (`COLLATE "C"`): "on or below /r" is a range of strings.
const MIGRATIONS: &[&str] = &[
    concat!(
        r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);

-- The log's head: one row, locked by every writing transaction. Positions are taken
-- from it in commit order, so a reader never sees a position appear below one it has
-- already seen (docs/api.md §13: no late-committing gap).
CREATE TABLE log_head (id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id), seq BIGINT NOT NULL);
INSERT INTO log_head (id, seq) VALUES (TRUE, 0);

CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    resource TEXT COLLATE "C" NOT NULL,
    state TEXT NOT NULL,
    data BYTEA,
    changed TEXT NOT NULL DEFAULT '',
    metadata TEXT
);
CREATE INDEX events_by_resource ON events (resource, seq);

CREATE TABLE prefixes (
    path TEXT COLLATE "C" PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    collection BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX prefixes_by_seq ON prefixes (last_seq);

CREATE TABLE channels (
    pk BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'channel',
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    resource TEXT COLLATE "C" NOT NULL,
    resource_id TEXT NOT NULL,
    resource_uri TEXT NOT NULL,
    address TEXT NOT NULL,
    token TEXT,
    expiration_ms BIGINT,
    params TEXT NOT NULL,
    payload BOOLEAN NOT NULL,
    signing_secret TEXT,
    created_ms BIGINT NOT NULL,
    start_seq BIGINT NOT NULL,
    progress_seq BIGINT NOT NULL,
    synced BOOLEAN NOT NULL DEFAULT FALSE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    failing_since_ms BIGINT,
    UNIQUE (owner, id)
);
CREATE INDEX channels_by_address ON channels (owner, address);
CREATE INDEX channels_by_expiration ON channels (expiration_ms) WHERE expiration_ms IS NOT NULL;

-- Live channels per owner, for the per-key quota: counted by the database in the
-- transaction that creates or removes a channel.
CREATE TABLE owner_counts (owner TEXT PRIMARY KEY, channels BIGINT NOT NULL CHECK (channels >= 0));

CREATE TABLE outcomes (
    channel_pk BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    message_number BIGINT NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    at_ms BIGINT NOT NULL,
    next_retry_ms BIGINT,
    last_reason TEXT,
    recent TEXT,
    first_attempt_ms BIGINT,
    PRIMARY KEY (channel_pk, seq)
);
CREATE INDEX outcomes_by_time ON outcomes (at_ms);
CREATE INDEX outcomes_pending ON outcomes (channel_pk) WHERE status = 'pending';

"#,
        removed_channels_table!(),
        r#"
CREATE TABLE idempotency (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    count BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_by_time ON idempotency (created_ms);
"#
    ),
    r#"
-- The nodes of a cluster (docs/api.md §13): each holds a lease it renews; a node whose
-- lease lapsed is reaped by the others, and its channels become unowned.
CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    lease_until_ms BIGINT NOT NULL,
    leaving BOOLEAN NOT NULL DEFAULT FALSE
);
-- Which node delivers a channel (NULL: none yet; a node claims it).
ALTER TABLE channels ADD COLUMN owner_node TEXT;
CREATE INDEX channels_by_owner_node ON channels (owner_node);
-- Channels removed by one node while another delivered them: the owner deletes the
-- row once it has stopped the channel, and the removing call answers after that.
CREATE TABLE removals (pk BIGINT PRIMARY KEY, owner_node TEXT NOT NULL, removed_ms BIGINT NOT NULL);
"#,
    r#"
-- A channel on `/` of a key limited to prefixes covers those prefixes, one a line
-- (docs/api.md §10.1); NULL: it covers its resource.
ALTER TABLE channels ADD COLUMN within TEXT;
"#,
    // Watcher endpoints are compared in their normal form (docs/api.md §9), and the
    // database itself refuses a second watcher of one owner with the same pattern and
    // endpoint, whichever node creates it. Before this step, code brings stored
    // watchers up to the rules (`upgrade_watchers`): SQL cannot normalise a URL.
    r#"
CREATE UNIQUE INDEX watchers_by_endpoint ON channels (owner, address, resource) WHERE kind = 'watcher';
"#,
];

/// The step that `jobs::upgrade_watchers` runs before.
const WATCHERS_UPGRADED: usize = 3;

/// Brings the schema up to the latest version. Everything happens under the lock,
/// the migrations table's creation included: `CREATE TABLE IF NOT EXISTS` run by two
/// processes at the same moment can fail in either ("type … already exists"). Under
/// the lock the table is created only when missing, as `IF NOT EXISTS` would make the
/// server send a notice on every start, which the log shows.
pub async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    let result = apply_pending(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg);
    result.and(unlocked.map(drop))
}

async fn apply_pending(client: &mut Client) -> Result<(), StoreError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('watchwire_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    if !exists {
        client
            .batch_execute(
                "CREATE TABLE watchwire_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await
            .map_err(pg)?;
    }
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM watchwire_migrations",
            &[],
        )
        .await
        .map_err(pg)?;
    let done: i32 = row.get(0);
    for (index, step) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        let version = index as i32 + 1;
        let tx = client.transaction().await.map_err(pg)?;
        if index == WATCHERS_UPGRADED {
            jobs::upgrade_watchers(&mut On(&tx), crate::model::now_ms()).await?;
        }
        tx.batch_execute(step).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO watchwire_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        tracing::info!(version, "migrated the PostgreSQL schema");
    }
    Ok(())
}

/// The per-database secret for resource ids, created by whichever process comes first,
/// and where pruning has got to (0 for a new log).
pub async fn open_state(client: &Client) -> Result<(Vec<u8>, u64), StoreError> {
    let mut on = On(client);
    let secret = jobs::instance_secret(&mut on).await?;
    let pruned_through = jobs::meta_u64(&mut on, "pruned_through").await?;
    Ok((secret, pruned_through))
}
