//! What a `--database-url` asks for, and the TLS connector that does it.
//!
//! tokio-postgres parses the URL's server, login and options itself, but knows only
//! `sslmode=disable|prefer|require` and none of the certificate parameters. So
//! `sslmode`, `sslrootcert`, `sslcert` and `sslkey` are taken out of the URL here (its
//! `postgres://` form and its `key=value` form alike) and the rest goes to
//! tokio-postgres. The modes mean what they mean to libpq:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | when the server offers it | as `require` |
//! | `require` | always | not checked; checked as `verify-ca` when `sslrootcert` is given |
//! | `verify-ca` | always | signed by a CA in `sslrootcert` |
//! | `verify-full` | always | as `verify-ca`, and made out to the host connected to |
//!
//! Where libpq's `prefer` falls back to plain text after a certificate it refused, this
//! stops; `require` and stronger never fall back. `sslrootcert=system` is the
//! machine's trusted roots and, as in libpq, asks for `verify-full`. `sslcert` and
//! `sslkey` log in with a client certificate; a SCRAM password login is bound to the
//! server's certificate (`tls-server-end-point`). TLS is not used on Unix-domain sockets
//! (libpq ignores `sslmode` there too). Files are read once, at startup, so a missing
//! or bad one stops the gateway there; no message quotes a key or a password.
//!
//! One idea, kept whole: the parameters, the checks they ask for, the connector that
//! makes them and its words for each failure, with their tests, are read together,
//! which is why the file runs past 600 lines.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::Socket;

use crate::store::StoreError;

/// A database URL as every connection of the store is made from it: tokio-postgres's
/// own configuration (server, login, options) and the TLS the URL asks for.
#[derive(Clone)]
pub struct Config {
    pub server: tokio_postgres::Config,
    pub tls: Tls,
}

/// `sslmode`, as libpq names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    const ALL: [Mode; 5] = [
        Mode::Disable,
        Mode::Prefer,
        Mode::Require,
        Mode::VerifyCa,
        Mode::VerifyFull,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The TLS a URL asks for: a `MakeTlsConnect` for tokio-postgres. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    mode: Mode,
    /// `None` with `sslmode=disable`, which never starts a handshake.
    client: Option<Arc<ClientConfig>>,
    /// Whose signature the server's certificate needs, for messages: "the CA in
    /// sslrootcert=/path", or this machine's roots.
    roots: Arc<str>,
}

impl Tls {
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

impl FromStr for Config {
    type Err = StoreError;

    /// A `postgres://` URL or a `key=value` connection string.
    fn from_str(url: &str) -> Result<Config, StoreError> {
        let (rest, asked) = Asked::split(url)?;
        let mut server: tokio_postgres::Config = rest.parse().map_err(|e| {
            bad(format!(
                "it is not a PostgreSQL URL like postgres://user@host:5432/db ({e})"
            ))
        })?;
        let tls = asked.tls()?;
        // tokio-postgres starts no handshake without a host name to check; with only
        // `hostaddr`, the address is the name (as libpq checks it).
        if server.get_hosts().is_empty() {
            for address in server.get_hostaddrs().to_vec() {
                server.host(address.to_string());
            }
        }
        let unix_only = !server.get_hosts().is_empty()
            && server.get_hostaddrs().is_empty()
            && server
                .get_hosts()
                .iter()
                .all(|host| !matches!(host, Host::Tcp(_)));
        server.ssl_mode(match tls.mode {
            _ if unix_only => SslMode::Disable,
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        });
        Ok(Config { server, tls })
    }
}

/// The TLS parameters a URL gave, taken out of it.
#[derive(Debug, Default, PartialEq)]
struct Asked {
    mode: Option<Mode>,
    root_cert: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// The parameters taken out of the URL; tokio-postgres gets the others.
const TAKEN: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl Asked {
    /// The URL without the parameters this file handles, and those parameters.
    fn split(url: &str) -> Result<(String, Asked), StoreError> {
        let mut asked = Asked::default();
        let rest = match url.find("://") {
            Some(scheme) if matches!(&url[..scheme], "postgres" | "postgresql") => {
                asked.take_from_url(url)?
            }
            _ => asked.take_from_pairs(url)?,
        };
        Ok((rest, asked))
    }

    /// `postgres://…?a=b&c=d`: the query after the credentials, percent-encoded.
    fn take_from_url(&mut self, url: &str) -> Result<String, StoreError> {
        let after_login = url.find('@').map_or(0, |at| at + 1);
        let Some(query) = url[after_login..].find('?').map(|q| after_login + q) else {
            return Ok(url.to_string());
        };
        let mut kept = Vec::new();
        for pair in url[query + 1..].split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decoded(key)?;
            if TAKEN.contains(&key.as_str()) {
                self.set(&key, percent_decoded(value)?)?;
            } else {
                kept.push(pair);
            }
        }
        let mut rest = url[..query].to_string();
        if !kept.is_empty() {
            rest.push('?');
            rest.push_str(&kept.join("&"));
        }
        Ok(rest)
    }

    /// `host=db user=ww sslmode=verify-full sslrootcert='/etc/ca.pem'`: values bare or
    /// in single quotes, `\` escaping the next character, as libpq reads them.
    fn take_from_pairs(&mut self, url: &str) -> Result<String, StoreError> {
        let mut rest = String::new();
        let mut chars = url.char_indices().peekable();
        let mut kept_from = 0;
        loop {
            while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
            let Some(&(start, _)) = chars.peek() else {
                break;
            };
            let mut key = String::new();
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
                key.push(c);
            }
            while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
            if chars.next_if(|(_, c)| *c == '=').is_none() {
                // Not a pair: tokio-postgres says what is wrong with it.
                return Ok(url.to_string());
            }
            while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
            let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
            let mut value = String::new();
            let mut closed = !quoted;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\'' if quoted => {
                        closed = true;
                        break;
                    }
                    c if c.is_whitespace() && !quoted => break,
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    c => value.push(c),
                }
            }
            if !closed {
                return Ok(url.to_string());
            }
            if TAKEN.contains(&key.as_str()) {
                let end = chars.peek().map_or(url.len(), |&(i, _)| i);
                rest.push_str(&url[kept_from..start]);
                kept_from = end;
                self.set(&key, value)?;
            }
        }
        rest.push_str(&url[kept_from..]);
        Ok(rest)
    }

    fn set(&mut self, key: &str, value: String) -> Result<(), StoreError> {
        if value.is_empty() {
            return Err(bad(format!(
                "the database URL's {key} is empty; {}",
                expected(key)
            )));
        }
        match key {
            "sslmode" => {
                let mode = Mode::ALL.into_iter().find(|m| m.name() == value);
                self.mode = Some(mode.ok_or_else(|| {
                    bad(format!(
                        "the database URL's sslmode={value} is not one this gateway knows; {}",
                        expected(key)
                    ))
                })?);
            }
            "sslrootcert" => self.root_cert = Some(value),
            "sslcert" => self.cert = Some(value.into()),
            _ => self.key = Some(value.into()),
        }
        Ok(())
    }

    /// The mode, certificates and key asked for, read and checked.
    fn tls(self) -> Result<Tls, StoreError> {
        let system = self.root_cert.as_deref() == Some("system");
        let mode = match self.mode {
            Some(mode) => mode,
            None if system => Mode::VerifyFull,
            None => Mode::Prefer,
        };
        if system && mode != Mode::VerifyFull {
            return Err(bad(format!(
                "sslrootcert=system checks the server against this machine's trusted roots, \
                 which only means something with sslmode=verify-full, not sslmode={mode}"
            )));
        }
        let roots = match &self.root_cert {
            Some(_) if system => "this machine's trusted roots (sslrootcert=system)".to_string(),
            Some(path) => format!("the CA in sslrootcert={path}"),
            None => "no CA (no sslrootcert)".to_string(),
        };
        let mut tls = Tls {
            mode,
            client: None,
            roots: roots.into(),
        };
        if mode == Mode::Disable {
            return Ok(tls);
        }
        if self.root_cert.is_none() && matches!(mode, Mode::VerifyCa | Mode::VerifyFull) {
            return Err(bad(format!(
                "sslmode={mode} checks the server's certificate, so it needs sslrootcert: the \
                 PEM file of the CA that signed it, or sslrootcert=system for this machine's \
                 trusted roots"
            )));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = match &self.root_cert {
            None => None,
            Some(path) => {
                let roots = if system {
                    system_roots()?
                } else {
                    file_roots(Path::new(path))?
                };
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| bad(format!("sslrootcert={path} cannot be used: {e}")))?;
                Some(verifier)
            }
        };
        let verifier = Arc::new(Verifier {
            chain,
            host_name: mode == Mode::VerifyFull,
            provider: provider.clone(),
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS cannot be set up: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut client = match (self.cert, self.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = certificates("sslcert", &cert)?;
                let secret = private_key(&key)?;
                builder.with_client_auth_cert(chain, secret).map_err(|e| {
                    bad(format!(
                        "sslcert={} and sslkey={} cannot be used together: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(bad(
                    "sslcert and sslkey go together: the client certificate and its private \
                     key, both PEM files"
                        .into(),
                ))
            }
        };
        // What PostgreSQL 17 expects of a direct handshake; older servers ignore it.
        client.alpn_protocols = vec![b"postgresql".to_vec()];
        tls.client = Some(Arc::new(client));
        Ok(tls)
    }
}

/// What `key` takes, for messages.
fn expected(key: &str) -> String {
    match key {
        "sslmode" => {
            let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
            format!("sslmode is one of {}", names.join(", "))
        }
        "sslrootcert" => "sslrootcert is a PEM file of CA certificates, or system".into(),
        _ => format!("{key} is a PEM file"),
    }
}

fn bad(message: String) -> StoreError {
    StoreError::Backend(message)
}

/// `%XX` decoded, as in the URL's query (`+` stays `+`, as libpq reads it).
fn percent_decoded(text: &str) -> Result<String, StoreError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    bad("the database URL has a % that is not followed by two hex digits".into())
                })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| bad("the database URL's parameters are not UTF-8 once decoded".into()))
}

/// Every certificate in a PEM file; at least one.
fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    crate::pem::certificates(what, path).map_err(bad)
}

fn file_roots(path: &Path) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("sslrootcert", path)? {
        roots.add(cert).map_err(|e| {
            bad(format!(
                "sslrootcert file {} holds a certificate that cannot be a CA: {e}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, StoreError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
        return Err(bad(format!(
            "sslrootcert=system: this machine has no trusted root certificates{}",
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            }
        )));
    }
    Ok(roots)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, StoreError> {
    crate::pem::private_key("sslkey", path).map_err(bad)
}

/// Checks the server's certificate as far as the mode asks: not at all (no
/// `sslrootcert`), the chain to a root (`verify-ca`, and `prefer`/`require` with
/// `sslrootcert`), or the chain and the host name (`verify-full`). The handshake's own
/// signatures are always checked.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    host_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // The chain is checked before the name: a name error means the chain held.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.host_name => Ok(ServerCertVerified::assertion()),
            checked => checked,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

impl Verifier {
    fn algorithms(&self) -> &rustls::crypto::WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

/// A TLS failure, said as a person can act on it.
#[derive(Debug)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

impl MakeTlsConnect<Socket> for Tls {
    type Stream = Stream;
    type TlsConnect = Handshake;
    type Error = TlsError;

    /// Called for every connection, even one that will not use TLS (`disable`, a
    /// Unix-domain socket): whatever is wrong is said when a handshake starts.
    fn make_tls_connect(&mut self, host: &str) -> Result<Handshake, TlsError> {
        Ok(Handshake {
            client: self.client.clone(),
            host: host.to_string(),
            mode: self.mode,
            roots: self.roots.clone(),
        })
    }
}

/// One TLS handshake with one server.
pub struct Handshake {
    client: Option<Arc<ClientConfig>>,
    host: String,
    mode: Mode,
    roots: Arc<str>,
}

impl TlsConnect<Socket> for Handshake {
    type Stream = Stream;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, TlsError>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            let Handshake {
                client,
                host,
                mode,
                roots,
            } = self;
            let client = client.ok_or_else(|| {
                TlsError("TLS was asked for although the URL says sslmode=disable".into())
            })?;
            let name = ServerName::try_from(host.clone()).map_err(|_| {
                TlsError(format!(
                    "the host name {host:?} cannot be checked against a certificate"
                ))
            })?;
            let connector = tokio_rustls::TlsConnector::from(client);
            match connector.connect(name.clone(), socket).await {
                Ok(stream) => Ok(Stream(stream)),
                Err(e) => Err(TlsError(refusal(&e, &name, mode, &roots))),
            }
        })
    }
}

/// Why a handshake failed, in words: which check the server's certificate failed, or
/// what the server said of ours.
fn refusal(e: &io::Error, name: &ServerName<'_>, mode: Mode, roots: &str) -> String {
    use rustls::AlertDescription as Alert;
    let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return format!("the TLS handshake failed: {e}");
    };
    let host = name.to_str();
    match tls {
        rustls::Error::InvalidCertificate(why) => match why {
            CertificateError::UnknownIssuer => {
                format!("it presented a certificate not signed by {roots}")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let names = match why {
                    CertificateError::NotValidForNameContext { presented, .. } => {
                        let names: Vec<&str> = presented
                            .iter()
                            .map(|name| {
                                let quoted = name.strip_prefix("DnsName(\"");
                                quoted.and_then(|n| n.strip_suffix("\")")).unwrap_or(name)
                            })
                            .collect();
                        format!(" (it names {})", names.join(", "))
                    }
                    _ => String::new(),
                };
                format!(
                    "its certificate is not made out to {host}{names}; sslmode={mode} checks \
                     the host name (connect by a name the certificate has, or use \
                     sslmode=verify-ca)"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "its certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "its certificate is not valid yet (or this machine's clock is behind)".into()
            }
            other => format!("its certificate was refused ({other:?}), checked against {roots}"),
        },
        rustls::Error::AlertReceived(Alert::CertificateRequired) => {
            "it asks for a client certificate: give sslcert and sslkey".into()
        }
        rustls::Error::AlertReceived(
            alert @ (Alert::BadCertificate | Alert::UnknownCA | Alert::CertificateUnknown),
        ) => format!("it refused this gateway's client certificate (sslcert): {alert:?}"),
        other => format!("the TLS handshake failed: {other}"),
    }
}

/// A connection to PostgreSQL inside TLS.
pub struct Stream(tokio_rustls::client::TlsStream<Socket>);

impl tokio_postgres::tls::TlsStream for Stream {
    /// `tls-server-end-point`: the server's certificate hashed, which SCRAM's
    /// `-PLUS` login binds the password exchange to, so that a man in the middle
    /// (possible when the certificate is not checked) cannot pass it on.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        let end_point = session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| server_end_point(cert));
        match end_point {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// The hash of `cert` as `tls-server-end-point` takes it: with the hash of the
/// certificate's signature algorithm, SHA-256 for MD5 and SHA-1; `None` for an
/// algorithm without one (Ed25519, RSA-PSS), where the binding is not defined.
fn server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    // The OIDs' encoded bytes, but for their last arc: 1.2.840.113549.1.1 (RSA with
    // MD5, SHA-1, SHA-256, SHA-384, SHA-512), 1.2.840.10045.4 (ECDSA with SHA-1) and
    // 1.2.840.10045.4.3 (ECDSA with SHA-2).
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    let (&last, family) = signature_algorithm(cert)?.split_last()?;
    let bits = match (family, last) {
        (RSA, 4 | 5 | 11) | (ECDSA, 1) | (ECDSA_SHA2, 2) => 256,
        (RSA, 12) | (ECDSA_SHA2, 3) => 384,
        (RSA, 13) | (ECDSA_SHA2, 4) => 512,
        _ => return None,
    };
    Some(match bits {
        256 => sha2::Sha256::digest(cert).to_vec(),
        384 => sha2::Sha384::digest(cert).to_vec(),
        _ => sha2::Sha512::digest(cert).to_vec(),
    })
}

/// The OID (its encoded bytes) of a DER certificate's `signatureAlgorithm`, the
/// element after `tbsCertificate` in the outer sequence.
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, certificate, _) = der_element(cert)? else {
        return None;
    };
    let (_, _, after_tbs) = der_element(certificate)?;
    let (0x30, algorithm, _) = der_element(after_tbs)? else {
        return None;
    };
    let (0x06, oid, _) = der_element(algorithm)? else {
        return None;
    };
    Some(oid)
}

/// The first DER element of `der`: its tag, its contents, and what follows it.
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len, rest) = rest.split_at(count);
        let len = len.iter().fold(0, |n, &b| n << 8 | usize::from(b));
        (len, rest)
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    /// A CA certificate made for these tests (its key was thrown away): something
    /// `sslrootcert` can read.
    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBmDCCAT+gAwIBAgIUeGdhIWRQcrYKyCFpvCWP103Nvo0wCgYIKoZIzj0EAwIw
ITEfMB0GA1UEAwwWd2F0Y2h3aXJlIHVuaXQtdGVzdCBDQTAgFw0yNjEyMDYwNjA3
MjBaGA8yMTI2MTExMjA2MDcyMFowITEfMB0GA1UEAwwWd2F0Y2h3aXJlIHVuaXQt
dGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABK7FY2tbRbFciK7t9R9Q
EGni6VU7P4UjxiAJuGl8B38712Kt6Hrr+JsYOJ6taVAq8QT0Oz99MzQTZbvSYTED
usajUzBRMB0GA1UdDgQWBBSDwTiwBxLi0oGUmS3vshlIzN4k0DAfBgNVHSMEGDAW
gBSDwTiwBxLi0oGUmS3vshlIzN4k0DAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49
BAMCA0cAMEQCIENk1YF61bmhOHnRI36IeXsvAcx1FFs78DMHm8SdGjIxAiBIyKrF
PpyUCeeZM1hZ3oRrlvsl/lEqO/Z13Cju9KrMUw==
-----END CERTIFICATE-----
";

    /// A directory holding `ca.pem` and `not-pem.txt`.
    fn files() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), CA_PEM).unwrap();
        std::fs::write(dir.path().join("not-pem.txt"), "hunter2 is not a key\n").unwrap();
        let ca = dir.path().join("ca.pem").display().to_string();
        (dir, ca)
    }

    fn parsed(url: &str) -> Config {
        url.parse()
            .unwrap_or_else(|e| panic!("{url} was refused: {e}"))
    }

    fn refused(url: &str) -> String {
        match url.parse::<Config>() {
            Ok(config) => panic!("{url} was taken, as sslmode={}", config.tls.mode()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_mode_is_taken_in_both_forms_and_tokio_postgres_gets_what_it_can_do() {
        let (_dir, ca) = files();
        for (mode, tls, ssl) in [
            ("disable", Mode::Disable, SslMode::Disable),
            ("prefer", Mode::Prefer, SslMode::Prefer),
            ("require", Mode::Require, SslMode::Require),
            ("verify-ca", Mode::VerifyCa, SslMode::Require),
            ("verify-full", Mode::VerifyFull, SslMode::Require),
        ] {
            for url in [
                format!("postgres://ww@db:5432/ww?sslmode={mode}&sslrootcert={ca}"),
                format!("postgresql://ww@db/ww?sslrootcert={ca}&sslmode={mode}"),
                format!("host=db user=ww sslmode={mode} sslrootcert='{ca}' dbname=ww"),
                format!("host=db user=ww sslmode = {mode} sslrootcert={ca}"),
            ] {
                let config = parsed(&url);
                assert_eq!(config.tls.mode(), tls, "{url}");
                assert_eq!(config.server.get_ssl_mode(), ssl, "{url}");
                assert_eq!(config.server.get_user(), Some("ww"), "{url}");
                assert_eq!(config.tls.client.is_some(), tls != Mode::Disable, "{url}");
            }
        }
    }

    #[test]
    fn prefer_is_the_default_and_require_needs_no_certificate() {
        let config = parsed("postgres://ww@db/ww");
        assert_eq!(config.tls.mode(), Mode::Prefer);
        assert_eq!(config.server.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(parsed("host=db sslmode=require").tls.mode(), Mode::Require);
    }

    #[test]
    fn the_other_parameters_reach_tokio_postgres_untouched() {
        let (_dir, ca) = files();
        let encoded = ca.replace('/', "%2F");
        let config = parsed(&format!(
            "postgres://ww:pw@db:6543/ww?options=-csearch_path%3Ds_1&sslmode=verify-full\
             &sslrootcert={encoded}&application_name=gw"
        ));
        assert_eq!(config.tls.mode(), Mode::VerifyFull);
        assert_eq!(config.server.get_options(), Some("-csearch_path=s_1"));
        assert_eq!(config.server.get_application_name(), Some("gw"));
        assert_eq!(config.server.get_password(), Some(&b"pw"[..]));
        assert_eq!(config.server.get_ports(), [6543]);
        let config = parsed(&format!(
            "host=db password='p w\\'s' sslrootcert='{ca}' sslmode=verify-ca port=6543"
        ));
        assert_eq!(config.server.get_password(), Some(&b"p w's"[..]));
        assert_eq!(config.server.get_ports(), [6543]);
    }

    #[test]
    fn an_address_without_a_host_name_is_the_name_the_certificate_is_checked_for() {
        let config = parsed("hostaddr=127.0.0.1 port=6543 sslmode=require");
        assert_eq!(config.server.get_hosts(), [Host::Tcp("127.0.0.1".into())]);
        assert_eq!(
            config.server.get_hostaddrs(),
            ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        let config = parsed("host=db hostaddr=127.0.0.1");
        assert_eq!(config.server.get_hosts(), [Host::Tcp("db".into())]);
    }

    #[test]
    fn a_unix_socket_never_uses_tls_as_in_libpq() {
        let config = parsed("host=/var/run/postgresql sslmode=require");
        assert_eq!(config.tls.mode(), Mode::Require);
        assert_eq!(config.server.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn bad_values_are_refused_naming_what_is_wrong_and_what_would_do() {
        let (dir, ca) = files();
        let nothing = dir.path().join("absent.pem").display().to_string();
        let not_pem = dir.path().join("not-pem.txt").display().to_string();
        for (url, says) in [
            (
                "postgres://ww:s3cret@db/ww?sslmode=verify".to_string(),
                "sslmode=verify is not one this gateway knows; sslmode is one of disable, \
                 prefer, require, verify-ca, verify-full",
            ),
            (
                "postgres://db/ww?sslmode=allow".into(),
                "sslmode=allow is not one",
            ),
            ("postgres://db/ww?sslmode=".into(), "sslmode is empty"),
            (
                "host=db sslmode=Require".into(),
                "sslmode=Require is not one",
            ),
            (
                "postgres://db/ww?sslmode=verify-full".into(),
                "sslmode=verify-full checks the server's certificate, so it needs sslrootcert",
            ),
            (
                "host=db sslmode=verify-ca".into(),
                "sslmode=verify-ca checks",
            ),
            (
                format!("postgres://db/ww?sslmode=verify-full&sslrootcert={nothing}"),
                &format!("sslrootcert file {nothing} cannot be read: No such file"),
            ),
            (
                format!("postgres://db/ww?sslmode=require&sslrootcert={not_pem}"),
                &format!("sslrootcert file {not_pem} holds no certificate"),
            ),
            (
                format!("postgres://db/ww?sslmode=require&sslcert={ca}"),
                "sslcert and sslkey go together",
            ),
            (
                format!("postgres://db/ww?sslkey={ca}"),
                "sslcert and sslkey go together",
            ),
            (
                format!("postgres://db/ww?sslcert={ca}&sslkey={not_pem}"),
                &format!("sslkey file {not_pem} holds no private key in PEM form"),
            ),
            (
                format!("postgres://db/ww?sslcert={not_pem}&sslkey={ca}"),
                &format!("sslcert file {not_pem} holds no certificate"),
            ),
            (
                "postgres://db/ww?sslrootcert=system&sslmode=require".into(),
                "sslrootcert=system checks the server against this machine's trusted roots, \
                 which only means something with sslmode=verify-full, not sslmode=require",
            ),
            (
                "postgres://db/ww?sslrootcert=%zz".into(),
                "a % that is not followed",
            ),
            (
                "postgres://ww:s3cret@db/ww?port=x".into(),
                "it is not a PostgreSQL URL like postgres://user@host:5432/db",
            ),
            ("host=db bogus".into(), "it is not a PostgreSQL URL"),
            (
                "host=db sslrootcert='/unterminated".into(),
                "it is not a PostgreSQL URL",
            ),
        ] {
            let message = refused(&url);
            assert!(message.contains(says), "{url}: {message}");
            assert!(
                !message.contains("s3cret") && !message.contains("hunter2"),
                "{url}: a secret in {message}"
            );
        }
    }

    #[test]
    fn sslrootcert_system_asks_for_verify_full() {
        match "postgres://db/ww?sslrootcert=system".parse::<Config>() {
            Ok(config) => assert_eq!(config.tls.mode(), Mode::VerifyFull),
            // A machine without a CA bundle says so.
            Err(e) => assert!(e.to_string().contains("no trusted root"), "{e}"),
        }
    }

    #[test]
    fn the_channel_binding_hashes_the_certificate_as_its_signature_does() {
        use sha2::Digest;
        // CA_PEM is signed with ECDSA and SHA-256.
        let cert = CertificateDer::from_pem_slice(CA_PEM.as_bytes()).unwrap();
        assert_eq!(
            server_end_point(&cert),
            Some(sha2::Sha256::digest(&cert).to_vec())
        );
        // The same with its signature algorithm made ECDSA with SHA-384, and made an
        // OID the binding has no hash for (Ed25519's, 1.3.101.112, padded to length).
        let sha256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        let at = cert
            .windows(sha256.len())
            .rposition(|w| w == sha256)
            .unwrap();
        let mut sha384 = cert.to_vec();
        sha384[at + sha256.len() - 1] = 0x03;
        assert_eq!(
            server_end_point(&sha384),
            Some(sha2::Sha384::digest(&sha384).to_vec())
        );
        let mut ed25519 = cert.to_vec();
        ed25519.splice(
            at..at + sha256.len(),
            [0x06, 0x08, 0x2b, 0x65, 0x70, 0, 0, 0, 0, 0],
        );
        assert_eq!(server_end_point(&ed25519), None);
        for broken in [
            &[][..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &cert[..40],
        ] {
            assert_eq!(server_end_point(broken), None);
        }
    }

    #[test]
    fn a_refused_handshake_says_which_check_failed() {
        use rustls::AlertDescription as Alert;
        use rustls::Error as Tls;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let roots = "the CA in sslrootcert=/etc/ca.pem";
        for (error, says) in [
            (
                Tls::InvalidCertificate(CertificateError::UnknownIssuer),
                "it presented a certificate not signed by the CA in sslrootcert=/etc/ca.pem",
            ),
            (
                Tls::InvalidCertificate(CertificateError::NotValidForNameContext {
                    expected: name.to_owned(),
                    presented: vec!["DnsName(\"localhost\")".into(), "10.0.0.1".into()],
                }),
                "its certificate is not made out to 127.0.0.1 (it names localhost, 10.0.0.1); \
                 sslmode=verify-full checks the host name",
            ),
            (
                Tls::InvalidCertificate(CertificateError::Expired),
                "its certificate has expired",
            ),
            (
                Tls::AlertReceived(Alert::CertificateRequired),
                "it asks for a client certificate: give sslcert and sslkey",
            ),
            (
                Tls::AlertReceived(Alert::UnknownCA),
                "it refused this gateway's client certificate",
            ),
        ] {
            let e = io::Error::new(io::ErrorKind::InvalidData, error);
            let message = refusal(&e, &name, Mode::VerifyFull, roots);
            assert!(message.starts_with(says), "{message}");
        }
        let e = io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(
            refusal(&e, &name, Mode::Require, roots),
            "the TLS handshake failed: reset by peer"
        );
    }
}
