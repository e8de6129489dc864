//! SLO files (`kind: SLOSet`) and the PromQL the runner writes from them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::calendar::{Alerting, Calendar, SloAlerting};
use super::model::Metadata;
use super::policy::DeployPolicy;

/// A set of SLOs.
///
/// ```
/// let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/slo/game-services.yaml")).unwrap();
/// let set = chaos_runner::spec::parse_slo_set("game-services.yaml", &text).unwrap();
/// assert_eq!(set.spec.slos.len(), 6);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SloSet {
    /// Must be `chaos.game-resilience.dev/v1`.
    pub api_version: String,
    /// Must be `SLOSet`.
    pub kind: String,
    /// Name and description.
    pub metadata: Metadata,
    /// The SLOs.
    pub spec: SloSetSpec,
}

/// The SLOs of a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SloSetSpec {
    /// The studio's time zone, peak hours and maintenance windows (optional: without it,
    /// every hour counts the same, in UTC).
    #[serde(default)]
    pub calendar: Option<Calendar>,
    /// The burn-rate alerts (optional: the SRE workbook's four by default).
    #[serde(default)]
    pub alerting: Option<Alerting>,
    /// The deploy policy of every SLO (`chaos-runner gate`): pause at 50% of the budget
    /// spent, roll back at 80%, by default.
    #[serde(default)]
    pub policy: Option<DeployPolicy>,
    /// SLOs by name.
    pub slos: Vec<Slo>,
}

/// One SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Slo {
    /// Name referenced by conditions.
    pub name: String,
    /// What it promises.
    #[serde(default)]
    pub description: String,
    /// Target share of good events, in percent (e.g. 99.9).
    pub objective: f64,
    /// Period the objective is measured over (e.g. `30d`).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub period: Duration,
    /// How good and total events are counted: exactly one of `ratio`, `latency`, `gauge`.
    pub sli: Sli,
    /// Labels and annotations of this SLO's alerts (e.g. `runbook_url`).
    #[serde(default)]
    pub alerting: Option<SloAlerting>,
    /// This SLO's deploy policy, field by field over the set's.
    #[serde(default)]
    pub policy: Option<DeployPolicy>,
}

/// The SLI of an SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sli {
    /// Good and total event rates as PromQL; `$window` stands for the range.
    #[serde(default)]
    pub ratio: Option<RatioSli>,
    /// Requests faster than a threshold, from a Prometheus histogram.
    #[serde(default)]
    pub latency: Option<LatencySli>,
    /// A level that must stay within a bound (e.g. concurrent sessions up to 100,000).
    #[serde(default)]
    pub gauge: Option<GaugeSli>,
}

/// Good/total PromQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RatioSli {
    /// Good events per second over `$window`.
    pub good: String,
    /// All events per second over `$window`.
    pub total: String,
}

/// Latency SLI from a histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencySli {
    /// Histogram metric name (without `_bucket`).
    pub histogram: String,
    /// Label matchers, e.g. `route="/action"`.
    #[serde(default)]
    pub matchers: String,
    /// A request is good when it is at most this slow; must be one of the histogram's
    /// bucket bounds.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub threshold: Duration,
}

/// Gauge SLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GaugeSli {
    /// PromQL giving the current level.
    pub query: String,
    /// Highest acceptable level.
    pub max: f64,
}

/// Formats a duration as a PromQL range (`5m`, `30s`, `1500ms`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(chaos_runner::spec::slo::promql_range(Duration::from_secs(300)), "5m");
/// assert_eq!(chaos_runner::spec::slo::promql_range(Duration::from_millis(1500)), "1500ms");
/// ```
pub fn promql_range(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 86_400_000 == 0 {
        format!("{}d", ms / 86_400_000)
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl Slo {
    /// The share of events allowed to be bad (1 - objective).
    pub fn error_budget(&self) -> f64 {
        1.0 - self.objective / 100.0
    }

    /// PromQL for the error ratio (bad / total) over `window`, if the SLI is event-based.
    ///
    /// ```
    /// use chaos_runner::spec::slo::*;
    /// use std::time::Duration;
    /// let slo = Slo {
    ///     name: "availability".into(), description: String::new(), objective: 99.9,
    ///     period: Duration::from_secs(30 * 86_400),
    ///     sli: Sli { ratio: Some(RatioSli { good: "sum(rate(ok[$window]))".into(), total: "sum(rate(all[$window]))".into() }), latency: None, gauge: None },
    ///     alerting: None, policy: None,
    /// };
    /// assert_eq!(
    ///     slo.error_ratio_query(Duration::from_secs(300)).unwrap(),
    ///     "(1 - ((sum(rate(ok[5m]))) / (sum(rate(all[5m])))))",
    /// );
    /// ```
    pub fn error_ratio_query(&self, window: Duration) -> Option<String> {
        let range = promql_range(window);
        let (good, total) = if let Some(ratio) = &self.sli.ratio {
            (
                ratio.good.replace("$window", &range),
                ratio.total.replace("$window", &range),
            )
        } else if let Some(latency) = &self.sli.latency {
            let le = latency.threshold.as_secs_f64();
            let sep = if latency.matchers.is_empty() { "" } else { "," };
            (
                format!(
                    "sum(rate({}_bucket{{{}{sep}le=\"{le}\"}}[{range}]))",
                    latency.histogram, latency.matchers
                ),
                format!(
                    "sum(rate({}_count{{{}}}[{range}]))",
                    latency.histogram, latency.matchers
                ),
            )
        } else {
            return None;
        };
        Some(format!("(1 - (({good}) / ({total})))"))
    }

    /// PromQL for the rate of all events over `window`, if the SLI is event-based.
    ///
    /// ```
    /// # use chaos_runner::spec::slo::*;
    /// # use std::time::Duration;
    /// # let slo = Slo { name: "a".into(), description: String::new(), objective: 99.0, period: Duration::from_secs(86_400),
    /// #   sli: Sli { ratio: Some(RatioSli { good: "g[$window]".into(), total: "t[$window]".into() }), latency: None, gauge: None }, alerting: None, policy: None };
    /// assert_eq!(slo.total_query(Duration::from_secs(300)).unwrap(), "t[5m]");
    /// ```
    pub fn total_query(&self, window: Duration) -> Option<String> {
        let range = promql_range(window);
        if let Some(ratio) = &self.sli.ratio {
            Some(ratio.total.replace("$window", &range))
        } else {
            self.sli.latency.as_ref().map(|latency| {
                format!(
                    "sum(rate({}_count{{{}}}[{range}]))",
                    latency.histogram, latency.matchers
                )
            })
        }
    }

    /// PromQL for the burn rate over `window`: error ratio / error budget.
    ///
    /// ```
    /// # use chaos_runner::spec::slo::*;
    /// # use std::time::Duration;
    /// # let slo = Slo { name: "a".into(), description: String::new(), objective: 99.0, period: Duration::from_secs(86_400),
    /// #   sli: Sli { ratio: Some(RatioSli { good: "g".into(), total: "t".into() }), latency: None, gauge: None }, alerting: None, policy: None };
    /// assert!(slo.burn_rate_query(Duration::from_secs(60)).unwrap().ends_with("/ 0.01"));
    /// ```
    pub fn burn_rate_query(&self, window: Duration) -> Option<String> {
        let budget = self.error_budget();
        self.error_ratio_query(window)
            .map(|ratio| format!("{ratio} / {}", format_float(budget)))
    }

    /// PromQL for the burn rate over two windows at once: the smaller of the two, so it
    /// exceeds a limit only when both do (a multi-window condition).
    ///
    /// ```
    /// # use chaos_runner::spec::slo::*;
    /// # use std::time::Duration;
    /// # let slo = Slo { name: "a".into(), description: String::new(), objective: 99.0, period: Duration::from_secs(86_400),
    /// #   sli: Sli { ratio: Some(RatioSli { good: "g[$window]".into(), total: "t[$window]".into() }), latency: None, gauge: None }, alerting: None, policy: None };
    /// let q = slo.multi_window_burn_rate_query(Duration::from_secs(300), Duration::from_secs(30)).unwrap();
    /// assert!(q.contains("g[5m]") && q.contains("g[30s]") && q.contains("<= on()"));
    /// ```
    pub fn multi_window_burn_rate_query(&self, long: Duration, short: Duration) -> Option<String> {
        let long = self.burn_rate_query(long)?;
        let short = self.burn_rate_query(short)?;
        Some(format!("(({long}) <= on() ({short})) or on() ({short})"))
    }
}

pub(crate) fn format_float(value: f64) -> String {
    let text = format!("{value:.10}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}
