//! `GET /v1/openapi.json`: the OpenAPI document of every endpoint, `docs/openapi.json`
//! byte for byte. It needs no key (`require_key`), like `/healthz`.

use axum::http::{header, Uri};
use axum::response::IntoResponse;

use super::error::ApiError;
use super::query::Query;

/// The committed document, compiled in.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

pub async fn document(uri: Uri) -> Result<impl IntoResponse, ApiError> {
    // No parameter but `key` (docs/api.md §14), like every other `/v1` endpoint.
    Query::parse(&uri, &[])?;
    Ok(([(header::CONTENT_TYPE, "application/json")], DOCUMENT))
}
