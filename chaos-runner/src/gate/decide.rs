//! The decision: each SLO's figures against its policy, then the worst of them, then the
//! freeze. Pure functions of their inputs.

use serde::Serialize;
use std::time::Duration;

use crate::spec::policy::{EffectivePolicy, NoData, PageAlertAction};
use crate::spec::slo::promql_range;

/// What a deploy may do now. Ordered from the mildest to the worst: the gate's answer is
/// the worst of its SLOs' (an SLO it cannot read might be one that needs a rollback, so
/// `unknown` is worse than `pause`).
///
/// ```
/// use chaos_runner::gate::Decision;
/// assert!(Decision::Rollback > Decision::Unknown && Decision::Unknown > Decision::Pause);
/// assert_eq!(Decision::Pause.exit_code(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Deploy.
    Proceed,
    /// Hold new deploys; the running change may stay.
    Pause,
    /// The gate cannot tell (Prometheus unreachable, a query failed, no data): hold, as a
    /// pause does, and fix the gate's view.
    Unknown,
    /// The running change must go back.
    Rollback,
}

impl Decision {
    /// The `chaos-runner gate` exit code: 0 proceed, 1 pause, 2 rollback, 4 unknown (3 is
    /// invalid input, as for every command).
    pub fn exit_code(self) -> u8 {
        match self {
            Decision::Proceed => 0,
            Decision::Pause => 1,
            Decision::Rollback => 2,
            Decision::Unknown => 4,
        }
    }

    /// Its name as printed and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Proceed => "proceed",
            Decision::Pause => "pause",
            Decision::Unknown => "unknown",
            Decision::Rollback => "rollback",
        }
    }
}

/// One burn-rate alert's windows as the gate read them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertReading {
    /// Its severity (`page`, `ticket`).
    pub severity: String,
    /// The burn rate both windows must exceed.
    pub factor: f64,
    /// The long window.
    #[serde(serialize_with = "as_range")]
    pub long: Duration,
    /// The short window.
    #[serde(serialize_with = "as_range")]
    pub short: Duration,
    /// The burn rate over the long window (`None`: no events in it).
    pub long_burn_rate: Option<f64>,
    /// The burn rate over the short window.
    pub short_burn_rate: Option<f64>,
    /// Both over the factor: the alert fires (outside maintenance).
    pub firing: bool,
}

fn as_range<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&promql_range(*d))
}

/// What the gate read for one SLO.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reading {
    /// Share of the period's budget spent (0.42 = 42%); `None`: no events in the period.
    pub spent: Option<f64>,
    /// The SLI's error ratio over the period, unweighted.
    pub error_ratio: Option<f64>,
    /// The burn-rate alerts.
    pub alerts: Vec<AlertReading>,
}

/// One SLO's decision and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The decision.
    pub decision: Decision,
    /// Why, for people.
    pub reason: String,
}

/// Judges one SLO: its reading (or why it could not be read) against its policy.
///
/// ```
/// use chaos_runner::gate::{decide::*, Decision};
/// use chaos_runner::spec::policy::EffectivePolicy;
/// let policy = EffectivePolicy::of(None, None);
/// let reading = Reading { spent: Some(0.55), ..Default::default() };
/// let j = judge(&policy, &Ok(reading), std::time::Duration::from_secs(30 * 86_400));
/// assert_eq!(j.decision, Decision::Pause);
/// assert_eq!(j.reason, "55.0% of the 30d error budget spent (pause at 50%)");
/// ```
pub fn judge(
    policy: &EffectivePolicy,
    reading: &Result<Reading, String>,
    period: Duration,
) -> Judgement {
    let reading = match reading {
        Ok(reading) => reading,
        Err(why) => {
            return Judgement {
                decision: Decision::Unknown,
                reason: why.clone(),
            }
        }
    };
    let period = promql_range(period);
    let Some(spent) = reading.spent else {
        return match policy.no_data {
            NoData::Unknown => Judgement {
                decision: Decision::Unknown,
                reason: format!("no events over {period}: nothing to judge the budget by"),
            },
            NoData::Proceed => Judgement {
                decision: Decision::Proceed,
                reason: format!("no events over {period} (policy noData: proceed)"),
            },
        };
    };
    if !spent.is_finite() {
        return Judgement {
            decision: Decision::Unknown,
            reason: format!("the budget spent over {period} is not a number ({spent})"),
        };
    }
    let percent = spent * 100.0;
    let spent_text = format!("{percent:.1}% of the {period} error budget spent");
    let page = reading
        .alerts
        .iter()
        .find(|a| a.firing && a.severity == "page");
    let page_text = |a: &AlertReading| {
        format!(
            "burning {}x over {} and {}x over {} (page alert at {}x)",
            rate(a.long_burn_rate),
            promql_range(a.long),
            rate(a.short_burn_rate),
            promql_range(a.short),
            a.factor
        )
    };
    let pick = |decision, reason| Judgement { decision, reason };
    if percent >= policy.rollback_at {
        return pick(
            Decision::Rollback,
            format!("{spent_text} (rollback at {}%)", policy.rollback_at),
        );
    }
    if let (Some(a), PageAlertAction::Rollback) = (page, policy.on_page_alert) {
        return pick(
            Decision::Rollback,
            format!("{} ({spent_text})", page_text(a)),
        );
    }
    if percent >= policy.pause_at {
        return pick(
            Decision::Pause,
            format!("{spent_text} (pause at {}%)", policy.pause_at),
        );
    }
    if let (Some(a), PageAlertAction::Pause) = (page, policy.on_page_alert) {
        return pick(Decision::Pause, format!("{} ({spent_text})", page_text(a)));
    }
    pick(
        Decision::Proceed,
        format!("{spent_text} (pause at {}%)", policy.pause_at),
    )
}

fn rate(value: Option<f64>) -> String {
    value.map_or("no data".to_owned(), |v| format!("{v:.1}"))
}

/// The worst of the SLOs' decisions and its reasons: `slo: reason`, SLOs that share the
/// worst decision for the same reason named together (`a, b: reason`); `proceed` when there
/// is nothing to judge.
pub fn worst<'a>(judged: impl IntoIterator<Item = (&'a str, &'a Judgement)>) -> Judgement {
    let judged: Vec<_> = judged.into_iter().collect();
    let decision = judged
        .iter()
        .map(|(_, j)| j.decision)
        .max()
        .unwrap_or(Decision::Proceed);
    let mut reasons: Vec<(Vec<&str>, &str)> = Vec::new();
    for (name, j) in judged.iter().filter(|(_, j)| j.decision == decision) {
        match reasons.iter_mut().find(|(_, reason)| *reason == j.reason) {
            Some((names, _)) => names.push(name),
            None => reasons.push((vec![name], &j.reason)),
        }
    }
    let reason = reasons
        .iter()
        .map(|(names, reason)| format!("{}: {reason}", names.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    Judgement { decision, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::policy::DeployPolicy;

    const PERIOD: Duration = Duration::from_secs(30 * 86_400);

    fn page(firing: bool) -> AlertReading {
        AlertReading {
            severity: "page".into(),
            factor: 14.4,
            long: Duration::from_secs(3600),
            short: Duration::from_secs(300),
            long_burn_rate: Some(if firing { 20.0 } else { 1.0 }),
            short_burn_rate: Some(if firing { 30.0 } else { 1.0 }),
            firing,
        }
    }

    fn judged(policy: DeployPolicy, spent: Option<f64>, firing: bool) -> Judgement {
        let reading = Reading {
            spent,
            error_ratio: None,
            alerts: vec![page(firing)],
        };
        judge(
            &EffectivePolicy::of(Some(&policy), None),
            &Ok(reading),
            PERIOD,
        )
    }

    #[test]
    fn budget_spent_pauses_at_half_and_rolls_back_at_eighty_percent() {
        let d = |spent| judged(DeployPolicy::default(), Some(spent), false).decision;
        assert_eq!(d(0.0), Decision::Proceed);
        assert_eq!(d(0.4999), Decision::Proceed);
        assert_eq!(d(0.50), Decision::Pause);
        assert_eq!(d(0.7999), Decision::Pause);
        assert_eq!(d(0.80), Decision::Rollback);
        assert_eq!(d(3.0), Decision::Rollback, "overspent");
    }

    #[test]
    fn a_page_alert_pauses_by_default_rolls_back_or_is_ignored_as_the_policy_says() {
        let with = |action| DeployPolicy {
            on_page_alert: Some(action),
            ..Default::default()
        };
        let j = judged(DeployPolicy::default(), Some(0.1), true);
        assert_eq!(j.decision, Decision::Pause);
        assert!(
            j.reason
                .starts_with("burning 20.0x over 1h and 30.0x over 5m (page alert at 14.4x)"),
            "{}",
            j.reason
        );
        assert_eq!(
            judged(with(PageAlertAction::Rollback), Some(0.1), true).decision,
            Decision::Rollback
        );
        assert_eq!(
            judged(with(PageAlertAction::Ignore), Some(0.1), true).decision,
            Decision::Proceed
        );
        assert_eq!(
            judged(DeployPolicy::default(), Some(0.1), false).decision,
            Decision::Proceed
        );
    }

    #[test]
    fn no_data_is_unknown_unless_the_policy_lets_it_proceed() {
        let j = judged(DeployPolicy::default(), None, false);
        assert_eq!(j.decision, Decision::Unknown);
        assert!(j.reason.contains("no events over 30d"), "{}", j.reason);
        let lenient = DeployPolicy {
            no_data: Some(NoData::Proceed),
            ..Default::default()
        };
        assert_eq!(judged(lenient, None, false).decision, Decision::Proceed);
        assert_eq!(
            judged(DeployPolicy::default(), Some(f64::NAN), false).decision,
            Decision::Unknown
        );
    }

    #[test]
    fn an_unreadable_slo_is_unknown_with_the_reason() {
        let j = judge(
            &EffectivePolicy::of(None, None),
            &Err("prometheus unreachable".into()),
            PERIOD,
        );
        assert_eq!(j.decision, Decision::Unknown);
        assert_eq!(j.reason, "prometheus unreachable");
    }

    #[test]
    fn the_worst_decision_wins_and_names_its_slos() {
        let j = |decision, reason: &str| Judgement {
            decision,
            reason: reason.into(),
        };
        let (a, b, c) = (
            j(Decision::Pause, "55%"),
            j(Decision::Unknown, "down"),
            j(Decision::Unknown, "no data"),
        );
        let w = worst([("a", &a), ("b", &b), ("c", &c)]);
        assert_eq!(w.decision, Decision::Unknown);
        assert_eq!(w.reason, "b: down; c: no data");
        let d = j(Decision::Unknown, "down");
        let w = worst([("b", &b), ("c", &c), ("d", &d)]);
        assert_eq!(w.reason, "b, d: down; c: no data", "one reason, said once");
        let r = j(Decision::Rollback, "85%");
        assert_eq!(worst([("b", &b), ("r", &r)]).decision, Decision::Rollback);
        assert_eq!(worst([]).decision, Decision::Proceed);
    }
}
