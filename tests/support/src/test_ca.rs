//! A certificate authority made for one test, with the `openssl` command: its
//! certificate, and certificates it signs for servers (by host name) and clients (by
//! user name), each a PEM file beside its unencrypted key, in a temporary directory
//! that goes with it. EC P-256 keys, valid for two days.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::private_postgres::run_checked;

/// `openssl req`'s configuration: the CA's own extensions. A certificate it signs
/// gets its extensions from a file of its own.
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
";

/// A certificate and the key that goes with it.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct TestCa {
    dir: tempfile::TempDir,
    name: String,
    serial: std::cell::Cell<u32>,
}

impl TestCa {
    /// A new CA called `name`; `None` (after [`crate::skip`]ping `what`) where the
    /// `openssl` command is missing.
    #[track_caller]
    pub fn new(what: &str, name: &str) -> Option<TestCa> {
        if Command::new("openssl").arg("version").output().is_err() {
            crate::skip(what, "the openssl command, to make test certificates");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("openssl.cnf"), OPENSSL_CONFIG).unwrap();
        let ca = TestCa {
            dir,
            name: name.to_string(),
            serial: std::cell::Cell::new(1),
        };
        let Issued { cert, key } = ca.paths(name);
        run_checked(
            ca.openssl(&["req", "-x509", "-new", "-extensions", "ca", "-days", "2"])
                .args(["-subj", &format!("/CN={name}"), "-keyout"])
                .arg(key)
                .arg("-out")
                .arg(cert),
        );
        Some(ca)
    }

    /// The CA's certificate: what a peer trusts it by.
    pub fn cert(&self) -> PathBuf {
        self.paths(&self.name).cert
    }

    /// A server certificate for `hosts` (DNS names, or IP addresses).
    pub fn server(&self, file: &str, hosts: &[&str]) -> Issued {
        let names: Vec<String> = hosts
            .iter()
            .map(|host| match host.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{host}"),
                Err(_) => format!("DNS:{host}"),
            })
            .collect();
        let extensions = format!(
            "extendedKeyUsage = serverAuth\nsubjectAltName = {}\n",
            names.join(", ")
        );
        self.issue(
            file,
            hosts.first().copied().unwrap_or("server"),
            &extensions,
        )
    }

    /// A client certificate for PostgreSQL's user `user` (its common name).
    pub fn client(&self, file: &str, user: &str) -> Issued {
        self.issue(file, user, "extendedKeyUsage = clientAuth\n")
    }

    fn issue(&self, file: &str, common_name: &str, extensions: &str) -> Issued {
        let issued = self.paths(file);
        let request = self.dir.path().join(format!("{file}.csr"));
        let extensions_file = self.dir.path().join(format!("{file}.ext"));
        std::fs::write(
            &extensions_file,
            format!("basicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\n{extensions}"),
        )
        .unwrap();
        run_checked(
            self.openssl(&["req", "-new", "-subj", &format!("/CN={common_name}")])
                .arg("-keyout")
                .arg(&issued.key)
                .arg("-out")
                .arg(&request),
        );
        let ca = self.paths(&self.name);
        let serial = self.serial.get() + 1;
        self.serial.set(serial);
        run_checked(
            Command::new("openssl")
                .args([
                    "x509",
                    "-req",
                    "-days",
                    "2",
                    "-set_serial",
                    &serial.to_string(),
                ])
                .arg("-in")
                .arg(&request)
                .arg("-CA")
                .arg(&ca.cert)
                .arg("-CAkey")
                .arg(&ca.key)
                .arg("-extfile")
                .arg(&extensions_file)
                .arg("-out")
                .arg(&issued.cert),
        );
        issued
    }

    /// `openssl ARGS` making a new unencrypted P-256 key, with this CA's config.
    fn openssl(&self, args: &[&str]) -> Command {
        let mut command = Command::new("openssl");
        command
            .args(args)
            .args([
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .arg("-config")
            .arg(self.dir.path().join("openssl.cnf"));
        command
    }

    fn paths(&self, file: &str) -> Issued {
        let at = |suffix: &str| -> PathBuf {
            Path::new(self.dir.path()).join(format!("{file}{suffix}"))
        };
        Issued {
            cert: at(".crt"),
            key: at(".key"),
        }
    }
}
