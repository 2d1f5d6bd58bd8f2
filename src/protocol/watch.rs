//! What a watch request and its answer carry on the wire: the Google `Channel` resource
//! and the rules for its id, token and expiration (docs/api.md §2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest channel id.
pub const MAX_ID_LEN: usize = 64;
/// Longest channel token.
pub const MAX_TOKEN_LEN: usize = 256;

/// `1..=64` characters of `[A-Za-z0-9-_+/=]` (docs/api.md §2): the alphabet of channel and
/// watcher ids.
pub fn is_valid_channel_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_+/=".contains(&b))
}

/// A token travels in a header: at most 256 printable ASCII characters.
pub fn is_valid_token(token: &str) -> bool {
    token.len() <= MAX_TOKEN_LEN && token.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Reads an `expiration` in ms since the epoch given as a JSON string, integer or float
/// (the Python client sends `1893456000000.0`). `Err` says why it is not one.
pub fn parse_expiration(value: &Value) -> Result<i64, String> {
    let too_big = || "expiration does not fit a signed 64-bit number of milliseconds".to_string();
    match value {
        Value::String(s) => {
            let t = s.trim();
            if let Ok(ms) = t.parse::<i64>() {
                return Ok(ms);
            }
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() && !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) => float_ms(f).ok_or_else(too_big),
                _ => Err(format!("expiration {s:?} is not a number of milliseconds since the Unix epoch")),
            }
        }
        Value::Number(n) => {
            if let Some(ms) = n.as_i64() {
                Ok(ms)
            } else if n.is_u64() {
                Err(too_big())
            } else {
                n.as_f64().and_then(float_ms).ok_or_else(too_big)
            }
        }
        _ => Err("expiration must be a number of milliseconds since the Unix epoch, as a string or a number".to_string()),
    }
}

fn float_ms(f: f64) -> Option<i64> {
    // i64::MAX as f64 rounds up to 2^63, which does not fit; hence the strict bound.
    (f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64).then(|| f.trunc() as i64)
}

/// The watch response (docs/api.md §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchResponse {
    pub kind: String,
    pub id: String,
    pub resource_id: String,
    pub resource_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Milliseconds since the epoch, as a string; empty (and left out) for what never
    /// expires, such as watchers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expiration: String,
    #[serde(rename = "type")]
    pub channel_type: String,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Map<String, Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids() {
        assert!(is_valid_channel_id("01234567-89ab-cdef-0123-456789abcdef"));
        assert!(is_valid_channel_id("a+b/c=d_e"));
        assert!(is_valid_channel_id(&"x".repeat(64)));
        assert!(!is_valid_channel_id(&"x".repeat(65)));
        assert!(!is_valid_channel_id(""));
        assert!(!is_valid_channel_id("has space"));
        assert!(!is_valid_channel_id("é"));
    }

    #[test]
    fn expirations_in_every_client_shape() {
        assert_eq!(
            parse_expiration(&json!("1893456000000")),
            Ok(1_893_456_000_000)
        );
        assert_eq!(
            parse_expiration(&json!(1893456000000i64)),
            Ok(1_893_456_000_000)
        );
        assert_eq!(
            parse_expiration(&json!(1893456000000.0)),
            Ok(1_893_456_000_000)
        );
        assert_eq!(
            parse_expiration(&json!("1893456000000.0")),
            Ok(1_893_456_000_000)
        );
        assert!(parse_expiration(&json!("soon")).is_err());
        assert!(parse_expiration(&json!("")).is_err());
        assert!(parse_expiration(&json!("NaN")).is_err());
        assert!(parse_expiration(&json!("inf")).is_err());
        assert!(parse_expiration(&json!(true)).is_err());
        assert!(parse_expiration(&json!(u64::MAX)).is_err());
        assert!(parse_expiration(&json!(1e300)).is_err());
        assert!(parse_expiration(&json!("99999999999999999999")).is_err());
    }
}
