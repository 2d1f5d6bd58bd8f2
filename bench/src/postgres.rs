//! The PostgreSQL side of a run (`--database-url`): a schema of its own for every
//! gateway the run starts, what the server is and how it is set up, and the CPU its
//! processes spend for the benchmark.
//!
//! Several gateways may share one database, so each gateway of the benchmark gets a fresh
//! schema (`wwbench_<pid>_<n>_<name>`) and the URL it is given selects it
//! (`options=-csearch_path=…`). The same name is the connections' `application_name`,
//! which is how their server processes are found in `pg_stat_activity` and their CPU
//! time read from `/proc` (the server runs on this machine, as every figure assumes).
//! A schema is dropped with its gateway's data; whatever a failed scenario left behind
//! is dropped at the end of the run.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls};

/// The server settings that decide what a durable commit costs, recorded with the results.
const SETTINGS: [&str; 9] = [
    "synchronous_commit",
    "fsync",
    "wal_sync_method",
    "full_page_writes",
    "commit_delay",
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "wal_writer_delay",
];

/// The database a run's PostgreSQL gateways use.
pub struct Database {
    /// As given (`--database-url`); never printed or written with its password.
    url: String,
    /// Every schema of this run starts with it.
    prefix: String,
    client: Client,
    next: AtomicU64,
    /// CPU seconds of gateway connections whose gateways have stopped (see
    /// [`Database::backend_seconds`]).
    finished_backends: Mutex<f64>,
}

/// What the results say about the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseInfo {
    /// The URL without its password.
    pub url: String,
    pub server_version: String,
    /// [`SETTINGS`], as `SHOW` prints them.
    pub settings: BTreeMap<String, String>,
}

/// One gateway's schema: its name (also the connections' `application_name`) and the
/// `--database-url` that selects it.
#[derive(Debug, Clone)]
pub struct Schema {
    pub name: String,
    pub url: String,
}

/// CPU time of the server's processes at one moment, seconds per process id.
#[derive(Debug, Clone, Default)]
pub struct Cpu {
    /// The connections of one gateway.
    pub backends: HashMap<i32, f64>,
    /// The server's own processes (WAL writer, checkpointer, background writer,
    /// autovacuum), shared by every database on the server.
    pub background: HashMap<i32, f64>,
}

impl Cpu {
    /// CPU seconds spent since `earlier`: a process that `earlier` does not know started
    /// in between and counts whole; one that ended in between is lost (a gateway keeps its
    /// connections while it runs).
    pub fn since(&self, earlier: &Cpu) -> f64 {
        let delta = |now: &HashMap<i32, f64>, then: &HashMap<i32, f64>| -> f64 {
            now.iter()
                .map(|(pid, s)| (s - then.get(pid).copied().unwrap_or(0.0)).max(0.0))
                .sum()
        };
        delta(&self.backends, &earlier.backends) + delta(&self.background, &earlier.background)
    }
}

impl Database {
    /// Connects to `url` (a connection of the benchmark's own, for schemas and readings).
    pub async fn connect(url: &str) -> anyhow::Result<Database> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .with_context(|| format!("connecting to --database-url {}", redacted(url)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("   the benchmark's own PostgreSQL connection failed: {e}");
            }
        });
        Ok(Database {
            url: url.to_string(),
            prefix: format!("wwbench_{}", std::process::id()),
            client,
            next: AtomicU64::new(0),
            finished_backends: Mutex::new(0.0),
        })
    }

    /// Creates a fresh schema for the gateway called `label`.
    pub async fn create_schema(&self, label: &str) -> anyhow::Result<Schema> {
        let n = self.next.fetch_add(1, Relaxed);
        let name = schema_name(&self.prefix, n, label);
        self.client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .with_context(|| format!("creating schema {name}"))?;
        Ok(Schema {
            url: gateway_url(&self.url, &name),
            name,
        })
    }

    /// Drops a schema and everything in it.
    pub async fn drop_schema(&self, name: &str) -> anyhow::Result<()> {
        self.client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
            .await
            .with_context(|| format!("dropping schema {name}"))
    }

    /// Drops every schema of this run that is still there (a scenario that failed leaves
    /// its gateway's). Returns how many.
    pub async fn drop_leftovers(&self) -> anyhow::Result<usize> {
        let rows = self
            .client
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, $1)",
                &[&format!("{}_", self.prefix)],
            )
            .await?;
        for row in &rows {
            self.drop_schema(row.get::<_, &str>(0)).await?;
        }
        Ok(rows.len())
    }

    /// The server's version and the settings that decide what a commit costs.
    pub async fn info(&self) -> anyhow::Result<DatabaseInfo> {
        let mut settings = BTreeMap::new();
        for name in SETTINGS {
            let row = self.client.query_one(&format!("SHOW {name}"), &[]).await?;
            settings.insert(name.to_string(), row.get::<_, String>(0));
        }
        let version = self.client.query_one("SHOW server_version", &[]).await?;
        Ok(DatabaseInfo {
            url: redacted(&self.url),
            server_version: version.get(0),
            settings,
        })
    }

    /// CPU time so far of the connections of the gateway on `schema` (all of them, when
    /// `None`: none) and of the server's background processes.
    pub async fn cpu(&self, schema: Option<&str>) -> anyhow::Result<Cpu> {
        let rows = self
            .client
            .query(
                "SELECT pid, backend_type = 'client backend' FROM pg_stat_activity
                 WHERE backend_type <> 'client backend' OR application_name = $1",
                &[&schema.unwrap_or("")],
            )
            .await?;
        let mut cpu = Cpu::default();
        for row in rows {
            let (pid, client): (i32, bool) = (row.get(0), row.get(1));
            // A process that ended since the query, or a server in another pid namespace:
            // nothing to read.
            let Some(seconds) = process_cpu_seconds(pid) else {
                continue;
            };
            if client {
                cpu.backends.insert(pid, seconds);
            } else {
                cpu.background.insert(pid, seconds);
            }
        }
        Ok(cpu)
    }

    /// Records the CPU time of the gateway on `schema`'s connections, all of it, before
    /// the gateway stops and its connections end with their counters.
    pub async fn gateway_stopping(&self, schema: &str) -> anyhow::Result<()> {
        let cpu = self.cpu(Some(schema)).await?;
        *self.finished_backends.lock().unwrap() += cpu.backends.values().sum::<f64>();
        Ok(())
    }

    /// CPU seconds used so far by the server for this run's gateways: their connections
    /// (those of stopped gateways as recorded when they stopped) and the server's
    /// background processes, whose work other databases may share.
    pub async fn backend_seconds(&self) -> f64 {
        let background = match self.cpu(None).await {
            Ok(cpu) => cpu.background.values().sum::<f64>(),
            Err(_) => 0.0,
        };
        *self.finished_backends.lock().unwrap() + background
    }
}

/// `wwbench_<pid>_<n>_<label>`, with anything but ASCII letters and digits in the label
/// made `_` (a valid unquoted identifier, at most 63 bytes).
fn schema_name(prefix: &str, n: u64, label: &str) -> String {
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("{prefix}_{n}_{label}");
    name.truncate(63);
    name
}

/// The `--database-url` of a gateway whose data lives in `schema` of `url`'s database,
/// its connections named after the schema.
pub fn gateway_url(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-csearch_path%3D{schema}&application_name={schema}")
}

/// A database URL without its password.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// User plus system CPU time of process `pid`, seconds.
fn process_cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': the state is index 0, so utime (field 14) and stime (15) are 11 and 12.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / crate::cpu::TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_url_selects_its_schema_and_names_its_connections() {
        assert_eq!(
            gateway_url("postgres://u@h:5432/db", "wwbench_1_0_x"),
            "postgres://u@h:5432/db?options=-csearch_path%3Dwwbench_1_0_x&application_name=wwbench_1_0_x"
        );
        assert_eq!(
            gateway_url("postgres://u@h/db?sslmode=disable", "s"),
            "postgres://u@h/db?sslmode=disable&options=-csearch_path%3Ds&application_name=s"
        );
        // The gateway parses it as tokio-postgres does.
        let config: tokio_postgres::Config = gateway_url("postgres://u@h:5432/db", "s_1")
            .parse()
            .unwrap();
        assert_eq!(config.get_options(), Some("-csearch_path=s_1"));
        assert_eq!(config.get_application_name(), Some("s_1"));
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert_eq!(
            schema_name("wwbench_42", 3, "fanout-50"),
            "wwbench_42_3_fanout_50"
        );
        assert_eq!(schema_name("p", 0, &"x".repeat(100)).len(), 63);
    }

    #[test]
    fn passwords_stay_out_of_what_is_written() {
        assert_eq!(
            redacted("postgres://u:secret@h:5432/db"),
            "postgres://u@h:5432/db"
        );
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn cpu_since_counts_new_processes_whole_and_never_goes_negative() {
        let earlier = Cpu {
            backends: HashMap::from([(1, 1.0), (2, 5.0)]),
            background: HashMap::from([(9, 10.0)]),
        };
        let now = Cpu {
            backends: HashMap::from([(1, 1.5), (3, 0.25)]),
            background: HashMap::from([(9, 10.25)]),
        };
        assert!((now.since(&earlier) - 1.0).abs() < 1e-9);
        assert!(process_cpu_seconds(std::process::id() as i32).is_some());
    }
}
