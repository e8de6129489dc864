//! The HTML report: one self-contained page (no script, no font or style from elsewhere;
//! readable in light and dark mode, and printable) that a person reads at a glance.
//!
//! It opens with the verdict and the hypothesis, then each check before, during and after
//! the faults against its threshold; then charts over the part of the run that matters
//! (setup is one line, not empty space): each check with its threshold, the fault windows
//! and ramp steps shaded, the abort and state changes marked; numeric indicators as lines
//! and state indicators as bands; the load's availability, latency, request mix and each
//! operation's latency. The full change log stays in `report.json`.

pub mod chart;
pub mod summary;

use std::fmt::Write as _;

use super::RunReport;
use chart::{Band, Line, LineChart, Marker, MarkerKind, TimeSpan};

/// Escapes text for HTML and SVG.
///
/// ```
/// assert_eq!(chaos_runner::report::html::escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
/// ```
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = r#"
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1f2328; --muted: #57606a; --line: #d0d7de; --card: #f6f8fa;
  --pass: #1a7f37; --fail: #cf222e; --warn: #9a6700; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --fg: #e6edf3; --muted: #8d96a0; --line: #30363d; --card: #161b22;
    --pass: #3fb950; --fail: #f85149; --warn: #d29922; }
}
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg);
  max-width: 820px; margin: 1.5em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.5em; margin: 0 0 .2em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .4em; border-bottom: 1px solid var(--line); padding-bottom: .2em; }
h3 { font-size: 1em; margin: 1.1em 0 .2em; }
.verdict { display: inline-block; padding: .15em .6em; border-radius: 1em; font-weight: 600; color: #fff; }
.verdict.pass { background: var(--pass); } .verdict.fail { background: var(--fail); }
.meta, .note { color: var(--muted); font-size: .9em; }
.hypothesis { background: var(--card); border-left: 4px solid var(--line); padding: .6em .9em; margin: .8em 0; }
table { border-collapse: collapse; width: 100%; font-size: .9em; margin: .4em 0; }
th, td { border-bottom: 1px solid var(--line); padding: .3em .5em; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: var(--fail); font-weight: 600; } .good { color: var(--pass); }
.swatch { display: inline-block; width: .9em; height: .9em; border-radius: .15em; vertical-align: -.1em; margin: 0 .3em 0 .6em; }
figure { margin: .4em 0 1em; } figcaption { color: var(--muted); font-size: .85em; }
svg { max-width: 100%; height: auto; display: block; }
@media print {
  :root { --bg: #fff; --fg: #000; --muted: #444; --line: #bbb; --card: #f3f3f3; }
  body { max-width: none; margin: 0; } figure, table, .hypothesis { break-inside: avoid; }
}
"#;

/// A number as a person reads it: few digits, with its unit.
fn figure(v: Option<f64>, unit: &str) -> String {
    let Some(v) = v else {
        return "–".to_owned();
    };
    let digits = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else if v.abs() >= 1.0 || v == 0.0 {
        2
    } else {
        4
    };
    match unit {
        "" | "share" => format!("{v:.digits$}"),
        "%" => format!("{v:.digits$}%"),
        unit => format!("{v:.digits$} {unit}"),
    }
}

/// The y-axis label of a check's chart.
fn axis_label(unit: &str) -> String {
    match unit {
        "" => "value".to_owned(),
        "share" => "share (0 to 1)".to_owned(),
        unit => format!("value ({unit})"),
    }
}

/// The fault windows as shaded bands: one per ramp step, later steps darker.
fn fault_bands(report: &RunReport, end_s: f64) -> Vec<Band> {
    let mut bands = Vec::new();
    for f in &report.faults {
        let steps = f.windows.len();
        for (i, w) in f.windows.iter().enumerate() {
            bands.push(Band {
                start_s: w.start_ms as f64 / 1000.0,
                end_s: w.end_ms.map_or(end_s, |e| e as f64 / 1000.0),
                label: if steps > 1 {
                    format!("step {}", i + 1)
                } else {
                    String::new()
                },
                strength: if steps > 1 {
                    i as f64 / (steps - 1) as f64
                } else {
                    0.5
                },
            });
        }
    }
    bands
}

/// An indicator's changes: numeric (every value a number) or states.
fn indicator_kinds(report: &RunReport) -> Vec<(String, bool)> {
    let mut kinds: Vec<(String, bool)> = Vec::new();
    for c in &report.indicators {
        let numeric = c.to.parse::<f64>().is_ok();
        match kinds.iter_mut().find(|(n, _)| *n == c.indicator) {
            Some((_, all_numeric)) => *all_numeric &= numeric || c.to == "unreadable",
            None => kinds.push((c.indicator.clone(), numeric)),
        }
    }
    kinds
}

/// State changes marked across the charts at most: a breaker that flapped all run long is
/// read from its band instead.
const MARKED_TRANSITIONS: usize = 40;

/// The abort, and every change of a state indicator (when there are not too many), as
/// markers.
fn markers(report: &RunReport, kinds: &[(String, bool)]) -> Vec<Marker> {
    let mut markers: Vec<Marker> = report
        .indicators
        .iter()
        .filter(|c| c.from.is_some())
        .filter(|c| {
            kinds
                .iter()
                .any(|(n, numeric)| *n == c.indicator && !numeric)
        })
        .map(|c| Marker {
            at_s: c.at_ms as f64 / 1000.0,
            label: format!("{}: {}", c.indicator, c.to),
            kind: MarkerKind::Transition,
        })
        .collect();
    if markers.len() > MARKED_TRANSITIONS {
        markers.clear();
    }
    if let Some(at) = report.aborted_at_ms {
        markers.push(Marker {
            at_s: at as f64 / 1000.0,
            label: "abort".into(),
            kind: MarkerKind::Abort,
        });
    }
    markers
}

/// The whole report as one HTML page.
pub fn render(report: &RunReport) -> String {
    let span = summary::focus(report);
    let bands = fault_bands(report, span_end(report));
    let kinds = indicator_kinds(report);
    let markers = markers(report, &kinds);
    let rows = summary::check_rows(report);
    let mut body = String::new();
    header(&mut body, report, span);
    checks_table(&mut body, &rows);
    faults_table(&mut body, report);
    check_charts(&mut body, report, &rows, span, &bands, &markers);
    indicator_charts(&mut body, report, &kinds, span, &bands, &markers);
    load_section(&mut body, report, span, &bands, &markers);
    let _ = writeln!(
        body,
        "<p class=\"note\">Every check evaluation and every indicator change is in <code>report.json</code> beside this page.</p>"
    );
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}: {}</title>\n<style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        escape(&report.experiment),
        escape(&report.outcome)
    )
}

fn span_end(report: &RunReport) -> f64 {
    report.duration_ms as f64 / 1000.0
}

fn header(body: &mut String, report: &RunReport, span: TimeSpan) {
    let class = if report.exit_code == 0 {
        "pass"
    } else {
        "fail"
    };
    let _ = writeln!(
        body,
        "<h1>{}</h1>\n<p><span class=\"verdict {class}\">{}</span> {}</p>",
        escape(&report.experiment),
        escape(&report.outcome),
        escape(&report.reason),
    );
    if !report.description.trim().is_empty() {
        let _ = writeln!(
            body,
            "<div class=\"hypothesis\"><b>Hypothesis.</b> {}</div>",
            escape(report.description.trim())
        );
    }
    let setup = if span.skipped_s() > 0.0 {
        format!(
            "; setup took {:.1} s before the first measurement (left out of the charts)",
            span.skipped_s()
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        body,
        "<p class=\"meta\">Run <code>{}</code>, exit code {}, {:.1} s{setup}.</p>",
        escape(&report.run_id),
        report.exit_code,
        report.duration_ms as f64 / 1000.0,
    );
}

fn checks_table(body: &mut String, rows: &[summary::CheckRow]) {
    if rows.is_empty() {
        return;
    }
    body.push_str(
        "<h2 id=\"checks\">Checks before, during and after the faults</h2>\n<table><tr><th>check</th><th>threshold</th>\
         <th class=\"num\">before</th><th class=\"num\">during (worst)</th><th class=\"num\">after</th><th>breaches</th></tr>\n",
    );
    for r in rows {
        let breaches = match (r.breaches, r.errors) {
            (0, 0) => "<span class=\"good\">none</span>".to_owned(),
            (b, 0) => format!("<span class=\"bad\">{b}</span>"),
            (b, e) => format!("<span class=\"bad\">{b}</span>, {e} unreadable"),
        };
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{breaches}</td></tr>",
            escape(&r.check),
            escape(r.threshold.trim_start_matches("breach when ")),
            figure(r.before, r.unit),
            figure(r.during, r.unit),
            figure(r.after, r.unit),
        );
    }
    body.push_str("</table>\n<p class=\"note\">A threshold is where the check breaches. Before: the last reading of the preflight; during: the worst while the faults held; after: the last reading.</p>\n");
}

fn faults_table(body: &mut String, report: &RunReport) {
    if report.faults.is_empty() {
        return;
    }
    body.push_str("<h2 id=\"faults\">Faults</h2>\n<table><tr><th>fault</th><th>what went in</th><th class=\"num\">live (s)</th><th>reverted</th></tr>\n");
    for f in &report.faults {
        let live: Vec<String> = f
            .windows
            .iter()
            .map(|w| {
                format!(
                    "{:.1}–{}",
                    w.start_ms as f64 / 1000.0,
                    w.end_ms
                        .map_or("end".to_owned(), |e| format!("{:.1}", e as f64 / 1000.0))
                )
            })
            .collect();
        let reverted = if f.reverted {
            "<span class=\"good\">yes, verified</span>".to_owned()
        } else {
            format!(
                "<span class=\"bad\">NO</span>: {}",
                escape(&f.errors.join("; "))
            )
        };
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{reverted}</td></tr>",
            escape(&f.name),
            f.steps
                .iter()
                .map(|s| escape(s))
                .collect::<Vec<_>>()
                .join("<br>"),
            live.join("<br>"),
        );
    }
    body.push_str("</table>\n");
}

/// Explains the shading and marks under a chart: the bands and markers drawn, the
/// threshold line and the breach dots when there are any.
fn caption(bands: &[Band], markers: &[Marker], threshold: bool, breaches: bool) -> String {
    let mut parts = Vec::new();
    if !bands.is_empty() {
        parts.push(if bands.iter().any(|b| !b.label.is_empty()) {
            "shaded: fault live, darker for later ramp steps"
        } else {
            "shaded: fault live"
        });
    }
    if threshold {
        parts.push("dashed red: threshold");
    }
    if breaches {
        parts.push("red dots: breaches");
    }
    if markers.iter().any(|m| m.kind == MarkerKind::Abort) {
        parts.push("red line: abort");
    }
    if markers.iter().any(|m| m.kind == MarkerKind::Transition) {
        parts.push("dashed purple: a state indicator changed (its band below names the states)");
    }
    if parts.is_empty() {
        return String::new();
    }
    let mut text = parts.join("; ");
    text[..1].make_ascii_uppercase();
    format!("<figcaption>{}.</figcaption>", escape(&text))
}

/// The readings of a check in one stretch per phase (preflight, hold, after).
fn by_phase(
    observations: &[&crate::watch::Observation],
    point: impl Fn(&&crate::watch::Observation) -> Option<(f64, f64)>,
) -> Vec<Vec<(f64, f64)>> {
    let mut segments: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    for o in observations {
        let Some(p) = point(o) else { continue };
        match segments.last_mut() {
            Some((phase, points)) if *phase == o.phase => points.push(p),
            _ => segments.push((o.phase, vec![p])),
        }
    }
    segments.into_iter().map(|(_, points)| points).collect()
}

fn check_charts(
    body: &mut String,
    report: &RunReport,
    rows: &[summary::CheckRow],
    span: TimeSpan,
    bands: &[Band],
    markers: &[Marker],
) {
    if rows.is_empty() {
        return;
    }
    body.push_str("<h2 id=\"charts\">Checks over time</h2>\n");
    for row in rows {
        let observations: Vec<_> = report
            .timeline
            .iter()
            .filter(|o| o.check == row.check)
            .collect();
        let point = |o: &&crate::watch::Observation| o.value.map(|v| (o.at_ms as f64 / 1000.0, v));
        let threshold = observations.iter().find_map(|o| o.threshold_value);
        let chart = LineChart {
            y_label: axis_label(row.unit),
            lines: vec![Line {
                name: row.check.clone(),
                segments: by_phase(&observations, point),
                breaches: observations
                    .iter()
                    .filter(|o| o.verdict == "breach")
                    .filter_map(point)
                    .collect(),
            }],
            threshold,
            bands,
            markers,
            span,
            height: 220,
            share: row.unit == "share",
        };
        let _ = writeln!(
            body,
            "<figure><h3>{} <span class=\"meta\">({})</span></h3>{}{}</figure>",
            escape(&row.check),
            escape(&row.threshold),
            chart::line_chart(&chart),
            caption(bands, markers, threshold.is_some(), row.breaches > 0),
        );
    }
}

fn indicator_charts(
    body: &mut String,
    report: &RunReport,
    kinds: &[(String, bool)],
    span: TimeSpan,
    bands: &[Band],
    markers: &[Marker],
) {
    if kinds.is_empty() {
        return;
    }
    let end_s = span_end(report);
    body.push_str("<h2 id=\"indicators\">Indicators</h2>\n");
    for (name, numeric) in kinds {
        let changes: Vec<_> = report
            .indicators
            .iter()
            .filter(|c| c.indicator == *name)
            .collect();
        if *numeric {
            // A value holds until the next change: drawn as steps, up to the end.
            let mut points = Vec::new();
            for (i, c) in changes.iter().enumerate() {
                let Ok(v) = c.to.parse::<f64>() else { continue };
                let from = c.at_ms as f64 / 1000.0;
                let to = changes
                    .get(i + 1)
                    .map_or(end_s, |n| n.at_ms as f64 / 1000.0);
                points.push((from, v));
                points.push((to, v));
            }
            let chart = LineChart {
                y_label: name.clone(),
                lines: vec![Line {
                    name: name.clone(),
                    segments: vec![points],
                    breaches: vec![],
                }],
                threshold: None,
                bands,
                markers,
                span,
                height: 180,
                share: false,
            };
            let _ = writeln!(
                body,
                "<figure><h3>{}</h3>{}{}</figure>",
                escape(name),
                chart::line_chart(&chart),
                caption(bands, markers, false, false)
            );
        } else {
            let segments: Vec<(f64, f64, String)> = changes
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let to = changes
                        .get(i + 1)
                        .map_or(end_s, |n| n.at_ms as f64 / 1000.0);
                    (c.at_ms as f64 / 1000.0, to, c.to.clone())
                })
                .collect();
            let legend: String = chart::state_legend(&segments)
                .iter()
                .map(|(state, color)| {
                    format!(
                        "<span class=\"swatch\" style=\"background:{color}\"></span>{} ",
                        escape(state)
                    )
                })
                .collect();
            let _ = writeln!(
                body,
                "<figure><h3>{}</h3>{}<figcaption>{legend}</figcaption>{}</figure>",
                escape(name),
                chart::state_band(name, &segments, bands, span),
                caption(bands, &[], false, false)
            );
        }
    }
}

fn load_section(
    body: &mut String,
    report: &RunReport,
    span: TimeSpan,
    bands: &[Band],
    markers: &[Marker],
) {
    let Some(load) = &report.load else {
        return;
    };
    let _ = writeln!(
        body,
        "<h2 id=\"load\">Load (what the players saw)</h2>\n<p>{} players, {} calls/s asked, {:.1} achieved, against <code>{}</code>.</p>",
        load.players,
        load.requested_rate,
        load.achieved_rate,
        escape(&load.target)
    );
    if let Some(sessions) = load.sessions_text() {
        let _ = writeln!(body, "<p>{}</p>", escape(&sessions));
    }
    // A slice's figures are drawn at its middle.
    let mid = |at_ms: u64| at_ms as f64 / 1000.0 + 0.5;
    let slices = &load.timeline;
    let availability = LineChart {
        y_label: "availability (0 to 1)".into(),
        lines: vec![Line {
            name: "availability".into(),
            segments: vec![slices
                .iter()
                .filter_map(|s| s.availability.map(|a| (mid(s.at_ms), a)))
                .collect()],
            breaches: vec![],
        }],
        threshold: None,
        bands,
        markers,
        span,
        height: 200,
        share: true,
    };
    let percentile =
        |name: &str, pick: fn(&crate::load::recorder::SliceSummary) -> Option<f64>| Line {
            name: name.to_owned(),
            segments: vec![slices
                .iter()
                .filter_map(|s| pick(s).map(|v| (mid(s.at_ms), v)))
                .collect()],
            breaches: vec![],
        };
    let latency = LineChart {
        y_label: "latency (ms)".into(),
        lines: vec![
            percentile("p50", |s| s.p50_ms),
            percentile("p95", |s| s.p95_ms),
            percentile("p99", |s| s.p99_ms),
        ],
        threshold: None,
        bands,
        markers,
        span,
        height: 220,
        share: false,
    };
    let _ = writeln!(
        body,
        "<figure><h3>Availability per second</h3>{}{}</figure>\n<figure><h3>Latency per second, all calls</h3>{}{}</figure>",
        chart::line_chart(&availability),
        caption(bands, markers, false, false),
        chart::line_chart(&latency),
        caption(bands, markers, false, false),
    );
    let mut operations: Vec<String> = Vec::new();
    for s in slices {
        for o in &s.operations {
            if !operations.contains(&o.operation) {
                operations.push(o.operation.clone());
            }
        }
    }
    if !operations.is_empty() {
        // Calls per second from whole seconds only: the first and last are cut short.
        let load_end_ms = load.started_at_ms + load.duration_ms;
        let whole: Vec<_> = slices
            .iter()
            .filter(|s| s.at_ms >= load.started_at_ms && s.at_ms + 1000 <= load_end_ms)
            .collect();
        let mix: Vec<(String, Vec<(f64, f64)>)> = operations
            .iter()
            .map(|name| {
                let points = whole
                    .iter()
                    .map(|s| {
                        let calls = s
                            .operations
                            .iter()
                            .find(|o| o.operation == *name)
                            .map_or(0, |o| o.requests);
                        (mid(s.at_ms), calls as f64)
                    })
                    .collect();
                (name.clone(), points)
            })
            .collect();
        let _ = writeln!(
            body,
            "<figure><h3>Request mix</h3>{}{}</figure>",
            chart::stacked_rates(&mix, bands, span),
            caption(bands, &[], false, false)
        );
        body.push_str("<h3>Latency per operation</h3>\n");
        for name in &operations {
            let pick = |q: fn(&crate::load::recorder::OperationSlice) -> Option<f64>,
                        label: &str| Line {
                name: label.to_owned(),
                segments: vec![slices
                    .iter()
                    .filter_map(|s| {
                        let o = s.operations.iter().find(|o| o.operation == *name)?;
                        q(o).map(|v| (mid(s.at_ms), v))
                    })
                    .collect()],
                breaches: vec![],
            };
            let chart = LineChart {
                y_label: format!("{name} (ms)"),
                lines: vec![
                    pick(|o| o.p50_ms, "p50"),
                    pick(|o| o.p95_ms, "p95"),
                    pick(|o| o.p99_ms, "p99"),
                ],
                threshold: None,
                bands,
                markers,
                span,
                height: 170,
                share: false,
            };
            let _ = writeln!(body, "<figure>{}</figure>", chart::line_chart(&chart));
        }
    }
    body.push_str("<h3>Totals</h3>\n<table><tr><th>operation</th><th class=\"num\">calls</th><th class=\"num\">success</th><th class=\"num\">errors</th><th class=\"num\">of them overflow</th><th class=\"num\">rate limited</th><th class=\"num\">p50</th><th class=\"num\">p95</th><th class=\"num\">p99</th></tr>\n");
    let ms = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1} ms"));
    for t in &load.totals {
        let errors = if t.errors > 0 {
            format!("<span class=\"bad\">{}</span>", t.errors)
        } else {
            "0".to_owned()
        };
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{errors}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&t.operation),
            t.count,
            t.success,
            t.overflow,
            t.rate_limited,
            ms(t.p50_ms),
            ms(t.p95_ms),
            ms(t.p99_ms)
        );
    }
    body.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::indicator::IndicatorChange;

    fn report(indicators: Vec<IndicatorChange>) -> RunReport {
        RunReport {
            run_id: "r".into(),
            experiment: "flaps".into(),
            description: "the breaker <opens> & closes".into(),
            outcome: "aborted".into(),
            exit_code: 2,
            reason: "abort condition breached".into(),
            duration_ms: 60_000,
            faults: vec![],
            timeline: vec![],
            load: None,
            aborted_at_ms: Some(30_000),
            indicators,
        }
    }

    fn change(indicator: &str, at_ms: u64, from: Option<&str>, to: &str) -> IndicatorChange {
        IndicatorChange {
            indicator: indicator.into(),
            at_ms,
            from: from.map(str::to_owned),
            to: to.into(),
            announce: true,
        }
    }

    #[test]
    fn a_few_state_changes_are_marked_a_flapping_breaker_only_in_its_band() {
        let few = report(vec![
            change("breaker", 1_000, None, "closed"),
            change("breaker", 2_000, Some("closed"), "open"),
            change("queue", 1_000, None, "0"),
            change("queue", 2_000, Some("0"), "7"),
        ]);
        let kinds = indicator_kinds(&few);
        assert_eq!(
            kinds,
            [("breaker".to_owned(), false), ("queue".to_owned(), true)]
        );
        let marked = markers(&few, &kinds);
        assert_eq!(marked.len(), 2, "the open, and the abort: {marked:?}");
        let flapping: Vec<_> = (0..50)
            .map(|i| {
                let (from, to) = if i % 2 == 0 {
                    ("closed", "open")
                } else {
                    ("open", "closed")
                };
                change("breaker", 1_000 + i * 500, Some(from), to)
            })
            .collect();
        let many = report(flapping);
        let marked = markers(&many, &indicator_kinds(&many));
        assert_eq!(marked.len(), 1, "only the abort: {marked:?}");
        let page = render(&many);
        assert!(
            page.contains("the breaker &lt;opens&gt; &amp; closes"),
            "escaped"
        );
        // What a service's /metrics says is text, wherever it lands (band, legend).
        let hostile = report(vec![
            change(
                "<img src=x onerror=alert(1)>",
                1_000,
                None,
                "<script>x</script>",
            ),
            change("q\"'", 1_000, None, "1"),
        ]);
        let hostile_page = render(&hostile);
        assert!(
            !hostile_page.contains("<script>x") && !hostile_page.contains("<img src=x"),
            "{hostile_page}"
        );
        assert!(hostile_page.contains("&lt;script&gt;x&lt;/script&gt;"));
        let verdict = page.find("verdict fail").unwrap();
        let band = page.find("<h2 id=\"indicators\"").unwrap();
        assert!(verdict < band && !page.contains("<script"));
    }
}
