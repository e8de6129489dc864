//! The HTML report: one self-contained file, no scripts, one inline SVG chart per check
//! (its value over time against its threshold line, fault windows shaded, the abort
//! marked), plus the load generator's availability and p95 when it ran.

use super::RunReport;
use crate::watch::Observation;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 32.0;

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

/// One series of a chart.
struct Series<'a> {
    title: &'a str,
    unit: &'a str,
    /// (ms since the run started, value, breached)
    points: Vec<(u64, f64, bool)>,
    threshold: Option<f64>,
}

fn number(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn chart(report: &RunReport, series: &Series<'_>) -> String {
    let end_ms = report.duration_ms.max(1) as f64;
    let mut low = f64::INFINITY;
    let mut high = f64::NEG_INFINITY;
    for v in series
        .points
        .iter()
        .map(|p| p.1)
        .chain(series.threshold)
        .filter(|v| v.is_finite())
    {
        low = low.min(v);
        high = high.max(v);
    }
    if !low.is_finite() {
        (low, high) = (0.0, 1.0);
    }
    if high - low < 1e-9 {
        let pad = if high.abs() > 1e-9 {
            high.abs() * 0.1
        } else {
            1.0
        };
        (low, high) = (low - pad, high + pad);
    } else {
        let pad = (high - low) * 0.08;
        (low, high) = (low - pad, high + pad);
    }
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |ms: f64| LEFT + (ms / end_ms).clamp(0.0, 1.0) * plot_w;
    let y = |v: f64| TOP + (1.0 - (v - low) / (high - low)) * plot_h;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">\n",
        escape(series.title)
    );
    for f in &report.faults {
        for w in &f.windows {
            let x0 = x(w.start_ms as f64);
            let x1 = x(w.end_ms.unwrap_or(report.duration_ms) as f64);
            svg.push_str(&format!(
                "<rect x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{plot_h}\" fill=\"#f6d5d5\"><title>fault {} live</title></rect>\n",
                (x1 - x0).max(1.0),
                escape(&f.name)
            ));
        }
    }
    svg.push_str(&format!(
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#999\"/>\n"
    ));
    for (v, anchor) in [(low, HEIGHT - BOTTOM), (high, TOP + 10.0)] {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{anchor:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n",
            LEFT - 4.0,
            number(v)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"11\">0 s</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{:.1} s</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
        HEIGHT - 8.0,
        WIDTH - RIGHT,
        HEIGHT - 8.0,
        end_ms / 1000.0,
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0,
        escape(series.unit)
    ));
    if let Some(t) = series.threshold {
        svg.push_str(&format!(
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c00\" stroke-dasharray=\"6 4\"><title>threshold {}</title></line>\n",
            WIDTH - RIGHT,
            y(t),
            y(t),
            number(t)
        ));
    }
    let path: Vec<String> = series
        .points
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|(ms, v, _)| format!("{:.1},{:.1}", x(*ms as f64), y(*v)))
        .collect();
    if !path.is_empty() {
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"#2364aa\" stroke-width=\"1.5\" points=\"{}\"/>\n",
            path.join(" ")
        ));
    }
    for (ms, v, bad) in series.points.iter().filter(|p| p.1.is_finite()) {
        svg.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{}\" fill=\"{}\"><title>{:.1} s: {}</title></circle>\n",
            x(*ms as f64),
            y(*v),
            if *bad { 3.5 } else { 2.0 },
            if *bad { "#c00" } else { "#2364aa" },
            *ms as f64 / 1000.0,
            number(*v)
        ));
    }
    if let Some(at) = report.aborted_at_ms {
        let ax = x(at as f64);
        svg.push_str(&format!(
            "<line x1=\"{ax:.1}\" x2=\"{ax:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#000\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">abort</text>\n",
            HEIGHT - BOTTOM,
            ax + 3.0,
            TOP + 12.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn check_series(report: &RunReport) -> Vec<(String, Vec<&Observation>)> {
    let mut names: Vec<String> = Vec::new();
    for o in &report.timeline {
        if !names.contains(&o.check) {
            names.push(o.check.clone());
        }
    }
    names
        .into_iter()
        .map(|n| {
            let obs = report.timeline.iter().filter(|o| o.check == n).collect();
            (n, obs)
        })
        .collect()
}

/// The whole report as one HTML page.
pub fn render(report: &RunReport) -> String {
    let mut body = format!(
        "<h1>{}: {}</h1>\n<p>{}</p>\n<ul><li>run <code>{}</code></li><li>outcome <b>{}</b> (exit {})</li><li>reason: {}</li><li>duration {:.1} s</li></ul>\n",
        escape(&report.experiment),
        escape(&report.outcome),
        escape(&report.description),
        escape(&report.run_id),
        escape(&report.outcome),
        report.exit_code,
        escape(&report.reason),
        report.duration_ms as f64 / 1000.0
    );
    body.push_str(
        "<h2>Faults</h2>\n<table><tr><th>fault</th><th>steps</th><th>reverted</th></tr>\n",
    );
    for f in &report.faults {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&f.name),
            f.steps
                .iter()
                .map(|s| escape(s))
                .collect::<Vec<_>>()
                .join("<br>"),
            if f.reverted {
                "yes, verified".to_owned()
            } else {
                format!("<b>NO</b>: {}", escape(&f.errors.join("; ")))
            }
        ));
    }
    if !report.indicators.is_empty() {
        body.push_str("</table>\n<h2>Indicators</h2>\n<table><tr><th>at s</th><th>indicator</th><th>from</th><th>to</th></tr>\n");
        for c in &report.indicators {
            body.push_str(&format!(
                "<tr><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                c.at_ms as f64 / 1000.0,
                escape(&c.indicator),
                escape(c.from.as_deref().unwrap_or("-")),
                escape(&c.to)
            ));
        }
    }
    body.push_str("</table>\n<h2>Checks</h2>\n<p>Shaded: faults live. Dashed red: threshold. Red dots: not ok.</p>\n");
    for (name, obs) in check_series(report) {
        let threshold = obs.iter().find_map(|o| o.threshold_value);
        let text = obs.first().map(|o| o.threshold.clone()).unwrap_or_default();
        let series = Series {
            title: &name,
            unit: &text,
            points: obs
                .iter()
                .filter_map(|o| o.value.map(|v| (o.at_ms, v, o.verdict != "ok")))
                .collect(),
            threshold,
        };
        body.push_str(&format!("<h3>{}</h3>\n", escape(&name)));
        body.push_str(&chart(report, &series));
    }
    if let Some(load) = &report.load {
        body.push_str(&format!(
            "<h2>Load (client side)</h2>\n<p>{} players, {} calls/s asked, {:.1} achieved against {}</p>\n",
            load.players,
            load.requested_rate,
            load.achieved_rate,
            escape(&load.target)
        ));
        if let Some(sessions) = load.sessions_text() {
            body.push_str(&format!("<p>{}</p>\n", escape(&sessions)));
        }
        let availability = Series {
            title: "availability",
            unit: "availability per 1 s slice",
            points: load
                .timeline
                .iter()
                .filter_map(|s| s.availability.map(|a| (s.at_ms, a, a < 1.0)))
                .collect(),
            threshold: None,
        };
        let p95 = Series {
            title: "p95",
            unit: "p95 latency per 1 s slice (ms)",
            points: load
                .timeline
                .iter()
                .filter_map(|s| s.p95_ms.map(|v| (s.at_ms, v, false)))
                .collect(),
            threshold: None,
        };
        body.push_str(&chart(report, &availability));
        body.push_str(&chart(report, &p95));
        body.push_str("<table><tr><th>operation</th><th>count</th><th>success</th><th>errors</th><th>rate limited</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th></tr>\n");
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        for t in &load.totals {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                t.operation, t.count, t.success, t.errors, t.rate_limited, ms(t.p50_ms), ms(t.p95_ms), ms(t.p99_ms)
            ));
        }
        body.push_str("</table>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:sans-serif;max-width:800px;margin:1em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px}}</style></head><body>\n{body}</body></html>\n",
        escape(&report.experiment)
    )
}
