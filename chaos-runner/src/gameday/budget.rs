//! The error-budget requirement of a GameDay: each touched SLO's budget read as
//! `chaos-runner gate` reads it ([`crate::gate::budget`]), and the skip it calls for.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::windows::Skip;
use crate::spec::gameday::ValidatedGameDay;
use crate::watch::prometheus::Prometheus;

/// One SLO's budget when it was read.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetNow {
    /// The SLO.
    pub slo: String,
    /// Percent left (`null`: not read).
    pub left_percent: Option<f64>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// Why an entry touching `slos` may not start, by the budgets read: one too low, or one
/// that could not be read (a GameDay does not start blind).
pub fn skip(gameday: &ValidatedGameDay, slos: &[String], budget: &[BudgetNow]) -> Option<Skip> {
    let required = gameday.gameday.spec.budget.as_ref()?;
    for name in slos {
        let Some(b) = budget.iter().find(|b| &b.slo == name) else {
            return Some(Skip::BudgetUnknown {
                why: format!("SLO `{name}` was not read"),
            });
        };
        match (b.left_percent, &b.error) {
            (_, Some(e)) => {
                return Some(Skip::BudgetUnknown {
                    why: format!("SLO `{name}`: {e}"),
                })
            }
            (None, None) => {
                return Some(Skip::BudgetUnknown {
                    why: format!("SLO `{name}` has no events over its period"),
                })
            }
            (Some(left), None) if left <= required.min_remaining_percent => {
                return Some(Skip::Budget {
                    slo: name.clone(),
                    left_percent: left,
                    required_percent: required.min_remaining_percent,
                })
            }
            _ => {}
        }
    }
    None
}

/// Reads the budget of the SLOs `names` of the GameDay's SLO file at `at` (now if
/// `None`), as `chaos-runner gate` reads them. Nothing without a budget requirement.
pub fn read(
    gameday: &ValidatedGameDay,
    names: &[String],
    at: Option<DateTime<Utc>>,
) -> Vec<BudgetNow> {
    let (Some(set), Some(source)) = (&gameday.slos, &gameday.gameday.spec.prometheus) else {
        return Vec::new();
    };
    if names.is_empty() {
        return Vec::new();
    }
    let failed = |why: String| {
        names
            .iter()
            .map(|n| BudgetNow {
                slo: n.clone(),
                left_percent: None,
                error: Some(why.clone()),
            })
            .collect()
    };
    let prometheus = match Prometheus::new(source) {
        Ok(p) => p,
        Err(e) => return failed(format!("spec.prometheus: {e}")),
    };
    let Some(runtime) = crate::output::runtime_or_report() else {
        return failed("cannot start the runtime".into());
    };
    runtime.block_on(async {
        let mut out = Vec::new();
        for name in names {
            let Some(slo) = set.spec.slos.iter().find(|s| &s.name == name) else {
                continue;
            };
            let left = crate::gate::budget::budget_left(&prometheus, set, slo, at).await;
            out.push(match left {
                Ok(b) => BudgetNow {
                    slo: name.clone(),
                    left_percent: b.percent,
                    error: None,
                },
                Err(e) => BudgetNow {
                    slo: name.clone(),
                    left_percent: None,
                    error: Some(e),
                },
            });
        }
        out
    })
}
