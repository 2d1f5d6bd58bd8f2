//! The report of one run: `results.json` for machines, `results.md` (the tables
//! BENCHMARKS.md quotes) and `chart.svg`. It renders [`Results`] and judges nothing.

use std::path::Path;

use crate::chart::{self, ChartData};
use crate::format::{duration_arg, format_count, format_measured, mb, MIB};
use crate::postgres::DatabaseInfo;
use crate::results::{Comparison, Results};
use crate::scenarios::cluster::Cluster;
use crate::scenarios::soak::Soak;

pub fn markdown(run: &Results) -> String {
    let mut md = String::new();
    md.push_str("| figure | measured | ratio to raw | target | pass | conditions | gateway CPU µs / unit | raw CPU µs / request | CPU ratio | raw before → after (drift) |\n");
    md.push_str("|---|---:|---:|---|---|---|---:|---:|---:|---|\n");
    for c in &run.checks {
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
        let us = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1}"));
        let drift = match (c.raw_before, c.raw_after, c.raw_drift) {
            (Some(before), Some(after), Some(drift)) => format!(
                "{} → {} ({:.0} %){}",
                format_count(before),
                format_count(after),
                drift * 100.0,
                if c.raw_steady == Some(false) {
                    " ⚠ raw moved: this ratio is untrustworthy"
                } else {
                    ""
                }
            ),
            _ => "—".to_string(),
        };
        md.push_str(&format!(
            "| {} | {} {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            c.name,
            format_measured(c.measured),
            c.unit,
            ratio,
            target,
            pass,
            c.note,
            us(c.cpu_us_per_unit),
            us(c.raw_cpu_us_per_request),
            c.cpu_ratio.map_or("—".to_string(), |r| format!("{r:.2}")),
            drift
        ));
    }
    if let (Some(pg), false) = (&run.postgres, run.side_by_side.is_empty()) {
        md.push_str(&side_by_side_markdown(&pg.database, &run.side_by_side));
    }
    if let Some(c) = &run.cluster {
        md.push_str(&cluster_markdown(c));
    }
    if let Some(s) = &run.soak {
        md.push_str(&soak_markdown(s));
    }
    md
}
pub fn chart(run: &Results) -> ChartData {
    let mut latency = Vec::new();
    let mut caption = "Publish→delivery latency (not run)".to_string();
    if let Some(l) = &run.latency {
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
            run.watchwire_version,
            run.machine.cores,
            if run.quick {
                " (quick smoke sizes)"
            } else {
                ""
            }
        ),
        latency,
        latency_caption: caption,
        latency_targets: vec![("p50".into(), 1.0), ("p99".into(), 5.0)],
        throughput: run
            .fanout
            .iter()
            .flat_map(|f| {
                f.sweep
                    .iter()
                    .map(|p| (p.channels as f64, p.delivered_per_second))
            })
            .collect(),
        wide: run
            .wide
            .as_ref()
            .map(|w| (w.channels as f64, w.delivered_per_second)),
        raw_per_second: run.raw.as_ref().map(|r| r.per_second),
        target_ratio: 0.75,
        soak: run.soak.as_ref().map_or(Vec::new(), |s| {
            s.samples
                .iter()
                .map(|p| (p.seconds, mb(p.store_bytes), mb(p.rss_bytes)))
                .collect()
        }),
        soak_window: run.soak.as_ref().map(|s| s.window_seconds),
        soak_caption: run.soak.as_ref().map_or(String::new(), |s| {
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
pub fn write(run: &Results, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(run)? + "\n",
    )?;
    let mut md = format!(
        "# watchwire-bench results\n\n`{}` — {} build, {} cores ({}), kernel {}, {:.0} s wall.\n\n",
        run.command,
        run.build,
        run.machine.cores,
        run.machine.cpu,
        run.machine.kernel,
        run.wall_seconds
    );
    md.push_str(&markdown(run));
    if !run.failures.is_empty() {
        md.push_str("\n**Failed scenarios**\n\n");
        for f in &run.failures {
            md.push_str(&format!("- {f}\n"));
        }
    }
    if !run.foreign_cpu.is_empty() {
        let shares: Vec<String> = run
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
    std::fs::write(dir.join("chart.svg"), chart::svg(&chart(run))?)?;
    Ok(())
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

/// The soak's summary and its samples as a table.
fn soak_markdown(s: &Soak) -> String {
    let mut md = format!(
        "\n**Soak**: {}. The retention window plus one prune interval ends at {:.0} s; from there to the end: store {}, RSS {}, anonymous memory {}. {} of {} notifications delivered, in order.\n\n",
        s.conditions(),
        s.window_seconds,
        s.store.note(),
        s.rss.note(),
        s.anon.note(),
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
