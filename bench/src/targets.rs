//! The targets each figure is held to, checked against what a run measured: the
//! single-store figures here, the two stores side by side in [`crate::comparison`].
//! The cluster scenario checks its own targets (failover and handover bounds).

use crate::check::Check;
use crate::comparison;
use crate::format::{format_count, format_measured, MIB};
use crate::results::Results;

/// Fills `checks` and `side_by_side` from the scenario results.
pub fn evaluate(run: &mut Results) {
    run.checks = checks(run);
    run.side_by_side = comparison::compare(run);
}

/// The single-store figures against their targets.
fn checks(run: &Results) -> Vec<Check> {
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
    if let Some(r) = &run.raw {
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
    if let Some(f) = &run.fanout {
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
        let sequential = run.raw.as_ref().map(|r| r.sequential_per_second);
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
    if let Some(p) = &run.publish {
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
    if let Some(latency) = &run.latency {
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
    if let Some(f) = &run.filtered {
        let note = format!(
            "{} channels with distinct filters, each matching a tenth; {} notifications/s; {:.1} µs per notification sent",
            f.channels,
            format_count(f.delivered_per_second),
            f.gateway_cpu_us_per_notification
        );
        checks.push(check(
            "filtered fan-out: gateway CPU per event",
            f.gateway_cpu_us_per_event,
            "µs",
            None,
            "≤ 1.5 × unfiltered + 1 µs per filter",
            f.budget_us_per_event
                .map(|budget| f.gateway_cpu_us_per_event <= budget),
            note,
        ));
    }
    if let Some(a) = &run.authed {
        let p = &a.point;
        let unauthenticated = match (
            a.unauthenticated_cpu_us_per_notification,
            a.unauthenticated_per_second,
        ) {
            (Some(us), Some(rate)) => format!(
                "unauthenticated fan-out {us:.1} µs, {}/s",
                format_count(rate)
            ),
            _ => "no unauthenticated fan-out in this run".to_string(),
        };
        let note = format!(
            "{} channels each sending an {} header ({} B value), {} events in batches of {}; {unauthenticated}",
            p.channels, a.header, a.value_bytes, p.events, run.sizes.batch
        );
        checks.push(check(
            "header-auth fan-out: gateway CPU per notification",
            p.gateway_cpu_us_per_notification,
            "µs",
            None,
            "≤ 1.05 × unauthenticated fan-out (same run)",
            a.cpu_ratio.map(|r| r <= 1.05),
            format!(
                "{}; {} × unauthenticated",
                note,
                a.cpu_ratio.map_or("—".to_string(), |r| format!("{r:.3}"))
            ),
        ));
        checks.push(check(
            "header-auth fan-out delivered",
            p.delivered_per_second,
            "notifications/s",
            p.ratio_to_raw,
            "",
            None,
            format!(
                "{} × unauthenticated fan-out",
                a.throughput_ratio
                    .map_or("—".to_string(), |r| format!("{r:.3}"))
            ),
        ));
    }
    if let Some(t) = &run.traced {
        let p = &t.point;
        let untraced = match (t.untraced_per_second, t.untraced_cpu_us_per_notification) {
            (Some(rate), Some(us)) => {
                format!("untraced fan-out {}/s, {us:.1} µs", format_count(rate))
            }
            _ => "no untraced fan-out in this run".to_string(),
        };
        checks.push(check(
            "traced fan-out delivered",
            p.delivered_per_second,
            "notifications/s",
            p.ratio_to_raw,
            "≥ 0.9 × untraced fan-out (same run)",
            t.throughput_ratio.map(|r| r >= 0.9),
            format!(
                "{} channels, {} events in batches of {}, spans exported to a collector answering 200 ({} exported, {} dropped, {} requests); {untraced}; {} × untraced, CPU {} ×",
                p.channels,
                p.events,
                run.sizes.batch,
                t.spans_exported,
                t.spans_dropped,
                t.exports,
                t.throughput_ratio.map_or("—".to_string(), |r| format!("{r:.3}")),
                t.cpu_ratio.map_or("—".to_string(), |r| format!("{r:.3}")),
            ),
        ));
    }
    for b in &run.brokers {
        let p = &b.point;
        let title = b.kind.title();
        let webhook = match (b.webhook_per_second, b.webhook_cpu_us_per_notification) {
            (Some(rate), Some(us)) => {
                format!("webhook fan-out {}/s, {us:.1} µs", format_count(rate))
            }
            _ => "no webhook fan-out in this run".to_string(),
        };
        let target = b.kind.target_ratio();
        checks.push(check(
            &format!("{title} fan-out delivered"),
            p.delivered_per_second,
            "notifications/s",
            p.ratio_to_raw,
            &format!("≥ {target} × webhook fan-out (same run)"),
            b.throughput_ratio.map(|r| r >= target),
            format!(
                "{} channels, {} events in batches of {}, publish → the benchmark's consumer; {}; {webhook}; {} ×",
                p.channels,
                p.events,
                run.sizes.batch,
                b.destination,
                b.throughput_ratio
                    .map_or("—".to_string(), |r| format!("{r:.3}")),
            ),
        ));
        checks.push(check(
            &format!("{title} fan-out: gateway CPU per notification"),
            p.gateway_cpu_us_per_notification,
            "µs",
            None,
            "",
            None,
            format!(
                "{} × the webhook fan-out's; the broker's own {}",
                b.cpu_ratio.map_or("—".to_string(), |r| format!("{r:.3}")),
                b.broker_cpu_us_per_notification
                    .map_or("not measured (not on this machine)".to_string(), |us| {
                        format!("{us:.1} µs")
                    }),
            ),
        ));
    }
    if let Some(w) = &run.wide {
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
    if let Some(s) = &run.scale {
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
    if let Some(b) = &run.backlog {
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
    if let Some(s) = &run.soak {
        for (name, g) in [
            ("soak store size, end ÷ at window", &s.store),
            ("soak RSS, end ÷ at window", &s.rss),
        ] {
            let Some(ratio) = g.ratio_after_window else {
                continue;
            };
            let note = format!(
                "{} from the end of the window to the end; {}",
                g.note(),
                s.conditions()
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
    checks
}

/// The size a figure was measured at; below the size its target is set at, it says so,
/// since pass/fail is judged only at that size.
fn size_note(measured: usize, target_size: usize, what: &str) -> String {
    if measured >= target_size {
        format!("{} {what}", format_count(measured as f64))
    } else {
        format!(
            "{} {what} (target set at {}; pass/fail only at that size)",
            format_count(measured as f64),
            format_count(target_size as f64)
        )
    }
}
