//! Who is calling (SPEC §10 API keys). Keys are compared by their SHA-256 digests in
//! constant time; a channel's owner is a digest prefix, never the key itself.

use axum::http::{header, HeaderMap, StatusCode, Uri};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The owner every request has in `--dev` without keys.
const DEV_OWNER: &str = "dev";

#[derive(Debug, Clone)]
pub struct Keys {
    digests: Vec<[u8; 32]>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub owner: String,
}

impl Keys {
    pub fn new(keys: &[String]) -> Self {
        Keys {
            digests: keys
                .iter()
                .filter(|k| !k.is_empty())
                .map(|k| Sha256::digest(k.as_bytes()).into())
                .collect(),
        }
    }

    /// Authenticates a request by `Authorization: Bearer KEY` or `?key=KEY`.
    pub fn authenticate(&self, headers: &HeaderMap, uri: &Uri) -> Result<Caller, ApiError> {
        if self.digests.is_empty() {
            return Ok(Caller {
                owner: DEV_OWNER.to_string(),
            });
        }
        let presented = bearer(headers).or_else(|| query_key(uri)).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "required",
                "an API key is required: send Authorization: Bearer KEY or ?key=KEY",
            )
        })?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut matched = subtle::Choice::from(0);
        for known in &self.digests {
            matched |= known.ct_eq(&digest);
        }
        if bool::from(matched) {
            Ok(Caller {
                owner: digest[..12].iter().map(|b| format!("{b:02x}")).collect(),
            })
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authError",
                "the API key is not valid",
            ))
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim().to_string())
}

fn query_key(uri: &Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(name, _)| name == "key")
        .map(|(_, v)| v.into_owned())
}
