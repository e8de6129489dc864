//! The deploy gate: from an SLO set and Prometheus, whether a deploy may **proceed**, must
//! **pause**, must **roll back**, or whether the gate cannot tell (**unknown**, which holds
//! deploys: it fails closed).
//!
//! For every SLO with an error budget it reads the budget spent over the SLO's period and
//! the burn rate over each alert window, computed from the SLI's own series exactly as the
//! rules of `chaos-runner slo rules` record them (maintenance spends nothing, peak hours
//! count their factor), and judges them by the SLO's `policy`: pause at `pauseAt` percent
//! spent (50), roll back at `rollbackAt` (80), a firing page alert pauses (`onPageAlert`),
//! and no events at all is unknown (`noData`). The gate's answer is the worst SLO's; a
//! `freeze` holds deploys in the calendar's peak windows unless forced.
//!
//! `check` (the command: exit codes, text and JSON) and `serve` (HTTP for Argo Rollouts and Flagger)
//! present the same [`GateReport`].

pub mod budget;
pub mod check;
pub mod decide;
pub mod query;
pub mod serve;
mod text;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

pub use decide::Decision;
use decide::{judge, worst, AlertReading, Judgement};
pub use text::render_text;

use crate::spec::policy::EffectivePolicy;
use crate::spec::slo::{promql_range, Slo, SloSet};
use crate::watch::prometheus::Prometheus;

/// What the gate is asked.
#[derive(Debug, Clone, Default)]
pub struct GateOptions {
    /// The SLOs to judge by name (every SLO with a budget if empty).
    pub slos: Vec<String>,
    /// The instant to judge at (now if `None`): post-mortems and tests.
    pub at: Option<DateTime<Utc>>,
    /// Deploy through a freeze (the budget still decides).
    pub force: bool,
}

/// The question cannot be asked: an SLO named that the set does not hold, or one without a
/// budget, or nothing to judge.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectError {
    /// No SLO of that name.
    #[error("--slo {name}: no such SLO in the set (it has: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The set's SLOs.
        known: String,
    },
    /// A gauge SLO has no error budget.
    #[error("--slo {0}: a gauge SLO has no error budget to gate on")]
    Gauge(String),
    /// The set has no SLO with a budget.
    #[error("the SLO set has no SLO with an error budget (only gauges)")]
    Nothing,
}

/// The SLOs the gate judges for `names` (all with a budget if empty).
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/slo/game-services.yaml");
/// let set = chaos_runner::spec::load_slo_set(path.as_ref()).unwrap();
/// assert_eq!(chaos_runner::gate::select(&set, &[]).unwrap().len(), 5, "the gauge left out");
/// assert!(chaos_runner::gate::select(&set, &["nope".into()]).is_err());
/// ```
pub fn select<'a>(set: &'a SloSet, names: &[String]) -> Result<Vec<&'a Slo>, SelectError> {
    let has_budget = |slo: &Slo| slo.sli.gauge.is_none();
    if names.is_empty() {
        let all: Vec<&Slo> = set.spec.slos.iter().filter(|s| has_budget(s)).collect();
        return if all.is_empty() {
            Err(SelectError::Nothing)
        } else {
            Ok(all)
        };
    }
    let mut picked = Vec::new();
    for name in names {
        let slo = set
            .spec
            .slos
            .iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| SelectError::Unknown {
                name: name.clone(),
                known: set
                    .spec
                    .slos
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        if !has_budget(slo) {
            return Err(SelectError::Gauge(name.clone()));
        }
        if !picked.iter().any(|p: &&Slo| p.name == slo.name) {
            picked.push(slo);
        }
    }
    Ok(picked)
}

/// The gate's answer: stable JSON (`--output json`, `gate serve`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateReport {
    /// The SLO set's name.
    pub slo_set: String,
    /// The instant judged (RFC 3339, UTC).
    pub at: String,
    /// The decision.
    pub decision: Decision,
    /// Why: the deciding SLOs' reasons, or the freeze.
    pub reason: String,
    /// `chaos-runner gate`'s exit code for this decision.
    pub exit_code: u8,
    /// The freeze, when a judged SLO's policy has one.
    pub freeze: Option<Freeze>,
    /// Each SLO judged.
    pub slos: Vec<SloReport>,
}

/// A freeze in peak hours.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Freeze {
    /// A peak window is on now.
    pub active: bool,
    /// The window on, local time (`18:00-22:00`).
    pub window: Option<String>,
    /// The calendar's zone.
    pub time_zone: String,
    /// `--force` let the deploy through it.
    pub forced: bool,
}

/// One SLO's figures and decision.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SloReport {
    /// Its name.
    pub name: String,
    /// Its objective, in percent.
    pub objective: f64,
    /// Its period (`30d`).
    pub period: String,
    /// Its decision.
    pub decision: Decision,
    /// Why.
    pub reason: String,
    /// Percent of the period's budget spent (`null`: unknown).
    pub budget_spent_percent: Option<f64>,
    /// Percent of it left (100 - spent).
    pub budget_remaining_percent: Option<f64>,
    /// The SLI over the period, in percent of good events.
    pub sli_percent: Option<f64>,
    /// The policy it was judged by.
    pub policy: EffectivePolicy,
    /// Its burn-rate alerts' windows.
    pub alerts: Vec<AlertReading>,
}

/// Judges `slos` of `set` at `options.at` (now if unset).
pub async fn evaluate(
    set: &SloSet,
    slos: &[&Slo],
    prometheus: &Prometheus,
    options: &GateOptions,
) -> GateReport {
    let at = options.at.unwrap_or_else(Utc::now);
    let judged_at = query::Instant::of(options.at.is_some(), at);
    let readings = futures_util::future::join_all(slos.iter().map(|slo| async move {
        match query::slo_query(set, slo) {
            Some(q) => query::read(prometheus, &q, judged_at).await,
            None => Err("a gauge SLO has no error budget".to_owned()),
        }
    }))
    .await;
    // No alert fires during maintenance (the rules say `unless` maintenance): the longer
    // windows still hold the minutes before it, but nothing burns now.
    let in_maintenance = set
        .spec
        .calendar
        .as_ref()
        .and_then(|cal| cal.maintenance_at(at).ok().flatten())
        .is_some();
    let readings: Vec<_> = readings
        .into_iter()
        .map(|reading| {
            reading.map(|mut r| {
                if in_maintenance {
                    r.alerts.iter_mut().for_each(|a| a.firing = false);
                }
                r
            })
        })
        .collect();
    let mut reports = Vec::new();
    let mut judged = Vec::new();
    for (slo, reading) in slos.iter().zip(readings) {
        let policy = EffectivePolicy::of(set.spec.policy.as_ref(), slo.policy.as_ref());
        let judgement = judge(&policy, &reading, slo.period);
        let reading = reading.unwrap_or_default();
        let spent = reading.spent.filter(|s| s.is_finite()).map(|s| s * 100.0);
        reports.push(SloReport {
            name: slo.name.clone(),
            objective: slo.objective,
            period: promql_range(slo.period),
            decision: judgement.decision,
            reason: judgement.reason.clone(),
            budget_spent_percent: spent,
            budget_remaining_percent: spent.map(|s| 100.0 - s),
            sli_percent: reading
                .error_ratio
                .filter(|r| r.is_finite())
                .map(|r| 100.0 * (1.0 - r)),
            policy,
            alerts: reading.alerts,
        });
        judged.push(judgement);
    }
    let mut overall = worst(reports.iter().map(|r| r.name.as_str()).zip(judged.iter()));
    let freeze = freeze_at(set, &reports, at, options.force);
    if let Some(f) = &freeze {
        apply_freeze(&mut overall, f);
    }
    GateReport {
        slo_set: set.metadata.name.clone(),
        at: at.to_rfc3339_opts(SecondsFormat::Secs, true),
        decision: overall.decision,
        reason: overall.reason,
        exit_code: overall.decision.exit_code(),
        freeze,
        slos: reports,
    }
}

/// The freeze, when a judged SLO's policy asks for one.
fn freeze_at(
    set: &SloSet,
    reports: &[SloReport],
    at: DateTime<Utc>,
    force: bool,
) -> Option<Freeze> {
    let calendar = set.spec.calendar.as_ref()?;
    if !reports.iter().any(|r| r.policy.freeze) {
        return None;
    }
    // Validated: the zone has a fixed offset.
    let window = calendar.peak_at(at).ok().flatten();
    Some(Freeze {
        active: window.is_some(),
        window: window.map(|w| w.window().describe()),
        time_zone: calendar.time_zone.clone(),
        forced: force && window.is_some(),
    })
}

/// A freeze turns a proceed into a pause (a rollback or an unknown stays what it is: a
/// rollback is not a new deploy).
fn apply_freeze(overall: &mut Judgement, freeze: &Freeze) {
    let (Some(window), Decision::Proceed) = (&freeze.window, overall.decision) else {
        return;
    };
    if freeze.forced {
        overall.reason = format!(
            "{}; deploy freeze in peak hours {window} ({}) overridden by --force",
            overall.reason, freeze.time_zone
        );
    } else {
        overall.decision = Decision::Pause;
        overall.reason = format!(
            "deploy freeze in peak hours {window} ({}); the budget alone would proceed ({})",
            freeze.time_zone, overall.reason
        );
    }
}
