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
        ..Check::default()
    };
    if let Some(r) = &run.raw {
        let note = format!(
            "{} connections, {} B bodies; one connection sequential {} requests/s, {:.1} µs CPU per request",
            r.connections,
            r.payload_bytes,
            format_count(r.sequential_per_second),
            r.sequential_cpu_us_per_request
        );
        let mut c = check(
            "raw loopback ceiling",
            r.per_second,
            "requests/s",
            Some(1.0),
            "",
            None,
            note,
        );
        c.raw_cpu_us_per_request = Some(r.cpu_us_per_request).filter(|us| *us > 0.0);
        checks.push(c);
    }
    if let Some(f) = &run.fanout {
        let h = &f.headline;
        let note = format!(
            "{} channels, {} events in batches of {}",
            h.channels, h.events, f.batch
        );
        let pass = h.ratio_to_raw.map(|r| r >= 0.75);
        checks.push(against_raw(
            check(
                "fan-out delivered",
                h.delivered_per_second,
                "notifications/s",
                h.ratio_to_raw,
                "≥ 0.75 × raw",
                pass,
                note,
            ),
            run,
            "fanout",
            h.gateway_cpu_us_per_notification,
            false,
        ));
        // One busy channel against one connection doing sequential
        // request/response: its ratio is to that, not to the pooled ceiling.
        let sequential = match run.bracket("fanout") {
            Some(b) => Some(b.sequential_per_second),
            None => run.raw.as_ref().map(|r| r.sequential_per_second),
        };
        if let (Some(one), Some(sequential)) = (
            f.sweep.iter().find(|p| p.channels == 1),
            sequential.filter(|s| *s > 0.0),
        ) {
            let ratio = one.delivered_per_second / sequential;
            checks.push(against_raw(
                check(
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
                ),
                run,
                "fanout",
                one.gateway_cpu_us_per_notification,
                true,
            ));
        }
    }
    if let Some(p) = &run.publish {
        let note = format!(
            "{} connections, {:.1} events per fsync",
            p.connections, p.events_per_commit
        );
        let pass = p.ratio_to_raw.map(|r| r >= 0.45);
        checks.push(against_raw(
            check(
                "single-event publishes",
                p.per_second,
                "events/s",
                p.ratio_to_raw,
                "≥ 0.45 × raw",
                pass,
                note,
            ),
            run,
            "publish",
            p.gateway_cpu_us_per_event,
            false,
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
                ..Check::default()
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
    if let Some(sse) = &run.sse {
        for r in &sse.runs {
            let allocator = if r.env.is_empty() {
                String::new()
            } else {
                format!(", gateway with {}", r.env)
            };
            let mut note = size_note(r.streams, 10_000, "streams");
            if r.streams < sse.asked_streams {
                note.push_str(&format!(
                    "; {} asked, the file-descriptor limit is {}",
                    format_count(sse.asked_streams as f64),
                    sse.fd_limit
                ));
            }
            let full = r.streams >= 10_000;
            let delivered = format!(
                "{} events to every stream, all delivered in order ({} frames), first stream complete {:.2} s; RSS {:.1} → {:.1} → {:.1} MiB{allocator}",
                r.events,
                format_count(r.frames as f64),
                r.first_complete_seconds,
                r.rss_before_bytes as f64 / MIB,
                r.rss_open_bytes as f64 / MIB,
                r.rss_delivered_bytes as f64 / MIB,
            );
            for (what, bytes) in [
                ("streams open", r.bytes_per_stream_open),
                ("after the events", r.bytes_per_stream_delivered),
            ] {
                checks.push(check(
                    &format!("SSE resident memory per stream, {what}{allocator}"),
                    bytes,
                    "bytes",
                    None,
                    "≤ 16 kB (16,000 B) at 10k",
                    full.then_some(bytes <= 16_000.0),
                    format!("{note}; {delivered}"),
                ));
            }
            checks.push(check(
                &format!(
                    "SSE: {} events to every stream, all delivered{allocator}",
                    r.events
                ),
                r.delivered_seconds,
                "s",
                None,
                "all delivered, in order",
                Some(
                    r.frames == r.streams as u64 * r.events && r.out_of_order == 0 && r.extra == 0,
                ),
                format!(
                    "{note}; opened in {:.2} s; gateway {:.1} µs CPU per event frame",
                    r.open_seconds, r.gateway_cpu_us_per_frame
                ),
            ));
        }
    }
    if let Some(s) = &run.scale {
        let full = s.channels >= 1_000_000;
        let note = size_note(s.channels, 1_000_000, "channels");
        checks.push(against_raw(
            check(
                "channel creation",
                s.create_per_second,
                "channels/s",
                s.create_ratio_to_raw,
                "≥ 0.30 × raw",
                s.create_ratio_to_raw.map(|r| r >= 0.30),
                note.clone(),
            ),
            run,
            "scale",
            s.gateway_cpu_us_per_channel,
            false,
        ));
        let pass = full.then_some(s.bytes_per_channel <= 512.0);
        checks.push(check(
            "memory per idle channel",
            s.bytes_per_channel,
            "bytes",
            None,
            "≤ 512 B at 1M",
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

/// A check judged as a ratio to raw, with what makes it trustworthy beside it: the
/// gateway's CPU per unit, the raw path's CPU per request (of the pooled load, or with
/// `sequential` of one connection's), their ratio, and raw before and after `scenario`
/// with its drift (from the run's single raw figure when it had no such measurements).
fn against_raw(
    mut c: Check,
    run: &Results,
    scenario: &str,
    cpu_us_per_unit: f64,
    sequential: bool,
) -> Check {
    c.cpu_us_per_unit = Some(cpu_us_per_unit);
    c.raw_cpu_us_per_request = match (run.bracket(scenario), &run.raw) {
        (Some(b), _) if sequential => Some(b.sequential_cpu_us_per_request),
        (Some(b), _) => Some(b.cpu_us_per_request),
        (None, Some(r)) if sequential => Some(r.sequential_cpu_us_per_request),
        (None, Some(r)) => Some(r.cpu_us_per_request),
        (None, None) => None,
    }
    .filter(|us| *us > 0.0);
    c.cpu_ratio = c.raw_cpu_us_per_request.map(|raw| cpu_us_per_unit / raw);
    if let Some(b) = run.bracket(scenario) {
        let (before, after, drift) = if sequential {
            (
                b.before.sequential_per_second,
                b.after.sequential_per_second,
                b.sequential_drift,
            )
        } else {
            (b.before.per_second, b.after.per_second, b.drift)
        };
        c.raw_before = Some(before);
        c.raw_after = Some(after);
        c.raw_drift = Some(drift);
        c.raw_steady = Some(drift <= crate::scenarios::raw::STEADY_DRIFT);
    }
    c
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
