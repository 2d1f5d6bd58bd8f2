//! The results chart, drawn by plotters' SVG backend: publish→delivery latency
//! percentiles per publish rate on the left, delivered notifications per second against
//! channel count on the right, with the raw loopback ceiling and the targets drawn in;
//! below them, when the soak ran, store size and resident memory against time with the
//! end of the retention window marked.

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::format::format_count;

/// What the chart shows.
pub struct ChartData {
    pub title: String,
    /// One series per rate: (rate label, [(percentile label, ms)]), headline last.
    pub latency: Vec<(String, Vec<(String, f64)>)>,
    pub latency_caption: String,
    /// (label, target in ms) drawn over the bars of the same label.
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

const WIDTH: u32 = 980;
const HEIGHT: u32 = 430;
/// The soak panel, below the other two and as wide as both.
const SOAK_ROW: u32 = 310;
const FONT: &str = "Helvetica,Arial,sans-serif";
/// Series colours, light to dark; the last series (the headline) is always the darkest.
const PALETTE: [RGBColor; 4] = [
    RGBColor(0xb8, 0xd0, 0xe8),
    RGBColor(0x80, 0xa8, 0xd0),
    RGBColor(0x48, 0x78, 0xa8),
    RGBColor(0x1c, 0x3c, 0x64),
];
const BLUE_: RGBColor = PALETTE[2];
const ORANGE: RGBColor = RGBColor(0xe0, 0x80, 0x20);
const RED_: RGBColor = RGBColor(0xc0, 0x30, 0x30);
const INK: RGBColor = RGBColor(0x30, 0x30, 0x30);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// Every axis here is of `f64`: linear or logarithmic.
trait Axis: Ranged<ValueType = f64> + ValueFormatter<f64> {}
impl<T: Ranged<ValueType = f64> + ValueFormatter<f64>> Axis for T {}
type Chart<'a, X, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>;

/// How a legend entry is marked.
enum Mark {
    Swatch(RGBColor),
    Dot(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
}

pub fn svg(data: &ChartData) -> anyhow::Result<String> {
    let height = HEIGHT + if data.soak.is_empty() { 0 } else { SOAK_ROW };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.titled(&data.title, (FONT, 21))?;
        let (top, soak) = panels.split_vertically(HEIGHT - 40);
        let (left, right) = top.split_horizontally(WIDTH / 2);
        latency_panel(&left, data)?;
        throughput_panel(&right, data)?;
        if !data.soak.is_empty() {
            soak_panel(&soak, data)?;
        }
        root.present()?;
    }
    Ok(out)
}

fn latency_panel(area: &Area, data: &ChartData) -> anyhow::Result<()> {
    let labels: Vec<&str> = data.latency.first().map_or(Vec::new(), |(_, bars)| {
        bars.iter().map(|(l, _)| l.as_str()).collect()
    });
    let values = data.latency.iter().flat_map(|(_, bars)| bars.iter());
    let top = values
        .chain(&data.latency_targets)
        .fold(0.1, |m, p| p.1.max(m));
    // Log scale from 0.01 ms (a hair below, so that its tick is drawn) to the next power
    // of ten above everything shown; percentile g's group is centred on x = g.
    let y_range = (0.0099..10f64.powf(top.log10().ceil().max(0.0))).log_scale();
    let x_range = -0.5..labels.len().max(1) as f64 - 0.5;
    let (mut chart, key) = panel(area, &data.latency_caption, x_range, y_range)?;
    axes(&mut chart, "", "milliseconds (log scale)")
        .x_labels(labels.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            let at = (i >= 0.0 && (x - i).abs() < 1e-6).then(|| labels.get(i as usize));
            at.flatten().map_or(String::new(), |l| l.to_string())
        })
        .y_label_formatter(&|ms| format_ms(*ms))
        .draw()?;
    let series = data.latency.len();
    let width = 0.8 / series.max(1) as f64;
    let left_of = |label: &str, s: usize| {
        let g = labels.iter().position(|l| *l == label)?;
        Some(g as f64 - 0.4 + width * s as f64)
    };
    let mut entries = Vec::new();
    for (s, (name, bars)) in data.latency.iter().enumerate() {
        let fill = colour(s, series);
        let drawn = bars
            .iter()
            .filter_map(|(label, ms)| Some((left_of(label, s)?, *ms)));
        let bar = |(x, ms)| Rectangle::new([(x, 0.0099), (x + width * 0.9, ms)], fill.filled());
        chart.draw_series(drawn.clone().map(bar))?;
        // The headline gets its values written above its bars.
        let values = drawn.filter(|_| s + 1 == series).map(|(x, ms)| {
            let value = Text::new(format_ms(ms), (0, -3), font(12, HPos::Center));
            EmptyElement::at((x + width * 0.45, ms)) + value
        });
        chart.draw_series(values)?;
        entries.push((name.clone(), Mark::Swatch(fill)));
    }
    let mut targets = Vec::new();
    for (label, ms) in &data.latency_targets {
        if let Some(x) = left_of(label, 0) {
            chart.draw_series(dashed(vec![(x - 0.05, *ms), (x + 0.85, *ms)], RED_, 2))?;
            targets.push(format!("{label} ≤ {}", format_ms(*ms)));
        }
    }
    if !targets.is_empty() {
        let target = format!("target: {}", targets.join(", "));
        entries.push((target, Mark::Dashed(RED_)));
    }
    legend(&key, entries)
}

fn throughput_panel(area: &Area, data: &ChartData) -> anyhow::Result<()> {
    let points = data.throughput.iter().chain(&data.wide);
    let x_end = 10f64.powf(points.clone().fold(10.0, |m, p| p.0.max(m)).log10().ceil());
    let top = points.map(|p| p.1).chain(data.raw_per_second);
    let y_range = 0.0..top.fold(1.0, f64::max) * 1.15;
    let caption = "Delivered notifications/s vs channels";
    let (mut chart, key) = panel(area, caption, (1.0..x_end).log_scale(), y_range)?;
    axes(&mut chart, "channels (log scale)", "")
        .x_label_formatter(&|c| format_count(*c))
        .y_label_formatter(&|r| format_count(*r))
        .draw()?;
    if let Some(raw) = data.raw_per_second {
        let raw_label = format!("raw loopback {}/s", format_count(raw));
        let target_label = format!("target {:.2} × raw", data.target_ratio);
        let target = raw * data.target_ratio;
        for (rate, colour, label) in [(raw, INK, raw_label), (target, RED_, target_label)] {
            chart.draw_series(dashed(vec![(1.0, rate), (x_end, rate)], colour, 1))?;
            let text = Text::new(label, (-4, -3), font(13, HPos::Right));
            chart.draw_series([EmptyElement::at((x_end, rate)) + text])?;
        }
    }
    let line = LineSeries::new(data.throughput.clone(), BLUE_.stroke_width(2));
    chart.draw_series(line)?;
    chart.draw_series(data.throughput.iter().map(|&(c, r)| {
        let value = Text::new(format_count(r), (0, -7), font(12, HPos::Center));
        EmptyElement::at((c, r)) + Circle::new((0, 0), 4, BLUE_.filled()) + value
    }))?;
    let fanout = "batched fan-out (events × channels)".to_string();
    let mut entries = vec![(fanout, Mark::Dot(BLUE_))];
    if let Some((channels, rate)) = data.wide {
        let square = Rectangle::new([(-4, -4), (4, 4)], ORANGE.filled());
        let label = format!("one event: {}/s", format_count(rate));
        let label = Text::new(label, (-7, -7), font(12, HPos::Right));
        chart.draw_series([EmptyElement::at((channels, rate)) + square + label])?;
        entries.push(("one event, wide fan-out".into(), Mark::Swatch(ORANGE)));
    }
    legend(&key, entries)
}

fn soak_panel(area: &Area, data: &ChartData) -> anyhow::Result<()> {
    let x_range = 0.0..data.soak.iter().fold(1.0, |m, p| p.0.max(m));
    let y_hi = data.soak.iter().fold(1.0, |m, p| p.1.max(p.2).max(m)) * 1.1;
    let (mut chart, key) = panel(area, &data.soak_caption, x_range.clone(), 0.0..y_hi)?;
    axes(&mut chart, "seconds since the first publish", "")
        .x_label_formatter(&|s| format!("{} s", format_count(*s)))
        .y_label_formatter(&|mb| format!("{} MB", format_count(*mb)))
        .draw()?;
    if let Some(window) = data.soak_window.filter(|s| x_range.contains(s)) {
        chart.draw_series(dashed(vec![(window, 0.0), (window, y_hi)], RED_, 1))?;
        let style = font(12, HPos::Left).pos(Pos::new(HPos::Left, VPos::Top));
        let text = Text::new("retention + one prune interval", (5, 2), style);
        chart.draw_series([EmptyElement::at((window, y_hi)) + text])?;
    }
    type Reading = fn(&(f64, f64, f64)) -> f64;
    let series: [(&str, RGBColor, Reading); 2] = [
        ("store on disk", BLUE_, |p| p.1),
        ("gateway RSS", ORANGE, |p| p.2),
    ];
    let mut entries = Vec::new();
    for (label, colour, value) in series {
        let line = data.soak.iter().map(|p| (p.0, value(p)));
        chart.draw_series(LineSeries::new(line, colour.stroke_width(2)))?;
        entries.push((label.to_string(), Mark::Line(colour)));
    }
    legend(&key, entries)
}

/// A panel: its caption, its chart over `x` × `y`, and the strip under it for the legend.
fn panel<'a, X: Ranged, Y: Ranged>(
    area: &Area<'a>,
    caption: &str,
    x: impl AsRangedCoord<CoordDescType = X>,
    y: impl AsRangedCoord<CoordDescType = Y>,
) -> anyhow::Result<(Chart<'a, X, Y>, Area<'a>)> {
    let (plot, key) = area.split_vertically(area.dim_in_pixel().1 - 44);
    let chart = ChartBuilder::on(&plot)
        .caption(caption, (FONT, 17))
        .margin(10)
        .margin_right(25)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)?;
    Ok((chart, key))
}

/// Axes with horizontal grid lines only, as every panel draws them.
fn axes<'a, 'b, X: Axis, Y: Axis>(
    chart: &'b mut Chart<'a, X, Y>,
    x_desc: &str,
    y_desc: &str,
) -> MeshStyle<'a, 'b, X, Y, SVGBackend<'a>> {
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .max_light_lines(0)
        .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .x_desc(x_desc)
        .y_desc(y_desc);
    mesh
}

/// The legend under a panel: each entry's mark and label, in rows from the plot's left.
fn legend(key: &Area, entries: Vec<(String, Mark)>) -> anyhow::Result<()> {
    let (mut x, mut y) = (90, 8);
    for (label, mark) in entries {
        let width = 32 + 6 * label.chars().count() as i32;
        if x > 90 && x + width > key.dim_in_pixel().0 as i32 {
            (x, y) = (90, y + 20);
        }
        let at = EmptyElement::at((x, y));
        match mark {
            Mark::Swatch(c) => key.draw(&(at + Rectangle::new([(0, -5), (10, 5)], c.filled()))),
            Mark::Dot(c) => key.draw(&(at + Circle::new((5, 0), 4, c.filled()))),
            Mark::Line(c) => {
                key.draw(&(at + PathElement::new([(0, 0), (20, 0)], c.stroke_width(2))))
            }
            Mark::Dashed(c) => key.draw(&(at + dashed_path(c))),
        }?;
        let text = font(13, HPos::Left).pos(Pos::new(HPos::Left, VPos::Center));
        key.draw(&Text::new(label, (x + 24, y), text))?;
        x += width;
    }
    Ok(())
}

fn dashed<X: Clone + 'static, Y: Clone + 'static>(
    points: Vec<(X, Y)>,
    colour: RGBColor,
    width: u32,
) -> DashedLineSeries<std::vec::IntoIter<(X, Y)>, i32> {
    DashedLineSeries::new(points, 5, 3, colour.stroke_width(width))
}

fn dashed_path(colour: RGBColor) -> DashedPathElement<std::vec::IntoIter<(i32, i32)>, i32> {
    DashedPathElement::new(vec![(0, 0), (20, 0)], 5, 3, colour.stroke_width(2))
}

fn font(size: u32, h: HPos) -> TextStyle<'static> {
    let anchor = Pos::new(h, VPos::Bottom);
    TextStyle::from((FONT, size)).pos(anchor).color(&INK)
}

fn colour(series: usize, of: usize) -> RGBColor {
    let first = PALETTE.len().saturating_sub(of);
    PALETTE[(first + series).min(PALETTE.len() - 1)]
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
    fn milliseconds_read_well() {
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
        let svg = svg(&data).unwrap();
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
        })
        .unwrap();
        assert!(!without_soak.contains("store on disk"));
        assert!(without_soak.contains(&format!("height=\"{HEIGHT}\"")));
    }
}
