//! One run: the scenarios in the order a full run takes them, each judged against its
//! targets and the results written after each.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::args::{BenchArgs, Scenario};
use crate::postgres::Database;
use crate::results::{Machine, PostgresResults, Results};
use crate::scenarios::publish::Publish;
use crate::scenarios::Ctx;
use crate::{clock, cpu, format, gateway, report, scenarios, targets};

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    clock::start();
    // Streams of the sse scenario hold a descriptor each, here and in the gateway (which
    // inherits the limit).
    scenarios::sse::raise_fd_limit();
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
        brokers: args.brokers(),
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
        raw_brackets: Vec::new(),
        fanout: None,
        publish: None,
        latency: None,
        filtered: None,
        authed: None,
        traced: None,
        brokers: Vec::new(),
        wide: None,
        sse: None,
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
        // A broker scenario's broker is part of what it measures, not a neighbour.
        let broker = scenario.broker().map(|kind| kind.process());
        let broker_before = broker.and_then(cpu::processes_seconds);
        // A scenario judged as a ratio to raw gets raw measured right before and right
        // after it: the machine's speed moves between scenarios (and within one), so one
        // raw figure at the start of the run is not what the scenario ran against.
        let raw_before = if scenario.bracketed() {
            match scenarios::raw::sample(&ctx).await {
                Ok(sample) => Some(sample),
                Err(e) => {
                    eprintln!("   raw before {name} failed: {e:#}");
                    None
                }
            }
        } else {
            None
        };
        let mut outcome = run_one(
            scenario,
            &ctx,
            database.as_ref(),
            &mut results,
            raw_before.as_ref().map(|s| s.per_second),
        )
        .await;
        if let (Some(before), true) = (raw_before, outcome.is_ok()) {
            match scenarios::raw::sample(&ctx).await {
                Ok(after) => {
                    let bracket = scenarios::raw::Bracket::new(&name, before, after);
                    println!(
                        "   raw before {:.0}/s ({:.1} µs CPU/request), after {:.0}/s ({:.1} µs): drift {:.0} %{}; sequential {:.0} → {:.0}/s",
                        bracket.before.per_second,
                        bracket.before.cpu_us_per_request,
                        bracket.after.per_second,
                        bracket.after.cpu_us_per_request,
                        bracket.drift * 100.0,
                        if bracket.steady { "" } else { " (UNSTEADY: this scenario's ratios are untrustworthy)" },
                        bracket.before.sequential_per_second,
                        bracket.after.sequential_per_second,
                    );
                    rebase(&mut results, scenario, &bracket);
                    results.raw_brackets.retain(|b| b.scenario != name);
                    results.raw_brackets.push(bracket);
                }
                Err(e) => outcome = Err(e.context(format!("raw after {name}"))),
            }
        }
        let database_seconds = match &database {
            Some(d) => d.backend_seconds().await - database_before,
            None => 0.0,
        };
        let broker_seconds = match (broker_before, broker.and_then(cpu::processes_seconds)) {
            (Some(before), Some(after)) => after - before,
            _ => 0.0,
        };
        let foreign = before.foreign_since(&name, database_seconds, broker_seconds);
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
        targets::evaluate(&mut results);
        // Written after every scenario, so a long run that dies keeps what it measured.
        report::write(&results, &args.out)?;
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
    println!("\n{}", report::markdown(&results));
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

/// Recomputes `scenario`'s ratios to raw against the mean of the raw measured before and
/// after it.
fn rebase(results: &mut Results, scenario: Scenario, bracket: &scenarios::raw::Bracket) {
    let raw = Some(bracket.per_second);
    let fanout = |f: &mut scenarios::fanout::Fanout| {
        for p in f.sweep.iter_mut().chain(std::iter::once(&mut f.headline)) {
            p.ratio_to_raw = scenarios::ratio(p.delivered_per_second, raw);
        }
    };
    let publish = |p: &mut Publish| p.ratio_to_raw = scenarios::ratio(p.per_second, raw);
    match scenario {
        Scenario::Fanout => {
            results.fanout.as_mut().map(fanout);
            if let Some(f) = results.postgres.as_mut().and_then(|p| p.fanout.as_mut()) {
                fanout(f);
            }
        }
        Scenario::Publish => {
            results.publish.as_mut().map(publish);
            if let Some(p) = results.postgres.as_mut().and_then(|p| p.publish.as_mut()) {
                publish(p);
            }
        }
        Scenario::Scale => {
            if let Some(s) = results.scale.as_mut() {
                s.create_ratio_to_raw = scenarios::ratio(s.create_per_second, raw);
            }
        }
        _ => {}
    }
}

async fn run_one(
    scenario: Scenario,
    ctx: &Ctx,
    database: Option<&Arc<Database>>,
    results: &mut Results,
    raw_before: Option<f64>,
) -> anyhow::Result<()> {
    let raw = raw_before.or(results.raw.as_ref().map(|r| r.per_second));
    // The same scenario on PostgreSQL right after the embedded run, for the side-by-side
    // figures: back to back, so both see the same machine.
    let on_postgres = database.map(|d| ctx.on_postgres(d.clone()));
    match scenario {
        Scenario::Raw => {
            let r = scenarios::raw::run(ctx).await?;
            println!(
                "   {:.0} requests/s over {} connections ({:.1} µs CPU per request); one connection {:.0}/s ({:.1} µs), unloaded round trip p50 {:.3} ms",
                r.per_second,
                r.connections,
                r.cpu_us_per_request,
                r.sequential_per_second,
                r.sequential_cpu_us_per_request,
                r.unloaded.p50_ms
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
        Scenario::Filtered => {
            let unfiltered = results
                .fanout
                .as_ref()
                .map(|f| f.headline.gateway_cpu_us_per_notification);
            let f = scenarios::filtered::run(ctx, unfiltered).await?;
            println!(
                "   {} filtered channels: {:.0} notifications/s, {:.1} µs gateway CPU per event",
                f.channels, f.delivered_per_second, f.gateway_cpu_us_per_event
            );
            results.filtered = Some(f);
        }
        Scenario::Authed => {
            let unauthenticated = results.fanout.as_ref().map(|f| &f.headline);
            let a = scenarios::authed::run(ctx, raw, unauthenticated).await?;
            let p = &a.point;
            println!(
                "   {} channels with an {} header: {:.0} notifications/s, {:.1} µs gateway CPU per notification{}",
                p.channels,
                a.header,
                p.delivered_per_second,
                p.gateway_cpu_us_per_notification,
                match (a.throughput_ratio, a.cpu_ratio) {
                    (Some(t), Some(c)) => format!(
                        " ({t:.3} × and {c:.3} × the unauthenticated fan-out)"
                    ),
                    _ => String::new(),
                }
            );
            results.authed = Some(a);
        }
        Scenario::Traced => {
            let untraced = results.fanout.as_ref().map(|f| &f.headline);
            let t = scenarios::traced::run(ctx, raw, untraced).await?;
            let p = &t.point;
            println!(
                "   {} channels traced: {:.0} notifications/s, {:.1} µs gateway CPU per notification, {} spans exported, {} dropped{}",
                p.channels,
                p.delivered_per_second,
                p.gateway_cpu_us_per_notification,
                t.spans_exported,
                t.spans_dropped,
                match (t.throughput_ratio, t.cpu_ratio) {
                    (Some(r), Some(c)) => format!(" ({r:.3} × and {c:.3} × the untraced fan-out)"),
                    _ => String::new(),
                }
            );
            results.traced = Some(t);
        }
        Scenario::Nats | Scenario::Amqp | Scenario::Redis => {
            let kind = scenario.broker().expect("a broker scenario");
            let webhook = results.fanout.as_ref().map(|f| &f.headline);
            let b = scenarios::brokers::run(ctx, kind, raw, webhook).await?;
            let p = &b.point;
            println!(
                "   {} channels into {}: {:.0} notifications/s, {:.1} µs gateway CPU per notification{}{}",
                p.channels,
                kind.title(),
                p.delivered_per_second,
                p.gateway_cpu_us_per_notification,
                b.broker_cpu_us_per_notification
                    .map_or(String::new(), |us| format!(", {us:.1} µs the broker's")),
                match (b.throughput_ratio, b.cpu_ratio) {
                    (Some(t), Some(c)) => format!(" ({t:.3} × and {c:.3} × the webhook fan-out)"),
                    _ => String::new(),
                }
            );
            results.brokers.retain(|r| r.kind != kind);
            results.brokers.push(b);
        }
        Scenario::Brokers => unreachable!("`brokers` is selected as the three it names"),
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
        Scenario::Sse => {
            let s = scenarios::sse::run(ctx).await?;
            results.sse = Some(s);
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
            let mb =
                |b: Option<u64>| b.map_or("—".to_string(), |b| format!("{:.1}", format::mb(b)));
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
