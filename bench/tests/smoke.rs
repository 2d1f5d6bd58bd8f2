//! The CI smoke of the benchmark: `watchwire-bench --quick` runs every scenario at tiny
//! sizes against the `watchwire` binary of this build, and its JSON must hold every
//! scenario with plausible, non-zero numbers. It checks that the harness works and that
//! everything published was delivered; it checks no performance figure (the full
//! benchmark does, BENCHMARKS.md).
//!
//! The broker scenarios (nats, amqp, redis) need the machine's NATS with JetStream,
//! RabbitMQ and Redis on their usual ports, as the broker tests do; a broker that does
//! not answer leaves its scenario out (`--skip-scenario`), which is a failure under CI.
//!
//! With `WATCHWIRE_TEST_DATABASE_URL` (CI sets it) the quick run also gets
//! `--database-url`, runs the fan-out, publish and latency scenarios on PostgreSQL too,
//! and must deliver everything there as well and drop every schema it created. It also
//! runs the cluster scenario (three nodes on one schema, `--lease-ttl 2s`), whose
//! failover, handover and delivery checks must pass even at quick sizes: they are about
//! correctness and the documented bounds, not speed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn number(results: &Value, path: &str) -> f64 {
    let mut value = results;
    for key in path.split('.') {
        value = &value[key];
    }
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in results.json: {value}"))
}

fn positive(results: &Value, path: &str) -> f64 {
    let n = number(results, path);
    assert!(
        n > 0.0 && n.is_finite(),
        "{path} = {n}, expected a positive number"
    );
    n
}

/// The gateway binary this build made: the root package's integration tests make the
/// same `cargo test` build `watchwire` next to `deps/`, where this test runs from
/// (`…/target/debug/deps/smoke-…` → `…/target/debug/watchwire`, under any target dir).
fn gateway() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps");
    let gateway = profile_dir.join(format!("watchwire{}", std::env::consts::EXE_SUFFIX));
    assert!(
        gateway.is_file(),
        "no gateway binary at {}: run `cargo build` first (a plain `cargo test` at the \
         repository root builds it)",
        gateway.display()
    );
    gateway
}

/// The broker scenarios, each with the broker it needs (where `watchwire-bench`
/// looks for it by default) and what `results.json` calls it.
const BROKERS: [(&str, &str, &str); 3] = [
    ("nats", "127.0.0.1:4222", "NATS JetStream"),
    ("amqp", "127.0.0.1:5672", "RabbitMQ"),
    ("redis", "127.0.0.1:6379", "Redis Streams"),
];

/// The broker scenarios whose broker answers; the others are skipped (a failure under
/// CI).
fn brokers_up() -> Vec<(&'static str, &'static str)> {
    let mut up = Vec::new();
    for (scenario, at, title) in BROKERS {
        let address = at.parse().expect("a socket address");
        match std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(5)) {
            Ok(_) => up.push((scenario, title)),
            Err(e) => test_support::skip(
                &format!("the benchmark smoke's {scenario} scenario"),
                &format!("{title} on {at} ({e}; README, \"Testing\")"),
            ),
        }
    }
    up
}

/// Runs `watchwire-bench --quick` (on PostgreSQL too with `database`), leaving out the
/// broker scenarios not in `brokers`; returns its results and its process id (which
/// names its schemas).
fn run_quick_bench(
    out: &Path,
    data: &Path,
    database: Option<&str>,
    brokers: &[(&str, &str)],
) -> (Value, u32) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_watchwire-bench"));
    command
        .arg("--gateway")
        .arg(gateway())
        .args(["--quick", "--out"])
        .arg(out)
        .arg("--data-root")
        .arg(data)
        .env_remove("WATCHWIRE_BENCH_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(url) = database {
        command.args(["--database-url", url]);
    }
    for (scenario, _, _) in BROKERS {
        if !brokers.iter().any(|(up, _)| *up == scenario) {
            command.args(["--skip-scenario", scenario]);
        }
    }
    let child = command.spawn().expect("watchwire-bench starts");
    let pid = child.id();
    let output = child.wait_with_output().expect("watchwire-bench runs");
    assert!(
        output.status.success(),
        "watchwire-bench --quick failed ({})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(out.join("results.json")).expect("results.json written");
    (
        serde_json::from_str(&text).expect("results.json is JSON"),
        pid,
    )
}

/// Schemas of the benchmark process `pid` still in the database.
fn schemas_left(url: &str, pid: u32) -> Vec<String> {
    let sql = format!(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, 'wwbench_{pid}_')"
    );
    test_support::query(url, &sql)
        .unwrap_or_else(|e| panic!("cannot list the benchmark's schemas: {e}"))
        .into_iter()
        .map(|row| row[0].clone())
        .collect()
}

/// Side-by-side rows: the four headline figures measured on both sides (`base` and
/// `other`), each row's ratio `other / base`.
fn check_rows(rows: &Value, base: &str, other: &str) {
    let rows = rows.as_array().expect("side-by-side rows");
    for name in [
        "fan-out delivered",
        "single-event publishes",
        "publish→delivery p50 at",
        "publish→delivery p99 at",
    ] {
        let row = rows
            .iter()
            .find(|row| row["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no side-by-side row {name:?}"));
        let (base, other) = (positive(row, base), positive(row, other));
        assert!((number(row, "ratio") - other / base).abs() < 1e-9);
    }
}

/// The PostgreSQL figures of a quick run with `--database-url`: the same scenarios
/// delivered everything there too, and the side-by-side table holds both stores.
fn check_postgres(r: &Value, md: &str) {
    let pg = &r["postgres"];
    assert!(pg.is_object(), "results.json has no postgres results");
    assert_eq!(pg["database"]["settings"]["synchronous_commit"], "on");
    assert!(pg["database"]["server_version"].is_string());

    // fan-out at the headline channel count only.
    let sweep = pg["fanout"]["sweep"]
        .as_array()
        .expect("a PostgreSQL fan-out");
    assert_eq!(sweep.len(), 1, "PostgreSQL runs the headline fan-out only");
    let point = &pg["fanout"]["headline"];
    assert_eq!(
        number(point, "channels"),
        number(&r["fanout"]["headline"], "channels")
    );
    let notifications = number(point, "events") * number(point, "channels");
    assert!(notifications > 0.0);
    assert_eq!(number(point, "notifications"), notifications);
    assert_eq!(number(point, "latency.samples"), notifications);
    positive(point, "delivered_per_second");
    positive(point, "store_commits");
    assert!(number(point, "database_cpu_us_per_notification") >= 0.0);
    assert!(r["fanout"]["headline"]["database_cpu_us_per_notification"].is_null());

    // publish: every acknowledged event counted by the gateway (the scenario checks).
    positive(pg, "publish.events");
    positive(pg, "publish.per_second");
    positive(pg, "publish.store_commits");
    assert!(number(pg, "publish.events_per_commit") >= 1.0);

    // latency: one sample per notification at every rate, the comparison rate among them.
    let rate = number(r, "sizes.latency_compare_rate");
    let sweep = pg["latency"]["sweep"].as_array().expect("a latency sweep");
    assert!(sweep.iter().any(|p| number(p, "target_rate") == rate));
    for point in sweep {
        let notifications = number(point, "events") * number(&pg["latency"], "channels");
        assert_eq!(number(point, "notifications"), notifications);
        assert_eq!(number(point, "delivery.samples"), notifications);
        positive(point, "store_commits");
        assert!(number(point, "database_cpu_us_per_notification") >= 0.0);
    }

    check_rows(&r["side_by_side"], "embedded", "postgres");
    assert!(
        md.contains("| figure | embedded | PostgreSQL | PostgreSQL ÷ embedded | target | met |")
    );
}

/// The cluster scenario of a quick run with `--database-url`: both sides measured, the
/// ratios those of the figures, every channel of a stopped node delivered again by
/// another within the documented bounds, and nothing lost, reordered or repeated while
/// healthy.
fn check_cluster(r: &Value, md: &str) {
    let c = &r["cluster"];
    assert!(c.is_object(), "results.json has no cluster results");
    assert_eq!(number(c, "nodes"), 3.0);
    for side in ["single", "cluster"] {
        let s = &c[side];
        positive(s, "fanout.delivered_per_second");
        assert_eq!(
            number(s, "fanout.notifications"),
            number(s, "fanout.events") * number(c, "fanout_channels")
        );
        positive(s, "publish.per_second");
        positive(s, "publish.events");
        assert_eq!(number(s, "latency.target_rate"), number(c, "latency_rate"));
        assert_eq!(
            number(s, "latency.delivery.samples"),
            number(s, "latency.notifications")
        );
        positive(s, "latency.delivery.p50_ms");
    }
    check_rows(&c["side_by_side"], "single", "cluster");

    let ttls = c["sizes"]["lease_ttls"].as_array().expect("the leases");
    assert_eq!(
        ttls,
        &vec![Value::from(2.0)],
        "quick runs --lease-ttl 2s only"
    );
    for (kind, bound) in [("failover", None), ("handover", Some(2.0))] {
        let runs = c[kind].as_array().expect("takeovers");
        assert_eq!(runs.len(), ttls.len(), "one {kind} per lease");
        for t in runs {
            let ttl = number(t, "lease_ttl_seconds");
            let bound = bound.unwrap_or(ttl + 5.0);
            let channels = positive(t, "channels");
            assert_eq!(
                number(t, "taken_over"),
                channels,
                "every channel of the stopped node delivered again: {t}"
            );
            let max = positive(t, "max_seconds");
            assert!(max <= bound, "{kind} took {max} s, bound {bound} s: {t}");
            assert!(number(t, "median_seconds") <= max);
            assert_eq!(t["pass"], true, "{t}");
            assert!(t["node"].as_str().is_some_and(|n| !n.is_empty()));
            assert!(
                !t["new_owners"]
                    .as_object()
                    .unwrap()
                    .contains_key(t["node"].as_str().unwrap()),
                "its channels moved: {t}"
            );
        }
    }
    for d in c["delivery"].as_array().expect("delivery per lease") {
        positive(d, "events");
        positive(d, "healthy_notifications");
        for zero in [
            "lost",
            "out_of_order",
            "healthy_duplicates",
            "publish_failures",
        ] {
            assert_eq!(number(d, zero), 0.0, "{zero}: {d}");
        }
        let spread = d["spread"].as_object().expect("the spread");
        assert_eq!(spread.len(), 3);
        assert!(spread.values().all(|n| n.as_f64().unwrap() > 0.0), "{d}");
    }
    let checks = c["checks"].as_array().expect("cluster checks");
    assert!(checks.len() >= 5, "{checks:?}");
    for check in checks {
        assert_eq!(check["pass"], true, "{check}");
    }
    assert!(md.contains("**Cluster (3 nodes on PostgreSQL)**"));
    assert!(md.contains("| figure | one node | 3 nodes | cluster ÷ one node |"));
}

#[test]
fn quick_bench_runs_every_scenario_and_delivers_everything() {
    let out = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let database = test_support::database("the benchmark smoke on PostgreSQL");
    let brokers = brokers_up();
    let (r, pid) = run_quick_bench(out.path(), data.path(), database.as_deref(), &brokers);

    assert_eq!(r["quick"], true);
    assert_eq!(r["failures"], Value::Array(vec![]), "no scenario failed");
    for scenario in [
        "raw", "fanout", "filtered", "authed", "traced", "publish", "latency", "wide", "sse",
        "scale", "backlog", "soak",
    ] {
        assert!(
            r[scenario].is_object(),
            "results.json has no {scenario} result"
        );
    }

    // raw: the ceiling every ratio divides by, and what a request costs the benchmark.
    positive(&r, "raw.per_second");
    positive(&r, "raw.requests");
    positive(&r, "raw.unloaded.p50_ms");
    positive(&r, "raw.cpu_us_per_request");

    // Raw again right before and after each scenario judged as a ratio to it: that
    // scenario's ratios are to their mean, the drift between them reported.
    let brackets = r["raw_brackets"].as_array().expect("raw brackets");
    let bracketed: Vec<&str> = brackets
        .iter()
        .map(|b| b["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(bracketed, ["fanout", "publish", "scale"]);
    for b in brackets {
        let (before, after) = (
            positive(b, "before.per_second"),
            positive(b, "after.per_second"),
        );
        assert!((number(b, "per_second") - (before + after) / 2.0).abs() < 1e-6);
        assert!(
            (number(b, "drift") - (after - before).abs() / ((before + after) / 2.0)).abs() < 1e-9
        );
        positive(b, "cpu_us_per_request");
        positive(b, "sequential_per_second");
        positive(b, "sequential_cpu_us_per_request");
        assert_eq!(
            b["steady"],
            number(b, "drift") <= 0.15 && number(b, "sequential_drift") <= 0.15
        );
    }
    let raw = number(&brackets[0], "per_second");

    // fanout: every notification arrived; ratios are against raw.
    let fanout = &r["fanout"];
    let sweep = fanout["sweep"].as_array().expect("a sweep");
    assert!(sweep.len() >= 2, "the sweep has several channel counts");
    for point in sweep {
        let (events, channels) = (number(point, "events"), number(point, "channels"));
        assert!(events > 0.0 && channels > 0.0);
        assert_eq!(number(point, "notifications"), events * channels);
        let rate = positive(point, "delivered_per_second");
        let ratio = positive(point, "ratio_to_raw");
        assert!((ratio - rate / raw).abs() < 1e-6 * ratio.max(1.0));
        assert_eq!(number(point, "latency.samples"), events * channels);
    }
    positive(&r, "fanout.headline.delivered_per_second");

    // publish: durable acknowledgements, each counted by the gateway too.
    positive(&r, "publish.events");
    positive(&r, "publish.per_second");
    positive(&r, "publish.ratio_to_raw");
    positive(&r, "publish.store_commits");
    assert!(number(&r, "publish.events_per_commit") >= 1.0);

    // latency: one sample per notification, percentiles in order, at every rate.
    let sweep = r["latency"]["sweep"].as_array().expect("a latency sweep");
    assert!(sweep.len() >= 2, "latency is measured at several rates");
    assert_eq!(sweep.last(), Some(&r["latency"]["headline"]));
    let latency = &r["latency"]["headline"];
    assert_eq!(
        number(latency, "delivery.samples"),
        number(latency, "notifications")
    );
    assert_eq!(
        number(latency, "notifications"),
        number(latency, "events") * number(&r, "latency.channels")
    );
    let (p50, p99, p999, max) = (
        positive(latency, "delivery.p50_ms"),
        number(latency, "delivery.p99_ms"),
        number(latency, "delivery.p999_ms"),
        number(latency, "delivery.max_ms"),
    );
    assert!(
        p50 <= p99 && p99 <= p999 && p999 <= max,
        "{p50} {p99} {p999} {max}"
    );

    // filtered: each event reached the tenth of the channels whose filter it matches,
    // and the CPU per event is judged against the unfiltered fan-out of the same run.
    let filtered = &r["filtered"];
    let (events, channels) = (positive(filtered, "events"), positive(filtered, "channels"));
    let sent = positive(filtered, "notifications");
    assert!(
        sent < events * channels && sent * 10.0 >= events * (channels - 9.0),
        "{sent} notifications for {events} events to {channels} channels matching a tenth each"
    );
    positive(filtered, "delivered_per_second");
    positive(filtered, "gateway_cpu_us_per_event");
    positive(filtered, "budget_us_per_event");

    // traced: the fan-out's headline point with spans exported: one per attempt and one
    // per publish reached the collector, none dropped.
    let traced = &r["traced"];
    let point = &traced["point"];
    assert!(
        number(traced, "spans_exported") >= number(point, "notifications"),
        "{traced}"
    );
    assert_eq!(number(traced, "spans_dropped"), 0.0, "{traced}");
    positive(traced, "exports");
    positive(traced, "throughput_ratio");

    // authed: the fan-out's headline point again, every channel with an auth header
    // (the scenario checks every notification carried it), compared with the fan-out.
    let authed = &r["authed"];
    let point = &authed["point"];
    let headline = &r["fanout"]["headline"];
    for same in ["channels", "events"] {
        assert_eq!(number(point, same), number(headline, same), "{same}");
    }
    assert_eq!(
        number(point, "notifications"),
        number(point, "events") * number(point, "channels")
    );
    assert_eq!(
        number(point, "latency.samples"),
        number(point, "notifications")
    );
    positive(point, "gateway_cpu_us_per_notification");
    assert_eq!(authed["header"], "Authorization");
    let cpu = positive(authed, "cpu_ratio");
    assert!(
        (cpu - number(point, "gateway_cpu_us_per_notification")
            / number(headline, "gateway_cpu_us_per_notification"))
        .abs()
            < 1e-9
    );
    let throughput = positive(authed, "throughput_ratio");
    assert!(
        (throughput
            - number(point, "delivered_per_second") / number(headline, "delivered_per_second"))
        .abs()
            < 1e-9
    );

    // nats, amqp, redis: the fan-out's headline point into each broker that answers,
    // every notification read back by the benchmark's consumer, in order and once,
    // compared with the webhook fan-out.
    let results = r["brokers"].as_array().expect("a list of broker results");
    let kinds: Vec<&str> = results
        .iter()
        .map(|b| b["kind"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = brokers.iter().map(|(scenario, _)| *scenario).collect();
    assert_eq!(
        kinds, expected,
        "one result per broker scenario run, in order"
    );
    for broker in results {
        let point = &broker["point"];
        for same in ["channels", "events"] {
            assert_eq!(number(point, same), number(headline, same), "{same}");
        }
        let notifications = number(point, "events") * number(point, "channels");
        assert_eq!(number(point, "notifications"), notifications);
        assert_eq!(number(point, "latency.samples"), notifications);
        assert_eq!(number(point, "duplicates"), 0.0, "{broker}");
        positive(point, "gateway_cpu_us_per_notification");
        assert!(broker["destination"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
        let throughput = positive(broker, "throughput_ratio");
        assert!(
            (throughput
                - number(point, "delivered_per_second") / number(headline, "delivered_per_second"))
            .abs()
                < 1e-9
        );
        positive(broker, "cpu_ratio");
        assert_eq!(
            number(broker, "webhook_per_second"),
            number(headline, "delivered_per_second")
        );
    }

    // sse: every stream got every event, in order, with the default allocator and with
    // freed pages returned at once; memory per stream measured both times.
    let sse = &r["sse"];
    let runs = sse["runs"].as_array().expect("sse runs");
    assert_eq!(runs.len(), 2, "{sse}");
    assert_eq!(runs[0]["env"], "");
    assert_eq!(
        runs[1]["env"],
        "MIMALLOC_PURGE_DELAY=0 MIMALLOC_PURGE_DECOMMITS=1"
    );
    positive(sse, "fd_limit");
    for run in runs {
        let (streams, events) = (positive(run, "streams"), positive(run, "events"));
        assert_eq!(events, 100.0);
        assert_eq!(number(run, "frames"), streams * events, "{run}");
        assert_eq!(number(run, "out_of_order"), 0.0);
        assert_eq!(number(run, "extra"), 0.0);
        positive(run, "delivered_seconds");
        positive(run, "bytes_per_stream_open");
        assert!(number(run, "rss_delivered_bytes") > 0.0);
    }

    // wide: one event reached every channel.
    positive(&r, "wide.channels");
    positive(&r, "wide.create_per_second");
    let first = positive(&r, "wide.first_delivery_seconds");
    assert!(number(&r, "wide.last_delivery_seconds") >= first);

    // scale: memory per channel and a restart that delivers again without resending syncs.
    positive(&r, "scale.bytes_per_channel");
    positive(&r, "scale.create_per_second");
    let listening = positive(&r, "scale.restart_listening_seconds");
    assert!(number(&r, "scale.restart_delivering_seconds") >= listening);
    assert_eq!(number(&r, "scale.syncs_repeated"), 0.0);

    // backlog: memory sampled while the pending notifications piled up.
    positive(&r, "backlog.pending");
    let start = positive(&r, "backlog.rss_start_bytes");
    assert!(number(&r, "backlog.peak_rss_bytes") >= start);
    assert!(!r["backlog"]["rss_samples"].as_array().unwrap().is_empty());
    assert_eq!(number(&r, "backlog.channels_backlogged"), 1.0);

    // soak: store size and memory sampled over time while every notification arrived.
    // Whether they stay flat is not checked: at quick sizes the numbers mean nothing.
    let soak = &r["soak"];
    let notifications = positive(soak, "notifications");
    assert_eq!(
        notifications,
        positive(soak, "events") * positive(soak, "channels")
    );
    assert_eq!(number(soak, "delivered"), notifications);
    positive(soak, "window_seconds");
    let samples = soak["samples"].as_array().expect("soak samples");
    assert!(
        samples.len() >= 3,
        "the soak sampled {} times",
        samples.len()
    );
    let mut last_seconds = -1.0;
    for sample in samples {
        let seconds = number(sample, "seconds");
        assert!(seconds > last_seconds, "samples in time order");
        last_seconds = seconds;
        positive(sample, "store_bytes");
        positive(sample, "rss_bytes");
        positive(sample, "anon_bytes");
        for gauge in ["watchwire_store_bytes", "watchwire_prune_lag_seconds"] {
            assert!(
                sample[gauge].is_null() || sample[gauge].is_number(),
                "{gauge} is a number or null: {}",
                sample[gauge]
            );
        }
    }
    let last = samples.last().unwrap();
    assert_eq!(number(last, "delivered"), notifications);
    for growth in ["store", "rss", "anon"] {
        assert_eq!(
            number(soak, &format!("{growth}.end_bytes")),
            number(last, &format!("{growth}_bytes"))
        );
    }

    // Every target is reported, and the table and chart are written.
    let checks: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "raw loopback ceiling",
        "fan-out delivered",
        "single-event publishes",
        "latency p50",
        "latency p99",
        "one event → all channels",
        "filtered fan-out: gateway CPU per event",
        "header-auth fan-out: gateway CPU per notification",
        "header-auth fan-out delivered",
        "traced fan-out delivered",
        "memory per idle channel",
        "restart → delivering",
        "channel creation",
        "SSE resident memory per stream, streams open",
        "SSE resident memory per stream, after the events",
        "SSE: 100 events to every stream, all delivered",
        "peak RSS, dead endpoint",
        "soak store size, end ÷ at window",
        "soak RSS, end ÷ at window",
    ] {
        assert!(checks.contains(&name), "no check {name:?} in {checks:?}");
    }
    for (_, title) in &brokers {
        for name in [
            format!("{title} fan-out delivered"),
            format!("{title} fan-out: gateway CPU per notification"),
        ] {
            assert!(
                checks.contains(&name.as_str()),
                "no check {name:?} in {checks:?}"
            );
        }
    }
    let foreign = r["foreign_cpu"]
        .as_array()
        .expect("foreign CPU per scenario");
    // The cluster scenario runs only with a database, a broker scenario only with its
    // broker.
    let scenarios = if database.is_some() { 13 } else { 12 } + brokers.len();
    assert_eq!(foreign.len(), scenarios, "one reading per scenario");
    for f in foreign {
        let share = number(f, "share");
        assert!((0.0..=1.0).contains(&share), "share {share}");
    }
    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    assert!(md.contains("| figure | measured | ratio to raw |"));
    assert!(md.contains("| CPU ratio | raw before → after (drift) |"));
    // The ratio targets carry the CPU figures beside them.
    for name in [
        "fan-out delivered",
        "single-event publishes",
        "channel creation",
    ] {
        let check = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        positive(check, "cpu_us_per_unit");
        positive(check, "raw_cpu_us_per_request");
        let ratio = positive(check, "cpu_ratio");
        assert!(
            (ratio - number(check, "cpu_us_per_unit") / number(check, "raw_cpu_us_per_request"))
                .abs()
                < 1e-9
        );
        positive(check, "raw_before");
        positive(check, "raw_after");
    }
    assert!(md.contains("| time s | store MB | RSS MB | anon MB | delivered |"));
    let svg = std::fs::read_to_string(out.path().join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));

    match &database {
        Some(url) => {
            check_postgres(&r, &md);
            check_cluster(&r, &md);
            assert_eq!(
                schemas_left(url, pid),
                Vec::<String>::new(),
                "the run dropped every schema it created"
            );
        }
        None => {
            assert!(r["postgres"].is_null() && r["side_by_side"] == Value::Array(vec![]));
            assert!(r["cluster"].is_null());
            assert!(!md.contains("Stores side by side"));
            assert!(!md.contains("**Cluster ("));
        }
    }
}
