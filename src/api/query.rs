//! Query strings of the `/v1` API, read strictly (docs/api.md §14): a parameter the
//! endpoint does not know, one given twice, or a malformed value is a `400` that names
//! it, so that a typo such as `sinse=` never silently means something else.

use std::collections::HashMap;

use axum::http::Uri;

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

impl Page {
    /// The token as the number a list gave out; `None` on the first page.
    pub fn after<T: std::str::FromStr>(&self) -> Result<Option<T>, ApiError> {
        self.token
            .as_deref()
            .map(|token| {
                token.parse().map_err(|_| {
                    invalid_parameter(format!(
                        "pageToken {token:?} is not one this gateway gave out; pass nextPageToken from the previous answer"
                    ))
                })
            })
            .transpose()
    }
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
        let page = query("maxResults=5&pageToken=42", &["maxResults", "pageToken"])
            .unwrap()
            .page()
            .unwrap();
        assert_eq!(page.max_results, 5);
        assert_eq!(page.after::<i64>().unwrap(), Some(42));
        let page = query("", &[]).unwrap().page().unwrap();
        assert_eq!(
            (page.max_results, page.after::<i64>().unwrap()),
            (100, None)
        );
        for bad in ["maxResults=0", "maxResults=1001", "maxResults=ten"] {
            let q = query(bad, &["maxResults"]).unwrap();
            assert!(q.page().is_err(), "{bad}");
        }
        let q = query("pageToken=zz", &["pageToken"]).unwrap();
        assert!(q.page().unwrap().after::<i64>().is_err());
    }
}
