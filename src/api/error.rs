//! API errors as Google's envelope (docs/api.md §10).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::protocol::ErrorEnvelope;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            reason,
            message: message.into(),
        }
    }

    /// A field or value the caller must fix.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn required(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "required", message)
    }

    /// A filter that cannot be used (docs/api.md §15), with where in it and why.
    pub fn invalid_filter(error: crate::filter::FilterError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalidFilter", error.to_string())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "notFound", message)
    }
}

/// The content type of every error answer.
pub const CONTENT_TYPE: &str = "application/json; charset=UTF-8";

impl ApiError {
    /// The envelope, as an answer's body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorEnvelope::new(
            self.status.as_u16(),
            self.reason,
            self.message.as_str(),
        ))
        .expect("the envelope always serialises")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        (self.status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateChannel(id) => {
                ApiError::invalid(format!("a live channel with id {id:?} already exists"))
                    .with_reason("channelIdNotUnique")
            }
            StoreError::TooManyChannels(limit) => ApiError::new(
                StatusCode::FORBIDDEN,
                "quotaExceeded",
                format!("this API key already holds {limit} live channels, the most it may; stop some first"),
            ),
            StoreError::WatcherConflict { rule, existing: (id, pattern) } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{rule}: watcher {id} with pattern {pattern} already sends to this endpoint"),
            ),
            StoreError::NotFound => ApiError::not_found("not found"),
            StoreError::IdempotencyConflict => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "this Idempotency-Key was already used with a different request body",
            ),
            StoreError::Backend(msg) => {
                tracing::error!(error = %msg, "storage failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "backendError",
                    "the store could not complete the request; nothing was changed; try again",
                )
            }
            StoreError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backendError",
                "the gateway is shutting down; try again",
            ),
        }
    }
}

impl ApiError {
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }
}
