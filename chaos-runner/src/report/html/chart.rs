//! The report's charts, drawn with plotters' SVG backend: values over the part of the run
//! that matters, with real ticks, units, the threshold, fault windows and ramp steps
//! shaded, the abort and state changes marked; state indicators as a band of colours.
//!
//! Text, axes and grid are drawn in `currentColor` (the page's text colour), so a chart
//! reads in light and dark mode and in print; series colours are mid-tones that show on
//! either background.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Drawn as `currentColor` once the SVG is written.
const INK: RGBColor = RGBColor(1, 2, 3);
/// Series colours, in order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(59, 130, 246),
    RGBColor(245, 158, 11),
    RGBColor(168, 85, 247),
    RGBColor(20, 184, 166),
    RGBColor(236, 72, 153),
    RGBColor(132, 204, 22),
    RGBColor(99, 102, 241),
    RGBColor(234, 88, 12),
];
/// Thresholds, breaches and the abort.
const ALERT: RGBColor = RGBColor(220, 38, 38);
/// Fault windows.
const FAULT: RGBColor = RGBColor(239, 68, 68);
const WIDTH: u32 = 760;
const FONT: &str = "sans-serif";

/// The stretch of the run the charts show, in seconds since the run started.
///
/// ```
/// use chaos_runner::report::html::chart::TimeSpan;
/// let span = TimeSpan::new(512.0, 540.0);
/// assert_eq!(span.skipped_s(), 512.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeSpan {
    start_s: f64,
    end_s: f64,
}

impl TimeSpan {
    /// From `start_s` to `end_s` (at least a second).
    pub fn new(start_s: f64, end_s: f64) -> TimeSpan {
        let start_s = start_s.max(0.0);
        TimeSpan {
            start_s,
            end_s: end_s.max(start_s + 1.0),
        }
    }

    /// Seconds before the span that are not drawn (setup).
    pub fn skipped_s(&self) -> f64 {
        self.start_s
    }
}

/// A shaded stretch of time: a fault live, one of its ramp steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// Start, seconds since the run started.
    pub start_s: f64,
    /// End.
    pub end_s: f64,
    /// Shown at its top (`step 2`), empty for none.
    pub label: String,
    /// How dark (0 to 1): later ramp steps darker.
    pub strength: f64,
}

/// What a vertical marker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// The run aborted here.
    Abort,
    /// A state indicator changed (a circuit opened).
    Transition,
}

/// A moment marked across a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// When, seconds since the run started.
    pub at_s: f64,
    /// Its label.
    pub label: String,
    /// What it is.
    pub kind: MarkerKind,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// In the legend.
    pub name: String,
    /// (seconds since the run started, value), in stretches drawn apart (a check not
    /// evaluated while the faults held is not drawn across them).
    pub segments: Vec<Vec<(f64, f64)>>,
    /// Points that breached, drawn as red dots.
    pub breaches: Vec<(f64, f64)>,
}

/// A chart of values over time.
#[derive(Debug, Clone)]
pub struct LineChart<'a> {
    /// What the y axis measures, with its unit (`p95 latency (ms)`).
    pub y_label: String,
    /// The lines.
    pub lines: Vec<Line>,
    /// The threshold, a dashed red line.
    pub threshold: Option<f64>,
    /// Shaded stretches.
    pub bands: &'a [Band],
    /// Marked moments.
    pub markers: &'a [Marker],
    /// The time shown.
    pub span: TimeSpan,
    /// Height in pixels.
    pub height: u32,
    /// The values are shares of 1 (availability): the axis ends just above 1 and starts
    /// below the lowest value or the threshold, so a dip from 1.000 to 0.998 shows.
    pub share: bool,
}

/// The y range of `values` (and the threshold): from 0 when nothing is negative, padded
/// above; a flat series gets room around it.
///
/// ```
/// use chaos_runner::report::html::chart::y_range;
/// assert_eq!(y_range([2.0, 8.0].into_iter(), Some(10.0)), (0.0, 11.0));
/// let (low, high) = y_range([-4.0, 6.0].into_iter(), None);
/// assert!(low < -4.0 && high > 6.0);
/// assert_eq!(y_range(std::iter::empty(), None), (0.0, 1.0));
/// ```
pub fn y_range(values: impl Iterator<Item = f64>, threshold: Option<f64>) -> (f64, f64) {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.chain(threshold).filter(|v| v.is_finite()) {
        low = low.min(v);
        high = high.max(v);
    }
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    if low >= 0.0 {
        let top = if high > 0.0 { high * 1.1 } else { 1.0 };
        return (0.0, top);
    }
    let pad = ((high - low) * 0.1)
        .max(high.abs().max(low.abs()) * 0.05)
        .max(1e-9);
    (low - pad, high + pad)
}

/// The y range of shares of 1: up to just above 1, down to twice the lowest value's (or
/// the threshold's) distance from 1, never below 0.
///
/// ```
/// use chaos_runner::report::html::chart::share_range;
/// let (low, high) = share_range([1.0, 0.9995].into_iter(), Some(0.999));
/// assert!((low - 0.998).abs() < 1e-9 && high > 1.0 && high < 1.001);
/// assert_eq!(share_range([0.2].into_iter(), None).0, 0.0);
/// ```
pub fn share_range(values: impl Iterator<Item = f64>, threshold: Option<f64>) -> (f64, f64) {
    let lowest = values
        .chain(threshold)
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::min);
    let low = (1.0 - 2.0 * (1.0 - lowest)).max(0.0);
    let low = if low > 0.9999 { 0.999 } else { low };
    (low, 1.0 + (1.0 - low) * 0.08)
}

/// A tick label: no more digits than the range needs.
fn tick(v: f64, range: f64) -> String {
    let digits = if range >= 50.0 {
        0
    } else if range >= 5.0 {
        1
    } else if range >= 0.5 {
        2
    } else if range >= 0.005 {
        3
    } else {
        4
    };
    format!("{v:.digits$}")
}

fn finish(svg: String) -> String {
    svg.replace("#010203", "currentColor")
}

/// Draws `chart` as an SVG element.
///
/// ```
/// use chaos_runner::report::html::chart::{line_chart, Line, LineChart, TimeSpan};
/// let svg = line_chart(&LineChart {
///     y_label: "p95 latency (ms)".into(),
///     lines: vec![Line { name: "p95".into(), segments: vec![vec![(1.0, 20.0), (2.0, 30.0)]], breaches: vec![] }],
///     threshold: Some(500.0), bands: &[], markers: &[], span: TimeSpan::new(0.0, 3.0), height: 200,
///     share: false,
/// });
/// assert!(svg.starts_with("<svg") && svg.contains("currentColor"));
/// ```
pub fn line_chart(chart: &LineChart<'_>) -> String {
    let values = chart
        .lines
        .iter()
        .flat_map(|l| l.segments.iter().flatten().map(|p| p.1));
    let (low, high) = if chart.share {
        share_range(values, chart.threshold)
    } else {
        y_range(values, chart.threshold)
    };
    let mut svg = String::new();
    let drawn = draw_lines(&mut svg, chart, low, high);
    if let Err(e) = drawn {
        tracing::warn!(error = %e, "a report chart could not be drawn");
    }
    finish(svg)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw_lines(svg: &mut String, chart: &LineChart<'_>, low: f64, high: f64) -> DrawResult {
    let span = chart.span;
    let root = SVGBackend::with_string(svg, (WIDTH, chart.height)).into_drawing_area();
    let mut ctx = frame(&root, span, (low, high), &chart.y_label, true)?;
    shade(&mut ctx, chart.bands, low, high)?;
    if let Some(t) = chart.threshold {
        ctx.draw_series(DashedLineSeries::new(
            [(span.start_s, t), (span.end_s, t)],
            6,
            4,
            ALERT.stroke_width(1),
        ))?
        .label(format!("threshold {t}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], ALERT));
    }
    for (i, line) in chart.lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        for (j, segment) in line.segments.iter().enumerate() {
            // A NaN or infinite reading is not drawn (plotters would put it on an edge).
            let finite = segment.iter().copied().filter(|p| p.1.is_finite());
            let drawn = ctx.draw_series(LineSeries::new(finite, color.stroke_width(2)))?;
            if j == 0 {
                drawn.label(line.name.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            }
            // A lone reading shows as a dot.
            if segment.len() == 1 {
                ctx.draw_series(segment.iter().map(|&p| Circle::new(p, 2, color.filled())))?;
            }
        }
        ctx.draw_series(
            line.breaches
                .iter()
                .map(|&p| Circle::new(p, 3, ALERT.filled())),
        )?;
    }
    mark(&mut ctx, chart.markers, low, high)?;
    if span.skipped_s() >= 1.0 {
        ctx.plotting_area().draw(&Text::new(
            format!("setup: {:.1} s before, not drawn", span.skipped_s()),
            (span.start_s, high),
            (FONT, 11)
                .into_font()
                .color(&INK.mix(0.7))
                .pos(Pos::new(HPos::Left, VPos::Top)),
        ))?;
    }
    if chart.lines.len() > 1 || chart.threshold.is_some() {
        legend(&mut ctx)?;
    }
    root.present()?;
    Ok(())
}

/// A chart's frame over `span` and `low..high`: the time axis and, for `values`, the
/// y axis with its ticks, in the page's colour.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    span: TimeSpan,
    (low, high): (f64, f64),
    y_label: &str,
    values: bool,
) -> Result<Ctx<'a, 'b>, Box<dyn std::error::Error>> {
    let mut ctx = ChartBuilder::on(root)
        .margin(8)
        .margin_right(16)
        .x_label_area_size(if values { 34 } else { 30 })
        .y_label_area_size(64)
        .build_cartesian_2d(span.start_s..span.end_s, low..high)?;
    let range = high - low;
    let formatter = |v: &f64| tick(*v, range);
    let mut mesh = ctx.configure_mesh();
    mesh.y_desc(y_label)
        .x_labels(10)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .axis_style(INK.mix(0.6))
        .bold_line_style(INK.mix(0.12))
        .light_line_style(INK.mix(0.0))
        .label_style((FONT, 12).into_font().color(&INK))
        .axis_desc_style((FONT, 12).into_font().color(&INK));
    if values {
        mesh.x_desc("seconds since the run started")
            .y_labels(5)
            .y_label_formatter(&formatter);
    } else {
        mesh.disable_y_mesh().y_labels(0);
    }
    mesh.draw()?;
    Ok(ctx)
}

/// The legend of the series drawn, at the top right.
fn legend<'a, 'b: 'a>(ctx: &mut Ctx<'a, 'b>) -> DrawResult {
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 11).into_font().color(&INK))
        .border_style(INK.mix(0.3))
        .draw()?;
    Ok(())
}

type Ctx<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn shade(ctx: &mut Ctx<'_, '_>, bands: &[Band], low: f64, high: f64) -> DrawResult {
    for band in bands {
        let alpha = 0.08 + 0.17 * band.strength.clamp(0.0, 1.0);
        ctx.draw_series(std::iter::once(Rectangle::new(
            [(band.start_s, low), (band.end_s, high)],
            FAULT.mix(alpha).filled(),
        )))?;
        if !band.label.is_empty() {
            ctx.plotting_area().draw(&Text::new(
                band.label.clone(),
                (band.start_s, high),
                (FONT, 10)
                    .into_font()
                    .color(&FAULT)
                    .pos(Pos::new(HPos::Left, VPos::Top)),
            ))?;
        }
    }
    Ok(())
}

/// State changes get a label each only when there are few; the state band names them.
const LABELLED_TRANSITIONS: usize = 4;

fn mark(ctx: &mut Ctx<'_, '_>, markers: &[Marker], low: f64, high: f64) -> DrawResult {
    let transitions = markers
        .iter()
        .filter(|m| m.kind == MarkerKind::Transition)
        .count();
    for (i, m) in markers.iter().enumerate() {
        let (color, width) = match m.kind {
            MarkerKind::Abort => (ALERT, 2),
            MarkerKind::Transition => (PALETTE[2], 1),
        };
        if m.kind == MarkerKind::Abort {
            ctx.draw_series(LineSeries::new(
                [(m.at_s, low), (m.at_s, high)],
                color.stroke_width(width),
            ))?;
        } else {
            ctx.draw_series(DashedLineSeries::new(
                [(m.at_s, low), (m.at_s, high)],
                3,
                3,
                color.stroke_width(width),
            ))?;
        }
        if m.kind == MarkerKind::Transition && transitions > LABELLED_TRANSITIONS {
            continue;
        }
        // Labels step down so neighbours do not overlap.
        let y = high - (high - low) * (0.1 + 0.09 * (i % 4) as f64);
        ctx.plotting_area().draw(&Text::new(
            m.label.clone(),
            (m.at_s, y),
            (FONT, 10)
                .into_font()
                .color(&color)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

/// A state indicator over time: one band, a colour per state, with the fault windows.
///
/// ```
/// use chaos_runner::report::html::chart::{state_band, TimeSpan};
/// let svg = state_band("save-breaker", &[(0.0, 5.0, "closed".into()), (5.0, 9.0, "open".into())], &[], TimeSpan::new(0.0, 10.0));
/// assert!(svg.contains("save-breaker"));
/// ```
pub fn state_band(
    name: &str,
    segments: &[(f64, f64, String)],
    bands: &[Band],
    span: TimeSpan,
) -> String {
    let mut svg = String::new();
    if let Err(e) = draw_states(&mut svg, name, segments, bands, span) {
        tracing::warn!(error = %e, "a report chart could not be drawn");
    }
    finish(svg)
}

/// The colour of a state: green for healthy ones, red for open or down, amber between.
fn state_color(state: &str, others: &mut Vec<String>) -> RGBColor {
    match state.to_ascii_lowercase().replace(['_', ' '], "-").as_str() {
        "closed" | "ok" | "up" | "healthy" | "ready" | "1" => RGBColor(34, 197, 94),
        "open" | "down" | "failed" | "unhealthy" => ALERT,
        "half-open" | "degraded" | "recovering" => RGBColor(245, 158, 11),
        "unreadable" | "unknown" | "-" => RGBColor(148, 163, 184),
        _ => {
            let i = match others.iter().position(|o| o == state) {
                Some(i) => i,
                None => {
                    others.push(state.to_owned());
                    others.len() - 1
                }
            };
            PALETTE[i % PALETTE.len()]
        }
    }
}

/// Each state of `segments` once, with its colour (`#rrggbb`), in order of appearance:
/// the legend of [`state_band`], written beside it.
///
/// ```
/// use chaos_runner::report::html::chart::state_legend;
/// let legend = state_legend(&[(0.0, 5.0, "closed".into()), (5.0, 9.0, "open".into()), (9.0, 10.0, "closed".into())]);
/// assert_eq!(legend, [("closed".to_owned(), "#22c55e".to_owned()), ("open".to_owned(), "#dc2626".to_owned())]);
/// ```
pub fn state_legend(segments: &[(f64, f64, String)]) -> Vec<(String, String)> {
    let mut others = Vec::new();
    let mut legend: Vec<(String, String)> = Vec::new();
    for (_, _, state) in segments {
        if legend.iter().all(|(s, _)| s != state) {
            let RGBColor(r, g, b) = state_color(state, &mut others);
            legend.push((state.clone(), format!("#{r:02x}{g:02x}{b:02x}")));
        }
    }
    legend
}

fn draw_states(
    svg: &mut String,
    name: &str,
    segments: &[(f64, f64, String)],
    bands: &[Band],
    span: TimeSpan,
) -> DrawResult {
    let root = SVGBackend::with_string(svg, (WIDTH, 96)).into_drawing_area();
    let mut ctx = frame(&root, span, (0.0, 1.0), name, false)?;
    shade(&mut ctx, bands, 0.0, 1.0)?;
    let mut others = Vec::new();
    for (start, end, state) in segments {
        let color = state_color(state, &mut others);
        ctx.draw_series(std::iter::once(Rectangle::new(
            [(*start, 0.25), (*end, 0.75)],
            color.filled(),
        )))?;
    }
    root.present()?;
    Ok(())
}

/// Calls per second by operation, stacked: the request mix over time.
///
/// ```
/// use chaos_runner::report::html::chart::{stacked_rates, TimeSpan};
/// let svg = stacked_rates(&[("queue".into(), vec![(0.5, 10.0)]), ("save".into(), vec![(0.5, 5.0)])], &[], TimeSpan::new(0.0, 2.0));
/// assert!(svg.contains("queue"));
/// ```
pub fn stacked_rates(
    series: &[(String, Vec<(f64, f64)>)],
    bands: &[Band],
    span: TimeSpan,
) -> String {
    let mut svg = String::new();
    if let Err(e) = draw_stacked(&mut svg, series, bands, span) {
        tracing::warn!(error = %e, "a report chart could not be drawn");
    }
    finish(svg)
}

fn draw_stacked(
    svg: &mut String,
    series: &[(String, Vec<(f64, f64)>)],
    bands: &[Band],
    span: TimeSpan,
) -> DrawResult {
    // Each layer's top is the sum of it and every layer below, at each time.
    let mut times: Vec<f64> = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.0))
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let value_at = |points: &[(f64, f64)], t: f64| {
        points
            .iter()
            .find(|p| (p.0 - t).abs() < 1e-9)
            .map_or(0.0, |p| p.1)
    };
    let mut tops: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut below = vec![0.0; times.len()];
    for (_, points) in series {
        let layer: Vec<(f64, f64)> = times
            .iter()
            .zip(below.iter_mut())
            .map(|(&t, b)| {
                *b += value_at(points, t);
                (t, *b)
            })
            .collect();
        tops.push(layer);
    }
    let (low, high) = y_range(below.iter().copied(), None);
    let root = SVGBackend::with_string(svg, (WIDTH, 220)).into_drawing_area();
    let mut ctx = frame(&root, span, (low, high), "calls per second", true)?;
    shade(&mut ctx, bands, low, high)?;
    // The tallest layer first, so each lower one is drawn over it.
    for (i, ((name, _), top)) in series.iter().zip(&tops).enumerate().rev() {
        let color = PALETTE[i % PALETTE.len()];
        ctx.draw_series(
            AreaSeries::new(top.iter().copied(), 0.0, color.mix(0.75).filled())
                .border_style(color.stroke_width(1)),
        )?
        .label(name.as_str())
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    legend(&mut ctx)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts of an SVG, trimmed.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                Some(
                    t.split_once('>')?
                        .1
                        .split_once("</text>")?
                        .0
                        .trim()
                        .to_owned(),
                )
            })
            .collect()
    }

    fn span() -> TimeSpan {
        TimeSpan::new(500.0, 530.0)
    }

    #[test]
    fn the_axis_covers_the_span_not_the_setup_before_it() {
        let svg = line_chart(&LineChart {
            y_label: "memory used (%)".into(),
            lines: vec![Line {
                name: "memory".into(),
                segments: vec![vec![(501.0, 3.0), (520.0, 97.0)]],
                breaches: vec![(520.0, 97.0)],
            }],
            threshold: Some(95.0),
            bands: &[],
            markers: &[],
            span: span(),
            height: 200,
            share: false,
        });
        let texts = texts(&svg);
        assert!(
            texts.contains(&"500".into()) && texts.contains(&"530".into()),
            "{texts:?}"
        );
        let numbers = texts.iter().filter_map(|t| t.parse::<f64>().ok());
        assert!(
            !numbers.into_iter().any(|n| n > 110.0 && n < 500.0),
            "the setup's seconds are not drawn: {texts:?}"
        );
        assert!(texts.contains(&"setup: 500.0 s before, not drawn".into()));
        assert!(texts.contains(&"memory used (%)".into()));
        // A percentage never gets a negative tick.
        assert!(!texts.iter().any(|t| t.starts_with('-')), "{texts:?}");
    }

    #[test]
    fn bands_markers_and_threshold_are_drawn_in_the_page_colour_or_their_own() {
        let bands = [Band {
            start_s: 505.0,
            end_s: 515.0,
            label: "step 1".into(),
            strength: 0.0,
        }];
        let markers = [
            Marker {
                at_s: 512.0,
                label: "abort".into(),
                kind: MarkerKind::Abort,
            },
            Marker {
                at_s: 507.0,
                label: "save-breaker: open".into(),
                kind: MarkerKind::Transition,
            },
        ];
        let svg = line_chart(&LineChart {
            y_label: "p95 latency (ms)".into(),
            lines: vec![Line {
                name: "p95".into(),
                segments: vec![vec![(501.0, 30.0), (510.0, 600.0)]],
                breaches: vec![],
            }],
            threshold: Some(500.0),
            bands: &bands,
            markers: &markers,
            span: span(),
            height: 200,
            share: false,
        });
        for text in ["step 1", "abort", "save-breaker: open", "threshold 500"] {
            assert!(svg.contains(text), "{text} in {svg}");
        }
        assert!(!svg.contains("#010203"), "ink replaced by currentColor");
    }

    #[test]
    fn each_state_has_its_colour_in_the_band() {
        let svg = state_band(
            "save-breaker",
            &[
                (500.0, 505.0, "closed".into()),
                (505.0, 510.0, "open".into()),
                (510.0, 512.0, "half_open".into()),
                (512.0, 530.0, "closed".into()),
            ],
            &[],
            span(),
        );
        for color in ["#22C55E", "#DC2626", "#F59E0B"] {
            assert!(svg.to_uppercase().contains(color), "{color} in {svg}");
        }
    }
}
