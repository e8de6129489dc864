//! The gate's answer for a person reading a CI log: the decision and why on the first
//! lines, then a small table, one row per SLO.

use super::{Decision, GateReport, SloReport};

/// The text: decision line, reason, table, freeze line. `colour` paints the decision.
///
/// ```
/// # use chaos_runner::gate::*;
/// let report = GateReport {
///     slo_set: "games".into(), at: "2026-12-07T09:30:00Z".into(), decision: Decision::Proceed,
///     reason: "saves: 1.0% of the 30d error budget spent (pause at 50%)".into(), exit_code: 0,
///     freeze: None, slos: vec![],
/// };
/// assert!(chaos_runner::gate::render_text(&report, false).starts_with("PROCEED"));
/// ```
pub fn render_text(report: &GateReport, colour: bool) -> String {
    let word = report.decision.name().to_uppercase();
    let (on, off) = match (colour, report.decision) {
        (false, _) => ("", ""),
        (true, Decision::Proceed) => ("\x1b[32m", "\x1b[0m"),
        (true, Decision::Pause) => ("\x1b[33m", "\x1b[0m"),
        (true, _) => ("\x1b[31m", "\x1b[0m"),
    };
    let mut out = format!(
        "{on}{word}{off}: SLO set {} at {} (exit {})\n  {}\n\n",
        report.slo_set, report.at, report.exit_code, report.reason
    );
    let header = [
        "SLO",
        "decision",
        "spent",
        "left",
        "SLI",
        "objective",
        "burn (page)",
    ];
    let rows: Vec<[String; 7]> = report.slos.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::from("  ");
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Names and words left, figures right.
            if i < 2 {
                text.push_str(&format!("{cell:<w$}  "));
            } else {
                text.push_str(&format!("{cell:>w$}  "));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(&header.map(str::to_owned)));
    for r in &rows {
        out.push_str(&line(r));
    }
    if let Some(f) = &report.freeze {
        out.push_str(&match (&f.window, f.forced) {
            (Some(w), false) => format!("\n  freeze: on, peak hours {w} ({})\n", f.time_zone),
            (Some(w), true) => format!(
                "\n  freeze: on, peak hours {w} ({}), overridden by --force\n",
                f.time_zone
            ),
            (None, _) => format!("\n  freeze: off (no peak window on in {})\n", f.time_zone),
        });
    }
    // The reasons of SLOs that hold deploys but did not decide (a pause under a
    // rollback): the first lines said the deciding ones.
    for slo in report
        .slos
        .iter()
        .filter(|s| s.decision != Decision::Proceed && s.decision < report.decision)
    {
        out.push_str(&format!(
            "  {} ({}): {}\n",
            slo.name,
            slo.decision.name(),
            slo.reason
        ));
    }
    out
}

fn row(slo: &SloReport) -> [String; 7] {
    let percent =
        |v: Option<f64>, decimals: usize| v.map_or("-".to_owned(), |v| format!("{v:.decimals$}%"));
    // The first page alert's windows: what pauses a deploy.
    let page = slo
        .alerts
        .iter()
        .find(|a| a.severity == "page")
        .or(slo.alerts.first())
        .map_or("-".to_owned(), |a| {
            let rate = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}x"));
            format!(
                "{} {} / {} {}{}",
                rate(a.long_burn_rate),
                crate::spec::slo::promql_range(a.long),
                rate(a.short_burn_rate),
                crate::spec::slo::promql_range(a.short),
                if a.firing { " FIRING" } else { "" }
            )
        });
    [
        slo.name.clone(),
        slo.decision.name().to_owned(),
        percent(slo.budget_spent_percent, 1),
        percent(slo.budget_remaining_percent, 1),
        percent(slo.sli_percent, 4),
        format!("{}%", slo.objective),
        page,
    ]
}
