//! OAuth 2.0 client-credentials tokens for webhooks (docs/api.md §17): one token per
//! set of credentials, shared by every channel holding them, cached until shortly
//! before it expires, and fetched by one request at a time per set, so that a thousand
//! channels waking at once ask the token endpoint once. The request goes through the
//! channel's own client, so the target policy checks the token URL as it checks an
//! endpoint, with the same timeouts, client certificate and egress proxy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

use super::http_client::HttpClient;
use crate::endpoint_auth::ClientCredentials;

/// A token is used until this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// The most of a token endpoint's answer that is read.
const MOST_ANSWER_BYTES: usize = 64 * 1024;
/// How long a token without `expires_in` is used.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// The token of one set of credentials; its lock is held while one is fetched.
type Slot = Arc<tokio::sync::Mutex<Option<Token>>>;

#[derive(Default)]
pub struct Tokens {
    slots: Mutex<HashMap<Arc<ClientCredentials>, Slot>>,
}

#[derive(Clone)]
struct Token {
    value: String,
    until: Instant,
}

impl Tokens {
    /// A token for `credentials`: the cached one, or a new one when it is missing,
    /// expiring, or `rejected` (the endpoint answered 401 to it).
    pub async fn get(
        &self,
        http: &HttpClient,
        credentials: &Arc<ClientCredentials>,
        rejected: Option<&str>,
    ) -> Result<String, String> {
        let slot = self
            .slots
            .lock()
            .unwrap()
            .entry(credentials.clone())
            .or_default()
            .clone();
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref() {
            let fresh = Instant::now() + EXPIRY_MARGIN < token.until;
            if fresh && rejected != Some(token.value.as_str()) {
                return Ok(token.value.clone());
            }
        }
        let token = fetch(http, credentials).await?;
        *cached = Some(token.clone());
        Ok(token.value)
    }
}

/// The client-credentials grant, the client authenticated with HTTP Basic
/// (`client_secret_basic`, RFC 6749 §2.3.1).
async fn fetch(http: &HttpClient, c: &ClientCredentials) -> Result<Token, String> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut form = String::from("grant_type=client_credentials");
    for (name, value) in [("scope", &c.scope), ("audience", &c.audience)] {
        if let Some(value) = value {
            form.push_str(&format!("&{name}={}", encode(value)));
        }
    }
    let basic = format!("{}:{}", encode(&c.client_id), encode(&c.client_secret));
    let basic = base64::engine::general_purpose::STANDARD.encode(basic);
    let url = reqwest::Url::parse(&c.token_url)
        .map_err(|e| format!("the token URL {} does not parse: {e}", c.token_url))?;
    let mut request = reqwest::Request::new(reqwest::Method::POST, url);
    let headers = request.headers_mut();
    let mut authorization = reqwest::header::HeaderValue::from_str(&format!("Basic {basic}"))
        .map_err(|_| "the client credentials cannot be sent in a header".to_string())?;
    authorization.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, authorization);
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    *request.body_mut() = Some(form.into());
    let answer = http
        .exchange(request, MOST_ANSWER_BYTES)
        .await
        .map_err(|failure| {
            format!(
                "the token endpoint {} could not be reached: {}",
                c.token_url, failure.detail
            )
        })?;
    let (status, body) = (answer.status, answer.body);
    if status != 200 {
        return Err(format!(
            "the token endpoint {} answered {status}",
            c.token_url
        ));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: String,
        expires_in: Option<u64>,
    }
    let answer: Answer = serde_json::from_slice(&body).map_err(|_| {
        format!(
            "the token endpoint {} answered without an access_token",
            c.token_url
        )
    })?;
    let lifetime = answer
        .expires_in
        .map_or(DEFAULT_LIFETIME, Duration::from_secs);
    Ok(Token {
        value: answer.access_token,
        until: Instant::now() + lifetime,
    })
}
