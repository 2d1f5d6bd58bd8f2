//! Tables of the PostgreSQL store, as versioned migrations run at startup. Several
//! processes may start at once: a session advisory lock lets one migrate while the
//! others wait, then find nothing left to do.

use tokio_postgres::Client;

use super::partitions::{self, PartitionSize};
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
    // The log and the delivery log partitioned by position (`partitions.rs`): retention
    // drops whole partitions instead of deleting rows. Converted in place: before this
    // step, the views that read them are set aside; the step renames the plain tables
    // and makes partitioned ones like them (whatever columns and indexes earlier steps
    // gave them; `LIKE` names the indexes it copies after the table and columns, and
    // the known ones get their names back); after it, `partitions::convert` makes the
    // partitions, moves the rows, drops the old tables and makes the views again.
    r#"
ALTER TABLE events RENAME TO events_unpartitioned;
ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey;
ALTER INDEX events_by_resource RENAME TO events_unpartitioned_by_resource;
CREATE TABLE events (LIKE events_unpartitioned INCLUDING ALL) PARTITION BY RANGE (seq);
ALTER INDEX events_resource_seq_idx RENAME TO events_by_resource;

ALTER TABLE outcomes RENAME TO outcomes_unpartitioned;
ALTER INDEX outcomes_pkey RENAME TO outcomes_unpartitioned_pkey;
ALTER INDEX outcomes_by_time RENAME TO outcomes_unpartitioned_by_time;
ALTER INDEX outcomes_pending RENAME TO outcomes_unpartitioned_pending;
CREATE TABLE outcomes (LIKE outcomes_unpartitioned INCLUDING ALL) PARTITION BY RANGE (seq);
ALTER INDEX outcomes_at_ms_idx RENAME TO outcomes_by_time;
ALTER INDEX outcomes_channel_pk_idx RENAME TO outcomes_pending;
-- Delivery-log entries at a position whose partition was dropped already (a replay of
-- an old event): pruned row by row.
CREATE TABLE outcomes_default PARTITION OF outcomes DEFAULT;
"#,
    // Parallel commits (docs/api.md §13): no lock is held from a transaction's first
    // write to its commit. A writing transaction's first statement takes its positions
    // and its transaction id together, under a lock held for that statement only, so
    // that positions and transaction ids grow together; readers read only events whose
    // transaction is older than every transaction still in progress. A transaction
    // that commits early is thereby shown only once every position below its own is
    // settled, and none can appear later below one a reader has seen.
    r#"
ALTER TABLE events ADD COLUMN tx xid8;
ALTER TABLE events ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
CREATE SEQUENCE log_positions;
SELECT setval('log_positions', GREATEST(seq, 1), seq > 0) FROM log_head;
-- The head when the log moved to parallel commits (positions at or below it may be
-- pruned or never used): the least the head can be.
CREATE TABLE log_floor (id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id), seq BIGINT NOT NULL);
INSERT INTO log_floor (id, seq) SELECT TRUE, seq FROM log_head;
DROP TABLE log_head;

-- `n` positions and the transaction's id, under a lock only this statement holds. It
-- must be the transaction's first write: an id taken earlier could be older than a
-- transaction that takes its positions first. (A session lock, released before the
-- statement ends; should the statement fail halfway, the writer closes its
-- connection, which releases it.)
CREATE FUNCTION take_positions(n BIGINT, OUT last BIGINT, OUT tx xid8) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock('log_positions'::regclass::oid::int, 0);
    tx := pg_current_xact_id();
    last := nextval('log_positions') + n - 1;
    IF n > 1 THEN
        PERFORM setval('log_positions', last);
    END IF;
    PERFORM pg_advisory_unlock('log_positions'::regclass::oid::int, 0);
END $$;

-- What readers read: events of transactions older than any in progress (rows from
-- before this step have no id and are settled long since).
CREATE VIEW visible_events AS SELECT * FROM events
    WHERE tx IS NULL OR tx < (SELECT pg_snapshot_xmin(pg_current_snapshot()));
CREATE VIEW log_head AS SELECT GREATEST(
    (SELECT seq FROM log_floor),
    (SELECT seq FROM visible_events ORDER BY seq DESC LIMIT 1),
    (SELECT convert_from(value, 'UTF8')::BIGINT FROM meta WHERE key = 'pruned_through')) AS seq;

-- The polling index without a row every writer locks: each transaction appends what it
-- changes, and a fold (`polling_index.rs`) moves settled changes into `prefixes`.
CREATE TABLE prefix_changes (
    path TEXT COLLATE "C" NOT NULL,
    last_seq BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    collection BOOLEAN NOT NULL,
    tx xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX prefix_changes_by_path ON prefix_changes (path, last_seq);
CREATE VIEW polling_index AS
    SELECT path, last_seq, last_ms, collection FROM prefixes
    UNION ALL
    SELECT path, last_seq, last_ms, collection FROM prefix_changes
        WHERE tx < (SELECT pg_snapshot_xmin(pg_current_snapshot()));
"#,
    r#"
-- A channel's filter (docs/api.md §16), in its canonical form; NULL: none.
ALTER TABLE channels ADD COLUMN filter TEXT;
"#,
    r#"
-- The last notification a channel sent, where its filter moved it past events it did
-- not send; NULL: its progress.
ALTER TABLE channels ADD COLUMN sent_seq BIGINT;
UPDATE channels SET sent_seq = progress_seq WHERE synced;
"#,
    r#"
-- How a channel authenticates to its endpoint (docs/api.md §17), secrets included;
-- NULL: it does not.
ALTER TABLE channels ADD COLUMN auth TEXT;
"#,
    r#"
-- The trace context of the publish that appended an event (docs/api.md §18), as its
-- traceparent; NULL: none. The view that reads the log is made again to show it.
ALTER TABLE events ADD COLUMN trace_context TEXT;
CREATE OR REPLACE VIEW visible_events AS SELECT * FROM events
    WHERE tx IS NULL OR tx < (SELECT pg_snapshot_xmin(pg_current_snapshot()));
"#,
    r#"
-- The expiration a channel's channel.expiring event was published for (docs/api.md
-- §18); NULL: none yet.
ALTER TABLE channels ADD COLUMN expiring_told_ms BIGINT;
"#,
];

/// The step that `jobs::upgrade_watchers` runs before.
const WATCHERS_UPGRADED: usize = 3;

/// The step that partitions the log and the delivery log (`partitions::convert`).
const PARTITIONED: usize = 4;

/// Brings the schema up to the latest version. Everything happens under the lock,
/// the migrations table's creation included: `CREATE TABLE IF NOT EXISTS` run by two
/// processes at the same moment can fail in either ("type … already exists"). Under
/// the lock the table is created only when missing, as `IF NOT EXISTS` would make the
/// server send a notice on every start, which the log shows.
pub async fn migrate(client: &mut Client, size: PartitionSize) -> Result<(), StoreError> {
    migrate_to(client, MIGRATIONS.len(), size).await
}

/// Brings the schema up to version `version` (tests start from older versions).
async fn migrate_to(
    client: &mut Client,
    version: usize,
    size: PartitionSize,
) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    let result = apply_pending(client, version, size).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg);
    result.and(unlocked.map(drop))
}

async fn apply_pending(
    client: &mut Client,
    version: usize,
    size: PartitionSize,
) -> Result<(), StoreError> {
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
    // Each step not recorded as applied runs, in order (always the newest ones, but
    // for a database an operator took a step back by hand).
    let applied: std::collections::HashSet<i32> = client
        .query("SELECT version FROM watchwire_migrations", &[])
        .await
        .map_err(pg)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let steps = MIGRATIONS.iter().enumerate().take(version);
    for (index, step) in steps.filter(|(index, _)| !applied.contains(&(*index as i32 + 1))) {
        let version = index as i32 + 1;
        let tx = client.transaction().await.map_err(pg)?;
        if index == WATCHERS_UPGRADED {
            jobs::upgrade_watchers(&mut On(&tx), crate::model::now_ms()).await?;
        }
        let views = match index {
            PARTITIONED => partitions::set_aside_views(&tx).await?,
            _ => Vec::new(),
        };
        tx.batch_execute(step).await.map_err(pg)?;
        if index == PARTITIONED {
            partitions::convert(&tx, size, views).await?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{event, Place};
    use crate::store::postgres::{pool, tls::Config, PgStore};
    use crate::store::Store;

    /// What a gateway of the previous schema left: a log pruned through 100 with its
    /// head at 2600, a channel at 2000, and its delivery log from its start (50), with
    /// a pending entry.
    const OLD_DATA: &str = r#"
UPDATE log_head SET seq = 2600;
INSERT INTO meta (key, value) VALUES ('pruned_through', convert_to('100', 'UTF8'));
INSERT INTO events (seq, time_ms, resource, state, data, changed, metadata)
    SELECT g, 1000 + g, '/m/' || g, 'exists', convert_to('{"n":' || g || '}', 'UTF8'),
           CASE WHEN g % 2 = 0 THEN 'a,b' ELSE '' END, CASE WHEN g % 3 = 0 THEN '{"by":"x"}' END
    FROM generate_series(101, 2600) g;
INSERT INTO channels (owner, id, resource, resource_id, resource_uri, address, params, payload, created_ms,
                      start_seq, progress_seq, synced)
    VALUES ('o', 'c', '/m', 'rid', 'http://gw/m', 'http://127.0.0.1:9/', '{}', TRUE, 0, 50, 2000, TRUE);
INSERT INTO outcomes (channel_pk, seq, message_number, state, status, attempts, at_ms, last_error)
    SELECT pk, g, g + 1, 'exists', CASE WHEN g = 1999 THEN 'pending' ELSE 'delivered' END, 1, 5000 + g,
           CASE WHEN g % 7 = 0 THEN 'refused' END
    FROM channels, generate_series(50, 1999) g;
"#;

    /// A step another change may put before this one: a column, an index and views on
    /// the log, which the conversion keeps.
    const ANOTHER_STEP: &str = r#"
ALTER TABLE events ADD COLUMN origin TEXT NOT NULL DEFAULT 'here';
CREATE INDEX events_by_origin ON events (origin);
CREATE VIEW local_events AS SELECT * FROM events WHERE origin = 'here';
CREATE VIEW newest_local AS SELECT (SELECT seq FROM local_events ORDER BY seq DESC LIMIT 1) AS seq;
"#;

    /// Every row of both logs, as text.
    async fn fingerprint(client: &Client) -> Vec<String> {
        let mut prints = Vec::new();
        // The columns of the old schema: later steps may add more.
        let events = "(t.seq, t.time_ms, t.resource, t.state, t.data, t.changed, t.metadata)";
        for (table, row, order) in [
            ("events", events, "seq"),
            ("outcomes", "t", "channel_pk, seq"),
        ] {
            let sql = format!(
                "SELECT count(*)::text || ' ' || md5(string_agg({row}::text, '|' ORDER BY {order})) FROM {table} t"
            );
            prints.push(client.query_one(&sql, &[]).await.unwrap().get(0));
        }
        prints
    }

    async fn one(client: &Client, sql: &str) -> String {
        client.query_one(sql, &[]).await.unwrap().get(0)
    }

    async fn previous_schema_migrates_keeping_every_row(another_step_first: bool) {
        let Some((_schema, url)) = Place::postgres_and_url().await else {
            return;
        };
        let config: Config = url.parse().unwrap();
        let mut client = pool::connect(&config).await.unwrap();
        let size = PartitionSize::Adaptive;
        migrate_to(&mut client, PARTITIONED, size).await.unwrap();
        client.batch_execute(OLD_DATA).await.unwrap();
        if another_step_first {
            client.batch_execute(ANOTHER_STEP).await.unwrap();
        }
        let before = fingerprint(&client).await;
        assert!(before[0].starts_with("2500 ") && before[1].starts_with("1950 "));

        migrate(&mut client, size).await.unwrap();
        assert_eq!(fingerprint(&client).await, before, "every row, as it was");
        let kinds = "SELECT string_agg(relkind::text, '' ORDER BY relname) FROM pg_class
                     WHERE relname IN ('events', 'outcomes') AND relnamespace = current_schema()::regnamespace";
        assert_eq!(one(&client, kinds).await, "pp", "both are partitioned");
        let indexes = "SELECT string_agg(indexname, ' ' ORDER BY indexname) FROM pg_indexes
                       WHERE tablename IN ('events', 'outcomes') AND schemaname = current_schema()";
        let expected = match another_step_first {
            false => "events_by_resource events_pkey outcomes_by_time outcomes_pending outcomes_pkey",
            true => "events_by_resource events_origin_idx events_pkey outcomes_by_time outcomes_pending outcomes_pkey",
        };
        assert_eq!(one(&client, indexes).await, expected);
        let leftovers = "SELECT count(*)::text FROM pg_class WHERE relname LIKE '%unpartitioned%'
                         AND relnamespace = current_schema()::regnamespace";
        assert_eq!(one(&client, leftovers).await, "0");
        if another_step_first {
            // (Not what they show: that depends on the transactions in progress in the
            // whole database, which other tests run.)
            let reads = "SELECT string_agg(DISTINCT r.ev_class::regclass::text || ' reads ' || d.refobjid::regclass::text, ', ')
                         FROM pg_depend d JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
                         WHERE d.refobjid IN ('events'::regclass, 'local_events'::regclass) AND d.deptype = 'n'
                           AND r.ev_class <> d.refobjid";
            assert_eq!(
                one(&client, reads).await,
                "local_events reads events, newest_local reads local_events, visible_events reads events",
                "its views read the new log"
            );
            one(&client, "SELECT COALESCE(seq, 0)::text FROM newest_local").await;
        }
        let first = "SELECT min(relname) FROM pg_class WHERE relname LIKE 'events\\_101\\_%'
                     AND relnamespace = current_schema()::regnamespace";
        assert_eq!(one(&client, first).await, "events_101_1100");
        drop(client);

        // The store goes on from where the old one was, and prunes by partition.
        let store = PgStore::open(&url, "migrated").await.unwrap();
        assert_eq!(store.pruned_through(), 100);
        let receipt = store.append(vec![event("/m/new")], None).await.unwrap();
        assert_eq!(receipt.last_seq, 2601);
        let everything = crate::model::now_ms() + 1;
        while store.prune(everything, everything).await.unwrap().more {}
        // The channel is at 2000: the partition 101..=1100 goes, 1101..=2100 stays.
        assert_eq!(store.pruned_through(), 1100);
        assert_eq!(store.read_log(0, 1).await.unwrap()[0].seq, 1101);
        let pending = store.awaiting_retry().await.unwrap();
        assert_eq!(pending.iter().map(|o| o.seq).collect::<Vec<_>>(), [1999]);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_of_the_previous_schema_migrates_keeping_every_row() {
        previous_schema_migrates_keeping_every_row(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_migration_keeps_columns_indexes_and_views_an_earlier_step_added() {
        previous_schema_migrates_keeping_every_row(true).await;
    }
}
