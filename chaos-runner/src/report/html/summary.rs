//! The figures the report opens with: each check's value before, during and after the
//! faults against its threshold, and the span of the run worth drawing.

use super::super::RunReport;
use crate::watch::Observation;

/// One check across the run.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRow {
    /// The check's name.
    pub check: String,
    /// Its threshold, in words (`breach when > 97`).
    pub threshold: String,
    /// The value's unit, empty when unknown.
    pub unit: &'static str,
    /// The last value before the faults (preflight).
    pub before: Option<f64>,
    /// The worst value while the faults held (in the breaching direction; the last one
    /// for a check without a direction).
    pub during: Option<f64>,
    /// The last value after the faults.
    pub after: Option<f64>,
    /// Evaluations that breached.
    pub breaches: usize,
    /// Evaluations whose source failed.
    pub errors: usize,
}

/// Whether `a` is worse than `b` for a check that breaches when `breach_when`.
fn worse(breach_when: Option<&str>, a: f64, b: f64) -> bool {
    match breach_when {
        Some(">") | Some(">=") => a > b,
        Some("<") | Some("<=") => a < b,
        _ => true,
    }
}

/// Each check of the run, in the order first seen.
///
/// ```
/// use chaos_runner::report::{html::summary::check_rows, RunReport};
/// let report = RunReport { run_id: "r".into(), experiment: "e".into(), description: String::new(),
///     outcome: "passed".into(), exit_code: 0, reason: String::new(), duration_ms: 1000,
///     faults: vec![], timeline: vec![], load: None, aborted_at_ms: None, indicators: vec![] };
/// assert!(check_rows(&report).is_empty());
/// ```
pub fn check_rows(report: &RunReport) -> Vec<CheckRow> {
    let mut rows: Vec<CheckRow> = Vec::new();
    for o in &report.timeline {
        let i = match rows.iter().position(|r| r.check == o.check) {
            Some(i) => i,
            None => {
                rows.push(CheckRow {
                    check: o.check.clone(),
                    threshold: o.threshold.clone(),
                    unit: o.unit,
                    before: None,
                    during: None,
                    after: None,
                    breaches: 0,
                    errors: 0,
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[i];
        row.breaches += usize::from(o.verdict == "breach");
        row.errors += usize::from(o.verdict == "error");
        let Some(v) = o.value.filter(|v| v.is_finite()) else {
            continue;
        };
        match o.phase {
            "preflight" => row.before = Some(v),
            "hold" => {
                if row.during.is_none_or(|d| worse(o.breach_when, v, d)) {
                    row.during = Some(v);
                }
            }
            _ => row.after = Some(v),
        }
    }
    rows
}

/// The part of the run worth drawing, in seconds: from a little before the first thing
/// measured (load, a check, an indicator, a fault) to the end; setup before it is left out.
pub fn focus(report: &RunReport) -> super::chart::TimeSpan {
    let first_ms = report
        .timeline
        .iter()
        .map(|o: &Observation| o.at_ms)
        .chain(report.load.as_ref().map(|l| l.started_at_ms))
        .chain(report.indicators.iter().map(|c| c.at_ms))
        .chain(
            report
                .faults
                .iter()
                .flat_map(|f| f.windows.iter().map(|w| w.start_ms)),
        )
        .min()
        .unwrap_or(0);
    let start_s = first_ms as f64 / 1000.0 - 1.0;
    // A few seconds of setup are drawn rather than announced.
    let start_s = if start_s < 3.0 { 0.0 } else { start_s };
    super::chart::TimeSpan::new(start_s, report.duration_ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(
        check: &str,
        phase: &'static str,
        at_ms: u64,
        value: f64,
        verdict: &'static str,
    ) -> Observation {
        Observation {
            check: check.into(),
            phase,
            at_ms,
            value: Some(value),
            threshold: "breach when > 97".into(),
            threshold_value: Some(97.0),
            breach_when: Some(">"),
            unit: "%",
            verdict,
            error: None,
        }
    }

    pub(crate) fn report(timeline: Vec<Observation>) -> RunReport {
        RunReport {
            run_id: "r".into(),
            experiment: "e".into(),
            description: "d".into(),
            outcome: "passed".into(),
            exit_code: 0,
            reason: "ok".into(),
            duration_ms: 600_000,
            faults: vec![],
            timeline,
            load: None,
            aborted_at_ms: None,
            indicators: vec![],
        }
    }

    #[test]
    fn before_is_the_last_preflight_value_during_the_worst_after_the_last() {
        let r = report(vec![
            observation("cpu", "preflight", 512_000, 10.0, "ok"),
            observation("cpu", "preflight", 512_500, 12.0, "ok"),
            observation("cpu", "hold", 513_000, 98.0, "breach"),
            observation("cpu", "hold", 513_500, 60.0, "ok"),
            observation("cpu", "after", 540_000, 15.0, "ok"),
            observation("cpu", "after", 541_000, 14.0, "ok"),
        ]);
        let rows = check_rows(&r);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(
            (row.before, row.during, row.after),
            (Some(12.0), Some(98.0), Some(14.0))
        );
        assert_eq!((row.breaches, row.errors, row.unit), (1, 0, "%"));
        let mut low = observation("avail", "hold", 513_000, 0.99, "ok");
        low.breach_when = Some("<");
        let lower = Observation {
            value: Some(0.90),
            ..low.clone()
        };
        let rows = check_rows(&report(vec![low, lower]));
        assert_eq!(
            rows[0].during,
            Some(0.90),
            "the worst of a `<` check is the lowest"
        );
    }

    #[test]
    fn the_focus_leaves_out_a_long_setup_but_not_a_short_one() {
        let r = report(vec![observation("cpu", "preflight", 512_000, 10.0, "ok")]);
        let span = focus(&r);
        assert_eq!(span.skipped_s(), 511.0);
        let r = report(vec![observation("cpu", "preflight", 2_000, 10.0, "ok")]);
        assert_eq!(focus(&r).skipped_s(), 0.0);
    }
}
