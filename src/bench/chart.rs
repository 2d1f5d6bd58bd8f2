//! The results chart, as hand-written SVG (no plotting dependency): publish→delivery
//! latency percentiles on the left, delivered notifications per second against channel
//! count on the right, with the raw loopback ceiling and the targets drawn in; below
//! them, when the soak ran, store size and resident memory against time.

use std::fmt::Write;

/// What the chart shows.
pub struct ChartData {
    pub title: String,
    /// (label, milliseconds), e.g. ("p50", 0.8).
    /// One series per rate: (rate label, [(percentile label, ms)]), headline last.
    pub latency: Vec<(String, Vec<(String, f64)>)>,
    pub latency_caption: String,
    /// (label, target in ms) drawn over the bar of the same label.
    pub latency_targets: Vec<(String, f64)>,
    /// (channels, delivered per second) of the fan-out sweep.
    pub throughput: Vec<(f64, f64)>,
    /// (channels, delivered per second) of the one-event wide fan-out, if run.
    pub wide: Option<(f64, f64)>,
    pub raw_per_second: Option<f64>,
    /// Fraction of raw the fan-out target asks for.
    pub target_ratio: f64,
    /// (seconds, store MB, RSS MB) of the soak's samples; no panel when empty.
    pub soak: Vec<(f64, f64, f64)>,
    /// Where the soak's retention window (plus one prune interval) ends, seconds.
    pub soak_window: Option<f64>,
    pub soak_caption: String,
}

const WIDTH: f64 = 980.0;
const HEIGHT: f64 = 430.0;
const PANEL_W: f64 = 400.0;
const PANEL_H: f64 = 290.0;
const TOP: f64 = 70.0;
const LEFT_X: f64 = 90.0;
const RIGHT_X: f64 = 555.0;
/// The soak panel, below the other two and as wide as both.
const SOAK_H: f64 = 200.0;
const SOAK_ROW: f64 = 310.0;
/// Series colours, light to dark; the last series (the headline) is always the darkest.
const PALETTE: [&str; 4] = ["#b8d0e8", "#80a8d0", "#4878a8", "#1c3c64"];
const FONT: &str = "font-family=\"Helvetica,Arial,sans-serif\"";

pub fn svg(data: &ChartData) -> String {
    let mut out = String::new();
    let height = if data.soak.is_empty() {
        HEIGHT
    } else {
        HEIGHT + SOAK_ROW
    };
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    text(
        &mut out,
        WIDTH / 2.0,
        28.0,
        "middle",
        17.0,
        &escape(&data.title),
    );
    latency_panel(&mut out, data);
    throughput_panel(&mut out, data);
    if !data.soak.is_empty() {
        soak_panel(&mut out, data);
    }
    out.push_str("</svg>\n");
    out
}

fn latency_panel(out: &mut String, data: &ChartData) {
    let (x0, y0) = (LEFT_X, TOP);
    text(
        out,
        x0 + PANEL_W / 2.0,
        y0 - 18.0,
        "middle",
        14.0,
        &escape(&data.latency_caption),
    );
    let values = data
        .latency
        .iter()
        .flat_map(|(_, bars)| bars.iter().map(|(_, v)| *v));
    let targets = data.latency_targets.iter().map(|(_, v)| *v);
    let top = values.chain(targets).fold(0.1_f64, f64::max);
    // Log scale from 0.01 ms to the next power of ten above everything shown.
    let (lo, hi) = (-2.0_f64, top.log10().ceil().max(0.0));
    let y_of = |ms: f64| y0 + PANEL_H - (ms.max(0.01).log10() - lo) / (hi - lo) * PANEL_H;
    axes(out, x0, y0, PANEL_W, PANEL_H);
    let mut decade = lo;
    while decade <= hi {
        let y = y_of(10f64.powf(decade));
        gridline(out, x0, y, PANEL_W);
        text(
            out,
            x0 - 6.0,
            y + 4.0,
            "end",
            11.0,
            &format_ms(10f64.powf(decade)),
        );
        decade += 1.0;
    }
    rotated(
        out,
        x0 - 62.0,
        y0 + PANEL_H / 2.0,
        "milliseconds (log scale)",
    );
    // One group per percentile, one bar per series (rate) in it.
    let labels: Vec<&String> = data.latency.first().map_or(Vec::new(), |(_, bars)| {
        bars.iter().map(|(l, _)| l).collect()
    });
    let series = data.latency.len().max(1) as f64;
    let slot = PANEL_W / labels.len().max(1) as f64;
    let w = slot * 0.8 / series;
    for (g, label) in labels.iter().enumerate() {
        let gx = x0 + slot * g as f64 + slot * 0.1;
        for (s, (_, bars)) in data.latency.iter().enumerate() {
            let Some((_, ms)) = bars.iter().find(|(l, _)| l == *label) else {
                continue;
            };
            let (x, y) = (gx + w * s as f64, y_of(*ms));
            let _ = writeln!(
                out,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"##,
                w - 1.0,
                y0 + PANEL_H - y,
                colour(s, data.latency.len())
            );
        }
        text(
            out,
            gx + slot * 0.4,
            y0 + PANEL_H + 16.0,
            "middle",
            12.0,
            &escape(label),
        );
        if let Some((_, target)) = data.latency_targets.iter().find(|(l, _)| l == *label) {
            let ty = y_of(*target);
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#c03030" stroke-width="2" stroke-dasharray="5,3"/>"##,
                gx - 3.0,
                gx + slot * 0.8 + 3.0
            );
        }
    }
    // The last series (the headline) gets its values written above its bars.
    if let Some((_, bars)) = data.latency.last() {
        let s = data.latency.len() - 1;
        for (g, label) in labels.iter().enumerate() {
            if let Some((_, ms)) = bars.iter().find(|(l, _)| l == *label) {
                let x = x0 + slot * g as f64 + slot * 0.1 + w * s as f64 + w / 2.0;
                text(out, x, y_of(*ms) - 5.0, "middle", 10.0, &format_ms(*ms));
            }
        }
    }
    let mut lx = x0;
    for (s, (name, _)) in data.latency.iter().enumerate() {
        let ly = y0 + PANEL_H + 58.0;
        let _ = writeln!(
            out,
            r##"<rect x="{lx:.1}" y="{:.1}" width="9" height="9" fill="{}"/>"##,
            ly - 8.0,
            colour(s, data.latency.len())
        );
        text(out, lx + 12.0, ly, "start", 10.0, &escape(name));
        lx += 16.0 + 7.0 * name.len() as f64;
    }
    if !data.latency_targets.is_empty() {
        let legend_y = y0 + PANEL_H + 40.0;
        let _ = writeln!(
            out,
            r##"<line x1="{x0}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#c03030" stroke-width="2" stroke-dasharray="5,3"/>"##,
            legend_y - 4.0,
            x0 + 24.0,
            legend_y - 4.0
        );
        let targets: Vec<String> = data
            .latency_targets
            .iter()
            .map(|(label, ms)| format!("{label} ≤ {}", format_ms(*ms)))
            .collect();
        text(
            out,
            x0 + 30.0,
            legend_y,
            "start",
            11.0,
            &format!("target: {}", targets.join(", ")),
        );
    }
}

fn throughput_panel(out: &mut String, data: &ChartData) {
    let (x0, y0) = (RIGHT_X, TOP);
    text(
        out,
        x0 + PANEL_W / 2.0,
        y0 - 18.0,
        "middle",
        14.0,
        "Delivered notifications/s vs channels",
    );
    let mut xs: Vec<f64> = data.throughput.iter().map(|p| p.0).collect();
    xs.extend(data.wide.map(|p| p.0));
    let x_hi = xs.iter().copied().fold(10.0_f64, f64::max).log10().ceil();
    let x_of = |channels: f64| x0 + channels.max(1.0).log10() / x_hi * PANEL_W;
    let mut ys: Vec<f64> = data.throughput.iter().map(|p| p.1).collect();
    ys.extend(data.wide.map(|p| p.1));
    ys.extend(data.raw_per_second);
    let y_hi = nice_ceiling(ys.iter().copied().fold(1.0, f64::max) * 1.1);
    let y_of = |rate: f64| y0 + PANEL_H - rate / y_hi * PANEL_H;
    axes(out, x0, y0, PANEL_W, PANEL_H);
    for i in 0..=5 {
        let rate = y_hi * i as f64 / 5.0;
        gridline(out, x0, y_of(rate), PANEL_W);
        text(
            out,
            x0 - 6.0,
            y_of(rate) + 4.0,
            "end",
            11.0,
            &format_count(rate),
        );
    }
    for decade in 0..=x_hi as i32 {
        let channels = 10f64.powi(decade);
        text(
            out,
            x_of(channels),
            y0 + PANEL_H + 16.0,
            "middle",
            11.0,
            &format_count(channels),
        );
    }
    text(
        out,
        x0 + PANEL_W / 2.0,
        y0 + PANEL_H + 36.0,
        "middle",
        12.0,
        "channels (log scale)",
    );
    if let Some(raw) = data.raw_per_second {
        hline(
            out,
            x0,
            y_of(raw),
            "#303030",
            "6,4",
            &format!("raw loopback {}/s", format_count(raw)),
        );
        let target = raw * data.target_ratio;
        hline(
            out,
            x0,
            y_of(target),
            "#c03030",
            "2,3",
            &format!("target {:.2} × raw", data.target_ratio),
        );
    }
    let points: Vec<String> = data
        .throughput
        .iter()
        .map(|(c, r)| format!("{:.1},{:.1}", x_of(*c), y_of(*r)))
        .collect();
    let _ = writeln!(
        out,
        r##"<polyline points="{}" fill="none" stroke="#4878a8" stroke-width="2"/>"##,
        points.join(" ")
    );
    for (channels, rate) in &data.throughput {
        let (x, y) = (x_of(*channels), y_of(*rate));
        let _ = writeln!(
            out,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="#4878a8"/>"##
        );
        text(out, x, y - 8.0, "middle", 10.0, &format_count(*rate));
    }
    if let Some((channels, rate)) = data.wide {
        let (x, y) = (x_of(channels), y_of(rate));
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="#e08020"/>"##,
            x - 4.0,
            y - 4.0
        );
        text(
            out,
            x - 6.0,
            y - 8.0,
            "end",
            10.0,
            &format!("one event: {}/s", format_count(rate)),
        );
    }
    let legend_y = y0 + PANEL_H + 56.0;
    let _ = writeln!(
        out,
        r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#4878a8"/>"##,
        x0,
        legend_y - 4.0
    );
    text(
        out,
        x0 + 8.0,
        legend_y,
        "start",
        11.0,
        "batched fan-out (events × channels)",
    );
    if data.wide.is_some() {
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="#e08020"/>"##,
            x0 + 230.0,
            legend_y - 8.0
        );
        text(
            out,
            x0 + 242.0,
            legend_y,
            "start",
            11.0,
            "one event, wide fan-out",
        );
    }
}

fn soak_panel(out: &mut String, data: &ChartData) {
    let (x0, y0) = (LEFT_X, HEIGHT + 40.0);
    let (w, h) = (RIGHT_X + PANEL_W - LEFT_X, SOAK_H);
    text(
        out,
        x0 + w / 2.0,
        y0 - 18.0,
        "middle",
        14.0,
        &escape(&data.soak_caption),
    );
    let seconds = data.soak.iter().map(|p| p.0);
    let (x_step, x_hi) = nice_steps(seconds.fold(1.0, f64::max), 5.0);
    let top = data
        .soak
        .iter()
        .flat_map(|p| [p.1, p.2])
        .fold(1.0, f64::max);
    let (y_step, y_hi) = nice_steps(top * 1.05, 4.0);
    let x_of = |seconds: f64| x0 + seconds / x_hi * w;
    let y_of = |mb: f64| y0 + h - mb / y_hi * h;
    axes(out, x0, y0, w, h);
    for i in 0..=(y_hi / y_step).round() as u32 {
        let mb = y_step * i as f64;
        gridline(out, x0, y_of(mb), w);
        let label = format!("{} MB", format_count(mb));
        text(out, x0 - 6.0, y_of(mb) + 4.0, "end", 11.0, &label);
    }
    for i in 0..=(x_hi / x_step).round() as u32 {
        let seconds = x_step * i as f64;
        let label = format!("{} s", format_count(seconds));
        text(out, x_of(seconds), y0 + h + 16.0, "middle", 11.0, &label);
    }
    text(
        out,
        x0 + w / 2.0,
        y0 + h + 34.0,
        "middle",
        12.0,
        "seconds since the first publish",
    );
    if let Some(window) = data.soak_window.filter(|s| *s <= x_hi) {
        let x = x_of(window);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{:.1}" stroke="#c03030" stroke-dasharray="5,3"/>"##,
            y0 + h
        );
        text(
            out,
            x + 4.0,
            y0 + 12.0,
            "start",
            10.0,
            "retention + one prune interval",
        );
    }
    let series: [(&str, &str, fn(&(f64, f64, f64)) -> f64); 2] = [
        ("store on disk", "#4878a8", |p| p.1),
        ("gateway RSS", "#e08020", |p| p.2),
    ];
    let legend_y = y0 + h + 56.0;
    for (i, (label, colour, value)) in series.into_iter().enumerate() {
        let points: Vec<String> = data
            .soak
            .iter()
            .map(|p| format!("{:.1},{:.1}", x_of(p.0), y_of(value(p))))
            .collect();
        let _ = writeln!(
            out,
            r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"##,
            points.join(" ")
        );
        let lx = x0 + 160.0 * i as f64;
        let _ = writeln!(
            out,
            r##"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/>"##,
            legend_y - 4.0,
            lx + 20.0,
            legend_y - 4.0
        );
        text(out, lx + 26.0, legend_y, "start", 11.0, label);
    }
}

fn colour(series: usize, of: usize) -> &'static str {
    let first = PALETTE.len().saturating_sub(of);
    PALETTE[(first + series).min(PALETTE.len() - 1)]
}

fn axes(out: &mut String, x0: f64, y0: f64, width: f64, height: f64) {
    let _ = writeln!(
        out,
        r##"<path d="M{x0},{y0} V{:.1} H{:.1}" fill="none" stroke="#202020"/>"##,
        y0 + height,
        x0 + width
    );
}

fn gridline(out: &mut String, x0: f64, y: f64, width: f64) {
    let _ = writeln!(
        out,
        r##"<line x1="{x0}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/>"##,
        x0 + width
    );
}

fn hline(out: &mut String, x0: f64, y: f64, colour: &str, dash: &str, label: &str) {
    let _ = writeln!(
        out,
        r##"<line x1="{x0}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-dasharray="{dash}"/>"##,
        x0 + PANEL_W
    );
    text(
        out,
        x0 + PANEL_W - 4.0,
        y - 4.0,
        "end",
        10.0,
        &escape(label),
    );
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, size: f64, content: &str) {
    let _ = writeln!(
        out,
        r##"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" font-size="{size}" {FONT} fill="#202020">{content}</text>"##
    );
}

fn rotated(out: &mut String, x: f64, y: f64, content: &str) {
    let _ = writeln!(
        out,
        r##"<text x="{x:.1}" y="{y:.1}" text-anchor="middle" font-size="12" {FONT} fill="#202020" transform="rotate(-90 {x:.1} {y:.1})">{content}</text>"##
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The smallest 1, 2 or 5 × 10^k at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let base = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * base)
}

/// An axis from 0 to at least `max` in steps of 1, 2 or 5 × 10^k, at most 1.5 × `ticks`
/// of them: (step, end of the axis).
fn nice_steps(max: f64, ticks: f64) -> (f64, f64) {
    let base = 10f64.powf((max / ticks).log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0, 20.0]
        .into_iter()
        .map(|m| m * base)
        .find(|step| (max / step).ceil() <= ticks * 1.5)
        .unwrap_or(50.0 * base);
    (step, step * (max / step).ceil().max(1.0))
}

/// 1234 → "1.2k", 2500000 → "2.5M".
pub fn format_count(v: f64) -> String {
    let (value, suffix) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if value >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}{suffix}")
    } else {
        format!("{value:.1}{suffix}")
    }
}

fn format_ms(ms: f64) -> String {
    if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else if ms >= 0.1 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(format_count(950.0), "950");
        assert_eq!(format_count(1234.0), "1.2k");
        assert_eq!(format_count(100_000.0), "100k");
        assert_eq!(format_count(2_500_000.0), "2.5M");
        assert_eq!(nice_ceiling(37_000.0), 50_000.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_steps(12.0, 5.0), (2.0, 12.0));
        assert_eq!(nice_steps(490.0, 5.0), (100.0, 500.0));
        assert_eq!(nice_steps(40.4, 4.0), (10.0, 50.0));
        assert_eq!(nice_steps(1.0, 4.0), (0.2, 1.0));
        assert_eq!(format_ms(0.42), "0.42 ms");
    }

    #[test]
    fn the_chart_is_one_svg_with_every_series() {
        let data = ChartData {
            title: "t & <u>".into(),
            latency: vec![
                (
                    "500 ev/s".into(),
                    vec![("p50".into(), 0.3), ("p99".into(), 2.0)],
                ),
                (
                    "5k ev/s".into(),
                    vec![("p50".into(), 0.5), ("p99".into(), 4.0)],
                ),
            ],
            latency_caption: "at 5k ev/s".into(),
            latency_targets: vec![("p99".into(), 5.0)],
            throughput: vec![(1.0, 1000.0), (50.0, 20_000.0)],
            wide: Some((100_000.0, 40_000.0)),
            raw_per_second: Some(50_000.0),
            target_ratio: 0.6,
            soak: vec![(0.0, 1.0, 20.0), (10.0, 30.0, 40.0), (20.0, 31.0, 41.0)],
            soak_window: Some(13.0),
            soak_caption: "soak".into(),
        };
        let svg = svg(&data);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t &amp; &lt;u&gt;"));
        assert!(svg.contains("<polyline"));
        assert!(svg.contains("raw loopback 50k/s"));
        assert!(svg.contains("target: p99 ≤ 5.0 ms"));
        assert!(!svg.contains("NaN"));
        assert!(svg.contains("store on disk") && svg.contains("gateway RSS"));
        assert!(svg.contains("retention + one prune interval"));
        assert!(svg.contains(&format!("height=\"{}\"", HEIGHT + SOAK_ROW)));
        let without_soak = super::svg(&ChartData {
            soak: Vec::new(),
            ..data
        });
        assert!(!without_soak.contains("store on disk"));
        assert!(without_soak.contains(&format!("height=\"{HEIGHT}\"")));
    }
}
