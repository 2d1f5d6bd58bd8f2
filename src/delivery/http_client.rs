//! How a delivery's HTTP request leaves, and what came back: through hyper's pooled
//! client with the gateway's own connector (`egress.rs`), straight to the receiver or
//! through the egress proxy, presenting the client certificate of the channel's key
//! (`identity.rs`). A
//! failure to get an answer is named here in the delivery log's words (docs/api.md §9).

use std::time::Duration;

use http_body_util::BodyExt;

use super::egress::{Pooled, ThroughProxyFailed};
use super::target::{NameNotResolved, PolicyRefused};
use crate::model::{Failure, FailureReason};

/// An answer: its status, its `Retry-After`, and the start of its body.
pub struct Exchange {
    pub status: u16,
    pub retry_after: Option<String>,
    /// At most the `limit` the exchange was given; a longer body is not read further
    /// (the connection is then not reused).
    pub body: Vec<u8>,
}

/// The client of one client certificate (or none): hyper's pooled client with the
/// gateway's own connector (`egress.rs`), straight to receivers or through the proxy.
/// reqwest's layers (redirects, URL conversion, boxed futures) cost a notification
/// about 7 k instructions on the way out; this path has none of them.
pub struct HttpClient {
    pooled: Box<Pooled>,
    /// The whole exchange's limit.
    timeout: Duration,
}

impl HttpClient {
    pub fn new(pooled: Pooled, timeout: Duration) -> HttpClient {
        HttpClient {
            pooled: Box::new(pooled),
            timeout,
        }
    }

    /// Sends `request` (built with reqwest's types, as the OAuth token request is),
    /// reading at most `limit` bytes of the answer's body.
    pub async fn exchange(
        &self,
        request: reqwest::Request,
        limit: usize,
    ) -> Result<Exchange, Failure> {
        let url = request.url().clone();
        let request = http::Request::<reqwest::Body>::try_from(request).map_err(|e| Failure {
            reason: FailureReason::RequestFailed,
            detail: format!("the request to {} could not be made: {e}", target(&url)),
            status: None,
        })?;
        self.send(request, &url, limit).await
    }

    /// Sends `request` to `url` (the same address, parsed), reading at most `limit`
    /// bytes of the answer's body.
    pub async fn send(
        &self,
        request: http::Request<reqwest::Body>,
        url: &reqwest::Url,
        limit: usize,
    ) -> Result<Exchange, Failure> {
        let exchange = async {
            let response = self.pooled.execute(request).await.map_err(|e| {
                let connecting = e
                    .downcast_ref::<hyper_util::client::legacy::Error>()
                    .is_some_and(|e| e.is_connect());
                classify_error(e.as_ref(), url, false, connecting)
            })?;
            let status = response.status().as_u16();
            let retry_after = retry_after(response.headers());
            let mut incoming = response.into_body();
            let mut body = Vec::new();
            while body.len() < limit {
                match incoming.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(chunk) = frame.data_ref() {
                            keep(&mut body, chunk, limit);
                        }
                    }
                    _ => break,
                }
            }
            Ok(Exchange {
                status,
                retry_after,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(done) => done,
            Err(_) => Err(Failure {
                reason: FailureReason::Timeout,
                detail: format!("timed out waiting for an answer from {}", target(url)),
                status: None,
            }),
        }
    }
}

fn retry_after(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::RETRY_AFTER)?;
    value.to_str().ok().map(str::to_string)
}

fn keep(body: &mut Vec<u8>, chunk: &[u8], limit: usize) {
    let room = limit - body.len();
    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

/// `host:port` of a URL, as messages name a receiver.
fn target(url: &reqwest::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or("?"),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// Names why a request failed, from the error and what caused it. `timed_out` and
/// `connecting` are what the client knows of it beyond its causes.
fn classify_error(
    e: &(dyn std::error::Error + 'static),
    url: &reqwest::Url,
    timed_out: bool,
    connecting: bool,
) -> Failure {
    let target = target(url);
    let failure = |reason, detail: String| Failure {
        reason,
        detail,
        status: None,
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(named) = cause.downcast_ref::<ThroughProxyFailed>() {
            return named.0.clone();
        }
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
    if timed_out {
        let what = if connecting {
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
    if connecting {
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
