//! Row mappings of the PostgreSQL store. Column lists are in the order these expect.

use std::sync::Arc;

use bytes::Bytes;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::model::{
    ChannelKind, ChannelSpec, Coverage, Event, Failure, Outcome, OutcomeRecord, OutcomeStatus,
    RemovedChannel, Seq, SharedEvent, StoredChannel,
};
use crate::store::sql_under;

pub const EVENT_COLUMNS: &str = "seq, time_ms, resource, state, data, changed, metadata";

pub const CHANNEL_COLUMNS: &str = "pk, owner, id, resource, resource_id, resource_uri, address, token, expiration_ms, params, payload,
     signing_secret, created_ms, start_seq, progress_seq, synced, kind, disabled, failing_since_ms, within";

pub const OUTCOME_COLUMNS: &str = "o.channel_pk, o.seq, o.message_number, o.state, o.status, o.attempts, o.last_status, o.last_error, o.at_ms,
     o.next_retry_ms, o.last_reason, o.recent, o.first_attempt_ms";

pub const REMOVED_COLUMNS: &str = "owner, id, kind, resource, resource_id, resource_uri, address, expiration_ms, params, created_ms, state, reason, removed_ms";

/// Binds `coverage`'s paths as the parameters after `params`; their placeholders.
pub fn bind_paths<'a>(
    coverage: &'a Coverage,
    params: &mut Vec<&'a (dyn ToSql + Sync)>,
) -> Vec<String> {
    coverage
        .paths()
        .iter()
        .map(|path| {
            params.push(path);
            format!("${}", params.len())
        })
        .collect()
}

/// SQL for "`column` is covered by `coverage`", its paths bound after `params`.
pub fn coverage_sql<'a>(
    column: &str,
    coverage: &'a Coverage,
    params: &mut Vec<&'a (dyn ToSql + Sync)>,
) -> String {
    sql_under(column, bind_paths(coverage, params))
}

pub fn event_from_row(row: &Row) -> SharedEvent {
    event_at(row, 0)
}

/// An event from `EVENT_COLUMNS` starting at column `first` of a row.
pub fn event_at(row: &Row, first: usize) -> SharedEvent {
    let changed: String = row.get(first + 5);
    Arc::new(Event {
        seq: row.get::<_, i64>(first) as Seq,
        time_ms: row.get(first + 1),
        resource: row.get(first + 2),
        state: row.get(first + 3),
        data: row.get::<_, Option<Vec<u8>>>(first + 4).map(Bytes::from),
        changed: changed
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        metadata: row.get(first + 6),
    })
}

pub fn channel_from_row(row: &Row) -> StoredChannel {
    StoredChannel {
        pk: row.get(0),
        spec: Arc::new(ChannelSpec {
            owner: row.get(1),
            id: row.get(2),
            resource: row.get(3),
            resource_id: row.get(4),
            resource_uri: row.get(5),
            address: row.get(6),
            token: row.get(7),
            expiration_ms: row.get(8),
            params: ChannelSpec::params_from_json(row.get(9)),
            payload: row.get(10),
            signing_secret: row.get(11),
            created_ms: row.get(12),
            kind: ChannelKind::parse(row.get(16)),
            within: row
                .get::<_, Option<&str>>(19)
                .map(|lines| Box::new(Coverage::from_lines(lines))),
        }),
        start_seq: row.get::<_, i64>(13) as Seq,
        progress_seq: row.get::<_, i64>(14) as Seq,
        synced: row.get(15),
        disabled: row.get(17),
        failing_since_ms: row.get(18),
    }
}

/// `OUTCOME_COLUMNS`, then (optionally) the event's resource and metadata.
pub fn outcome_from_row(row: &Row) -> OutcomeRecord {
    let status: String = row.get(4);
    let last_status = row.get::<_, Option<i32>>(6).map(|s| s as u16);
    let with_event = row.len() > 13;
    OutcomeRecord {
        outcome: Outcome {
            channel_pk: row.get(0),
            seq: row.get::<_, i64>(1) as Seq,
            message_number: row.get::<_, i64>(2) as u64,
            state: row.get(3),
            status: OutcomeStatus::parse(&status).unwrap_or(OutcomeStatus::Pending),
            attempts: row.get::<_, i32>(5) as u32,
            last_status,
            last_error: Failure::from_columns(row.get(10), row.get(7), last_status),
            at_ms: row.get(8),
            next_retry_ms: row.get(9),
            recent: row
                .get::<_, Option<String>>(11)
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_default(),
            first_attempt_ms: row.get(12),
        },
        resource: if with_event { row.get(13) } else { None },
        metadata: if with_event { row.get(14) } else { None },
    }
}

pub fn removed_from_row(row: &Row) -> RemovedChannel {
    RemovedChannel {
        spec: ChannelSpec {
            owner: row.get(0),
            id: row.get(1),
            kind: ChannelKind::parse(row.get(2)),
            resource: row.get(3),
            resource_id: row.get(4),
            resource_uri: row.get(5),
            address: row.get(6),
            expiration_ms: row.get(7),
            params: ChannelSpec::params_from_json(row.get(8)),
            created_ms: row.get(9),
            token: None,
            payload: true,
            signing_secret: None,
            within: None,
        },
        state: row.get(10),
        reason: row.get(11),
        removed_ms: row.get(12),
    }
}
