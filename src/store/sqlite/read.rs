//! Reads: read-only connections on blocking threads, and the row mappings.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::schema::backend;
use crate::model::{
    ChannelKind, ChannelSpec, Coverage, Event, Failure, Outcome, OutcomeRecord, OutcomeStatus,
    RemovedChannel, SharedEvent, StoredChannel,
};
use crate::store::{sql_under, StoreError};

/// Read-only connections, opened on demand and reused. WAL lets them read while the
/// writer commits.
pub(super) struct ReadPool {
    pub path: PathBuf,
    pub idle: Arc<Mutex<Vec<Connection>>>,
}

impl ReadPool {
    pub async fn with<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let path = self.path.clone();
        let idle = self.idle.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = idle.lock().unwrap().pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    conn.busy_timeout(std::time::Duration::from_secs(5))?;
                    conn
                }
            };
            let result = read(&conn);
            idle.lock().unwrap().push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map_err(backend)
    }
}

/// Binds `coverage`'s paths as the parameters after `values`; their placeholders.
pub(super) fn bind_paths(coverage: &Coverage, values: &mut Vec<Value>) -> Vec<String> {
    coverage
        .paths()
        .iter()
        .map(|path| {
            values.push(Value::Text(path.clone()));
            format!("?{}", values.len())
        })
        .collect()
}

/// SQL for "`column` is covered by `coverage`", its paths bound after `values`.
pub(super) fn coverage_sql(column: &str, coverage: &Coverage, values: &mut Vec<Value>) -> String {
    sql_under(column, bind_paths(coverage, values))
}

pub(super) fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SharedEvent> {
    let changed: String = row.get(5)?;
    Ok(Arc::new(Event {
        seq: row.get::<_, i64>(0)? as u64,
        time_ms: row.get(1)?,
        resource: row.get(2)?,
        state: row.get(3)?,
        data: row.get::<_, Option<Vec<u8>>>(4)?.map(Bytes::from),
        changed: changed
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        metadata: row.get(6)?,
    }))
}

pub(super) fn channel_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredChannel> {
    let params = ChannelSpec::params_from_json(&row.get::<_, String>(9)?);
    Ok(StoredChannel {
        pk: row.get(0)?,
        spec: Arc::new(ChannelSpec {
            owner: row.get(1)?,
            id: row.get(2)?,
            resource: row.get(3)?,
            resource_id: row.get(4)?,
            resource_uri: row.get(5)?,
            address: row.get(6)?,
            token: row.get(7)?,
            expiration_ms: row.get(8)?,
            params,
            payload: row.get(10)?,
            signing_secret: row.get(11)?,
            created_ms: row.get(12)?,
            kind: ChannelKind::parse(&row.get::<_, String>(16)?),
            within: row
                .get::<_, Option<String>>(19)?
                .map(|lines| Box::new(Coverage::from_lines(&lines))),
        }),
        start_seq: row.get::<_, i64>(13)? as u64,
        progress_seq: row.get::<_, i64>(14)? as u64,
        synced: row.get(15)?,
        disabled: row.get(17)?,
        failing_since_ms: row.get(18)?,
    })
}

/// Columns: outcome columns, then the event's resource and metadata (LEFT JOIN).
pub(super) fn outcome_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<OutcomeRecord> {
    let status: String = row.get(4)?;
    Ok(OutcomeRecord {
        outcome: Outcome {
            channel_pk: row.get(0)?,
            seq: row.get::<_, i64>(1)? as u64,
            message_number: row.get::<_, i64>(2)? as u64,
            state: row.get(3)?,
            status: OutcomeStatus::parse(&status).unwrap_or(OutcomeStatus::Pending),
            attempts: row.get(5)?,
            last_status: row.get(6)?,
            last_error: Failure::from_columns(row.get(12)?, row.get(7)?, row.get(6)?),
            at_ms: row.get(8)?,
            next_retry_ms: row.get(9)?,
            recent: row
                .get::<_, Option<String>>(13)?
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_default(),
            first_attempt_ms: row.get(14)?,
        },
        resource: row.get(10)?,
        metadata: row.get(11)?,
    })
}

/// Columns: `REMOVED_COLUMNS`.
pub(super) fn removed_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RemovedChannel> {
    let params = ChannelSpec::params_from_json(&row.get::<_, String>(8)?);
    Ok(RemovedChannel {
        spec: ChannelSpec {
            owner: row.get(0)?,
            id: row.get(1)?,
            kind: ChannelKind::parse(&row.get::<_, String>(2)?),
            resource: row.get(3)?,
            resource_id: row.get(4)?,
            resource_uri: row.get(5)?,
            address: row.get(6)?,
            expiration_ms: row.get(7)?,
            params,
            created_ms: row.get(9)?,
            token: None,
            payload: true,
            signing_secret: None,
            within: None,
        },
        state: row.get(10)?,
        reason: row.get(11)?,
        removed_ms: row.get(12)?,
    })
}
