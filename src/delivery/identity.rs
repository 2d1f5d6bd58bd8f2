//! Client certificates for mutual TLS (docs/api.md §17): which certificate each API
//! key's channels present to receivers that demand one. A named key in the config file
//! may carry its own (`client_cert`, `client_key`); `--client-cert` / `--client-key` is
//! the one of every other key. The files are read and checked once, at startup, so a
//! missing file or a key that is not the certificate's stops the gateway there, with a
//! message naming the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::KeyConfig;

/// A certificate chain and the private key of its first certificate.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Both files together, as the HTTP client takes them.
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// Reads `cert` and `key`, given as the options `cert_option` and `key_option`
    /// (the names a message uses), and checks that the key is the certificate's.
    pub fn load(
        (cert_option, cert): (&str, &Path),
        (key_option, key): (&str, &Path),
    ) -> Result<ClientIdentity, String> {
        let chain = crate::pem::certificates(cert_option, cert)?;
        let secret = crate::pem::private_key(key_option, key)?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        rustls::sign::CertifiedKey::from_der(chain.clone(), secret.clone_key(), &provider)
            .map_err(|e| {
                format!(
                    "{key_option} file {} is not the key of {cert_option} file {}: {e}",
                    key.display(),
                    cert.display()
                )
            })?;
        let mut pem = crate::pem::read(cert_option, cert)?;
        pem.push(b'\n');
        pem.extend(crate::pem::read(key_option, key)?);
        Ok(ClientIdentity {
            chain,
            key: secret,
            pem,
        })
    }
}

/// The client certificate of every API key that has one.
#[derive(Debug, Default)]
pub struct ClientIdentities {
    /// `--client-cert`: for keys without their own.
    pub default: Option<Arc<ClientIdentity>>,
    /// By owner (a named key's name).
    pub by_owner: HashMap<String, Arc<ClientIdentity>>,
}

impl ClientIdentities {
    /// Loads `--client-cert` / `--client-key` and the keys' own certificates.
    pub fn load(
        default: (Option<&Path>, Option<&Path>),
        keys: &[KeyConfig],
    ) -> anyhow::Result<ClientIdentities> {
        let mut identities = ClientIdentities::default();
        match default {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                let identity =
                    ClientIdentity::load(("--client-cert", cert), ("--client-key", key))
                        .map_err(anyhow::Error::msg)?;
                identities.default = Some(Arc::new(identity));
            }
            _ => anyhow::bail!(
                "--client-cert and --client-key go together: the client certificate (PEM) and its private key (PEM)"
            ),
        }
        let mut files: HashMap<&str, (&PathBuf, &PathBuf)> = HashMap::new();
        for k in keys {
            let context = |what: String| anyhow::anyhow!("key {:?}: {what}", k.name);
            let (cert, key) = match (&k.client_cert, &k.client_key) {
                (None, None) => {
                    if files.contains_key(k.name.as_str()) {
                        return Err(context(SAME_NAME.into()));
                    }
                    continue;
                }
                (Some(cert), Some(key)) => (cert, key),
                _ => return Err(context(
                    "client_cert and client_key go together: the client certificate (PEM) and its private key (PEM)".into(),
                )),
            };
            match files.get(k.name.as_str()) {
                Some(&given) if given == (cert, key) => continue,
                Some(_) => return Err(context(SAME_NAME.into())),
                None => {}
            }
            if keys
                .iter()
                .any(|other| other.name == k.name && other.client_cert.is_none())
            {
                return Err(context(SAME_NAME.into()));
            }
            let identity = ClientIdentity::load(("client_cert", cert), ("client_key", key))
                .map_err(context)?;
            files.insert(&k.name, (cert, key));
            identities
                .by_owner
                .insert(k.name.clone(), Arc::new(identity));
        }
        Ok(identities)
    }
}

const SAME_NAME: &str = "another entry of that name presents another client certificate; keys that share a name share their channels, so give them the same client_cert and client_key";

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, files: Option<(&str, &str)>) -> KeyConfig {
        let mut toml = format!("name = \"{name}\"\nkey = \"k-{name}\"\n");
        if let Some((cert, key)) = files {
            toml.push_str(&format!(
                "client_cert = \"{cert}\"\nclient_key = \"{key}\"\n"
            ));
        }
        toml::from_str(&toml).unwrap()
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = ClientIdentities::load(
            (
                Some(Path::new("/nonexistent/c.pem")),
                Some(Path::new("/nonexistent/k.pem")),
            ),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--client-cert file /nonexistent/c.pem cannot be read"),
            "{err}"
        );
        let err = ClientIdentities::load(
            (None, None),
            &[key(
                "photos",
                Some(("/nonexistent/p.crt", "/nonexistent/p.key")),
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"photos\"") && err.contains("client_cert file /nonexistent/p.crt"),
            "{err}"
        );
    }

    #[test]
    fn halves_of_a_pair_and_names_that_disagree_are_refused() {
        let err = ClientIdentities::load((Some(Path::new("/c.pem")), None), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("go together"), "{err}");
        let mut half = key("a", None);
        half.client_cert = Some("/c.pem".into());
        let err = ClientIdentities::load((None, None), &[half])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("client_cert and client_key go together"),
            "{err}"
        );
        let err = ClientIdentities::load(
            (None, None),
            &[key("a", Some(("/c.pem", "/k.pem"))), key("a", None)],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("another entry of that name"), "{err}");
    }
}
