//! Query strings of the `/v1` API, read strictly (docs/api.md §14): a parameter the
//! endpoint does not know, one given twice, or a malformed value is a `400` that names
//! it, so that a typo such as `sinse=` never silently means something else.

use std::collections::HashMap;

use axum::http::Uri;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// Accepted on every endpoint: the API key, Google's convention (docs/api.md §10).
const ALWAYS_ALLOWED: &[&str] = &["key"];

/// Google's paging (docs/api.md §14): the most items one answer may hold.
pub const MAX_RESULTS: usize = 1000;
/// Items an answer holds when `maxResults` is not given.
pub const DEFAULT_RESULTS: usize = 100;

/// The parameters of one request, checked against what its endpoint accepts.
#[derive(Debug, Default)]
pub struct Query {
    params: HashMap<String, String>,
}

impl Query {
    /// Reads the query string; `allowed` are the endpoint's parameter names.
    pub fn parse(uri: &Uri, allowed: &[&str]) -> Result<Query, ApiError> {
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            if !allowed.contains(&name.as_ref()) && !ALWAYS_ALLOWED.contains(&name.as_ref()) {
                let known = if allowed.is_empty() {
                    "this endpoint takes no query parameters".to_string()
                } else {
                    format!("this endpoint takes {}", allowed.join(", "))
                };
                return Err(invalid_parameter(format!(
                    "unknown query parameter {:?}: {known}",
                    name.as_ref()
                )));
            }
            if params
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(invalid_parameter(format!(
                    "query parameter {name:?} is given more than once"
                )));
            }
        }
        Ok(Query { params })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A boolean parameter: `true` or `false`; `false` when absent.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(invalid_parameter(format!(
                "{name} must be true or false, not {other:?}"
            ))),
        }
    }

    /// A whole number within `1..=max`; `default` when absent.
    pub fn count(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    invalid_parameter(format!(
                        "{name} must be a whole number from 1 to {max}, not {text:?}"
                    ))
                }),
        }
    }

    /// Google's paging: `maxResults` and `pageToken`.
    pub fn page(&self) -> Result<Page, ApiError> {
        Ok(Page {
            max_results: self.count("maxResults", DEFAULT_RESULTS, MAX_RESULTS)?,
            token: self.get("pageToken").map(str::to_string),
        })
    }
}

/// Where a list continues and how much of it one answer holds.
#[derive(Debug, Clone)]
pub struct Page {
    pub max_results: usize,
    /// `nextPageToken` of the previous answer, as given back.
    pub token: Option<String>,
}

/// Bytes of a page token's MAC: guessing one is hopeless, and the token stays short.
const TOKEN_MAC_BYTES: usize = 10;

impl Page {
    /// The position the `pageToken` stands for, `None` on the first page. Only a token
    /// this gateway issued for the same list (`list`, see [`page_token`]) is accepted:
    /// a number made up or changed by hand could silently skip or repeat items.
    pub fn after(&self, secret: &[u8], list: &str) -> Result<Option<u64>, ApiError> {
        let Some(token) = self.token.as_deref() else {
            return Ok(None);
        };
        let refused = || {
            invalid_parameter(format!(
                "pageToken {:?} is not one this gateway gave out for this list; pass nextPageToken from the previous answer, with otherwise the same request",
                super::body::Shortened(token)
            ))
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| refused())?;
        let (position, mac) = bytes.split_at_checked(8).ok_or_else(refused)?;
        let position = u64::from_be_bytes(position.try_into().expect("8 bytes"));
        let expected = token_mac(secret, list, position);
        if mac.len() != TOKEN_MAC_BYTES || !bool::from(mac.ct_eq(&expected)) {
            return Err(refused());
        }
        Ok(Some(position))
    }
}

/// The `nextPageToken` of a list that continues after `position` (a key or a log
/// position): opaque, and bound to the list by a MAC under the store's secret. `list`
/// names the list and whose it is, so a token never applies to another one.
pub fn page_token(secret: &[u8], list: &str, position: u64) -> String {
    let mut bytes = position.to_be_bytes().to_vec();
    bytes.extend_from_slice(&token_mac(secret, list, position));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn token_mac(secret: &[u8], list: &str, position: u64) -> [u8; TOKEN_MAC_BYTES] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"pageToken\0");
    mac.update(list.as_bytes());
    mac.update(&[0]);
    mac.update(&position.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    digest[..TOKEN_MAC_BYTES]
        .try_into()
        .expect("a SHA-256 MAC is long enough")
}

/// The Google reason for a query parameter the caller must fix.
pub fn invalid_parameter(message: impl Into<String>) -> ApiError {
    ApiError::invalid(message).with_reason("invalidParameter")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str, allowed: &[&str]) -> Result<Query, ApiError> {
        Query::parse(&format!("/x?{q}").parse().unwrap(), allowed)
    }

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_named() {
        let e = query("sinse=1", &["since"]).unwrap_err();
        assert!(
            e.message.contains("\"sinse\"") && e.message.contains("since"),
            "{}",
            e.message
        );
        assert_eq!(e.reason, "invalidParameter");
        let e = query("since=1&since=2", &["since"]).unwrap_err();
        assert!(e.message.contains("more than once"), "{}", e.message);
        let q = query("checkpoints=maybe&key=k", &["checkpoints"]).unwrap();
        assert!(q.flag("checkpoints").unwrap_err().message.contains("maybe"));
        let q = query("checkpoints=true", &["checkpoints"]).unwrap();
        assert!(q.flag("checkpoints").unwrap());
        assert!(!query("", &["checkpoints"])
            .unwrap()
            .flag("checkpoints")
            .unwrap());
        let e = query("a=1", &[]).unwrap_err();
        assert!(e.message.contains("no query parameters"), "{}", e.message);
    }

    #[test]
    fn paging_reads_google_names() {
        let page = query("maxResults=5", &["maxResults", "pageToken"])
            .unwrap()
            .page()
            .unwrap();
        assert_eq!(page.max_results, 5);
        let page = query("", &[]).unwrap().page().unwrap();
        assert_eq!(
            (page.max_results, page.after(b"s", "l").unwrap()),
            (100, None)
        );
        for bad in ["maxResults=0", "maxResults=1001", "maxResults=ten"] {
            let q = query(bad, &["maxResults"]).unwrap();
            assert!(q.page().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_tokens_issued_for_the_same_list_are_taken_back() {
        let after = |token: &str, list: &str| {
            query(&format!("pageToken={token}"), &["pageToken"])
                .unwrap()
                .page()
                .unwrap()
                .after(b"secret", list)
        };
        let token = page_token(b"secret", "channels\0me", 42);
        assert_eq!(after(&token, "channels\0me").unwrap(), Some(42));
        let mut tampered = token.clone().into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let made_up = [
            "42",
            "999",
            "-1",
            "zz",
            "",
            tampered.as_str(),
            &page_token(b"other secret", "channels\0me", 42),
        ];
        for bad in made_up {
            let e = after(bad, "channels\0me").unwrap_err();
            assert_eq!(e.reason, "invalidParameter", "{bad:?}");
            assert!(e.message.contains("pageToken"), "{}", e.message);
        }
        assert!(
            after(&token, "channels\0you").is_err(),
            "another list's token"
        );
    }
}
