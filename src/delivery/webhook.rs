//! Webhooks: the HTTP destination (docs/api.md §4, §10, §17). Pooled clients shared by
//! every channel, one per client certificate (`identity.rs`), straight to receivers
//! or through the egress proxy (`http_client.rs`, `egress.rs`); a target policy
//! enforced before connecting (`target.rs`); and what a receiver's answer, or a
//! failure to get one, means for the notification.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_LENGTH};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::destination::{Answer, Destination, Verdict};
use super::egress::{Pooled, ProxyAddress};
use super::hosts::host_key;
use super::http_client::{Exchange, HttpClient};
use super::identity::{ClientIdentities, ClientIdentity};
use super::oauth::Tokens;
use super::render::Rendered;
use super::target::TargetPolicy;
use crate::endpoint_auth::ClientCredentials;
use crate::memo::Memo;
use crate::model::{ChannelSpec, Failure, FailureReason, RESPONSE_EXCERPT_BYTES};

pub const USER_AGENT: &str = concat!("watchwire/", env!("CARGO_PKG_VERSION"));

/// How webhooks reach receivers.
pub struct WebhookOptions {
    pub policy: TargetPolicy,
    pub connect_timeout: Duration,
    /// A whole attempt's limit.
    pub timeout: Duration,
    /// Extra trusted CA certificates (`--ca-file`), PEM.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// How many connections to one host are kept warm.
    pub max_idle_per_host: usize,
    /// `--outbound-address`.
    pub local_address: Option<IpAddr>,
    /// The client certificates of mutual TLS.
    pub identities: ClientIdentities,
    /// `--egress-proxy`.
    pub egress_proxy: Option<ProxyAddress>,
}

/// The pooled HTTP clients of every webhook: no redirects, no system proxy, explicit
/// timeouts, the target policy enforced before connecting.
pub struct Webhooks {
    /// Presents `--client-cert`, or no certificate.
    default: HttpClient,
    /// The clients of keys with a certificate of their own, by owner.
    by_owner: HashMap<String, HttpClient>,
    policy: TargetPolicy,
    /// OAuth 2.0 tokens of the channels that need one, shared.
    tokens: Tokens,
    /// Addresses parsed before, shared by the channels that send to them: one event to
    /// 100k channels of one address wakes 100k workers, and parsing it each time was
    /// a tenth of the work of each.
    parsed: Memo<Arc<ParsedAddress>>,
}

/// Most addresses [`Webhooks::parsed`] keeps (gateways with more distinct addresses
/// than this parse more often).
const MOST_PARSED_ADDRESSES: usize = 16_384;

/// A webhook address as sending uses it.
struct ParsedAddress {
    /// The parsed address (for the policy and messages, and as the request's URI), or
    /// why it does not parse.
    url: Result<(reqwest::Url, http::Uri), String>,
    host: String,
}

impl ParsedAddress {
    fn parse(address: &str) -> ParsedAddress {
        ParsedAddress {
            url: reqwest::Url::parse(address)
                .map_err(|e| e.to_string())
                .and_then(|url| {
                    let uri = http::Uri::try_from(url.as_str()).map_err(|e| e.to_string())?;
                    Ok((url, uri))
                }),
            host: host_key(address),
        }
    }
}

impl Webhooks {
    pub fn new(options: WebhookOptions) -> anyhow::Result<Self> {
        let extra_cas = match &options.extra_ca_pem {
            Some(pem) => {
                let certs: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>()?;
                // A file that holds none would be ignored, and every delivery to the
                // CA's hosts would fail at the first handshake instead of here.
                anyhow::ensure!(
                    !certs.is_empty(),
                    "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                );
                certs
            }
            None => vec![],
        };
        let client = |identity: Option<&ClientIdentity>| client(&options, &extra_cas, identity);
        let by_owner = options
            .identities
            .by_owner
            .iter()
            .map(|(owner, identity)| Ok((owner.clone(), client(Some(identity))?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Webhooks {
            default: client(options.identities.default.as_deref())?,
            by_owner,
            policy: options.policy.clone(),
            tokens: Tokens::default(),
            parsed: Memo::new(MOST_PARSED_ADDRESSES),
        })
    }

    fn parsed(&self, address: &str) -> Arc<ParsedAddress> {
        self.parsed
            .get_or_make(address, || Arc::new(ParsedAddress::parse(address)))
    }

    /// A channel's endpoint, once per worker wake-up.
    pub fn destination(&self, channel: &ChannelSpec) -> Webhook<'_> {
        Webhook {
            webhooks: self,
            client: self.by_owner.get(&*channel.owner).unwrap_or(&self.default),
            address: self.parsed(&channel.address),
            oauth: channel
                .auth
                .as_deref()
                .and_then(|auth| auth.client_credentials().cloned()),
        }
    }
}

/// The client that presents `identity`, with TLS from the machine's roots and
/// `--ca-file`, straight to receivers or through `--egress-proxy`.
fn client(
    options: &WebhookOptions,
    extra_cas: &[CertificateDer<'static>],
    identity: Option<&ClientIdentity>,
) -> anyhow::Result<HttpClient> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots.add_parsable_certificates(extra_cas.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let tls = match identity {
        Some(identity) => {
            tls.with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?
        }
        None => tls.with_no_client_auth(),
    };
    let pooled = Pooled::new(
        options.egress_proxy.clone(),
        options.policy.clone(),
        tls,
        options.connect_timeout,
        options.max_idle_per_host,
        options.local_address,
    );
    Ok(HttpClient::new(pooled, options.timeout))
}

/// One channel's endpoint.
pub struct Webhook<'a> {
    webhooks: &'a Webhooks,
    /// The client of the channel's key.
    client: &'a HttpClient,
    address: Arc<ParsedAddress>,
    /// Its OAuth 2.0 client credentials, when it authenticates with a token.
    oauth: Option<Arc<ClientCredentials>>,
}

impl Webhook<'_> {
    /// Sends with the channel's current token; a token the endpoint refuses (`401`) is
    /// fetched again and the notification sent once more. `Err`: no token to send
    /// with (`authFailed`). Only these channels pay for a copy of the notification.
    async fn with_token(
        &self,
        (url, uri): &(reqwest::Url, http::Uri),
        notification: Rendered,
        credentials: &Arc<ClientCredentials>,
    ) -> Result<Result<Exchange, Failure>, String> {
        let (client, tokens) = (self.client, &self.webhooks.tokens);
        let token = tokens.get(client, credentials, None).await?;
        let sent = client
            .send(
                bearing(uri, notification.clone(), &token),
                url,
                RESPONSE_EXCERPT_BYTES,
            )
            .await;
        if !matches!(&sent, Ok(answer) if answer.status == 401) {
            return Ok(sent);
        }
        let fresh = tokens.get(client, credentials, Some(&token)).await?;
        Ok(client
            .send(
                bearing(uri, notification, &fresh),
                url,
                RESPONSE_EXCERPT_BYTES,
            )
            .await)
    }
}

#[async_trait::async_trait]
impl Destination for Webhook<'_> {
    fn host(&self) -> &str {
        &self.address.host
    }

    async fn send(&self, notification: Rendered) -> Answer {
        let failed = |verdict, failure| Answer {
            verdict,
            status: None,
            failure: Some(failure),
            excerpt: None,
            acknowledgement: None,
        };
        let address = match &self.address.url {
            Ok(address) => address,
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
        if let Err(refusal) = self.webhooks.policy.check_before_connect(&address.0).await {
            let verdict = match refusal.permanent {
                true => Verdict::Failed,
                false => Verdict::Retry { retry_after: None },
            };
            return failed(verdict, refusal.failure);
        }
        let sent = match &self.oauth {
            None => {
                let (url, uri) = address;
                self.client
                    .send(request(uri, notification), url, RESPONSE_EXCERPT_BYTES)
                    .await
            }
            Some(credentials) => match self.with_token(address, notification, credentials).await {
                Ok(sent) => sent,
                Err(detail) => {
                    return failed(Verdict::Retry { retry_after: None }, auth_failed(detail))
                }
            },
        };
        match sent {
            Ok(answer) => {
                let status = answer.status;
                let retry_after = answer
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                let excerpt = (!answer.body.is_empty())
                    .then(|| String::from_utf8_lossy(&answer.body).into_owned());
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
                    acknowledgement: None,
                }
            }
            Err(failure) => failed(Verdict::Retry { retry_after: None }, failure),
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
fn bearing(uri: &http::Uri, notification: Rendered, token: &str) -> http::Request<reqwest::Body> {
    let mut request = request(uri, notification);
    if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        value.set_sensitive(true);
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
    request
}

/// The POST that carries a notification to `uri` (the client adds its `User-Agent`).
pub fn request(uri: &http::Uri, notification: Rendered) -> http::Request<reqwest::Body> {
    let Rendered { headers, body } = notification;
    let mut request = http::Request::new(reqwest::Body::from(body.clone()));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri.clone();
    let map = request.headers_mut();
    map.reserve(headers.len() + 1);
    for (name, value) in headers {
        map.append(name, value);
    }
    // Stated even when it is 0: the HTTP client leaves an empty POST with neither a
    // length nor chunking, which servers that require a length refuse with 411.
    map.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
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
