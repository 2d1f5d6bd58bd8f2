//! PostgreSQL stopped and started under publish load through two nodes of one gateway
//! (docs/api.md §13, "Database trouble"): while the database is down every call that
//! needs it answers `503 backendError` within 5 s and `/healthz` answers `503`; the
//! nodes keep running, reconnect by themselves once the database is back, and lose
//! nothing they acknowledged.
//!
//! The test runs a PostgreSQL server of its own (initdb into a temporary directory,
//! as the `postgres` user), so stopping it disturbs nothing else on the machine.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::process::GatewayProcess;
use crate::common::*;

/// A PostgreSQL server of the test's own, on a free port.
struct PrivatePostgres {
    bin: PathBuf,
    data: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// `None` (after saying why) where PostgreSQL's server programs are not installed;
    /// under CI that is a failure.
    fn create() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| versions.flatten().map(|v| v.path().join("bin")).max())
            .filter(|bin| bin.join("initdb").exists());
        let Some(bin) = bin else {
            test_support::skip(
                "the database outage test",
                "PostgreSQL's server programs (/usr/lib/postgresql/*/bin/initdb)",
            );
            return None;
        };
        let data = tempfile::tempdir().unwrap();
        run_checked(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(data.path()),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = PrivatePostgres { bin, data, port };
        server.run(
            "initdb",
            &["--auth=trust", "--username=postgres", "--no-sync", "-D"],
            true,
        );
        server.start();
        Some(server)
    }

    fn cluster(&self) -> PathBuf {
        self.data.path().join("cluster")
    }

    fn run(&self, program: &str, args: &[&str], with_dir: bool) {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args);
        if with_dir {
            command.arg(self.cluster());
        }
        run_checked(&mut command);
    }

    fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.data.path().display()
        );
        self.run(
            "pg_ctl",
            &["-w", "-l", "/dev/null", "-o", &options, "start", "-D"],
            true,
        );
    }

    /// Stops it the way a crash would: no checkpoint, connections cut.
    fn stop(&self) {
        self.run("pg_ctl", &["-w", "-m", "immediate", "stop", "-D"], true);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-m", "immediate", "stop", "-D"])
            .arg(self.cluster())
            .output();
    }
}

/// Runs a command and asserts it succeeded, with its output in the message.
fn run_checked(command: &mut Command) {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Polls `done` until it holds; fails after 30 s naming `what`.
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_under_publish_load() {
    if crate::common::store::is_postgres_repeat() {
        return; // It brings its own PostgreSQL, whatever the store: the first pass ran it.
    }
    let Some(database) = PrivatePostgres::create() else {
        return;
    };
    // Two nodes of one gateway on it: the outage hits the cluster, not one process.
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let url = format!("--database-url={}", database.url());
    let nodes: Vec<GatewayProcess> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            GatewayProcess::start(dir.path(), &[&url, &format!("--node-id=outage-{i}")])
        })
        .collect();
    let gateway = &nodes[0];
    let rx = Receiver::start().await;
    gateway.watch("/outage", "through", &rx.url()).await;
    assert_eq!(rx.next().await.state(), "sync");

    // Publishers that never stop until told: what got a 200 must arrive.
    let acked: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let refused = Arc::new(Mutex::new(0usize));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut publishers = Vec::new();
    for p in 0..4i64 {
        let (api, acked, slowest, refused, running) = (
            nodes[p as usize % 2].api.clone(),
            acked.clone(),
            slowest.clone(),
            refused.clone(),
            running.clone(),
        );
        publishers.push(tokio::spawn(async move {
            let mut k = 0;
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                let i = p * 1_000_000 + k;
                k += 1;
                let started = Instant::now();
                let reply = api
                    .post("/v1/events", &json!({"resource": format!("/outage/{i}"), "state": "exists", "data": {"i": i}}))
                    .await;
                let took = started.elapsed();
                {
                    let mut slowest = slowest.lock().unwrap();
                    *slowest = (*slowest).max(took);
                }
                match reply.status {
                    200 => drop(acked.lock().unwrap().insert(i)),
                    503 => {
                        reply.assert_error(503, "backendError");
                        *refused.lock().unwrap() += 1;
                    }
                    other => panic!("publish {i} answered {other}: {}", reply.text),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    wait_for("acknowledged publishes", || {
        acked.lock().unwrap().len() >= 50
    })
    .await;

    database.stop();
    let refused_before = *refused.lock().unwrap();
    wait_for("refusals while the database is down", || {
        *refused.lock().unwrap() >= refused_before + 8
    })
    .await;
    for node in &nodes {
        node.get("/healthz").await.assert_error(503, "backendError");
    }
    let listing = gateway.get("/v1/channels/through").await;
    listing.assert_error(503, "backendError");

    database.start();
    let acked_at_restart = acked.lock().unwrap().len();
    wait_for("publishes acknowledged again", || {
        acked.lock().unwrap().len() >= acked_at_restart + 50
    })
    .await;
    for node in &nodes {
        let mut healthy = false;
        for _ in 0..300 {
            if node.get("/healthz").await.status == 200 {
                healthy = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(healthy, "/healthz recovers once the database is back");
    }
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let slowest = *slowest.lock().unwrap();
    assert!(
        slowest < Duration::from_millis(6500),
        "a call waited {slowest:?} for the unreachable database (5 s is the bound)"
    );

    // Everything acknowledged arrives, before and after the outage.
    let acked = acked.lock().unwrap().clone();
    let mut delivered = BTreeSet::new();
    while !acked.is_subset(&delivered) {
        let got = rx.next().await;
        delivered.insert(got.body_json()["i"].as_i64().unwrap());
    }
}
