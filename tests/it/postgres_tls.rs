//! TLS between the gateway and PostgreSQL (README, "Running on PostgreSQL"): each
//! `sslmode` of `--database-url`, against a PostgreSQL server of the test's own that
//! takes TLS connections only (`hostnossl … reject`), with a certificate for
//! `localhost` signed by a CA made for the test, `trust` for user `postgres`,
//! client-certificate login (`cert`) for user `ww_cert` and a password (SCRAM) for
//! `ww_scram`. Every gateway is the real
//! binary: one that may connect starts, and publishes and reads through the database;
//! one that may not exits non-zero, its error naming the cause.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use test_support::{Issued, PrivatePostgres, TestCa};

use crate::common::process::GatewayProcess;

const WHAT: &str = "the PostgreSQL TLS test";
/// The password of `ww_scram`, who logs in with SCRAM.
const PASSWORD: &str = "pw-never-shown";

/// Who may connect, and how: TLS or nothing.
const HBA: &str = "\
local all all trust
hostssl all ww_cert 127.0.0.1/32 cert
hostssl all ww_scram 127.0.0.1/32 scram-sha-256
hostssl all postgres 127.0.0.1/32 trust
hostnossl all all 0.0.0.0/0 reject
";

/// The server, the CA that signed its certificate, and a client certificate of
/// `ww_cert` signed by it.
struct TlsServer {
    db: PrivatePostgres,
    ca: TestCa,
    client: Issued,
}

impl TlsServer {
    fn start() -> Option<TlsServer> {
        let ca = TestCa::new(WHAT, "watchwire test CA")?;
        let db = PrivatePostgres::init(WHAT)?;
        let server = ca.server("server", &["localhost"]);
        for (setting, file, from) in [
            ("ssl_cert_file", "server.crt", &server.cert),
            ("ssl_key_file", "server.key", &server.key),
            ("ssl_ca_file", "root.crt", &ca.cert()),
        ] {
            let path = db.write(file, &std::fs::read(from).unwrap());
            db.set(setting, path.to_str().unwrap());
        }
        db.set("ssl", "on");
        db.hba(HBA);
        db.start();
        // One statement at a time: CREATE DATABASE takes no transaction block.
        for sql in [
            "CREATE USER ww_cert",
            "CREATE DATABASE ww_cert OWNER ww_cert",
            &format!("CREATE USER ww_scram PASSWORD '{PASSWORD}'"),
            "CREATE DATABASE ww_scram OWNER ww_scram",
        ] {
            test_support::execute(&db.socket_url(), sql).unwrap();
        }
        let client = ca.client("ww_cert", "ww_cert");
        Some(TlsServer { db, ca, client })
    }

    /// `--database-url=` for `login@host` (`user` or `user:password`, and database
    /// `user`) with `params`.
    fn url(&self, login: &str, host: &str, params: &str) -> String {
        let user = login.split(':').next().unwrap();
        format!(
            "--database-url=postgres://{login}@{host}:{}/{user}?{params}",
            self.db.port()
        )
    }
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Starts a gateway on `url`; asserts it publishes and reads back through it.
async fn serves(url: &str) -> GatewayProcess {
    let dir = tempfile::tempdir().unwrap();
    let gateway = GatewayProcess::start(dir.path(), &[url, "--node-id=tls"]);
    gateway
        .publish(json!({"resource": "/tls/a", "state": "exists", "data": {"over": "tls"}}))
        .await;
    let read = gateway
        .get("/v1/changeset?resource=/tls/a&_expected=0")
        .await
        .expect(200)
        .json;
    let changes = read["changes"].as_array().unwrap();
    assert_eq!(
        changes.last().unwrap()["data"],
        json!({"over": "tls"}),
        "{url}: {read}"
    );
    gateway
}

/// Asserts a gateway on `url` refuses to start, with an error that says `cause`.
fn refused(url: &str, cause: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) = GatewayProcess::refused(dir.path(), &[url]);
    assert!(!status.success(), "{url} started");
    assert!(
        stderr.contains(cause),
        "{url}: its error does not say {cause:?}:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{url} panicked:\n{stderr}");
    assert!(
        !stderr.contains("-pw"),
        "{url}: a password in its error:\n{stderr}"
    );
}

/// Polls `sql` on the server (over its socket) until it answers `expected`, for at
/// most 10 s.
fn until_answers(db: &PrivatePostgres, sql: &str, expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = test_support::query(&db.socket_url(), sql).unwrap();
        if rows.iter().any(|row| row == expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql} answered {rows:?}, not {expected:?}, within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sslmode_against_a_server_that_takes_tls_only() {
    if crate::common::store::is_postgres() {
        // It brings its own database, whatever the store: the embedded pass runs it.
        test_support::note(&format!("{WHAT} runs on the embedded store's pass only"));
        return;
    }
    let Some(server) = TlsServer::start() else {
        return;
    };
    let ca = server.ca.cert();
    let ca = path(&ca);
    // host=localhost, as the certificate says, on the address the server listens on.
    let by_name = |user: &str, params: &str| {
        server.url(user, "localhost", &format!("hostaddr=127.0.0.1&{params}"))
    };
    let by_address = |params: &str| server.url("postgres", "127.0.0.1", params);

    // verify-full with the CA that signed the server's certificate: every connection
    // (the pool's, the writer's, the listener's) is TLS, and works.
    let full = by_name("postgres", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let gateway = serves(&full).await;
    until_answers(
        &server.db,
        "SELECT s.ssl::text FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.query LIKE 'LISTEN %'",
        &["true"],
    );
    drop(gateway);

    // Another CA: the server's certificate is not signed by it.
    let other = TestCa::new(WHAT, "another CA").unwrap();
    let other = other.cert();
    refused(
        &by_name(
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={}", path(&other)),
        ),
        &format!(
            "error performing TLS handshake: it presented a certificate not signed by the CA \
             in sslrootcert={}",
            path(&other)
        ),
    );

    // The certificate names localhost, not 127.0.0.1: verify-full refuses the
    // address, verify-ca (the chain alone) takes it.
    refused(
        &by_address(&format!("sslmode=verify-full&sslrootcert={ca}")),
        "its certificate is not made out to 127.0.0.1",
    );
    drop(serves(&by_address(&format!("sslmode=verify-ca&sslrootcert={ca}"))).await);

    // No TLS: the server's own refusal.
    refused(
        &by_address("sslmode=disable"),
        "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"postgres\", database \"postgres\", no encryption",
    );

    // Client-certificate login, and without the certificate.
    let login = format!("sslmode=verify-full&sslrootcert={ca}");
    let with_cert = format!(
        "{login}&sslcert={}&sslkey={}",
        path(&server.client.cert),
        path(&server.client.key)
    );
    drop(serves(&by_name("ww_cert", &with_cert)).await);
    refused(
        &by_name("ww_cert", &login),
        "connection requires a valid client certificate",
    );

    // A password login bound to the TLS channel (SCRAM-SHA-256-PLUS), and a wrong
    // password, which is never shown.
    let scram = |password: &str| {
        let login = format!("ww_scram:{password}");
        server.url(
            &login,
            "127.0.0.1",
            "sslmode=require&channel_binding=require",
        )
    };
    drop(serves(&scram(PASSWORD)).await);
    refused(
        &scram("wrong-pw"),
        "password authentication failed for user \"ww_scram\"",
    );

    // Encrypted without checking the server: require, and prefer (the default).
    drop(serves(&by_address("sslmode=require")).await);
    drop(serves(&by_address("sslmode=prefer")).await);
    drop(serves(&by_address("application_name=default-is-prefer")).await);

    // A server that stops offering TLS: require refuses, never falls back to plain
    // text; prefer falls back, and the server refuses the plain connection.
    for sql in ["ALTER SYSTEM SET ssl = off", "SELECT pg_reload_conf()"] {
        test_support::execute(&server.db.socket_url(), sql).unwrap();
    }
    until_answers(&server.db, "SHOW ssl", &["off"]);
    refused(
        &by_address("sslmode=require"),
        "(sslmode=require): error performing TLS handshake: server does not support TLS",
    );
    refused(&by_address("sslmode=prefer"), "no encryption");
}
