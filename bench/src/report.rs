//! The results of one run: JSON for machines, a Markdown table for BENCHMARKS.md, and
//! the chart. Targets are the issue's; each is checked against what was measured.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::chart::{self, format_count, ChartData};
use crate::postgres::DatabaseInfo;
use crate::scenarios::backlog::Backlog;
use crate::scenarios::cluster::Cluster;
use crate::scenarios::fanout::Fanout;
use crate::scenarios::latency::Latency;
use crate::scenarios::publish::Publish;
use crate::scenarios::raw::Raw;
use crate::scenarios::scale::Scale;
use crate::scenarios::soak::{duration_arg, mb, Growth, Soak};
use crate::scenarios::wide::Wide;
use crate::scenarios::Sizes;

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    pub memory_total_mib: u64,
}

impl Machine {
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            memory_total_mib: memory_kib / 1024,
        }
    }
}

/// One target of the issue, against what was measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub measured: f64,
    pub unit: String,
    pub ratio_to_raw: Option<f64>,
    /// As written in the issue, e.g. "≥ 0.75 × raw"; empty when there is none.
    pub target: String,
    pub pass: Option<bool>,
    /// Size caveats: a figure measured below the issue's size says so here.
    pub note: String,
}

/// The scenarios run again on PostgreSQL (`--database-url`), each right after its
/// embedded run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostgresResults {
    pub database: DatabaseInfo,
    /// At the headline channel count only.
    pub fanout: Option<Fanout>,
    pub publish: Option<Publish>,
    pub latency: Option<Latency>,
}

/// One figure measured on both stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub name: String,
    pub unit: String,
    pub embedded: Option<f64>,
    pub postgres: Option<f64>,
    /// `postgres / embedded`.
    pub ratio: Option<f64>,
    /// The issue's target for PostgreSQL, e.g. "≥ 0.8 × embedded"; empty when none.
    pub target: String,
    pub pass: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub watchwire_version: String,
    pub quick: bool,
    /// "release" or "debug", of this harness and so of the gateway next to it (the
    /// default `--gateway`): debug figures mean nothing.
    pub build: String,
    pub command: String,
    pub machine: Machine,
    pub sizes: Sizes,
    pub wall_seconds: f64,
    pub raw: Option<Raw>,
    pub fanout: Option<Fanout>,
    pub publish: Option<Publish>,
    pub latency: Option<Latency>,
    pub wide: Option<Wide>,
    pub scale: Option<Scale>,
    pub backlog: Option<Backlog>,
    pub soak: Option<Soak>,
    /// With `--database-url`: several nodes on one PostgreSQL database against one node,
    /// failover, handover, and what the receiver got meanwhile.
    #[serde(default)]
    pub cluster: Option<Cluster>,
    /// With `--database-url`: the same scenarios on the PostgreSQL store.
    #[serde(default)]
    pub postgres: Option<PostgresResults>,
    /// With `--database-url`: both stores' figures side by side, against the issue's
    /// targets for PostgreSQL.
    #[serde(default)]
    pub side_by_side: Vec<Comparison>,
    /// Scenarios that failed, with why.
    pub failures: Vec<String>,
    pub checks: Vec<Check>,
    /// CPU that other processes used during each scenario (the machine is shared).
    pub foreign_cpu: Vec<crate::cpu::Foreign>,
}

impl Results {
    /// Fills `checks` from the scenario results.
    pub fn evaluate(&mut self) {
        let mut checks = Vec::new();
        let check = |name: &str,
                     measured: f64,
                     unit: &str,
                     ratio: Option<f64>,
                     target: &str,
                     pass: Option<bool>,
                     note: String| Check {
            name: name.into(),
            measured,
            unit: unit.into(),
            ratio_to_raw: ratio,
            target: target.into(),
            pass,
            note,
        };
        if let Some(r) = &self.raw {
            let note = format!(
                "{} connections, {} B bodies",
                r.connections, r.payload_bytes
            );
            checks.push(check(
                "raw loopback ceiling",
                r.per_second,
                "requests/s",
                Some(1.0),
                "",
                None,
                note,
            ));
        }
        if let Some(f) = &self.fanout {
            let h = &f.headline;
            let note = format!(
                "{} channels, {} events in batches of {}",
                h.channels, h.events, f.batch
            );
            let pass = h.ratio_to_raw.map(|r| r >= 0.75);
            checks.push(check(
                "fan-out delivered",
                h.delivered_per_second,
                "notifications/s",
                h.ratio_to_raw,
                "≥ 0.75 × raw",
                pass,
                note,
            ));
            // One busy channel against one connection doing sequential
            // request/response: its ratio is to that, not to the pooled ceiling.
            let sequential = self.raw.as_ref().map(|r| r.sequential_per_second);
            if let (Some(one), Some(sequential)) = (
                f.sweep.iter().find(|p| p.channels == 1),
                sequential.filter(|s| *s > 0.0),
            ) {
                let ratio = one.delivered_per_second / sequential;
                checks.push(check(
                    "one busy channel",
                    one.delivered_per_second,
                    "notifications/s",
                    Some(ratio),
                    "≥ 0.8 × raw sequential",
                    Some(ratio >= 0.8),
                    format!(
                        "ratio to one connection's sequential rate, {} requests/s",
                        format_count(sequential)
                    ),
                ));
            }
        }
        if let Some(p) = &self.publish {
            let note = format!(
                "{} connections, {:.1} events per fsync",
                p.connections, p.events_per_commit
            );
            let pass = p.ratio_to_raw.map(|r| r >= 0.45);
            checks.push(check(
                "single-event publishes",
                p.per_second,
                "events/s",
                p.ratio_to_raw,
                "≥ 0.45 × raw",
                pass,
                note,
            ));
        }
        if let Some(latency) = &self.latency {
            let l = &latency.headline;
            let note = format!(
                "{} ev/s to {} channels ({} notifications/s), {} samples",
                l.target_rate,
                latency.channels,
                format_count(l.notifications_per_second),
                l.delivery.samples
            );
            let ratio = latency.p50_over_raw_round_trip;
            checks.push(check(
                "latency p50",
                l.delivery.p50_ms,
                "ms",
                ratio,
                "≤ 1 ms",
                Some(l.delivery.p50_ms <= 1.0),
                note.clone(),
            ));
            checks.push(check(
                "latency p99",
                l.delivery.p99_ms,
                "ms",
                None,
                "≤ 5 ms",
                Some(l.delivery.p99_ms <= 5.0),
                note.clone(),
            ));
            checks.push(check(
                "latency p99.9",
                l.delivery.p999_ms,
                "ms",
                None,
                "",
                None,
                note,
            ));
            for p in latency
                .sweep
                .iter()
                .filter(|p| p.target_rate != l.target_rate)
            {
                let note = format!(
                    "{} ev/s to {} channels ({} notifications/s); p99.9 {:.2} ms",
                    p.target_rate,
                    latency.channels,
                    format_count(p.notifications_per_second),
                    p.delivery.p999_ms
                );
                let name = format!(
                    "latency p50 / p99 at {}",
                    format_count(p.target_rate as f64)
                );
                checks.push(Check {
                    name,
                    measured: p.delivery.p50_ms,
                    unit: format!("/ {} ms", format_measured(p.delivery.p99_ms)),
                    ratio_to_raw: None,
                    target: String::new(),
                    pass: None,
                    note,
                });
            }
        }
        if let Some(w) = &self.wide {
            let note = size_note(w.channels, 100_000, "channels");
            let pass = (w.channels >= 100_000).then_some(w.last_delivery_seconds <= 2.0);
            checks.push(check(
                "one event → all channels",
                w.last_delivery_seconds,
                "s",
                w.ratio_to_raw,
                "≤ 2 s at 100k",
                pass,
                note,
            ));
        }
        if let Some(s) = &self.scale {
            let full = s.channels >= 1_000_000;
            let note = size_note(s.channels, 1_000_000, "channels");
            checks.push(check(
                "channel creation",
                s.create_per_second,
                "channels/s",
                s.create_ratio_to_raw,
                "≥ 0.30 × raw",
                s.create_ratio_to_raw.map(|r| r >= 0.30),
                note.clone(),
            ));
            let pass = full.then_some(s.bytes_per_channel <= 768.0);
            checks.push(check(
                "memory per idle channel",
                s.bytes_per_channel,
                "bytes",
                None,
                "≤ 768 B at 1M",
                pass,
                note.clone(),
            ));
            let pass = full.then_some(s.restart_delivering_seconds <= 10.0);
            checks.push(check(
                "restart → delivering",
                s.restart_delivering_seconds,
                "s",
                None,
                "≤ 10 s at 1M",
                pass,
                note,
            ));
        }
        if let Some(b) = &self.backlog {
            let peak = b.peak_rss_bytes as f64 / MIB;
            let note = size_note(b.pending as usize, 1_000_000, "pending");
            let pass = (b.pending >= 1_000_000).then_some(peak <= 256.0);
            checks.push(check(
                "peak RSS, dead endpoint",
                peak,
                "MiB",
                None,
                "≤ 256 MiB at 1M",
                pass,
                note,
            ));
        }
        if let Some(s) = &self.soak {
            for (name, g) in [
                ("soak store size, end ÷ at window", &s.store),
                ("soak RSS, end ÷ at window", &s.rss),
            ] {
                let Some(ratio) = g.ratio_after_window else {
                    continue;
                };
                let note = format!(
                    "{} from the end of the window to the end; {}",
                    growth_note(g),
                    soak_conditions(s)
                );
                checks.push(check(
                    name,
                    ratio,
                    "×",
                    None,
                    "flat: last third < +10 %",
                    g.flat,
                    note,
                ));
            }
        }
        self.checks = checks;
        self.side_by_side = self.compare();
    }

    /// The side-by-side figures of a run with `--database-url` (empty without).
    fn compare(&self) -> Vec<Comparison> {
        let Some(pg) = &self.postgres else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        let mut row = |name: String,
                       unit: &str,
                       embedded: Option<f64>,
                       postgres: Option<f64>,
                       target: &str,
                       pass: &dyn Fn(f64, Option<f64>) -> bool| {
            if embedded.is_none() && postgres.is_none() {
                return; // That scenario did not run.
            }
            let ratio = match (embedded, postgres) {
                (Some(e), Some(p)) if e > 0.0 => Some(p / e),
                _ => None,
            };
            rows.push(Comparison {
                name,
                unit: unit.into(),
                embedded,
                postgres,
                ratio,
                pass: (!target.is_empty())
                    .then(|| postgres.map(|p| pass(p, ratio)))
                    .flatten(),
                target: target.into(),
            });
        };
        let none = |_: f64, _: Option<f64>| false;
        let (fe, fp) = (
            self.fanout.as_ref().map(|f| &f.headline),
            pg.fanout.as_ref().map(|f| &f.headline),
        );
        let channels = fe.or(fp).map_or(0, |p| p.channels);
        row(
            format!("fan-out delivered, {channels} channels"),
            "notifications/s",
            fe.map(|p| p.delivered_per_second),
            fp.map(|p| p.delivered_per_second),
            "≥ 0.8 × embedded",
            &|_, r| r.is_some_and(|r| r >= 0.8),
        );
        let (pe, pp) = (self.publish.as_ref(), pg.publish.as_ref());
        row(
            "single-event publishes".into(),
            "events/s",
            pe.map(|p| p.per_second),
            pp.map(|p| p.per_second),
            "≥ 0.5 × embedded",
            &|_, r| r.is_some_and(|r| r >= 0.5),
        );
        let rate = self.sizes.latency_compare_rate;
        let at_rate = |l: Option<&Latency>| {
            l.and_then(|l| l.sweep.iter().find(|p| p.target_rate == rate).cloned())
        };
        let (le, lp) = (at_rate(self.latency.as_ref()), at_rate(pg.latency.as_ref()));
        let rate_name = format_count(rate as f64);
        row(
            format!("publish→delivery p50 at {rate_name} events/s"),
            "ms",
            le.as_ref().map(|p| p.delivery.p50_ms),
            lp.as_ref().map(|p| p.delivery.p50_ms),
            "",
            &none,
        );
        row(
            format!("publish→delivery p99 at {rate_name} events/s"),
            "ms",
            le.as_ref().map(|p| p.delivery.p99_ms),
            lp.as_ref().map(|p| p.delivery.p99_ms),
            "≤ 10 ms",
            &|p, _| p <= 10.0,
        );
        row(
            format!("publish→delivery p99.9 at {rate_name} events/s"),
            "ms",
            le.as_ref().map(|p| p.delivery.p999_ms),
            lp.as_ref().map(|p| p.delivery.p999_ms),
            "",
            &none,
        );
        row(
            format!("publish acknowledgement p50 at {rate_name} events/s"),
            "ms",
            le.as_ref().map(|p| p.ack.p50_ms),
            lp.as_ref().map(|p| p.ack.p50_ms),
            "",
            &none,
        );
        row(
            format!("events per commit at {rate_name} events/s"),
            "",
            le.as_ref().map(|p| p.events_per_commit),
            lp.as_ref().map(|p| p.events_per_commit),
            "",
            &none,
        );
        // What each costs, for the analysis of a missed target.
        row(
            "fan-out: gateway CPU per notification".into(),
            "µs",
            fe.map(|p| p.gateway_cpu_us_per_notification),
            fp.map(|p| p.gateway_cpu_us_per_notification),
            "",
            &none,
        );
        row(
            "fan-out: PostgreSQL CPU per notification".into(),
            "µs",
            None,
            fp.and_then(|p| p.database_cpu_us_per_notification),
            "",
            &none,
        );
        row(
            "fan-out: store commits".into(),
            "",
            fe.map(|p| p.store_commits),
            fp.map(|p| p.store_commits),
            "",
            &none,
        );
        row(
            "publish: acknowledgement p99".into(),
            "ms",
            pe.map(|p| p.ack.p99_ms),
            pp.map(|p| p.ack.p99_ms),
            "",
            &none,
        );
        row(
            "publish: events per commit".into(),
            "",
            pe.map(|p| p.events_per_commit),
            pp.map(|p| p.events_per_commit),
            "",
            &none,
        );
        row(
            "publish: gateway CPU per event".into(),
            "µs",
            pe.map(|p| p.gateway_cpu_us_per_event),
            pp.map(|p| p.gateway_cpu_us_per_event),
            "",
            &none,
        );
        row(
            "publish: PostgreSQL CPU per event".into(),
            "µs",
            None,
            pp.and_then(|p| p.database_cpu_us_per_event),
            "",
            &none,
        );
        rows
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        md.push_str("| figure | measured | ratio to raw | target | pass | conditions |\n");
        md.push_str("|---|---:|---:|---|---|---|\n");
        for c in &self.checks {
            let ratio = c
                .ratio_to_raw
                .map_or("—".to_string(), |r| format!("{r:.2}"));
            let pass = match c.pass {
                Some(true) => "✅ yes",
                Some(false) => "❌ no",
                None => "—",
            };
            let target = if c.target.is_empty() {
                "—"
            } else {
                &c.target
            };
            md.push_str(&format!(
                "| {} | {} {} | {} | {} | {} | {} |\n",
                c.name,
                format_measured(c.measured),
                c.unit,
                ratio,
                target,
                pass,
                c.note
            ));
        }
        if let (Some(pg), false) = (&self.postgres, self.side_by_side.is_empty()) {
            md.push_str(&side_by_side_markdown(&pg.database, &self.side_by_side));
        }
        if let Some(c) = &self.cluster {
            md.push_str(&cluster_markdown(c));
        }
        if let Some(s) = &self.soak {
            md.push_str(&soak_markdown(s));
        }
        md
    }

    pub fn chart(&self) -> ChartData {
        let mut latency = Vec::new();
        let mut caption = "Publish→delivery latency (not run)".to_string();
        if let Some(l) = &self.latency {
            for p in &l.sweep {
                let d = &p.delivery;
                let label = format!("{} ev/s", format_count(p.target_rate as f64));
                latency.push((
                    label,
                    vec![
                        ("p50".to_string(), d.p50_ms),
                        ("p90".to_string(), d.p90_ms),
                        ("p99".to_string(), d.p99_ms),
                        ("p99.9".to_string(), d.p999_ms),
                        ("max".to_string(), d.max_ms),
                    ],
                ));
            }
            caption = format!("Publish→delivery latency, {} channels", l.channels);
        }
        ChartData {
            title: format!(
                "watchwire {} bench — {} cores, loopback, synchronous=FULL{}",
                self.watchwire_version,
                self.machine.cores,
                if self.quick {
                    " (quick smoke sizes)"
                } else {
                    ""
                }
            ),
            latency,
            latency_caption: caption,
            latency_targets: vec![("p50".into(), 1.0), ("p99".into(), 5.0)],
            throughput: self
                .fanout
                .iter()
                .flat_map(|f| {
                    f.sweep
                        .iter()
                        .map(|p| (p.channels as f64, p.delivered_per_second))
                })
                .collect(),
            wide: self
                .wide
                .as_ref()
                .map(|w| (w.channels as f64, w.delivered_per_second)),
            raw_per_second: self.raw.as_ref().map(|r| r.per_second),
            target_ratio: 0.75,
            soak: self.soak.as_ref().map_or(Vec::new(), |s| {
                s.samples
                    .iter()
                    .map(|p| (p.seconds, mb(p.store_bytes), mb(p.rss_bytes)))
                    .collect()
            }),
            soak_window: self.soak.as_ref().map(|s| s.window_seconds),
            soak_caption: self.soak.as_ref().map_or(String::new(), |s| {
                format!(
                    "Soak: store and RSS over time, {} ev/s to {} channels, retention {}",
                    format_count(s.rate as f64),
                    s.channels,
                    duration_arg(s.retention_seconds)
                )
            }),
        }
    }

    /// Writes `results.json`, `results.md` and `chart.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(self)? + "\n",
        )?;
        let mut md = format!(
            "# watchwire-bench results\n\n`{}` — {} build, {} cores ({}), kernel {}, {:.0} s wall.\n\n",
            self.command, self.build, self.machine.cores, self.machine.cpu, self.machine.kernel, self.wall_seconds
        );
        md.push_str(&self.markdown());
        if !self.failures.is_empty() {
            md.push_str("\n**Failed scenarios**\n\n");
            for f in &self.failures {
                md.push_str(&format!("- {f}\n"));
            }
        }
        if !self.foreign_cpu.is_empty() {
            let shares: Vec<String> = self
                .foreign_cpu
                .iter()
                .map(|f| format!("{} {:.0} %", f.scenario, f.share * 100.0))
                .collect();
            md.push_str(&format!(
                "
Share of the machine used by other processes during each scenario: {}.
",
                shares.join(", ")
            ));
        }
        std::fs::write(dir.join("results.md"), md)?;
        std::fs::write(dir.join("chart.svg"), chart::svg(&self.chart())?)?;
        Ok(())
    }
}

/// The "stores side by side" table.
fn side_by_side_markdown(database: &DatabaseInfo, rows: &[Comparison]) -> String {
    let setting = |name: &str| {
        database
            .settings
            .get(name)
            .map_or("?".to_string(), Clone::clone)
    };
    let mut md = format!(
        "\n**Stores side by side**: the embedded store (`synchronous=FULL`) and PostgreSQL {} ({}; synchronous_commit={}, fsync={}, wal_sync_method={}), each scenario on both back to back.\n\n",
        database.server_version,
        database.url,
        setting("synchronous_commit"),
        setting("fsync"),
        setting("wal_sync_method"),
    );
    md.push_str("| figure | embedded | PostgreSQL | PostgreSQL ÷ embedded | target | met |\n");
    md.push_str("|---|---:|---:|---:|---|---|\n");
    let value = |v: Option<f64>, unit: &str| match v {
        Some(v) if unit.is_empty() => format_measured(v),
        Some(v) => format!("{} {unit}", format_measured(v)),
        None => "—".to_string(),
    };
    for c in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            c.name,
            value(c.embedded, &c.unit),
            value(c.postgres, &c.unit),
            c.ratio.map_or("—".to_string(), |r| format!("{r:.2}")),
            if c.target.is_empty() {
                "—"
            } else {
                &c.target
            },
            match c.pass {
                Some(true) => "✅ yes",
                Some(false) => "❌ no",
                None => "—",
            }
        ));
    }
    md
}

/// The "Cluster" section: one node and the cluster side by side, then the failover and
/// handover targets and the delivery checks.
fn cluster_markdown(c: &Cluster) -> String {
    let ttls: Vec<String> = c
        .sizes
        .lease_ttls
        .iter()
        .map(|t| duration_arg(*t))
        .collect();
    let mut md = format!(
        "\n**Cluster ({} nodes on PostgreSQL)**: one PostgreSQL gateway and {} nodes on one schema, the same loads back to back (publishes through the nodes in turn; channels spread over every node before measuring); then per `--lease-ttl` ({}) a fresh cluster of {} channels at {} events/s: `kill -9` of the node delivering the most, then SIGTERM of the busiest survivor.\n\n",
        c.nodes,
        c.nodes,
        ttls.join(", "),
        c.sizes.failover_channels,
        c.sizes.failover_rate,
    );
    md.push_str(&format!(
        "| figure | one node | {} nodes | cluster ÷ one node |\n|---|---:|---:|---:|\n",
        c.nodes
    ));
    for r in &c.side_by_side {
        md.push_str(&format!(
            "| {} | {} {} | {} {} | {} |\n",
            r.name,
            format_measured(r.single),
            r.unit,
            format_measured(r.cluster),
            r.unit,
            r.ratio.map_or("—".to_string(), |r| format!("{r:.2}"))
        ));
    }
    md.push_str("\n| figure | measured | target | met | conditions |\n|---|---:|---|---|---|\n");
    for k in &c.checks {
        md.push_str(&format!(
            "| {} | {} {} | {} | {} | {} |\n",
            k.name,
            if k.measured.is_finite() {
                format_measured(k.measured)
            } else {
                "—".to_string()
            },
            k.unit,
            k.target,
            match k.pass {
                Some(true) => "✅ yes",
                Some(false) => "❌ no",
                None => "—",
            },
            k.note
        ));
    }
    md
}

/// The soak's load and the gateway's retention flags.
fn soak_conditions(s: &Soak) -> String {
    format!(
        "{} ev/s to {} channels ({} notifications/s), {} B events, {:.0} s; --retention {} --log-retention {} --prune-interval {}{}",
        s.rate,
        s.channels,
        format_count((s.rate * s.channels as u64) as f64),
        s.event_bytes,
        s.seconds,
        duration_arg(s.retention_seconds),
        duration_arg(s.log_retention_seconds),
        duration_arg(s.prune_interval_seconds),
        if s.scraped_metrics {
            ""
        } else {
            "; /metrics never scraped"
        }
    )
}

/// "45.0 → 47.0 MB (last third +2.0 %: flat)": from the end of the window to the end.
fn growth_note(g: &Growth) -> String {
    let at = g
        .at_window_bytes
        .map_or("—".to_string(), |b| format!("{:.1}", mb(b)));
    let third = match (g.last_third_growth, g.flat) {
        (Some(growth), Some(flat)) => format!(
            " (last third {:+.1} %: {})",
            growth * 100.0,
            if flat { "flat" } else { "growing" }
        ),
        (Some(growth), None) => format!(
            " (last third {:+.1} %, inside the window: too short to tell)",
            growth * 100.0
        ),
        _ => String::new(),
    };
    format!("{at} → {:.1} MB{third}", mb(g.end_bytes))
}

/// The soak's summary and its samples as a table.
fn soak_markdown(s: &Soak) -> String {
    let mut md = format!(
        "\n**Soak**: {}. The retention window plus one prune interval ends at {:.0} s; from there to the end: store {}, RSS {}, anonymous memory {}. {} of {} notifications delivered, in order.\n\n",
        soak_conditions(s),
        s.window_seconds,
        growth_note(&s.store),
        growth_note(&s.rss),
        growth_note(&s.anon),
        s.delivered,
        s.notifications
    );
    let gauges = s
        .samples
        .iter()
        .any(|p| p.watchwire_store_bytes.is_some() || p.watchwire_prune_lag_seconds.is_some());
    md.push_str("| time s | store MB | RSS MB | anon MB | delivered |");
    md.push_str(if gauges {
        " watchwire_store_bytes MB | prune lag s |\n|---:|---:|---:|---:|---:|---:|---:|\n"
    } else {
        "\n|---:|---:|---:|---:|---:|\n"
    });
    let or_dash =
        |v: Option<f64>, scale: f64| v.map_or("—".to_string(), |v| format!("{:.1}", v / scale));
    for p in &s.samples {
        md.push_str(&format!(
            "| {:.0} | {:.1} | {:.1} | {:.1} | {} |",
            p.seconds,
            mb(p.store_bytes),
            mb(p.rss_bytes),
            mb(p.anon_bytes),
            p.delivered
        ));
        if gauges {
            md.push_str(&format!(
                " {} | {} |",
                or_dash(p.watchwire_store_bytes, MIB),
                or_dash(p.watchwire_prune_lag_seconds, 1.0)
            ));
        }
        md.push('\n');
    }
    md
}

fn size_note(measured: usize, issue: usize, what: &str) -> String {
    if measured >= issue {
        format!("{} {what}", format_count(measured as f64))
    } else {
        format!(
            "{} {what} (issue: {}; pass/fail only at that size)",
            format_count(measured as f64),
            format_count(issue as f64)
        )
    }
}

fn format_measured(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
