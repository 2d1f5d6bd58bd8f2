//! A `watchwire serve` child process, for crash and signal tests, and for assertions on
//! what is process-wide (metrics) that other gateways in the test process would move.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::Method;

use super::{keys, Api};

/// It derefs to its `Api`, the same client as an in-process `Gateway`'s.
pub struct GatewayProcess {
    pub child: Child,
    pub api: Api,
}

impl std::ops::Deref for GatewayProcess {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl GatewayProcess {
    /// Starts `watchwire serve --dev` on 127.0.0.1:0 and waits for its listening line.
    pub fn start(data_dir: &Path, extra: &[&str]) -> GatewayProcess {
        GatewayProcess::spawn(data_dir, &["--dev"], extra)
    }

    /// Starts `watchwire serve` as `Gateway::keyed` runs in process: without `--dev`,
    /// with the keys of `keys` and its allow-list.
    pub fn keyed(data_dir: &Path, extra: &[&str]) -> GatewayProcess {
        let config = keys::write_config(data_dir);
        let config = config.to_str().unwrap();
        #[rustfmt::skip]
        let keyed = [
            "--api-key", keys::ROOT, "--api-key", keys::OTHER_ROOT, "--config", config,
            "--allow-targets", keys::ALLOW_TARGETS,
        ];
        GatewayProcess::spawn(data_dir, &keyed, extra)
    }

    /// `watchwire serve` in `mode` with the tests' defaults: `--listen 127.0.0.1:0` and
    /// `--log warn` unless `extra` gives them.
    fn command(data_dir: &Path, mode: &[&str], extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_watchwire"));
        command.arg("serve").args(mode);
        for (flag, default) in [("--listen", "127.0.0.1:0"), ("--log", "warn")] {
            if !extra.contains(&flag) {
                command.args([flag, default]);
            }
        }
        command
            .args(["--retry-schedule", "20ms,40ms"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(
                super::store::database_url(data_dir)
                    .into_iter()
                    .flat_map(|url| {
                        [
                            format!("--database-url={url}"),
                            format!("--node-id={}", super::store::node_id(data_dir)),
                        ]
                    }),
            )
            .args(extra);
        command
    }

    fn spawn(data_dir: &Path, mode: &[&str], extra: &[&str]) -> GatewayProcess {
        GatewayProcess::spawn_with_stderr(data_dir, mode, extra, Stdio::inherit())
    }

    /// Starts `watchwire serve --dev` as `start` does, with each line it logs sent on
    /// the channel returned.
    pub fn start_logged(
        data_dir: &Path,
        extra: &[&str],
    ) -> (GatewayProcess, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let mut gateway =
            GatewayProcess::spawn_with_stderr(data_dir, &["--dev"], extra, Stdio::piped());
        let stderr = gateway.child.stderr.take().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        (gateway, rx)
    }

    fn spawn_with_stderr(
        data_dir: &Path,
        mode: &[&str],
        extra: &[&str],
        stderr: Stdio,
    ) -> GatewayProcess {
        let mut child = GatewayProcess::command(data_dir, mode, extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("watchwire binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("watchwire listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("gateway printed its address");
        GatewayProcess {
            child,
            api: Api::new(url),
        }
    }

    /// Starts `watchwire serve --dev` with its standard output and error as given (a
    /// full disk, a closed pipe), which cannot say where it listens: so on a port that
    /// was free a moment ago, and this waits until `/healthz` answers there.
    pub async fn with_output(
        data_dir: &Path,
        extra: &[&str],
        stdout: Stdio,
        stderr: Stdio,
    ) -> GatewayProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let extra: Vec<&str> = ["--listen", &listen].iter().chain(extra).copied().collect();
        let child = GatewayProcess::command(data_dir, &["--dev"], &extra)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("watchwire binary starts");
        let mut gateway = GatewayProcess {
            child,
            api: Api::new(format!("http://{listen}")),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let health = gateway.api.request(Method::GET, "/healthz").send().await;
            if health.is_ok_and(|h| h.status() == 200) {
                return gateway;
            }
            if let Some(status) = gateway.child.try_wait().unwrap() {
                panic!("the gateway exited before it answered: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway did not answer on {listen} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `watchwire serve --dev` on `data_dir` expecting it to refuse to start:
    /// returns its exit status and what it printed on stderr.
    pub fn refused(data_dir: &Path, extra: &[&str]) -> (std::process::ExitStatus, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_watchwire"))
            .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("watchwire binary runs");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).unwrap();
    }

    /// Waits for the process to exit, at most `within`; its exit status.
    pub async fn exited_within(mut self, within: Duration) -> std::process::ExitStatus {
        let exited = tokio::task::spawn_blocking(move || self.child.wait().unwrap());
        tokio::time::timeout(within, exited)
            .await
            .unwrap_or_else(|_| panic!("the gateway did not exit within {within:?}"))
            .unwrap()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
