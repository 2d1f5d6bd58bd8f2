//! SQLite's side of the shared SQL (`store::sql`): read-only connections on blocking
//! threads, statements run on a connection or inside the writer's transaction, and
//! rows and parameters as SQLite types them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, OpenFlags};

use crate::store::sql::{for_sqlite, Map, Params, Ran, ReadRows, Reads, Row, Value};
use crate::store::StoreError;

/// Read-only connections, opened on demand and reused. WAL lets them read while the
/// writer commits.
pub struct ReadPool {
    pub path: PathBuf,
    pub idle: Arc<Mutex<Vec<Connection>>>,
}

impl ReadPool {
    pub async fn with<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
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
                    )
                    .map_err(backend)?;
                    conn.busy_timeout(std::time::Duration::from_secs(5))
                        .map_err(backend)?;
                    conn
                }
            };
            let result = read(&conn);
            idle.lock().unwrap().push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

impl Reads for ReadPool {
    fn read<T: Send + 'static>(&self, sql: String, params: Params, map: Map<T>) -> ReadRows<'_, T> {
        Box::pin(self.with(move |conn| Ok(run(conn, &sql, params, Some(map))?.1)))
    }
}

/// Runs one statement on `conn` (prepared once and cached): its rows mapped with
/// `map`, or how many rows it changed.
pub fn run<T>(conn: &Connection, sql: &str, params: Params, map: Option<Map<T>>) -> Ran<T> {
    let mut statement = conn.prepare_cached(&for_sqlite(sql)).map_err(backend)?;
    let params = params_from_iter(params.iter());
    let Some(map) = map else {
        let changed = statement.execute(params).map_err(backend)?;
        return Ok((changed as u64, Vec::new()));
    };
    let mut rows = statement.query(params).map_err(backend)?;
    let mut mapped = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        mapped.push(map(&SqliteRow(row))?);
    }
    Ok((mapped.len() as u64, mapped))
}

pub fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::from(rusqlite::types::Null),
            Value::Int(v) => ToSqlOutput::from(*v),
            Value::Text(s) => ToSqlOutput::from(s.as_str()),
            Value::Bytes(b) => ToSqlOutput::from(b.as_slice()),
            Value::Bool(b) => ToSqlOutput::from(*b),
        })
    }
}

/// A row as the shared mappings read it. SQLite types values, not columns: a value is
/// read as what the mapping asks when it can be.
struct SqliteRow<'a, 'b>(&'a rusqlite::Row<'b>);

impl SqliteRow<'_, '_> {
    fn value(&self, i: usize) -> Result<ValueRef<'_>, StoreError> {
        self.0.get_ref(i).map_err(backend)
    }

    fn mismatch(&self, i: usize, wanted: &str) -> StoreError {
        StoreError::Backend(format!("column {i} does not hold {wanted}"))
    }
}

impl Row for SqliteRow<'_, '_> {
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?
            .ok_or_else(|| self.mismatch(i, "an integer"))
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.value(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v)),
            _ => Err(self.mismatch(i, "an integer")),
        }
    }

    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?.ok_or_else(|| self.mismatch(i, "text"))
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.value(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => Ok(Some(String::from_utf8_lossy(t).into_owned())),
            _ => Err(self.mismatch(i, "text")),
        }
    }

    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.value(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) | ValueRef::Text(b) => Ok(Some(b.to_vec())),
            // Older stores kept numbers of the `meta` table as integers.
            ValueRef::Integer(v) => Ok(Some(v.to_string().into_bytes())),
            ValueRef::Real(_) => Err(self.mismatch(i, "bytes")),
        }
    }

    fn bool(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.int(i)? != 0)
    }
}
