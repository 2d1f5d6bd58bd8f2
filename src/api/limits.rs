//! Request limits that answer with Google's envelope (docs/api.md §10): header size and
//! count (`431`) and a whole-request timeout (`408`), which also ends slow uploads.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub request_timeout: Duration,
}

pub async fn enforce(
    State(limits): State<RequestLimits>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    // Counted as on the wire: "name: value\r\n", plus the request line.
    let head_bytes = request.uri().to_string().len()
        + headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if head_bytes > limits.max_header_bytes {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headersTooLarge",
            format!(
                "the request line and headers take {head_bytes} bytes; the limit is {}",
                limits.max_header_bytes
            ),
        )
        .into_response();
    }
    if headers.len() > limits.max_headers {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headersTooLarge",
            format!(
                "the request has {} headers; the limit is {}",
                headers.len(),
                limits.max_headers
            ),
        )
        .into_response();
    }
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "requestTimeout",
            format!(
                "the request took longer than {:?} to arrive and be handled",
                limits.request_timeout
            ),
        )
        .into_response(),
    }
}
