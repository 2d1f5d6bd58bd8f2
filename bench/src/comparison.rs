//! Both stores side by side (`--database-url`): each figure of the fan-out, publish and
//! latency scenarios on the embedded store and on PostgreSQL, their ratio, and
//! PostgreSQL's targets.

use crate::format::format_count;
use crate::results::{Comparison, Results};
use crate::scenarios::latency::Latency;

/// The side-by-side figures of a run with `--database-url` (empty without).
pub fn compare(run: &Results) -> Vec<Comparison> {
    let Some(pg) = &run.postgres else {
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
        run.fanout.as_ref().map(|f| &f.headline),
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
    let (pe, pp) = (run.publish.as_ref(), pg.publish.as_ref());
    row(
        "single-event publishes".into(),
        "events/s",
        pe.map(|p| p.per_second),
        pp.map(|p| p.per_second),
        "≥ 0.5 × embedded",
        &|_, r| r.is_some_and(|r| r >= 0.5),
    );
    let rate = run.sizes.latency_compare_rate;
    let at_rate = |l: Option<&Latency>| {
        l.and_then(|l| l.sweep.iter().find(|p| p.target_rate == rate).cloned())
    };
    let (le, lp) = (at_rate(run.latency.as_ref()), at_rate(pg.latency.as_ref()));
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
