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

/// Deepest nesting of arrays and objects a request body may have (docs/api.md §10.4).
pub const MAX_JSON_DEPTH: usize = 128;

/// Parses a body as JSON, or says where it is broken.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(
            ApiError::required("the request body is empty; send a JSON object")
                .with_reason("parseError"),
        );
    }
    read_json(bytes).map_err(|e| {
        ApiError::invalid(format!("the request body is not valid JSON: {e}"))
            .with_reason("parseError")
    })
}

/// A body the caller may leave out (enable, renew): nothing, or only whitespace, is an
/// empty object; one that is sent must still be a JSON object, like every body.
pub fn optional_object(
    bytes: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match parse_json(bytes)? {
        serde_json::Value::Object(fields) => Ok(fields),
        other => Err(ApiError::invalid(format!(
            "the request body must be empty or a JSON object, not {}",
            type_name(&other)
        ))),
    }
}

/// `serde_json::from_slice` with the nesting limit counted here: serde_json's own
/// limit refuses the 128th level, one short of what the API promises. Counting first
/// also keeps a deeply nested body from ever reaching the recursive parser.
pub fn read_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    if nesting_depth(bytes) > MAX_JSON_DEPTH {
        return Err(serde::de::Error::custom(format!(
            "arrays and objects are nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    reader.disable_recursion_limit();
    let value = T::deserialize(&mut reader)?;
    reader.end()?;
    Ok(value)
}

/// How deeply arrays and objects nest in JSON text (brackets inside strings do not
/// count). Text that is not JSON gets some number; the parser then says what is wrong.
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}\"[{{\\\"\"{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn nesting_is_counted_outside_strings_up_to_the_documented_limit() {
        assert_eq!(
            nesting_depth(br#"{"a": "[[[{", "b": [1, {"c": "\\\"]"}]}"#),
            3
        );
        let at_limit = nested(MAX_JSON_DEPTH);
        assert_eq!(nesting_depth(at_limit.as_bytes()), MAX_JSON_DEPTH);
        parse_json::<serde_json::Value>(at_limit.as_bytes()).expect("128 levels are accepted");
        let error =
            parse_json::<serde_json::Value>(nested(MAX_JSON_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(error.reason, "parseError");
        assert!(
            error.message.contains("deeper than 128"),
            "{}",
            error.message
        );
    }
}
