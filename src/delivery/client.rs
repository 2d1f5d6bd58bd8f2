//! The outbound HTTP client and the wire form of a notification (docs/api.md §4, §10).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};

use super::hosts::{host_key, Admission, HostOutcome, Hosts};
use super::retry::{classify, parse_retry_after, Verdict};
use super::target::{NameNotResolved, PolicyRefused, PolicyResolver, TargetPolicy};
use crate::model::{
    cursor, message_number, now_ms, AttemptRecord, ChannelSpec, Failure, FailureReason, Seq,
    SharedEvent, RESPONSE_EXCERPT_BYTES,
};
use crate::protocol::headers as h;
use crate::protocol::httpdate;
use crate::protocol::signature::SigningSecret;

pub const USER_AGENT: &str = concat!("watchwire/", env!("CARGO_PKG_VERSION"));
const JSON_CONTENT_TYPE: &str = "application/json; charset=\"utf-8\"";

/// One notification on one channel: the sync, or one event.
#[derive(Debug, Clone)]
pub struct Notification {
    pub number: u64,
    /// Number of the notification before it on the channel; `None` for the sync.
    pub previous: Option<u64>,
    pub state: String,
    pub cursor: Seq,
    pub event: Option<SharedEvent>,
    /// Re-sent by a replay: its delivery log entry keeps its earlier status while it
    /// is retried (a replay never makes a notification pending again).
    pub replay: bool,
}

impl Notification {
    pub fn sync(start_seq: Seq) -> Self {
        Notification {
            number: h::SYNC_MESSAGE_NUMBER,
            previous: None,
            state: "sync".into(),
            cursor: start_seq,
            event: None,
            replay: false,
        }
    }

    pub fn event(event: SharedEvent, previous: u64) -> Self {
        Notification {
            number: message_number(event.seq),
            previous: Some(previous),
            state: event.state.clone(),
            cursor: event.seq,
            event: Some(event),
            replay: false,
        }
    }

    /// The headers and body of this notification on `channel`, whose own headers
    /// `target` holds.
    pub fn render(
        &self,
        target: &Target,
        channel: &ChannelSpec,
        key_signing: Option<&KeySigning>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (HeaderMap, Bytes) {
        let body = match &self.event {
            Some(event) if channel.payload => event.data.clone().unwrap_or_default(),
            _ => Bytes::new(),
        };
        let mut headers = target.headers.clone();
        put(&mut headers, h::RESOURCE_STATE, &self.state);
        headers.insert(
            HeaderName::from_static(h::MESSAGE_NUMBER),
            self.number.into(),
        );
        put(&mut headers, h::CURSOR, &cursor(self.cursor));
        match &self.event {
            Some(event) => {
                put(&mut headers, h::EVENT_RESOURCE, &event.resource);
                if !event.changed.is_empty() {
                    put(&mut headers, h::CHANGED, &event.changed.join(","));
                }
                if let Some(metadata) = &event.metadata {
                    put(&mut headers, h::METADATA, metadata);
                }
            }
            None => put(&mut headers, h::EVENT_RESOURCE, &channel.resource),
        }
        if let Some(previous) = self.previous {
            headers.insert(HeaderName::from_static(h::PREVIOUS_NUMBER), previous.into());
        }
        let own = channel
            .signing_secret
            .as_deref()
            .and_then(|s| SigningSecret::parse(s).ok());
        let secrets: Vec<&SigningSecret> = match (&own, key_signing) {
            (Some(own), _) => vec![own],
            (None, Some(key)) => key.secrets_at(now),
            (None, None) => vec![],
        };
        if !secrets.is_empty() {
            let msg_id = format!("{}-{}", channel.id, self.number);
            let timestamp = now.timestamp();
            let signatures: Vec<String> = secrets
                .iter()
                .map(|s| s.sign(&msg_id, timestamp, &body))
                .collect();
            put(&mut headers, h::WEBHOOK_SIGNATURE, &signatures.join(" "));
            put(&mut headers, h::WEBHOOK_ID, &msg_id);
            put(&mut headers, h::WEBHOOK_TIMESTAMP, &timestamp.to_string());
        }
        if !body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
        }
        // Stated even when it is 0: the HTTP client leaves an empty POST with neither a
        // length nor chunking, which servers that require a length refuse with 411.
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        (headers, body)
    }
}

/// Sets a header. Every value is built from validated parts; one that is still not a
/// valid header value is left out rather than failing the delivery.
fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Where a channel's notifications go and the headers they all carry, made once each
/// time the channel's worker wakes rather than for every notification.
pub struct Target {
    /// The parsed address, or why it does not parse.
    url: Result<reqwest::Url, String>,
    /// The host admission is by (`hosts.rs`).
    pub host: String,
    /// The channel's own headers: id, token, expiration, resource id and URI.
    headers: HeaderMap,
}

impl Target {
    pub fn new(channel: &ChannelSpec) -> Target {
        let mut headers = HeaderMap::with_capacity(16);
        put(&mut headers, h::CHANNEL_ID, &channel.id);
        if let Some(token) = &channel.token {
            put(&mut headers, h::CHANNEL_TOKEN, token);
        }
        if let Some(expiration) = channel.expiration_ms.and_then(httpdate::format_ms) {
            put(&mut headers, h::CHANNEL_EXPIRATION, &expiration);
        }
        put(&mut headers, h::RESOURCE_ID, &channel.resource_id);
        put(&mut headers, h::RESOURCE_URI, &channel.resource_uri);
        Target {
            url: reqwest::Url::parse(&channel.address).map_err(|e| e.to_string()),
            host: host_key(&channel.address),
            headers,
        }
    }
}

/// An API key's signing secrets: the current one, and during a rotation the previous
/// one until a given time (both signatures are sent until then).
#[derive(Debug, Clone)]
pub struct KeySigning {
    pub current: SigningSecret,
    pub previous: Option<(SigningSecret, chrono::DateTime<chrono::Utc>)>,
}

impl KeySigning {
    pub fn secrets_at(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<&SigningSecret> {
        let mut secrets = vec![&self.current];
        if let Some((old, until)) = &self.previous {
            if now < *until {
                secrets.push(old);
            }
        }
        secrets
    }
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub verdict: Verdict,
    pub status: Option<u16>,
    /// Why it did not deliver; `None` when it did.
    pub failure: Option<Failure>,
    /// The start of the receiver's answer body, when it sent one.
    pub response: Option<String>,
    pub started_ms: i64,
    pub duration: Duration,
}

impl Attempt {
    /// The attempt as the delivery log keeps it.
    pub fn record(&self) -> AttemptRecord {
        AttemptRecord {
            at_ms: self.started_ms,
            duration_ms: self.duration.as_millis() as u64,
            status: self.status,
            reason: self.failure.as_ref().map(|f| f.reason),
            detail: self.failure.as_ref().map(|f| f.detail.clone()),
            response: self.response.clone(),
        }
    }
}

/// One pooled client for every delivery: no redirects, no proxy, explicit timeouts,
/// and a resolver that enforces the target policy.
#[derive(Clone)]
pub struct OutboundClient {
    http: reqwest::Client,
    policy: TargetPolicy,
    /// Admits attempts by host (`hosts.rs`): fair shares, circuit breaking, limits. It
    /// also bounds what is in flight, so a fan-out to many channels reuses warm
    /// connections instead of opening one socket per channel at once.
    hosts: Arc<Hosts>,
}

impl OutboundClient {
    /// `extra_ca_pem` adds trusted CA certificates (`--ca-file`).
    pub fn new(
        policy: TargetPolicy,
        connect_timeout: Duration,
        timeout: Duration,
        extra_ca_pem: Option<&[u8]>,
        max_in_flight: usize,
        max_host_rate: Option<f64>,
        local_address: Option<std::net::IpAddr>,
    ) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(max_in_flight)
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
        Ok(OutboundClient {
            http,
            policy,
            hosts: Hosts::new(max_in_flight, max_host_rate),
        })
    }

    /// The hosts attempts go to, and their admission.
    pub fn hosts(&self) -> &Arc<Hosts> {
        &self.hosts
    }

    /// Sends one notification once, as its host admitted it (admission comes before
    /// the notification is rendered, so a wide fan-out keeps only admitted
    /// notifications in memory), and tells the host how it went.
    pub async fn attempt(
        &self,
        admission: Admission,
        target: &Target,
        headers: HeaderMap,
        body: Bytes,
    ) -> Attempt {
        let started_ms = now_ms();
        let started = Instant::now();
        let (verdict, status, failure, response) = self.exchange(target, headers, body).await;
        let host_outcome = match verdict {
            Verdict::Retry { .. } => HostOutcome::Failed,
            _ => HostOutcome::Answered,
        };
        let retry_after = match verdict {
            Verdict::Retry { retry_after } => retry_after,
            _ => None,
        };
        admission.finish(host_outcome, retry_after);
        Attempt {
            verdict,
            status,
            failure,
            response,
            started_ms,
            duration: started.elapsed(),
        }
    }

    async fn exchange(
        &self,
        target: &Target,
        headers: HeaderMap,
        body: Bytes,
    ) -> (Verdict, Option<u16>, Option<Failure>, Option<String>) {
        let refused = |detail: String| Failure {
            reason: FailureReason::TargetRefused,
            detail,
            status: None,
        };
        let url = match &target.url {
            Ok(url) => url,
            Err(e) => {
                return (
                    Verdict::Failed,
                    None,
                    Some(refused(format!("bad address: {e}"))),
                    None,
                )
            }
        };
        // Literal IPs bypass the resolver, so they are checked here, before connecting.
        if let Err(refusal) = self.policy.check_before_connect(url).await {
            let verdict = match refusal.permanent {
                true => Verdict::Failed,
                false => Verdict::Retry { retry_after: None },
            };
            return (verdict, None, Some(refusal.failure), None);
        }
        match self
            .http
            .post(url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
        {
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
                (verdict, Some(status), failure, excerpt)
            }
            Err(e) => (
                Verdict::Retry { retry_after: None },
                None,
                Some(classify_error(&e, url)),
                None,
            ),
        }
    }
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
