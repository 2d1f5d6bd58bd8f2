//! Logs (`tracing`) and metrics (Prometheus). Both are process-wide, installed once.
//! Beside them, per gateway, the last hour's activity per minute that the overview
//! shows (`activity.rs`, over the ring of counts in `minutes.rs`).

pub mod activity;
pub mod minutes;

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of `watchwire_http_request_duration_seconds`: API calls take milliseconds;
/// the long tail is publishes waiting on a commit and requests near the timeout.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Status classes of `watchwire_http_requests_total`: the class, not the code, keeps
/// the series few while alerts can still tell failures (5xx) from refusals (4xx).
pub const STATUS_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// Installs the Prometheus recorder on first use and returns its handle. In a cluster
/// every series carries the node's id (`node="…"`), so one dashboard tells the nodes
/// apart; the recorder is the process's, so the first gateway of a process names it.
pub fn metrics(node: Option<&str>) -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            if let Some(node) = node {
                builder = builder.add_global_label("node", node);
            }
            let recorder = builder
                .set_buckets_for_metric(
                    Matcher::Full("watchwire_delivery_latency_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0, 30.0, 60.0,
                    ],
                )
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("watchwire_http_request_duration_seconds".into()),
                    HTTP_BUCKETS,
                )
                .expect("bucket list is not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            spawn_upkeep(recorder.clone());
            describe();
            register_series();
            recorder
        })
        .clone()
}

/// Histogram samples pile up in the recorder until drained: without upkeep, a gateway
/// nobody scrapes grows by every latency it records (docs: `install_recorder` leaves
/// upkeep to the caller). A thread, so it runs whatever runtime there is.
fn spawn_upkeep(handle: PrometheusHandle) {
    std::thread::Builder::new()
        .name("watchwire-metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            handle.run_upkeep();
        })
        .expect("can start the metrics upkeep thread");
}

fn describe() {
    metrics::describe_counter!(
        "watchwire_events_published_total",
        "Events appended to the log."
    );
    metrics::describe_counter!(
        "watchwire_notifications_total",
        "Notification attempts by outcome: delivered, retried, failed (for good), gone (410)."
    );
    metrics::describe_histogram!(
        "watchwire_delivery_latency_seconds",
        "From publish to a delivered notification."
    );
    metrics::describe_gauge!("watchwire_channels_live", "Channels currently registered.");
    metrics::describe_gauge!(
        "watchwire_pending_notifications",
        "Notifications channels still owe (not delivered, not failed for good), attempted or not: the sum of every channel's pendingCount."
    );
    metrics::describe_gauge!(
        "watchwire_queued_notifications",
        "Pending notifications held in memory; the rest of a backlogged channel's are read from the store."
    );
    metrics::describe_gauge!(
        "watchwire_channels_backlogged",
        "Channels whose pending notifications are read from the store."
    );
    metrics::describe_gauge!(
        "watchwire_store_bytes",
        "Bytes the store takes on disk (database, WAL and shared-memory files)."
    );
    metrics::describe_gauge!(
        "watchwire_prune_lag_seconds",
        "How far pruning is behind retention: the age beyond its retention of the oldest event or delivery-log entry still kept (events still owed to a live channel are kept on purpose)."
    );
    metrics::describe_gauge!(
        "watchwire_hosts",
        "Receiving hosts (scheme, host, port) this node delivers to, by state: open, backingOff (failing; probed until it answers), limited (Retry-After or at its rate cap)."
    );
    metrics::describe_counter!(
        "watchwire_channel_specs_put_away_total",
        "Idle channels that put their spec (address, token, params) away to save memory; their next wake-up reads it back from the store."
    );
    metrics::describe_counter!(
        "watchwire_channel_specs_read_total",
        "Specs of idle channels read back from the store when they woke up, and the reads that took them (reads), many specs per read when many channels wake together."
    );
    metrics::describe_counter!(
        "watchwire_trace_spans_exported_total",
        "Spans exported to the OpenTelemetry collector."
    );
    metrics::describe_counter!(
        "watchwire_trace_spans_dropped_total",
        "Spans not exported, by reason: queue_full (more waited than the exporter holds), export_failed (the collector could not be reached or refused them)."
    );
    metrics::describe_counter!(
        "watchwire_store_commits_total",
        "Store transactions committed (each one fsync)."
    );
    metrics::describe_counter!(
        "watchwire_cluster_leases_lost_total",
        "Times this node found it had been taken for dead (its lease lapsed in the database, its channels went to other nodes) and joined the cluster again."
    );
    metrics::describe_counter!(
        "watchwire_http_requests_total",
        "API requests answered, by route template and status class."
    );
    metrics::describe_gauge!(
        "watchwire_log_visibility_lag_seconds",
        "PostgreSQL: how long the oldest publish committed through this node has waited for readers to see its events (an older transaction still in progress on the database server); 0 when none waits."
    );
    metrics::describe_counter!(
        "watchwire_log_lines_dropped_total",
        "Log lines (and the listening line) that could not be written to standard error or output: a full disk, a closed pipe, a reader that stopped reading."
    );
    metrics::describe_histogram!(
        "watchwire_http_request_duration_seconds",
        "From request to response head, by route template (a stream's lifetime is not counted)."
    );
}

/// Creates every series the code records, at 0, so that dashboards and alerts see
/// them from the start instead of "no data" until the first failure. Adds 0 rather
/// than setting: the recorder is process-wide and gateways in the same process (tests)
/// must not reset each other's gauges. A metric added anywhere in `src/` must be added
/// here too (the test `every_recorded_metric_is_registered_at_startup` checks).
pub fn register_series() {
    metrics::counter!("watchwire_events_published_total").increment(0);
    metrics::counter!("watchwire_store_commits_total").increment(0);
    metrics::counter!("watchwire_cluster_leases_lost_total").increment(0);
    metrics::gauge!("watchwire_log_visibility_lag_seconds").increment(0.0);
    // Lines may have been dropped before the recorder existed.
    metrics::counter!("watchwire_log_lines_dropped_total").absolute(crate::output::dropped_lines());
    metrics::counter!("watchwire_trace_spans_exported_total").increment(0);
    metrics::counter!("watchwire_channel_specs_put_away_total").increment(0);
    metrics::counter!("watchwire_channel_specs_read_total", "what" => "specs").increment(0);
    metrics::counter!("watchwire_channel_specs_read_total", "what" => "reads").increment(0);
    for reason in ["queue_full", "export_failed"] {
        metrics::counter!("watchwire_trace_spans_dropped_total", "reason" => reason).increment(0);
    }
    for outcome in ["delivered", "retried", "failed", "gone"] {
        metrics::counter!("watchwire_notifications_total", "outcome" => outcome).increment(0);
    }
    // Registering a histogram makes it render, with zero counts.
    let _ = metrics::histogram!("watchwire_delivery_latency_seconds");
    metrics::gauge!("watchwire_channels_live").increment(0.0);
    metrics::gauge!("watchwire_pending_notifications").increment(0.0);
    metrics::gauge!("watchwire_queued_notifications").increment(0.0);
    metrics::gauge!("watchwire_channels_backlogged").increment(0.0);
    metrics::gauge!("watchwire_store_bytes").increment(0.0);
    metrics::gauge!("watchwire_prune_lag_seconds").increment(0.0);
    for state in ["open", "backingOff", "limited"] {
        metrics::gauge!("watchwire_hosts", "state" => state).increment(0.0);
    }
}

/// Creates the request series of these route labels (the router's templates plus its
/// fallback labels) at 0; see [`register_series`].
pub fn register_http_series(routes: &[&'static str]) {
    for &route in routes {
        for status in STATUS_CLASSES {
            metrics::counter!("watchwire_http_requests_total", "route" => route, "status" => status)
                .increment(0);
        }
        let _ = metrics::histogram!("watchwire_http_request_duration_seconds", "route" => route);
    }
}

/// The class label of a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Process metrics (memory, CPU, file descriptors, threads, start time) in Prometheus
/// text format, read from `/proc/self` now: appended to each `/metrics` answer, so they
/// are as fresh as the scrape and need no timer. Empty where there is no `/proc`.
pub fn process_metrics() -> String {
    #[cfg(target_os = "linux")]
    {
        proc_self::read().map(|p| p.render()).unwrap_or_default()
    }
    #[cfg(not(target_os = "linux"))]
    {
        String::new()
    }
}

#[cfg(target_os = "linux")]
mod proc_self {
    use std::fmt::Write;

    /// Linux reports CPU times in USER_HZ ticks, which its ABI fixes at 100 on every
    /// architecture we build for (Prometheus's own procfs reader assumes the same,
    /// rather than calling sysconf).
    const USER_HZ: f64 = 100.0;

    pub struct Process {
        resident_bytes: f64,
        virtual_bytes: f64,
        cpu_seconds: f64,
        open_fds: f64,
        max_fds: Option<f64>,
        start_time_seconds: Option<f64>,
        threads: f64,
    }

    pub fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let system = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let stat = parse_stat(&stat)?;
        let boot_time = system
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        Some(Process {
            resident_bytes: status_kb(&status, "VmRSS:")? * 1024.0,
            virtual_bytes: stat.vsize,
            cpu_seconds: (stat.utime + stat.stime) / USER_HZ,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as f64,
            max_fds: max_open_files(&limits),
            start_time_seconds: boot_time.map(|boot| boot + stat.start_ticks / USER_HZ),
            threads: stat.threads,
        })
    }

    pub struct Stat {
        pub utime: f64,
        pub stime: f64,
        pub threads: f64,
        pub start_ticks: f64,
        pub vsize: f64,
    }

    /// Fields of `/proc/self/stat` (proc(5)); the command name in parentheses may hold
    /// spaces, so fields are counted from its closing parenthesis (field 3 on).
    pub fn parse_stat(stat: &str) -> Option<Stat> {
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            threads: field(20)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
        })
    }

    /// A `Name:   123 kB` line of `/proc/self/status`.
    pub fn status_kb(status: &str, name: &str) -> Option<f64> {
        let line = status.lines().find_map(|l| l.strip_prefix(name))?;
        line.split_whitespace().next()?.parse().ok()
    }

    /// The soft limit of `Max open files` in `/proc/self/limits` (none when unlimited).
    pub fn max_open_files(limits: &str) -> Option<f64> {
        let line = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))?;
        line.split_whitespace().next()?.parse().ok()
    }

    impl Process {
        pub fn render(&self) -> String {
            let mut out = String::new();
            let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
                if let Some(value) = value {
                    let _ = writeln!(
                        out,
                        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
                    );
                }
            };
            metric(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                Some(self.resident_bytes),
            );
            metric(
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                Some(self.virtual_bytes),
            );
            metric(
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                Some(self.cpu_seconds),
            );
            metric(
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                Some(self.open_fds),
            );
            metric(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                self.max_fds,
            );
            metric(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                self.start_time_seconds,
            );
            metric(
                "process_threads",
                "gauge",
                "Number of OS threads in the process.",
                Some(self.threads),
            );
            out
        }
    }
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What keeps statement parameters out of the log (see [`init_logging`]).
const NO_QUERY_PARAMETERS: &str = "tokio_postgres::query=info";

/// Installs the log subscriber once; later calls do nothing. Colours only on a
/// terminal: escape codes in a file or a log shipper are noise. JSON is one object per
/// line with the event's fields at the top level, as log shippers expect. Lines go
/// through [`output`](crate::output), which never blocks or fails the caller; the
/// subscriber's own report of a failed write would panic on that very output.
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // The PostgreSQL client logs every statement's parameters at `debug`: endpoint
        // credentials and signing secrets among them. Never, whatever `--log` asks.
        .add_directive(NO_QUERY_PARAMETERS.parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(crate::output::LogWriter);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .try_init(),
    };
}

/// Lets one log line through per interval and counts the rest, so that a failure that
/// repeats (a dead endpoint, a full disk) writes a line a minute, not a line a try.
#[derive(Debug, Default)]
pub struct LogGate {
    last_ms: Option<i64>,
    suppressed: u64,
}

impl LogGate {
    pub const INTERVAL_MS: i64 = 60_000;

    /// `Some(lines suppressed since the last one)` when a line may be written now.
    pub fn admit(&mut self, now_ms: i64) -> Option<u64> {
        match self.last_ms {
            Some(last) if now_ms - last < Self::INTERVAL_MS => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_ms = Some(now_ms);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_gate_admits_one_line_a_minute_and_counts_the_rest() {
        let mut gate = LogGate::default();
        assert_eq!(gate.admit(0), Some(0));
        assert_eq!(gate.admit(10), None);
        assert_eq!(gate.admit(59_999), None);
        assert_eq!(gate.admit(60_000), Some(2));
        assert_eq!(gate.admit(60_001), None);
    }

    /// Every metric name recorded anywhere in `src/` (`counter!("…"`, `gauge!("…"`,
    /// `histogram!("…"`), found in the source text.
    fn recorded_metric_names() -> Vec<String> {
        fn walk(dir: &std::path::Path, names: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, names);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                        for (at, _) in text.match_indices(macro_name) {
                            let rest = text[at + macro_name.len()..].trim_start();
                            let name = rest.strip_prefix('"').and_then(|r| r.split('"').next());
                            // Only metric names: this very scan's own patterns are not.
                            if let Some(name) = name.filter(|n| {
                                !n.is_empty()
                                    && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                            }) {
                                names.push(name.to_string());
                            }
                        }
                    }
                }
            }
        }
        let mut names = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut names,
        );
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn every_recorded_metric_is_registered_at_startup() {
        let names = recorded_metric_names();
        assert!(names.len() >= 7, "the scan found too little: {names:?}");
        let source = include_str!("telemetry.rs");
        let registration = &source[source.find("pub fn register_series").unwrap()
            ..source.find("/// The class label of a status code").unwrap()];
        for name in names {
            assert!(
                registration.contains(&format!("\"{name}\"")),
                "{name} is recorded but not created at startup in register_series()"
            );
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(304), "3xx");
        assert_eq!(status_class(431), "4xx");
        assert_eq!(status_class(503), "5xx");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_files_parse() {
        use proc_self::*;
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1180 0 0 0 250 130 0 0 20 0 9 0 123456 987654321 2345 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let parsed = parse_stat(stat).unwrap();
        assert_eq!(
            (
                parsed.utime,
                parsed.stime,
                parsed.threads,
                parsed.start_ticks,
                parsed.vsize
            ),
            (250.0, 130.0, 9.0, 123456.0, 987654321.0)
        );
        assert_eq!(
            status_kb("Name:\tx\nVmRSS:\t   10240 kB\n", "VmRSS:"),
            Some(10240.0)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );

        let text = process_metrics();
        for name in [
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
            "process_threads",
        ] {
            assert!(
                text.contains(&format!("\n{name} ")),
                "{name} missing:\n{text}"
            );
        }
    }
}
