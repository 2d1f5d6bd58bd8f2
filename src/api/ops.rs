//! Operations endpoints: `/healthz`, `/metrics`, and the answers for unknown routes.

use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::IntoResponse;

use super::error::ApiError;
use super::AppState;

pub async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// Prometheus text. An operator's call: with keys configured it needs the admin scope.
pub async fn metrics(
    State(app): State<AppState>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    app.keys
        .authorize(&headers, &uri, super::auth::Scope::Admin)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    ))
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "httpMethodNotAllowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
