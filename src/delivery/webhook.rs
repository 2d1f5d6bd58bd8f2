//! Webhooks: the HTTP destination (docs/api.md §4, §10). One pooled client for every
//! channel, a resolver that enforces the target policy (`target.rs`), and what a
//! receiver's answer, or a failure to get one, means for the notification.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_LENGTH};

use super::destination::{Answer, Destination, Verdict};
use super::hosts::host_key;
use super::oauth::Tokens;
use super::render::Rendered;
use super::target::{NameNotResolved, PolicyRefused, PolicyResolver, TargetPolicy};
use crate::endpoint_auth::ClientCredentials;
use crate::model::{ChannelSpec, Failure, FailureReason, RESPONSE_EXCERPT_BYTES};

pub const USER_AGENT: &str = concat!("watchwire/", env!("CARGO_PKG_VERSION"));

/// The pooled HTTP client of every webhook: no redirects, no proxy, explicit timeouts,
/// and a resolver that enforces the target policy.
pub struct Webhooks {
    http: reqwest::Client,
    policy: TargetPolicy,
    /// OAuth 2.0 tokens of the channels that need one, shared.
    tokens: Tokens,
}

impl Webhooks {
    /// `extra_ca_pem` adds trusted CA certificates (`--ca-file`); `max_idle_per_host`
    /// is how many connections to one host are kept warm.
    pub fn new(
        policy: TargetPolicy,
        connect_timeout: Duration,
        timeout: Duration,
        extra_ca_pem: Option<&[u8]>,
        max_idle_per_host: usize,
        local_address: Option<std::net::IpAddr>,
    ) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(max_idle_per_host)
            .dns_resolver(PolicyResolver::shared(policy.clone()))
            .local_address(local_address);
        if let Some(pem) = extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)?;
            // A file that holds none would be ignored, and every delivery to the CA's
            // hosts would fail at the first handshake instead of here.
            anyhow::ensure!(
                !certs.is_empty(),
                "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            );
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build()?;
        Ok(Webhooks {
            http,
            policy,
            tokens: Tokens::default(),
        })
    }

    /// A channel's endpoint: its address parsed once per worker wake-up.
    pub fn destination(&self, channel: &ChannelSpec) -> Webhook<'_> {
        Webhook {
            webhooks: self,
            url: reqwest::Url::parse(&channel.address).map_err(|e| e.to_string()),
            host: host_key(&channel.address),
            oauth: channel
                .auth
                .as_deref()
                .and_then(|auth| auth.client_credentials().cloned()),
        }
    }
}

/// One channel's endpoint.
pub struct Webhook<'a> {
    webhooks: &'a Webhooks,
    /// The parsed address, or why it does not parse.
    url: Result<reqwest::Url, String>,
    host: String,
    /// Its OAuth 2.0 client credentials, when it authenticates with a token.
    oauth: Option<Arc<ClientCredentials>>,
}

impl Webhook<'_> {
    /// Sends with the channel's current token; a token the endpoint refuses (`401`) is
    /// fetched again and the notification sent once more. `Err`: no token to send
    /// with (`authFailed`). Only these channels pay for a copy of the notification.
    async fn with_token(
        &self,
        url: &reqwest::Url,
        notification: Rendered,
        credentials: &Arc<ClientCredentials>,
    ) -> Result<reqwest::Result<reqwest::Response>, String> {
        let (http, tokens) = (&self.webhooks.http, &self.webhooks.tokens);
        let token = tokens.get(http, credentials, None).await?;
        let sent = http
            .execute(bearing(url, notification.clone(), &token))
            .await;
        if !matches!(&sent, Ok(response) if response.status().as_u16() == 401) {
            return Ok(sent);
        }
        let fresh = tokens.get(http, credentials, Some(&token)).await?;
        Ok(http.execute(bearing(url, notification, &fresh)).await)
    }
}

#[async_trait::async_trait]
impl Destination for Webhook<'_> {
    fn host(&self) -> &str {
        &self.host
    }

    async fn send(&self, notification: Rendered) -> Answer {
        let failed = |verdict, failure| Answer {
            verdict,
            status: None,
            failure: Some(failure),
            excerpt: None,
        };
        let url = match &self.url {
            Ok(url) => url,
            Err(e) => {
                let failure = Failure {
                    reason: FailureReason::TargetRefused,
                    detail: format!("bad address: {e}"),
                    status: None,
                };
                return failed(Verdict::Failed, failure);
            }
        };
        // Literal IPs bypass the resolver, so they are checked here, before connecting.
        if let Err(refusal) = self.webhooks.policy.check_before_connect(url).await {
            let verdict = match refusal.permanent {
                true => Verdict::Failed,
                false => Verdict::Retry { retry_after: None },
            };
            return failed(verdict, refusal.failure);
        }
        let sent = match &self.oauth {
            None => self.webhooks.http.execute(request(url, notification)).await,
            Some(credentials) => match self.with_token(url, notification, credentials).await {
                Ok(sent) => sent,
                Err(detail) => {
                    return failed(Verdict::Retry { retry_after: None }, auth_failed(detail))
                }
            },
        };
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                let excerpt = response_excerpt(response).await;
                let verdict = classify(status, retry_after);
                let failure = (verdict != Verdict::Delivered).then(|| Failure {
                    reason: FailureReason::HttpStatus,
                    detail: format!("the receiver answered {status}"),
                    status: Some(status),
                });
                Answer {
                    verdict,
                    status: Some(status),
                    failure,
                    excerpt,
                }
            }
            Err(e) => failed(
                Verdict::Retry { retry_after: None },
                classify_error(&e, url),
            ),
        }
    }
}

/// Why an attempt was not made: no token (docs/api.md §17).
fn auth_failed(detail: String) -> Failure {
    Failure {
        reason: FailureReason::AuthFailed,
        detail,
        status: None,
    }
}

/// [`request`], with an OAuth 2.0 bearer token.
fn bearing(url: &reqwest::Url, notification: Rendered, token: &str) -> reqwest::Request {
    let mut request = request(url, notification);
    if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        value.set_sensitive(true);
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, value);
    }
    request
}

/// The POST that carries a notification to `url` (the client adds its `User-Agent`).
pub fn request(url: &reqwest::Url, notification: Rendered) -> reqwest::Request {
    let Rendered { headers, body } = notification;
    let mut request = reqwest::Request::new(reqwest::Method::POST, url.clone());
    let map = request.headers_mut();
    map.reserve(headers.len() + 1);
    for (name, value) in headers {
        map.append(name, value);
    }
    // Stated even when it is 0: the HTTP client leaves an empty POST with neither a
    // length nor chunking, which servers that require a length refuse with 411.
    map.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    *request.body_mut() = Some(reqwest::Body::from(body));
    request
}

/// What a status means (docs/api.md §4 acknowledgement). Timeouts and connection
/// failures are retried too; `send` decides those.
pub fn classify(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200 | 201 | 202 | 204 => Verdict::Delivered,
        429 | 503 => Verdict::Retry { retry_after },
        500 | 502 | 504 | 408 => Verdict::Retry { retry_after: None },
        410 => Verdict::Gone,
        _ => Verdict::Failed,
    }
}

/// Reads `Retry-After` as delay-seconds or an HTTP date, clamped to [1 s, 1 h].
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let seconds = match value.parse::<u64>() {
        Ok(s) => s,
        Err(_) => {
            let at = crate::protocol::httpdate::parse(value)?;
            (at - now).num_seconds().max(0) as u64
        }
    };
    Some(Duration::from_secs(seconds.clamp(1, 3600)))
}

/// The first [`RESPONSE_EXCERPT_BYTES`] of an answer's body, as text; `None` when empty.
/// A longer body is not read further (the connection is then not reused).
async fn response_excerpt(mut response: reqwest::Response) -> Option<String> {
    let mut kept = Vec::new();
    while kept.len() < RESPONSE_EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_EXCERPT_BYTES - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned())
}

/// Names why a request failed, from reqwest's error and what caused it.
fn classify_error(e: &reqwest::Error, url: &reqwest::Url) -> Failure {
    let target = format!(
        "{}:{}",
        url.host_str().unwrap_or("?"),
        url.port_or_known_default().unwrap_or(0)
    );
    let failure = |reason, detail: String| Failure {
        reason,
        detail,
        status: None,
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<PolicyRefused>() {
            return failure(FailureReason::TargetRefused, refused.0.clone());
        }
        if let Some(unresolved) = cause.downcast_ref::<NameNotResolved>() {
            return failure(FailureReason::DnsFailure, unresolved.0.clone());
        }
        let io = cause.downcast_ref::<std::io::Error>();
        if io.is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return failure(
                FailureReason::ConnectionRefused,
                format!("connection refused by {target}"),
            );
        }
        // Its words ("corrupt message", "bad certificate") need not say TLS.
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return failure(
                FailureReason::TlsError,
                format!("TLS with {target} failed: {}", shorten(&tls.to_string())),
            );
        }
        // An I/O error's `source()` skips the error it wraps, which is where the TLS
        // library's errors travel: step into it instead.
        source = match io.and_then(|io| io.get_ref()) {
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    let chain = error_chain(e);
    if e.is_timeout() {
        let what = if e.is_connect() {
            "connecting to"
        } else {
            "waiting for an answer from"
        };
        return failure(FailureReason::Timeout, format!("timed out {what} {target}"));
    }
    let lower = chain.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        return failure(
            FailureReason::TlsError,
            format!("TLS with {target} failed: {}", shorten(&chain)),
        );
    }
    if e.is_connect() {
        return failure(
            FailureReason::ConnectionFailed,
            format!("could not connect to {target}: {}", shorten(&chain)),
        );
    }
    failure(
        FailureReason::RequestFailed,
        format!("the exchange with {target} broke off: {}", shorten(&chain)),
    )
}

/// The innermost cause of an error chain is what a person needs; at most 200 bytes.
fn shorten(chain: &str) -> String {
    let last = chain.rsplit(": ").next().unwrap_or(chain);
    last.chars().take(200).collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses_as_the_spec_says() {
        for s in [200, 201, 202, 204] {
            assert_eq!(classify(s, None), Verdict::Delivered);
        }
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(matches!(classify(s, None), Verdict::Retry { .. }), "{s}");
        }
        assert_eq!(classify(410, None), Verdict::Gone);
        for s in [203, 301, 302, 400, 401, 403, 404, 501] {
            assert_eq!(classify(s, None), Verdict::Failed, "{s}");
        }
        let wait = Some(Duration::from_secs(7));
        assert_eq!(classify(503, wait), Verdict::Retry { retry_after: wait });
        assert_eq!(classify(500, wait), Verdict::Retry { retry_after: None });
    }

    #[test]
    fn retry_after_is_clamped() {
        let now = chrono::Utc::now();
        assert_eq!(parse_retry_after("0", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(3600))
        );
        let later = crate::protocol::httpdate::format_ms(
            (now + chrono::Duration::seconds(30)).timestamp_millis(),
        )
        .unwrap();
        let got = parse_retry_after(&later, now).unwrap();
        assert!(
            (Duration::from_secs(29)..=Duration::from_secs(30)).contains(&got),
            "{got:?}"
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
