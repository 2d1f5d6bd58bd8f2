//! Receivers over TLS, with a certificate from a test's own CA, that may demand a client
//! certificate that CA signed (mutual TLS). What each request arrived with is recorded
//! as a header of its own, [`CLIENT_CERTIFICATE`]: the SHA-256 of the client
//! certificate the connection presented, as [`fingerprint`] gives it for a file.

use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;
use test_support::Issued;

use super::Receiver;

/// The header a request's client certificate is recorded in.
pub const CLIENT_CERTIFICATE: &str = "x-test-client-certificate";

/// The fingerprint of the certificate a connection presented.
#[derive(Clone)]
pub struct PeerCertificate(pub String);

/// The SHA-256 of the (first) certificate in a PEM file, as hex.
pub fn fingerprint(pem_file: &Path) -> String {
    let der = CertificateDer::from_pem_file(pem_file).expect("a PEM certificate");
    hex(&der)
}

fn hex(der: &[u8]) -> String {
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Receiver {
    /// An `https://` receiver on 127.0.0.1 with the certificate `server`; with
    /// `client_ca`, it completes a handshake only with a client certificate that CA signed.
    pub async fn start_https(server: &Issued, client_ca: Option<&Path>) -> Receiver {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(CertificateDer::from_pem_file(ca).unwrap())
                    .unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let chain = CertificateDer::pem_file_iter(&server.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&server.key).unwrap();
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let (app, rx, responder) = Receiver::unbound();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client without an acceptable certificate fails here.
                    let Ok(tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let peer = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map_or_else(|| "none".to_string(), |der| hex(der));
                    let app = app.layer(axum::Extension(PeerCertificate(peer)));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        Receiver {
            addr,
            rx: tokio::sync::Mutex::new(rx),
            responder,
        }
    }

    /// Its `https://localhost:PORT/hook` address (its certificate names `localhost`).
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}/hook", self.addr.port())
    }
}
