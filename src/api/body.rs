//! Reading JSON request bodies with Google-envelope errors for every failure.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::StatusCode;

use super::error::ApiError;
use super::AppState;

/// The raw body of a request, within the configured size limit.
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, ApiError> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "requestTooLarge",
                format!(
                    "the request body is larger than {} bytes, the most this gateway accepts",
                    app.config.max_body_bytes
                ),
            )
        };
        // A declared length over the limit is refused before any of it is read, rather
        // than waited for until the request times out.
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > app.config.max_body_bytes as u64) {
            return Err(too_large());
        }
        match Bytes::from_request(req, app).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(too_large())
            }
            Err(rejection) => Err(ApiError::invalid(format!(
                "the request body could not be read; the connection ended early or its \
                 chunked encoding is malformed ({rejection})"
            ))),
        }
    }
}

/// Parses a body as JSON, or says where it is broken.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(
            ApiError::required("the request body is empty; send a JSON object")
                .with_reason("parseError"),
        );
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid(format!("the request body is not valid JSON: {e}"))
            .with_reason("parseError")
    })
}

/// The JSON type of a value, for messages.
pub fn type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// At most the first 80 characters of a value, for a message: `{:?}` quotes them,
/// `{}` does not. An error about a huge field stays small.
pub struct Shortened<'a>(pub &'a str);

impl Shortened<'_> {
    const KEEP: usize = 80;

    /// The kept part, and whether anything was cut.
    fn kept(&self) -> (&str, bool) {
        match self.0.char_indices().nth(Self::KEEP) {
            None => (self.0, false),
            Some((end, _)) => (&self.0[..end], true),
        }
    }
}

impl std::fmt::Debug for Shortened<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kept() {
            (all, false) => write!(f, "{all:?}"),
            (kept, true) => write!(f, "{kept:?}… ({} bytes)", self.0.len()),
        }
    }
}

impl std::fmt::Display for Shortened<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kept() {
            (all, false) => f.write_str(all),
            (kept, true) => write!(f, "{kept}… ({} bytes)", self.0.len()),
        }
    }
}
