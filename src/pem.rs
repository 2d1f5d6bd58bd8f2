//! PEM files of certificates and private keys, read once at startup by whatever
//! speaks TLS as a client (the PostgreSQL store, mutual TLS towards receivers). Every
//! message names the file and what it was given as; none quotes a key.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A file's bytes; `what` names the option it was given as (`sslkey`, `client_cert`).
pub fn read(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} file {} cannot be read: {e}", path.display()))
}

/// Every certificate in a PEM file; at least one.
pub fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(what, path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} file {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} file {} holds no certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first private key in a PEM file. Nothing of the file's content is ever quoted.
pub fn private_key(what: &str, path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        format!(
            "{what} file {} holds no private key in PEM form (-----BEGIN PRIVATE KEY-----, \
             or an RSA or EC one); an encrypted key is not supported",
            path.display()
        )
    })
}
