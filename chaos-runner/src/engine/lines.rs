//! The words of the run lines the engine emits as [`crate::events::RunEvent::Step`]s: a
//! check's result, an abort condition's breach, a fault's revert. Plain functions of
//! typed values, so each line reads the same wherever it is emitted.

use crate::report::FaultReport;
use crate::watch::{Observation, Watch};

/// What a check is to the run, for its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CheckKind {
    /// A steady-state check.
    Steady,
    /// An abort condition.
    Abort,
}

impl CheckKind {
    fn words(self) -> &'static str {
        match self {
            CheckKind::Steady => "steady state",
            CheckKind::Abort => "abort condition",
        }
    }
}

/// A measured value in at most three decimals, without trailing zeros.
fn value(value: Option<f64>) -> String {
    match value {
        None => "no data".to_owned(),
        Some(v) => {
            let text = format!("{v:.3}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
    }
}

/// The measured value of `obs`, with its unit where it has one (`82.5%`, `12 ms`).
fn measured(obs: &Observation) -> String {
    match (obs.value, obs.unit) {
        // A share near its threshold (0.9986 against 0.999) needs a fourth decimal.
        (Some(v), "share") => {
            let text = format!("{v:.4}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
        (None, _) | (_, "") => value(obs.value),
        (Some(_), "%") => format!("{}%", value(obs.value)),
        (Some(_), unit) => format!("{} {unit}", value(obs.value)),
    }
}

/// The note after a verdict: the source's error or the probe's why.
fn note(obs: &Observation) -> String {
    obs.error
        .as_ref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default()
}

/// One evaluation's result: `steady state `host-ok`: 12.5 (breach when > 90): ok`.
pub(super) fn check_result(kind: CheckKind, obs: &Observation) -> String {
    format!(
        "{} `{}`: {} ({}): {}{}",
        kind.words(),
        obs.check,
        measured(obs),
        obs.threshold,
        obs.verdict,
        note(obs)
    )
}

/// An abort condition's breach or source failure while the faults hold, with how many in
/// a row it takes: `abort condition `x`: 1 (breach when > 0): breach 1 of 2 in a row`;
/// `None` when the evaluation held.
pub(super) fn abort_breach(watch: &Watch, obs: &Observation) -> Option<String> {
    let (count, of, what) = match obs.verdict {
        "breach" => {
            let (n, of) = watch.breaches();
            (n, of, "breach")
        }
        "error" => {
            let (n, of) = watch.failures();
            (n, of, "source failure")
        }
        _ => return None,
    };
    Some(format!(
        "{} `{}`: {} ({}){}: {what} {count} of {of} in a row",
        CheckKind::Abort.words(),
        obs.check,
        measured(obs),
        obs.threshold,
        note(obs)
    ))
}

/// A fault after its last revert: reverted and verified, not revertible, or not reverted
/// with why; `None` for a fault that never went in.
pub(super) fn revert_result(fault: &FaultReport) -> Option<String> {
    if fault.windows.is_empty() {
        return None;
    }
    Some(if !fault.reverted {
        format!("`{}` NOT reverted: {}", fault.name, fault.errors.join("; "))
    } else if !fault.revertible {
        format!("`{}` cannot be reverted; left as it is", fault.name)
    } else {
        format!("`{}` reverted; revert verified", fault.name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(value: Option<f64>, verdict: &'static str, error: Option<&str>) -> Observation {
        Observation {
            check: "cpu".into(),
            phase: "hold",
            at_ms: 0,
            value,
            threshold: "breach when > 90".into(),
            threshold_value: Some(90.0),
            breach_when: Some(">"),
            unit: "",
            verdict,
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn a_check_result_names_value_threshold_and_verdict() {
        assert_eq!(
            check_result(CheckKind::Steady, &obs(Some(12.5), "ok", None)),
            "steady state `cpu`: 12.5 (breach when > 90): ok"
        );
        assert_eq!(
            check_result(CheckKind::Abort, &obs(None, "breach", Some("empty result"))),
            "abort condition `cpu`: no data (breach when > 90): breach (empty result)"
        );
        let mut probe = obs(Some(2.5), "ok", None);
        probe.threshold = "status 200".into();
        probe.threshold_value = None;
        probe.unit = "ms";
        assert_eq!(
            check_result(CheckKind::Abort, &probe),
            "abort condition `cpu`: 2.5 ms (status 200): ok"
        );
        let mut share = obs(Some(0.9986), "breach", None);
        share.unit = "share";
        assert!(check_result(CheckKind::Abort, &share).contains("`cpu`: 0.9986 ("));
        let mut cpu = obs(Some(82.5), "ok", None);
        cpu.unit = "%";
        assert_eq!(
            check_result(CheckKind::Steady, &cpu),
            "steady state `cpu`: 82.5% (breach when > 90): ok"
        );
        assert_eq!(value(Some(100.0)), "100");
        assert_eq!(value(Some(0.0004)), "0");
        assert_eq!(value(Some(0.25)), "0.25");
    }

    #[test]
    fn an_abort_line_counts_breaches_in_a_row_and_none_when_it_holds() {
        let check: crate::spec::Check = serde_yaml::from_str(
            "{ name: cpu, host: { metric: cpuBusyPercent, breachWhen: '>', threshold: 90 }, for: 2 }",
        )
        .unwrap();
        let watch = Watch::new(&check, None, 3);
        assert_eq!(abort_breach(&watch, &obs(Some(12.0), "ok", None)), None);
        assert_eq!(
            abort_breach(&watch, &obs(Some(95.0), "breach", None)).as_deref(),
            Some("abort condition `cpu`: 95 (breach when > 90): breach 0 of 2 in a row")
        );
    }

    #[test]
    fn a_revert_line_says_verified_or_why_not() {
        let mut fault = FaultReport::new("hog");
        assert_eq!(revert_result(&fault), None);
        fault.windows.push(crate::report::FaultWindow {
            start_ms: 0,
            end_ms: Some(1),
        });
        assert_eq!(
            revert_result(&fault).as_deref(),
            Some("`hog` reverted; revert verified")
        );
        fault.reverted = false;
        fault.errors.push("qdisc still there".into());
        assert_eq!(
            revert_result(&fault).as_deref(),
            Some("`hog` NOT reverted: qdisc still there")
        );
    }
}
