//! The deploy policy of an SLO set (`policy`, for the set and per SLO): how much spent
//! error budget pauses deploys and how much rolls the running change back, what a page
//! alert does, whether peak hours freeze deploys, and what no data means.
//! `chaos-runner gate` applies it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The policy as written: every field optional, so an SLO's `policy` overrides the set's
/// field by field.
///
/// ```yaml
/// policy: { pauseAt: 50, rollbackAt: 80, freeze: true, onPageAlert: pause, noData: unknown }
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployPolicy {
    /// Share of the period's error budget spent, in percent, from which new deploys wait
    /// (default 50).
    #[serde(default)]
    pub pause_at: Option<f64>,
    /// Share spent, in percent, from which the running change must go back (default 80).
    #[serde(default)]
    pub rollback_at: Option<f64>,
    /// No deploys while a peak window of the calendar is on, unless forced (default false).
    #[serde(default)]
    pub freeze: Option<bool>,
    /// What an SLO does while one of its `page` burn-rate alerts would fire (both windows
    /// over the factor): `pause` (default), `rollback` or `ignore`.
    #[serde(default)]
    pub on_page_alert: Option<PageAlertAction>,
    /// What an SLO without any event over its period decides: `unknown` (default: fail
    /// closed) or `proceed` (a new service with no traffic yet).
    #[serde(default)]
    pub no_data: Option<NoData>,
}

/// What a page-severity burn does to a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PageAlertAction {
    /// Hold new deploys while it burns.
    Pause,
    /// Send the running change back.
    Rollback,
    /// Decide on the spent budget alone.
    Ignore,
}

/// What an SLO with no events over its period decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NoData {
    /// Unknown: deploys hold (fail closed).
    Unknown,
    /// Proceed: nothing measured, nothing spent.
    Proceed,
}

/// The policy one SLO is judged by: its own fields, else the set's, else the defaults.
///
/// ```
/// use chaos_runner::spec::policy::*;
/// let set = DeployPolicy { pause_at: Some(40.0), freeze: Some(true), ..Default::default() };
/// let slo = DeployPolicy { pause_at: Some(30.0), ..Default::default() };
/// let p = EffectivePolicy::of(Some(&set), Some(&slo));
/// assert_eq!((p.pause_at, p.rollback_at, p.freeze), (30.0, 80.0, true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectivePolicy {
    /// Percent of the budget spent from which deploys pause.
    pub pause_at: f64,
    /// Percent spent from which the change rolls back.
    pub rollback_at: f64,
    /// Peak windows freeze deploys.
    pub freeze: bool,
    /// What a page alert does.
    pub on_page_alert: PageAlertAction,
    /// What no data decides.
    pub no_data: NoData,
}

/// Default `pauseAt`, in percent of the budget spent.
pub const DEFAULT_PAUSE_AT: f64 = 50.0;
/// Default `rollbackAt`, in percent of the budget spent.
pub const DEFAULT_ROLLBACK_AT: f64 = 80.0;

impl EffectivePolicy {
    /// Resolves `slo` over `set` over the defaults.
    pub fn of(set: Option<&DeployPolicy>, slo: Option<&DeployPolicy>) -> EffectivePolicy {
        fn pick<T: Copy>(
            set: Option<&DeployPolicy>,
            slo: Option<&DeployPolicy>,
            field: impl Fn(&DeployPolicy) -> Option<T>,
            default: T,
        ) -> T {
            slo.and_then(&field)
                .or_else(|| set.and_then(&field))
                .unwrap_or(default)
        }
        EffectivePolicy {
            pause_at: pick(set, slo, |p| p.pause_at, DEFAULT_PAUSE_AT),
            rollback_at: pick(set, slo, |p| p.rollback_at, DEFAULT_ROLLBACK_AT),
            freeze: pick(set, slo, |p| p.freeze, false),
            on_page_alert: pick(set, slo, |p| p.on_page_alert, PageAlertAction::Pause),
            no_data: pick(set, slo, |p| p.no_data, NoData::Unknown),
        }
    }
}
