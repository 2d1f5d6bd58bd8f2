//! The gateway under test, as a `watchwire serve` child process of the binary
//! `--gateway` names.
//!
//! A separate process has its own runtime (as in production), its own honest resident
//! memory (`/proc/PID/status`) and CPU time (`/proc/PID/stat`), and can be stopped and
//! restarted on the same data directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::postgres::Schema;

/// The line `watchwire serve` prints once it serves.
const LISTENING: &str = "watchwire listening on ";
/// How long a start may take before the benchmark gives up (1M channels load slowly).
const START_PATIENCE: Duration = Duration::from_secs(300);

pub struct Gateway {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    /// The PostgreSQL schema holding its data (`None`: the embedded store in `data_dir`).
    pub schema: Option<String>,
    /// From spawning the process to its listening line.
    pub started_in: Duration,
}

/// How a gateway is started.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The `watchwire` binary.
    pub exe: PathBuf,
    pub data_dir: PathBuf,
    /// `--database-url` and the schema it selects: the PostgreSQL store instead of the
    /// embedded one in `data_dir`.
    pub database: Option<Schema>,
    /// The gateway's stderr (its log) goes here.
    pub log_file: PathBuf,
    pub log_filter: String,
    pub extra: Vec<String>,
    /// Environment variables set for the process (e.g. the allocator's).
    pub env: Vec<(String, String)>,
}

impl Launch {
    pub fn new(exe: &Path, data_dir: &Path, log_file: &Path, log_filter: &str) -> Launch {
        Launch {
            exe: exe.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            database: None,
            log_file: log_file.to_path_buf(),
            log_filter: log_filter.to_string(),
            extra: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Keeps the gateway's data in PostgreSQL, in `schema`.
    pub fn on_postgres(mut self, schema: Schema) -> Launch {
        self.database = Some(schema);
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Launch {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn arg(mut self, flag: &str, value: &str) -> Launch {
        self.extra.push(flag.to_string());
        self.extra.push(value.to_string());
        self
    }
}

impl Gateway {
    /// Spawns `watchwire serve --dev` on `127.0.0.1:0` with durability on (the embedded
    /// store always runs `synchronous=FULL`; PostgreSQL as its server is set up) and
    /// waits for its listening line.
    pub async fn start(launch: &Launch) -> anyhow::Result<Gateway> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log_file)
            .with_context(|| format!("opening {}", launch.log_file.display()))?;
        let began = Instant::now();
        let mut child = Command::new(&launch.exe)
            .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--log"])
            .arg(&launch.log_filter)
            .arg("--data-dir")
            .arg(&launch.data_dir)
            .args(["--max-channels-per-key", "100000000"])
            .args(
                launch
                    .database
                    .iter()
                    .flat_map(|d| ["--database-url".to_string(), d.url.clone()]),
            )
            .args(&launch.extra)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {} serve", launch.exe.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(START_PATIENCE, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix(LISTENING) {
                    return anyhow::Ok(url.trim().to_string());
                }
            }
            anyhow::bail!(
                "watchwire serve exited without listening; see {}",
                launch.log_file.display()
            )
        })
        .await
        .context("waiting for watchwire serve to listen")??;
        let started_in = began.elapsed();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Gateway {
            child,
            url,
            data_dir: launch.data_dir.clone(),
            schema: launch.database.as_ref().map(|d| d.name.clone()),
            started_in,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Resident memory now (`VmRSS`), bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss_of(self.pid())
    }

    /// Resident anonymous memory now (`RssAnon`: the heap and stacks, not mapped files),
    /// bytes.
    pub fn anon_rss(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "RssAnon:").map(|kib| kib * 1024)
    }

    /// Peak resident memory since start (`VmHWM`), bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmHWM:").map(|kib| kib * 1024)
    }

    /// CPU time the process used so far (user + system, all threads), seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the parenthesised command name; utime and stime are 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Field 3 is the first after ')', so utime (14) is index 11.
        Ok((ticks(11) + ticks(12)) / clock_ticks_per_second())
    }

    /// `GET /healthz` answered `200`.
    pub async fn healthy(&self, client: &reqwest::Client) -> bool {
        matches!(
            client.get(format!("{}/healthz", self.url)).send().await,
            Ok(r) if r.status().is_success()
        )
    }

    /// A metric's value from `/metrics` (the sum over its label sets), if present.
    pub async fn metric(
        &self,
        client: &reqwest::Client,
        name: &str,
    ) -> anyhow::Result<Option<f64>> {
        self.metric_with(client, name, "").await
    }

    /// A metric's value from `/metrics`, 0 if absent (see [`Gateway::metric`]).
    pub async fn value(&self, client: &reqwest::Client, name: &str) -> anyhow::Result<f64> {
        Ok(self.metric(client, name).await?.unwrap_or(0.0))
    }

    /// The sum of a metric's samples whose labels contain `label` (e.g. `outcome="retried"`).
    pub async fn metric_with(
        &self,
        client: &reqwest::Client,
        name: &str,
        label: &str,
    ) -> anyhow::Result<Option<f64>> {
        let text = client
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .text()
            .await?;
        Ok(metric_value(&text, name, label))
    }

    /// SIGKILL (`kill -9`: no shutdown at all), and waits until the process is gone.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("watchwire serve was still there 30 s after SIGKILL")??;
        Ok(())
    }

    /// SIGTERM, then waits for the graceful shutdown. Returns how long it took.
    pub async fn stop(mut self) -> anyhow::Result<Duration> {
        let began = Instant::now();
        let pid = self.pid().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .map(|s| s.success())
            .unwrap_or(false);
        if !signalled {
            self.child.start_kill()?;
        }
        let status = tokio::time::timeout(Duration::from_secs(120), self.child.wait())
            .await
            .context("watchwire serve did not stop within 120 s of SIGTERM")??;
        if signalled && !status.success() {
            anyhow::bail!("watchwire serve exited with {status} after SIGTERM");
        }
        Ok(began.elapsed())
    }
}

/// The version `exe --version` prints (`watchwire 0.1.0` → `0.1.0`); also proves that
/// `exe` runs.
pub fn version(exe: &Path) -> anyhow::Result<String> {
    let output = std::process::Command::new(exe)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", exe.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next().unwrap_or_default().trim();
    match line.split_once(' ') {
        Some(("watchwire", version)) if output.status.success() => Ok(version.to_string()),
        _ => anyhow::bail!(
            "{} is not a watchwire gateway: `--version` printed {line:?}",
            exe.display()
        ),
    }
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// `USER_HZ`: 100 on every Linux this runs on (`getconf CLK_TCK`).
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// Sums every sample of `name` in Prometheus text whose line contains `label`.
fn metric_value(text: &str, name: &str, label: &str) -> Option<f64> {
    let mut found = None;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(label))
    {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// Resident memory of process `pid` (`VmRSS`), bytes.
pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_sum_label_sets_and_ignore_prefixes() {
        let text = "# TYPE a counter\na_total{outcome=\"x\"} 2\na_total{outcome=\"y\"} 3\na_total_other 9\nb 1.5\n";
        assert_eq!(metric_value(text, "a_total", ""), Some(5.0));
        assert_eq!(metric_value(text, "a_total", "outcome=\"y\""), Some(3.0));
        assert_eq!(metric_value(text, "b", ""), Some(1.5));
        assert_eq!(metric_value(text, "c", ""), None);
    }

    #[test]
    fn memory_of_a_process_is_readable() {
        assert!(rss_of(std::process::id()).unwrap() > 0);
        assert!(rss_of(u32::MAX).is_err());
    }
}
