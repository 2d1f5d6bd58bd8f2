//! PostgreSQL's side of the shared SQL (`store::sql`): parameters bound as the
//! statement's column types ask, rows read by column type, and statements run on a
//! pooled connection or inside a transaction.

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::GenericClient;

use super::pool::pg;
use crate::store::sql::{Map, Params, Ran, Row, Rows, Statements, Value};
use crate::store::StoreError;

impl ToSql for Value {
    /// Binds as the server typed the parameter: a statement's integer parameter may be
    /// an `INT4` or an `INT8` column, its text a `BYTEA`.
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(s) if *ty == Type::BYTEA => s.as_bytes().to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Bytes(b) => b.to_sql(ty, out),
            Value::Bool(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl Row for tokio_postgres::Row {
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::Backend(format!("column {i} is NULL")))
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        let column = self
            .columns()
            .get(i)
            .ok_or_else(|| StoreError::Backend(format!("no column {i}")))?;
        match *column.type_() {
            Type::INT2 => self.try_get::<_, Option<i16>>(i).map(|v| v.map(i64::from)),
            Type::INT4 => self.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from)),
            _ => self.try_get::<_, Option<i64>>(i),
        }
        .map_err(pg)
    }

    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.try_get(i).map_err(pg)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.try_get(i).map_err(pg)
    }

    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.columns().get(i).map(|c| c.type_()) {
            Some(&Type::TEXT) => self
                .try_get::<_, Option<String>>(i)
                .map(|v| v.map(String::into_bytes)),
            _ => self.try_get(i),
        }
        .map_err(pg)
    }

    fn bool(&self, i: usize) -> Result<bool, StoreError> {
        self.try_get(i).map_err(pg)
    }
}

/// Statements on a connection or a transaction.
pub struct On<'a, C>(pub &'a C);

impl<C: GenericClient + Sync> Statements for On<'_, C> {
    async fn run<T>(&mut self, sql: &str, params: Params, map: Option<Map<T>>) -> Ran<T> {
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let Some(map) = map else {
            let changed = self.0.execute(sql, &params).await.map_err(pg)?;
            return Ok((changed, Vec::new()));
        };
        let rows = self.0.query(sql, &params).await.map_err(pg)?;
        let mapped = rows.iter().map(|row| map(row)).collect::<Rows<T>>()?;
        Ok((mapped.len() as u64, mapped))
    }
}
