//! One SLO's error budget left, read the one way the runner reads it everywhere (an
//! experiment's `errorBudgetGate`, a GameDay's budget requirement): the series the SLO rules
//! record (`slo:error_budget:remaining`) when Prometheus evaluates them, else the same
//! budget computed from the SLI and the calendar, as `chaos-runner gate` computes it.

use chrono::{DateTime, Utc};

use crate::slo::rules::REMAINING;
use crate::spec::slo::{promql_range, Slo, SloSet};
use crate::watch::prometheus::Prometheus;

/// The budget left and where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetLeft {
    /// Percent of the period's budget left (`None`: no events, nothing to judge by).
    pub percent: Option<f64>,
    /// Where the figure comes from, for people.
    pub source: String,
}

/// The budget `slo` of `set` has left at `at` (now if `None`). The error says why it could
/// not be read (Prometheus unreachable, a failed query); a gauge SLO has no budget.
/// The GameDay commands and the experiment preflight call it; `tests/gameday.rs` reads it
/// from a real Prometheus.
pub async fn budget_left(
    prometheus: &Prometheus,
    set: &SloSet,
    slo: &Slo,
    at: Option<DateTime<Utc>>,
) -> Result<BudgetLeft, String> {
    let query = super::query::budget_query(set, slo)
        .ok_or_else(|| format!("`{}` is a gauge SLO: it has no error budget", slo.name))?;
    let recorded = format!(
        "100 * {REMAINING}{{slo=\"{}\",slo_set=\"{}\"}}",
        slo.name, set.metadata.name
    );
    let at_seconds = at.map(|t| t.timestamp_millis() as f64 / 1000.0);
    let series = prometheus
        .vector(&recorded, at_seconds)
        .await
        .map_err(|e| e.0)?;
    if let Some(left) = series.first().map(|s| s.value).filter(|v| v.is_finite()) {
        return Ok(BudgetLeft {
            percent: Some(left),
            source: "as the SLO rules record it".to_owned(),
        });
    }
    let instant = super::query::Instant::of(at.is_some(), at.unwrap_or_else(Utc::now));
    let reading = super::query::read(prometheus, &query, instant).await?;
    Ok(BudgetLeft {
        percent: reading.spent.map(|spent| 100.0 * (1.0 - spent)),
        source: format!(
            "computed from its SLI with the calendar over {} (Prometheus does not record \
             {REMAINING} for it: the rules of `chaos-runner slo rules` are not loaded)",
            promql_range(slo.period)
        ),
    })
}
