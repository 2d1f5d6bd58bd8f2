//! One run: the command line, the scenarios in the order a full run takes them, and the
//! results written after each.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::postgres::Database;
use crate::report::{Machine, PostgresResults, Results};
use crate::scenarios::publish::Publish;
use crate::scenarios::{Ctx, Sizes};
use crate::{clock, cpu, gateway, scenarios};

/// The scenarios, in the order a full run takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Raw,
    Fanout,
    Publish,
    Latency,
    /// Only with `--database-url`.
    Cluster,
    Wide,
    Scale,
    Backlog,
    Soak,
}

const ALL: [Scenario; 9] = [
    Scenario::Raw,
    Scenario::Fanout,
    Scenario::Publish,
    Scenario::Latency,
    Scenario::Cluster,
    Scenario::Wide,
    Scenario::Scale,
    Scenario::Backlog,
    Scenario::Soak,
];

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "watchwire-bench",
    version,
    about = "Measure the watchwire gateway's throughput, latency and memory on this machine (see BENCHMARKS.md)"
)]
pub struct BenchArgs {
    /// The `watchwire` binary to benchmark, run as `watchwire serve` child processes
    /// (default: the `watchwire` next to this executable, where `cargo build --release`
    /// puts both).
    #[arg(long, env = "WATCHWIRE_BENCH_GATEWAY", value_name = "PATH")]
    pub gateway: Option<PathBuf>,

    /// The CI smoke: every scenario at tiny sizes (seconds in all), still checking that
    /// each delivered everything. Its numbers mean nothing.
    #[arg(long)]
    pub quick: bool,

    /// Directory for results.json, results.md, chart.svg and the gateways' logs.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,

    /// Run only this scenario (repeatable). The raw ceiling always runs too.
    #[arg(long = "scenario", value_enum)]
    pub scenarios: Vec<Scenario>,

    /// Where the gateways keep their data (default: a directory under the system's temp
    /// dir). Use a real disk: the fsync cost is part of every figure.
    #[arg(long)]
    pub data_root: Option<PathBuf>,

    /// Keep the gateways' data directories afterwards.
    #[arg(long)]
    pub keep_data: bool,

    /// Also run the fan-out (headline channel count), publish and latency scenarios on
    /// the PostgreSQL store, each right after its embedded run, and report both side by
    /// side. Every gateway gets a schema of its own in this database
    /// (`postgres://user@host:port/db`), dropped with its data.
    #[arg(
        long,
        env = "WATCHWIRE_BENCH_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Nodes of the cluster scenario (`--database-url` only).
    #[arg(long)]
    pub cluster_nodes: Option<usize>,

    /// The cluster scenario's leases, seconds, one failover run each, e.g. 10,2.
    #[arg(long, value_delimiter = ',')]
    pub cluster_lease_ttls: Option<Vec<f64>>,

    /// Channels of each failover run of the cluster scenario.
    #[arg(long)]
    pub cluster_channels: Option<usize>,

    /// Events per second published during the cluster scenario's failover runs.
    #[arg(long)]
    pub cluster_rate: Option<u64>,

    /// Log filter of the gateways (their logs go to OUT/gateway-*.log).
    #[arg(long, default_value = "warn")]
    pub gateway_log: String,

    /// Concurrent connections of the raw, publish and channel-creation loads.
    #[arg(long)]
    pub connections: Option<usize>,

    /// Seconds the raw and publish loads run.
    #[arg(long)]
    pub seconds: Option<f64>,

    /// Channels of the headline fan-out figure.
    #[arg(long)]
    pub fanout_channels: Option<usize>,

    /// Channel counts of the throughput-vs-channels sweep, e.g. 1,10,50,200,1000.
    #[arg(long, value_delimiter = ',')]
    pub fanout_sweep: Option<Vec<usize>>,

    /// Notifications each fan-out point delivers.
    #[arg(long)]
    pub fanout_notifications: Option<u64>,

    /// Events per publish in the fan-out load.
    #[arg(long)]
    pub batch: Option<usize>,

    /// Publishes per second of the latency scenario.
    #[arg(long)]
    pub latency_rate: Option<u64>,

    /// Lower publish rates also measured by the latency scenario, e.g. 500,1000,2500.
    #[arg(long, value_delimiter = ',')]
    pub latency_sweep: Option<Vec<u64>>,

    /// The publish rate at which the stores are compared side by side (always measured).
    #[arg(long)]
    pub latency_compare_rate: Option<u64>,

    /// Channels of the latency scenario.
    #[arg(long)]
    pub latency_channels: Option<usize>,

    /// Seconds the latency scenario publishes.
    #[arg(long)]
    pub latency_seconds: Option<f64>,

    /// Channels on the one resource of the wide fan-out.
    #[arg(long)]
    pub wide_channels: Option<usize>,

    /// Channels registered in the scale scenario.
    #[arg(long)]
    pub scale_channels: Option<usize>,

    /// Events pending on the dead endpoint of the backlog scenario.
    #[arg(long)]
    pub backlog_events: Option<usize>,

    /// Seconds the soak publishes. Its gateway prunes with 2m retention every 10s, so only
    /// what comes after 130 s shows whether store and memory stay flat.
    #[arg(long)]
    pub soak_seconds: Option<f64>,

    /// Events per second of the soak (each to every soak channel).
    #[arg(long)]
    pub soak_rate: Option<u64>,

    /// Channels of the soak, all on one collection.
    #[arg(long)]
    pub soak_channels: Option<usize>,

    /// The soak reads no `/metrics` (its gauges are then null): a gateway nobody scrapes.
    #[arg(long)]
    pub soak_no_metrics: bool,
}

impl BenchArgs {
    fn sizes(&self) -> Sizes {
        let mut s = if self.quick {
            Sizes::quick()
        } else {
            Sizes::full()
        };
        macro_rules! set {
            ($($field:ident),*) => {$( if let Some(v) = self.$field.clone() { s.$field = v; } )*};
        }
        set!(
            connections,
            seconds,
            fanout_channels,
            fanout_sweep,
            fanout_notifications,
            batch,
            latency_rate,
            latency_sweep,
            latency_compare_rate,
            latency_channels,
            latency_seconds,
            wide_channels,
            scale_channels,
            backlog_events,
            soak_seconds,
            soak_rate,
            soak_channels
        );
        if self.soak_no_metrics {
            s.soak_scrape_metrics = false;
        }
        let c = &mut s.cluster;
        c.nodes = self.cluster_nodes.unwrap_or(c.nodes);
        c.lease_ttls = self
            .cluster_lease_ttls
            .clone()
            .unwrap_or(c.lease_ttls.clone());
        c.failover_channels = self.cluster_channels.unwrap_or(c.failover_channels);
        c.failover_rate = self.cluster_rate.unwrap_or(c.failover_rate);
        s
    }

    /// The gateway binary: `--gateway`, or `watchwire` next to this executable.
    fn gateway(&self) -> anyhow::Result<PathBuf> {
        let path = match &self.gateway {
            Some(path) => path.clone(),
            None => std::env::current_exe()
                .context("finding this executable")?
                .with_file_name(format!("watchwire{}", std::env::consts::EXE_SUFFIX)),
        };
        anyhow::ensure!(
            path.is_file(),
            "no gateway binary at {}: build it (cargo build --release) or name it with --gateway PATH (or WATCHWIRE_BENCH_GATEWAY)",
            path.display()
        );
        Ok(path)
    }

    /// The scenarios to run, in order; the cluster only with `--database-url`.
    fn selected(&self) -> Vec<Scenario> {
        ALL.into_iter()
            .filter(|s| {
                *s == Scenario::Raw || self.scenarios.is_empty() || self.scenarios.contains(s)
            })
            .filter(|s| *s != Scenario::Cluster || self.database_url.is_some())
            .collect()
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    clock::start();
    let began = Instant::now();
    let gateway = args.gateway()?;
    let version = gateway::version(&gateway)?;
    let sizes = args.sizes();
    let work_dir = match &args.data_root {
        Some(dir) => dir.join(format!("watchwire-bench-{}", std::process::id())),
        None => std::env::temp_dir().join(format!("watchwire-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work_dir)?;
    std::fs::create_dir_all(&args.out)?;
    let ctx = Ctx {
        gateway: gateway.clone(),
        sizes: sizes.clone(),
        work_dir: work_dir.clone(),
        log_dir: args.out.clone(),
        log_filter: args.gateway_log.clone(),
        database: None,
    };
    let database = match &args.database_url {
        Some(url) => Some(Arc::new(Database::connect(url).await?)),
        None => None,
    };
    let postgres = match &database {
        Some(database) => Some(PostgresResults {
            database: database.info().await?,
            fanout: None,
            publish: None,
            latency: None,
        }),
        None => None,
    };
    let mut results = Results {
        watchwire_version: version,
        quick: args.quick,
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine::this(),
        sizes,
        wall_seconds: 0.0,
        raw: None,
        fanout: None,
        publish: None,
        latency: None,
        wide: None,
        scale: None,
        backlog: None,
        soak: None,
        cluster: None,
        postgres,
        side_by_side: Vec::new(),
        failures: Vec::new(),
        checks: Vec::new(),
        foreign_cpu: Vec::new(),
    };
    if results.build == "debug" && !args.quick {
        eprintln!(
            "warning: this is a debug build; its figures mean nothing (cargo build --release)"
        );
    }
    println!(
        "watchwire-bench: {} ({}), results to {}, gateway data in {}",
        gateway.display(),
        results.watchwire_version,
        args.out.display(),
        work_dir.display()
    );
    if let Some(p) = &results.postgres {
        println!(
            "   and on PostgreSQL {} at {} (synchronous_commit={}): fanout, publish, latency",
            p.database.server_version,
            p.database.url,
            p.database
                .settings
                .get("synchronous_commit")
                .map_or("?", String::as_str)
        );
    }
    if args.scenarios.contains(&Scenario::Cluster) && database.is_none() {
        eprintln!("warning: the cluster scenario needs --database-url; skipped");
    }
    for scenario in args.selected() {
        let name = format!("{scenario:?}").to_lowercase();
        println!("== {name}");
        let started = Instant::now();
        let before = cpu::Reading::now();
        let database_before = match &database {
            Some(d) => d.backend_seconds().await,
            None => 0.0,
        };
        let outcome = run_one(scenario, &ctx, database.as_ref(), &mut results).await;
        let database_seconds = match &database {
            Some(d) => d.backend_seconds().await - database_before,
            None => 0.0,
        };
        let foreign = before.foreign_since(&name, database_seconds);
        if foreign.share > 0.10 {
            eprintln!(
                "   warning: other processes used {:.0} % of the machine during {name}; its figures are depressed",
                foreign.share * 100.0
            );
        }
        results.foreign_cpu.push(foreign);
        if let Err(e) = outcome {
            eprintln!("   {name} FAILED: {e:#}");
            results.failures.push(format!("{name}: {e:#}"));
        }
        println!("   ({name} took {:.1} s)", started.elapsed().as_secs_f64());
        results.wall_seconds = began.elapsed().as_secs_f64();
        results.evaluate();
        // Written after every scenario, so a long run that dies keeps what it measured.
        results.write(&args.out)?;
    }
    if !args.keep_data {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    if let Some(database) = &database {
        match database.drop_leftovers().await {
            Ok(0) => {}
            Ok(n) => println!("   dropped {n} schema(s) that failed scenarios left behind"),
            Err(e) => eprintln!("   could not drop this run's leftover schemas: {e:#}"),
        }
    }
    println!("\n{}", results.markdown());
    println!(
        "wrote {}/results.json, results.md, chart.svg",
        args.out.display()
    );
    if !results.failures.is_empty() {
        anyhow::bail!(
            "{} scenario(s) failed: {}",
            results.failures.len(),
            results.failures.join("; ")
        );
    }
    Ok(())
}

async fn run_one(
    scenario: Scenario,
    ctx: &Ctx,
    database: Option<&Arc<Database>>,
    results: &mut Results,
) -> anyhow::Result<()> {
    let raw = results.raw.as_ref().map(|r| r.per_second);
    // The same scenario on PostgreSQL right after the embedded run, for the side-by-side
    // figures: back to back, so both see the same machine.
    let on_postgres = database.map(|d| ctx.on_postgres(d.clone()));
    match scenario {
        Scenario::Raw => {
            let r = scenarios::raw::run(ctx).await?;
            println!(
                "   {:.0} requests/s over {} connections; unloaded round trip p50 {:.3} ms",
                r.per_second, r.connections, r.unloaded.p50_ms
            );
            results.raw = Some(r);
        }
        Scenario::Fanout => {
            let f = scenarios::fanout::run(ctx, raw).await?;
            results.fanout = Some(f);
            if let Some(mut pg) = on_postgres {
                // The headline channel count only.
                pg.sizes.fanout_sweep.clear();
                let f = scenarios::fanout::run(&pg, raw)
                    .await
                    .context("on PostgreSQL")?;
                postgres(results).fanout = Some(f);
            }
        }
        Scenario::Publish => {
            let p = scenarios::publish::run(ctx, raw).await?;
            print_publish(ctx, &p);
            results.publish = Some(p);
            if let Some(pg) = on_postgres {
                let p = scenarios::publish::run(&pg, raw)
                    .await
                    .context("on PostgreSQL")?;
                print_publish(&pg, &p);
                postgres(results).publish = Some(p);
            }
        }
        Scenario::Latency => {
            let raw_round_trip = results
                .raw
                .as_ref()
                .map(|r| r.unloaded.p50_ms)
                .filter(|ms| *ms > 0.0);
            let mut l = scenarios::latency::run(ctx).await?;
            l.p50_over_raw_round_trip = raw_round_trip.map(|ms| l.headline.delivery.p50_ms / ms);
            results.latency = Some(l);
            if let Some(pg) = on_postgres {
                let mut l = scenarios::latency::run(&pg)
                    .await
                    .context("on PostgreSQL")?;
                l.p50_over_raw_round_trip =
                    raw_round_trip.map(|ms| l.headline.delivery.p50_ms / ms);
                postgres(results).latency = Some(l);
            }
        }
        Scenario::Cluster => {
            let database = database.context("the cluster scenario needs --database-url")?;
            let c = scenarios::cluster::run(ctx, database).await?;
            results.cluster = Some(c);
        }
        Scenario::Wide => {
            let w = scenarios::wide::run(ctx, raw).await?;
            println!(
                "   one event to {} channels: first {:.3} s, last {:.3} s",
                w.channels, w.first_delivery_seconds, w.last_delivery_seconds
            );
            results.wide = Some(w);
        }
        Scenario::Scale => {
            let s = scenarios::scale::run(ctx, raw).await?;
            println!(
                "   {:.0} B per idle channel ({:.0} after restart); restart → delivering {:.2} s",
                s.bytes_per_channel, s.bytes_per_channel_restarted, s.restart_delivering_seconds
            );
            results.scale = Some(s);
        }
        Scenario::Backlog => {
            let b = scenarios::backlog::run(ctx).await?;
            println!(
                "   {} pending: peak RSS {:.1} MiB (start {:.1} MiB)",
                b.pending,
                b.peak_rss_bytes as f64 / (1024.0 * 1024.0),
                b.rss_start_bytes as f64 / (1024.0 * 1024.0)
            );
            results.backlog = Some(b);
        }
        Scenario::Soak => {
            let s = scenarios::soak::run(ctx).await?;
            let mb = |b: Option<u64>| {
                b.map_or("—".to_string(), |b| {
                    format!("{:.1}", scenarios::soak::mb(b))
                })
            };
            println!(
                "   {} notifications in {:.0} s; from the end of the {:.0} s window to the end: store {} → {} MB, RSS {} → {} MB",
                s.notifications,
                s.seconds,
                s.window_seconds,
                mb(s.store.at_window_bytes),
                mb(Some(s.store.end_bytes)),
                mb(s.rss.at_window_bytes),
                mb(Some(s.rss.end_bytes)),
            );
            results.soak = Some(s);
        }
    }
    Ok(())
}

/// The PostgreSQL results of a run with `--database-url` (present from its start).
fn postgres(results: &mut Results) -> &mut PostgresResults {
    results
        .postgres
        .as_mut()
        .expect("a run with --database-url has PostgreSQL results")
}

fn print_publish(ctx: &Ctx, p: &Publish) {
    println!(
        "   {}: {:.0} events/s, ack p50 {:.2} ms p99 {:.2} ms, {:.1} events per commit",
        ctx.store(),
        p.per_second,
        p.ack.p50_ms,
        p.ack.p99_ms,
        p.events_per_commit
    );
}
