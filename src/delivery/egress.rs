//! The egress proxy (docs/api.md §17): with `--egress-proxy`, every delivery and token
//! request leaves through one forward proxy, so receivers can allow-list its address.
//!
//! The proxy must never become a way around the target policy (§10), so the gateway
//! resolves and checks every name itself and asks the proxy for the checked address,
//! never for a name the proxy would resolve on its own: `CONNECT 203.0.113.7:443` for
//! an https:// receiver, whose host name is kept for TLS (SNI and the certificate
//! check) and for `Host`; for an http:// receiver the request in absolute form to the
//! address (`POST http://203.0.113.7/hook`), its `Host` header the name. reqwest's own
//! proxy support asks the proxy for names, which is why deliveries have a connector of
//! their own under hyper's pooled client ([`Pooled`]), which without a proxy connects
//! straight to the checked address (HTTP/2 when the receiver's TLS offers it).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::target::TargetPolicy;
use crate::model::{Failure, FailureReason};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The longest answer head a proxy may give to `CONNECT`.
const MAX_CONNECT_ANSWER: usize = 8 * 1024;

/// `--egress-proxy`: where the forward proxy listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAddress {
    pub host: String,
    pub port: u16,
}

impl ProxyAddress {
    /// Parses `http://host:port` (port 80 when left out). `Err`: why not, for a person.
    pub fn parse(text: &str) -> Result<ProxyAddress, String> {
        let not_a_url = |why: String| {
            format!("{text:?} is not a URL such as http://proxy.internal:3128 ({why})")
        };
        if !text.contains("://") {
            return Err(not_a_url("it has no scheme".into()));
        }
        let url = url::Url::parse(text).map_err(|e| not_a_url(e.to_string()))?;
        if url.scheme() != "http" {
            return Err(format!(
                "the proxy is spoken to in plain HTTP, so give an http:// URL, not {}://",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "a proxy that asks for credentials is not supported; give http://host:port".into(),
            );
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err("give only the proxy's address, http://host:port, without a path".into());
        }
        let host = match url.host() {
            Some(url::Host::Domain(name)) => name.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("the URL names no host".into()),
        };
        Ok(ProxyAddress {
            host,
            port: url.port().unwrap_or(80),
        })
    }
}

impl std::fmt::Display for ProxyAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// An attempt that failed on the way through the proxy, already named; the outbound
/// client finds it in the error chain.
#[derive(Debug)]
pub struct ThroughProxyFailed(pub Failure);

impl std::fmt::Display for ThroughProxyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.detail)
    }
}

impl std::error::Error for ThroughProxyFailed {}

/// The pooled client of deliveries for one client certificate: hyper's, with a
/// connector of the gateway's own that resolves and checks every name with the target
/// policy, then connects to the checked address, straight or through the proxy.
pub struct Pooled {
    client: hyper_util::client::legacy::Client<Connector, reqwest::Body>,
    policy: TargetPolicy,
    proxied: bool,
}

impl Pooled {
    /// `tls` is the TLS of https:// receivers (roots, client certificate); `proxy`,
    /// `--egress-proxy`.
    pub fn new(
        proxy: Option<ProxyAddress>,
        policy: TargetPolicy,
        mut tls: rustls::ClientConfig,
        connect_timeout: Duration,
        max_idle_per_host: usize,
        local_address: Option<IpAddr>,
    ) -> Pooled {
        // Straight to a receiver, HTTP/2 when its TLS offers it (many notifications on
        // one connection); through the proxy, HTTP/1.1, as the proxy path always was.
        tls.alpn_protocols = match proxy {
            None => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Some(_) => vec![b"http/1.1".to_vec()],
        };
        let proxied = proxy.is_some();
        let connector = Connector(Arc::new(Route {
            proxy,
            policy: policy.clone(),
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            connect_timeout,
            local_address,
        }));
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(max_idle_per_host)
            .build(connector);
        Pooled {
            client,
            policy,
            proxied,
        }
    }

    /// Sends `request`. Through the proxy, an http:// request is addressed to its
    /// receiver's checked address here; everything else is checked by the connector.
    pub async fn execute(
        &self,
        mut request: http::Request<reqwest::Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, BoxError> {
        request
            .headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert(http::HeaderValue::from_static(super::webhook::USER_AGENT));
        if self.proxied && request.uri().scheme_str() == Some("http") {
            let (uri, host) = self.to_checked_address(request.uri()).await?;
            request
                .headers_mut()
                .entry(http::header::HOST)
                .or_insert(host);
            *request.uri_mut() = uri;
        }
        Ok(self.client.request(request).await?)
    }

    /// An http:// URI with its host name replaced by the first address the policy
    /// allows, and the `Host` header that keeps the name.
    async fn to_checked_address(&self, uri: &Uri) -> Result<(Uri, http::HeaderValue), BoxError> {
        let authority = uri.authority().ok_or("the address names no host")?;
        let port = authority.port_u16().unwrap_or(80);
        let host = bare_host(authority.host());
        let ip = checked_addresses(&self.policy, "http", host).await?[0].ip();
        let checked = SocketAddr::new(ip, port);
        let mut parts = uri.clone().into_parts();
        parts.authority = Some(checked.to_string().parse()?);
        Ok((
            Uri::from_parts(parts)?,
            http::HeaderValue::from_str(authority.as_str())?,
        ))
    }
}

/// The addresses of `host` the policy lets `scheme` reach, IPv4 first: the proxy is
/// asked for one address at a time, and IPv4 is the one most proxies reach.
async fn checked_addresses(
    policy: &TargetPolicy,
    scheme: &str,
    host: &str,
) -> Result<Vec<SocketAddr>, BoxError> {
    let mut addrs = policy.resolve(scheme, host).await?;
    addrs.sort_by_key(|a| a.is_ipv6());
    Ok(addrs)
}

/// `[::1]` as URIs write it, `::1` as resolvers and TLS take it.
fn bare_host(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Opens connections for the pooled client: to the proxy, and through it.
#[derive(Clone)]
struct Connector(Arc<Route>);

struct Route {
    /// `--egress-proxy`; `None`: straight to the receiver.
    proxy: Option<ProxyAddress>,
    policy: TargetPolicy,
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    local_address: Option<IpAddr>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Tunnel>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let route = self.0.clone();
        Box::pin(async move {
            let limit = route.connect_timeout;
            match tokio::time::timeout(limit, route.open(&uri)).await {
                Ok(opened) => opened.map(TokioIo::new),
                Err(_) => Err(ThroughProxyFailed(Failure {
                    reason: FailureReason::Timeout,
                    detail: match &route.proxy {
                        Some(proxy) => format!(
                            "timed out connecting to {} through the egress proxy {proxy}",
                            uri.authority().map_or("?", |a| a.as_str()),
                        ),
                        None => format!(
                            "timed out connecting to {}",
                            uri.authority().map_or("?", |a| a.as_str()),
                        ),
                    },
                    status: None,
                })
                .into()),
            }
        })
    }
}

impl Route {
    /// A connection for `uri`: a tunnel to its checked address with TLS for https://,
    /// the proxy itself for http:// (whose URI the client already made an address).
    async fn open(&self, uri: &Uri) -> Result<Tunnel, BoxError> {
        let host = bare_host(uri.host().ok_or("the address names no host")?);
        let Some(proxy) = &self.proxy else {
            return self.open_straight(uri, host).await;
        };
        if uri.scheme_str() != Some("https") {
            return Ok(Tunnel::Plain(self.connect_to_proxy(proxy).await?, true));
        }
        let port = uri.port_u16().unwrap_or(443);
        let name = ServerName::try_from(host.to_string())?;
        let mut refused = None;
        // Each checked address in turn, as a direct connection would try them.
        for checked in checked_addresses(&self.policy, "https", host).await? {
            let target = SocketAddr::new(checked.ip(), port);
            let stream = self.connect_to_proxy(proxy).await?;
            match self.tunnel(proxy, stream, target).await {
                Ok(stream) => {
                    let tls = self.tls.connect(name, stream).await?;
                    return Ok(Tunnel::Tls(Box::new(tls)));
                }
                Err(e) => refused = Some(e),
            }
        }
        Err(refused.unwrap_or_else(|| "no address to connect to".into()))
    }

    /// A connection straight to the receiver: each address the policy allows in turn
    /// (the resolver's order), then TLS with its name for https://.
    async fn open_straight(&self, uri: &Uri, host: &str) -> Result<Tunnel, BoxError> {
        let https = uri.scheme_str() == Some("https");
        let scheme = if https { "https" } else { "http" };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let mut last: Option<io::Error> = None;
        for checked in self.policy.resolve(scheme, host).await? {
            let target = SocketAddr::new(checked.ip(), port);
            match connect(target, self.local_address).await {
                Ok(stream) if https => {
                    let name = ServerName::try_from(host.to_string())?;
                    let tls = self.tls.connect(name, stream).await?;
                    return Ok(Tunnel::Tls(Box::new(tls)));
                }
                Ok(stream) => return Ok(Tunnel::Plain(stream, false)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| "no address to connect to".into(), Into::into))
    }

    async fn connect_to_proxy(&self, proxy: &ProxyAddress) -> Result<TcpStream, BoxError> {
        let failed = |e: io::Error| {
            ThroughProxyFailed(Failure {
                reason: FailureReason::ConnectionFailed,
                detail: format!("could not connect to the egress proxy {proxy}: {e}"),
                status: None,
            })
        };
        let addrs = tokio::net::lookup_host((proxy.host.as_str(), proxy.port))
            .await
            .map_err(failed)?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "its name resolves to no address");
        for addr in addrs {
            match connect(addr, self.local_address).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(failed(last).into())
    }

    /// Asks the proxy for a tunnel to `target` (`CONNECT`), and reads its answer.
    async fn tunnel(
        &self,
        proxy: &ProxyAddress,
        mut stream: TcpStream,
        target: SocketAddr,
    ) -> Result<TcpStream, BoxError> {
        let failed = |detail: String| {
            ThroughProxyFailed(Failure {
                reason: FailureReason::ConnectionFailed,
                detail,
                status: None,
            })
        };
        let ask = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
        stream.write_all(ask.as_bytes()).await?;
        // The receiver speaks only after the TLS handshake starts, so nothing past the
        // proxy's answer can arrive before it is read whole.
        let mut head = Vec::with_capacity(256);
        let end = loop {
            let mut chunk = [0u8; 512];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(failed(format!(
                    "the egress proxy {proxy} closed the connection when asked for {target}"
                ))
                .into());
            }
            head.extend_from_slice(&chunk[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if head.len() > MAX_CONNECT_ANSWER {
                return Err(failed(format!(
                    "the egress proxy {proxy} answered CONNECT with an endless head"
                ))
                .into());
            }
        };
        let status_line = String::from_utf8_lossy(&head[..end]);
        let status_line = status_line.lines().next().unwrap_or_default();
        let status = status_line.split_whitespace().nth(1).unwrap_or_default();
        if !status.starts_with('2') || status.len() != 3 || end + 4 != head.len() {
            let answer: String = status_line.chars().take(100).collect();
            return Err(failed(format!(
                "the egress proxy {proxy} refused a tunnel to {target}: {answer}"
            ))
            .into());
        }
        Ok(stream)
    }
}

/// A TCP connection from `local` (`--outbound-address`, when of the same family) to
/// `addr`, without Nagle's delay.
async fn connect(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }?;
    if let Some(local) = local.filter(|l| l.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    let stream = socket.connect(addr).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A connection to a receiver: plain (straight, or to the proxy itself for http://
/// receivers, then `true`), or TLS with the receiver (straight, or inside a tunnel).
pub enum Tunnel {
    Plain(TcpStream, bool),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection for Tunnel {
    fn connected(&self) -> Connected {
        match self {
            // Requests to the proxy go in absolute form, as a proxy needs them.
            Tunnel::Plain(_, to_proxy) => Connected::new().proxy(*to_proxy),
            Tunnel::Tls(tls) => match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") => Connected::new().negotiated_h2(),
                _ => Connected::new(),
            },
        }
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            Tunnel::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Tunnel::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            Tunnel::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::Plain(s, _) => Pin::new(s).poll_flush(cx),
            Tunnel::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Tunnel::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            Tunnel::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses() {
        let parsed = ProxyAddress::parse("http://proxy.internal:3128").unwrap();
        assert_eq!(parsed.to_string(), "proxy.internal:3128");
        assert_eq!(ProxyAddress::parse("http://10.0.0.1").unwrap().port, 80);
        assert_eq!(
            ProxyAddress::parse("http://[::1]:8080/")
                .unwrap()
                .to_string(),
            "[::1]:8080"
        );
        for (bad, says) in [
            ("https://proxy:3128", "http:// URL"),
            ("http://user:secret@proxy:3128", "credentials"),
            ("http://proxy:3128/path", "without a path"),
            ("proxy:3128", "not a URL"),
        ] {
            let err = ProxyAddress::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }

    /// A name that resolves only to refused addresses never reaches the proxy: the
    /// proxy is never asked for it, nor connected to.
    #[tokio::test]
    async fn a_refused_target_never_reaches_the_proxy() {
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = ProxyAddress {
            host: "127.0.0.1".into(),
            port: proxy.local_addr().unwrap().port(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let proxied = Pooled::new(
            Some(address),
            TargetPolicy::default(),
            tls,
            Duration::from_secs(2),
            4,
            None,
        );
        for url in ["https://localhost:8443/hook", "http://localhost:8080/hook"] {
            let mut request = http::Request::new(reqwest::Body::from(""));
            *request.method_mut() = http::Method::POST;
            *request.uri_mut() = url.parse().unwrap();
            let err = proxied.execute(request).await.unwrap_err();
            let mut chain = String::new();
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
            while let Some(e) = cause {
                chain.push_str(&format!("{e}; "));
                cause = e.source();
            }
            assert!(chain.contains("localhost: "), "{url}: {chain}");
        }
        // Any connection would be waiting to be accepted by now.
        let proxy = proxy.into_std().unwrap();
        proxy.set_nonblocking(true).unwrap();
        let accepted = proxy.accept();
        assert!(
            matches!(&accepted, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "the proxy was connected to: {accepted:?}"
        );
    }
}
