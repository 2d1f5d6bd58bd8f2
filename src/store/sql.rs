//! The SQL both backends speak, written once. Statements are written with PostgreSQL's
//! numbered placeholders (`$1`); SQLite reads them as `?1` ([`for_sqlite`]). Everything
//! else in them is SQL both databases take alike (upserts with `ON CONFLICT … DO
//! UPDATE`, `RETURNING`, `CASE` for a least or greatest, `CAST(… AS TEXT)`), so a
//! statement, its column list and its row mapping exist once. A backend contributes
//! what differs: how it runs a statement and reads a row.

use crate::endpoint_auth::EndpointAuth;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use super::StoreError;
use crate::model::{
    ChannelKind, ChannelSpec, Collection, Coverage, Event, Failure, Outcome, OutcomeRecord,
    OutcomeStatus, RemovedChannel, ResourceState, Seq, SharedEvent, StoredChannel,
};

/// A parameter of a statement. Each backend binds it as its column expects (an
/// integer into a PostgreSQL `INT4` or `INT8`, a boolean into an SQLite integer).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        // Positions and counts stay far below i64::MAX; a quota beyond it is no quota.
        Value::Int(v.min(i64::MAX as u64) as i64)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(v.into())
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&Box<str>> for Value {
    fn from(v: &Box<str>) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// Parameters, each converted to a [`Value`].
#[macro_export]
macro_rules! sql_params {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::sql::Value::from($value)),*]
    };
}
pub use crate::sql_params as params;

/// One row of a result, read by column position.
pub trait Row {
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError>;
    fn bool(&self, i: usize) -> Result<bool, StoreError>;
}

/// How a row becomes a value. A plain function, so a backend may run it on another
/// thread (SQLite reads on blocking threads).
pub type Map<T> = fn(&dyn Row) -> Result<T, StoreError>;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A statement's parameters.
pub type Params = Vec<Value>;

/// A statement's rows, mapped.
pub type Rows<T> = Result<Vec<T>, StoreError>;

/// What a statement run by [`Statements::run`] gave: how many rows it changed (or
/// returned), and its rows when it was run for them.
pub type Ran<T> = Result<(u64, Vec<T>), StoreError>;

/// A backend's read connections: one statement at a time, each on a connection the
/// backend lends for it.
pub trait Reads: Send + Sync {
    /// Runs a statement that returns rows, each mapped with `map`.
    fn read<T: Send + 'static>(&self, sql: String, params: Params, map: Map<T>) -> ReadRows<'_, T>;
}

pub type ReadRows<'a, T> = BoxFuture<'a, Rows<T>>;

/// Statements inside the writer's transaction, or on a connection outside it (a
/// migration). Its futures are not required to be `Send`: SQLite's transaction borrows
/// a connection that stays on the writer's thread.
#[allow(async_fn_in_trait)]
pub trait Statements {
    /// Runs one statement: with `map`, for its rows; without, for how many rows it
    /// changed. What a backend implements; the two below are how callers use it.
    async fn run<T>(&mut self, sql: &str, params: Params, map: Option<Map<T>>) -> Ran<T>;

    /// Runs a statement that returns rows, each mapped with `map`.
    async fn query<T>(&mut self, sql: &str, params: Params, map: Map<T>) -> Rows<T> {
        Ok(self.run(sql, params, Some(map)).await?.1)
    }

    /// Runs a statement; the number of rows it changed.
    async fn execute(&mut self, sql: &str, params: Params) -> Result<u64, StoreError> {
        Ok(self.run::<()>(sql, params, None).await?.0)
    }
}

/// A statement in SQLite's spelling: `$n` placeholders become `?n`. Runs for every
/// statement executed, so it copies the text between placeholders in whole slices
/// rather than a character at a time.
pub fn for_sqlite(sql: &str) -> Cow<'_, str> {
    let Some(first) = sql.find('$') else {
        return Cow::Borrowed(sql);
    };
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut at = Some(first);
    while let Some(dollar) = at {
        // `$` is ASCII, so both sides of it are character boundaries.
        if bytes.get(dollar + 1).is_some_and(u8::is_ascii_digit) {
            out.push_str(&sql[copied..dollar]);
            out.push('?');
            copied = dollar + 1;
        }
        at = sql[dollar + 1..].find('$').map(|next| dollar + 1 + next);
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// The first row's first column, for statements that always return one row.
pub fn single<T>(rows: Vec<T>) -> Result<T, StoreError> {
    rows.into_iter()
        .next()
        .ok_or_else(|| StoreError::Backend("a statement returned no row".into()))
}

/// SQL for "`column` is covered by `coverage`" (on or below one of its paths,
/// docs/api.md §1), its paths bound after `params`. Each path: equal, or between "p/"
/// and "p0" ('0' follows '/') where p is the path without a trailing `/`, so that `/`
/// alone takes in every path.
pub fn covered(column: &str, coverage: &Coverage, params: &mut Vec<Value>) -> String {
    under(column, bind_paths(coverage, params))
}

/// [`covered`] for paths that are SQL expressions (placeholders, columns). `/` does
/// not cover the gateway's operational events (`protocol::resource::covers`).
pub fn under(column: &str, paths: impl IntoIterator<Item = String>) -> String {
    let operational = crate::protocol::resource::OPERATIONAL;
    let each: Vec<String> = paths
        .into_iter()
        .map(|p| {
            format!(
                "(({column} = {p} OR ({column} > rtrim({p}, '/') || '/' AND {column} < rtrim({p}, '/') || '0'))
                  AND ({p} <> '/' OR NOT ({column} = '{operational}' OR ({column} > '{operational}/' AND {column} < '{operational}0'))))"
            )
        })
        .collect();
    format!("({})", each.join(" OR "))
}

/// Binds the paths of `coverage` after `params`; their placeholders.
pub fn bind_paths(coverage: &Coverage, params: &mut Vec<Value>) -> Vec<String> {
    coverage
        .paths()
        .iter()
        .map(|path| {
            params.push(Value::Text(path.clone()));
            format!("${}", params.len())
        })
        .collect()
}

/// Columns of `events` in the order [`event_at`] reads them.
pub const EVENT_COLUMNS: &str =
    "seq, time_ms, resource, state, data, changed, metadata, trace_context";

/// Columns of `channels` in the order [`channel_from_row`] reads them.
pub const CHANNEL_COLUMNS: &str = "pk, owner, id, resource, resource_id, resource_uri, address, token, expiration_ms, params, payload,
     signing_secret, created_ms, start_seq, progress_seq, synced, kind, disabled, failing_since_ms, within, filter, sent_seq, auth";

/// Columns of `outcomes o` in the order [`outcome_from_row`] reads them; the event's
/// resource and metadata follow when the statement joins `events e`.
pub const OUTCOME_COLUMNS: &str = "o.channel_pk, o.seq, o.message_number, o.state, o.status, o.attempts, o.last_status, o.last_error, o.at_ms,
     o.next_retry_ms, o.last_reason, o.recent, o.first_attempt_ms";

/// Columns of `removed_channels` in the order [`removed_from_row`] reads them.
pub const REMOVED_COLUMNS: &str = "owner, id, kind, resource, resource_id, resource_uri, address, expiration_ms, params, created_ms, state, reason, removed_ms";

/// Columns of `prefixes` in the order [`collection_from_row`] reads them.
pub const COLLECTION_COLUMNS: &str = "path, last_seq, last_ms";

pub fn event_from_row(row: &dyn Row) -> Result<SharedEvent, StoreError> {
    event_at(row, 0)
}

/// The table of removed channels' records, the same in both schemas (a macro, so that
/// each backend's migration can `concat!` it into its text). SQLite reads `BIGINT` as
/// its `INTEGER`.
macro_rules! removed_channels_table {
    () => {
        r#"CREATE TABLE removed_channels (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_uri TEXT NOT NULL,
    address TEXT NOT NULL,
    expiration_ms BIGINT,
    params TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    removed_ms BIGINT NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX removed_channels_by_time ON removed_channels (removed_ms);
"#
    };
}
pub(crate) use removed_channels_table;

/// A stored resource state. Only valid states are ever stored; anything else is a
/// damaged database, not a reason to panic.
fn state_from(text: String) -> Result<ResourceState, StoreError> {
    ResourceState::parse(&text)
        .ok_or_else(|| StoreError::Backend(format!("the log holds an unknown state {text:?}")))
}

/// An event from [`EVENT_COLUMNS`] starting at column `first`.
pub fn event_at(row: &dyn Row, first: usize) -> Result<SharedEvent, StoreError> {
    let changed = row.text(first + 5)?;
    Ok(Arc::new(Event {
        seq: row.int(first)? as Seq,
        time_ms: row.int(first + 1)?,
        resource: row.text(first + 2)?,
        state: state_from(row.text(first + 3)?)?,
        data: row.opt_bytes(first + 4)?.map(Bytes::from),
        changed: changed
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        metadata: row.opt_text(first + 6)?,
        // Written by the gateway only; one that does not read is no trace, not an error.
        trace: row
            .opt_text(first + 7)?
            .and_then(|text| crate::model::TraceContext::parse(&text)),
    }))
}

pub fn channel_from_row(row: &dyn Row) -> Result<StoredChannel, StoreError> {
    Ok(StoredChannel {
        pk: row.int(0)?,
        spec: Arc::new(ChannelSpec {
            owner: row.text(1)?.into(),
            id: row.text(2)?.into(),
            resource: row.text(3)?.into(),
            resource_id: row.text(4)?.into(),
            resource_uri: row.text(5)?.into(),
            address: row.text(6)?.into(),
            token: row.opt_text(7)?.map(Into::into),
            expiration_ms: row.opt_int(8)?,
            params: ChannelSpec::params_from_json(&row.text(9)?),
            payload: row.bool(10)?,
            signing_secret: row.opt_text(11)?.map(Into::into),
            created_ms: row.int(12)?,
            kind: ChannelKind::parse(&row.text(16)?),
            within: row
                .opt_text(19)?
                .map(|lines| Box::new(Coverage::from_lines(&lines))),
            filter: filter_from(row.opt_text(20)?)?,
            auth: row
                .opt_text(22)?
                .map(|text| {
                    EndpointAuth::from_stored(&text).map(Box::new).map_err(|e| {
                        StoreError::Backend(format!("a stored auth does not parse: {e}"))
                    })
                })
                .transpose()?,
        }),
        start_seq: row.int(13)? as Seq,
        progress_seq: row.int(14)? as Seq,
        sent_seq: row.opt_int(21)?.map(|seq| seq as Seq),
        synced: row.bool(15)?,
        disabled: row.bool(17)?,
        failing_since_ms: row.opt_int(18)?,
    })
}

/// A stored filter: checked when it was given, so one that no longer parses is a
/// damaged database.
fn filter_from(text: Option<String>) -> Result<Option<Arc<crate::filter::Filter>>, StoreError> {
    text.map(|text| {
        crate::filter::Filter::from_text(&text)
            .map(Arc::new)
            .map_err(|e| StoreError::Backend(format!("a stored filter does not parse: {e}")))
    })
    .transpose()
}

/// [`OUTCOME_COLUMNS`] only.
pub fn outcome_from_row(row: &dyn Row) -> Result<Outcome, StoreError> {
    let last_status = row.opt_int(6)?.map(|s| s as u16);
    Ok(Outcome {
        channel_pk: row.int(0)?,
        seq: row.int(1)? as Seq,
        message_number: row.int(2)? as u64,
        state: state_from(row.text(3)?)?,
        status: OutcomeStatus::parse(&row.text(4)?).unwrap_or(OutcomeStatus::Pending),
        attempts: row.int(5)? as u32,
        last_status,
        last_error: Failure::from_columns(row.opt_text(10)?, row.opt_text(7)?, last_status),
        at_ms: row.int(8)?,
        next_retry_ms: row.opt_int(9)?,
        recent: row
            .opt_text(11)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
        first_attempt_ms: row.opt_int(12)?,
    })
}

/// [`OUTCOME_COLUMNS`], then the event's resource and metadata.
pub fn outcome_record_from_row(row: &dyn Row) -> Result<OutcomeRecord, StoreError> {
    Ok(OutcomeRecord {
        outcome: outcome_from_row(row)?,
        resource: row.opt_text(13)?,
        metadata: row.opt_text(14)?,
    })
}

pub fn removed_from_row(row: &dyn Row) -> Result<RemovedChannel, StoreError> {
    Ok(RemovedChannel {
        spec: ChannelSpec {
            owner: row.text(0)?.into(),
            id: row.text(1)?.into(),
            kind: ChannelKind::parse(&row.text(2)?),
            resource: row.text(3)?.into(),
            resource_id: row.text(4)?.into(),
            resource_uri: row.text(5)?.into(),
            address: row.text(6)?.into(),
            expiration_ms: row.opt_int(7)?,
            params: ChannelSpec::params_from_json(&row.text(8)?),
            created_ms: row.int(9)?,
            token: None,
            payload: true,
            signing_secret: None,
            within: None,
            filter: None,
            auth: None,
        },
        ended: row.text(10)?,
        reason: row.text(11)?,
        removed_ms: row.int(12)?,
    })
}

pub fn collection_from_row(row: &dyn Row) -> Result<Collection, StoreError> {
    Ok(Collection {
        path: row.text(0)?,
        last_seq: row.int(1)? as Seq,
        last_ms: row.int(2)?,
    })
}

/// A single integer column (a count, a position); NULL as `None`.
pub fn opt_int_from_row(row: &dyn Row) -> Result<Option<i64>, StoreError> {
    row.opt_int(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_reads_numbered_placeholders_as_its_own() {
        assert_eq!(
            for_sqlite("SELECT $1, $12 WHERE x = '$' AND y = $2"),
            "SELECT ?1, ?12 WHERE x = '$' AND y = ?2"
        );
        assert!(matches!(for_sqlite("SELECT 1"), Cow::Borrowed(_)));
        // A `$` at the end, doubled, or beside text that is not ASCII.
        assert_eq!(for_sqlite("$$1 'é$' $"), "$?1 'é$' $");
        assert_eq!(for_sqlite("é$9é"), "é?9é");
    }

    #[test]
    fn parameters_convert_from_what_callers_hold() {
        let none: Option<&str> = None;
        assert_eq!(
            params![1i64, "a", none, Some(2u64), true, u64::MAX],
            [
                Value::Int(1),
                Value::Text("a".into()),
                Value::Null,
                Value::Int(2),
                Value::Bool(true),
                Value::Int(i64::MAX)
            ]
        );
    }
}
