//! Steady-state checks and abort conditions (`spec.steadyState`, `spec.abortWhen`) and
//! where they read: Prometheus, HTTP probes, host signals.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::*;

/// A Prometheus HTTP API endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusSource {
    /// Base URL, e.g. `http://127.0.0.1:9090`. `${VAR}` is replaced from the environment.
    pub url: String,
    /// Environment variable holding a bearer token (never logged).
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// File holding a bearer token (never logged).
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// Timeout of one query.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Abort after this many failed checks in a row (fail closed).
    #[serde(default = "default_fail_after")]
    pub fail_after: u32,
}

pub(super) fn default_query_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_fail_after() -> u32 {
    3
}

/// A steady-state check or abort condition: exactly one of `prometheus`, `sloBurnRate`,
/// `http`, `host` or `load`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Check {
    /// Name shown in progress, reports and JUnit.
    pub name: String,
    /// A PromQL expression compared with a threshold.
    #[serde(default)]
    pub prometheus: Option<PromThreshold>,
    /// An SLO's burn rate over a window (the runner writes the PromQL).
    #[serde(default)]
    pub slo_burn_rate: Option<BurnRate>,
    /// An HTTP probe.
    #[serde(default)]
    pub http: Option<HttpProbe>,
    /// A reading of this machine (CPU, memory, load), needing no Prometheus.
    #[serde(default)]
    pub host: Option<HostSignal>,
    /// A client-side SLI of the built-in load generator (`spec.load`).
    #[serde(default)]
    pub load: Option<LoadCheck>,
    /// Breaches in a row before the condition fires (abort conditions only).
    #[serde(default = "one", rename = "for")]
    pub for_checks: u32,
}

fn one() -> u32 {
    1
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Comparison {
    /// greater than
    #[serde(rename = ">")]
    Gt,
    /// greater than or equal
    #[serde(rename = ">=")]
    Ge,
    /// less than
    #[serde(rename = "<")]
    Lt,
    /// less than or equal
    #[serde(rename = "<=")]
    Le,
    /// equal
    #[serde(rename = "==")]
    Eq,
    /// not equal
    #[serde(rename = "!=")]
    Ne,
}

impl Comparison {
    /// Whether `value <op> threshold` holds.
    ///
    /// ```
    /// use chaos_runner::spec::Comparison;
    /// assert!(Comparison::Gt.holds(2.0, 1.0));
    /// assert!(!Comparison::Le.holds(2.0, 1.0));
    /// ```
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
            Comparison::Eq => value == threshold,
            Comparison::Ne => value != threshold,
        }
    }

    /// The operator as written.
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::Comparison::Ge.symbol(), ">=");
    /// ```
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
        }
    }
}

/// What an empty query result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnEmpty {
    /// No data is a breach (the safe default: a dead exporter aborts).
    #[default]
    Breach,
    /// No data is fine.
    Ignore,
}

/// A PromQL query compared with a threshold: `query <breachWhen> threshold` is the bad
/// state, which aborts a run (abort conditions) or fails it (steady-state checks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromThreshold {
    /// An instant PromQL query returning one number (the first sample is used).
    pub query: String,
    /// The comparison that means "breached".
    pub breach_when: Comparison,
    /// The threshold compared with.
    pub threshold: f64,
    /// What an empty result means.
    #[serde(default)]
    pub on_empty: OnEmpty,
}

/// An SLO burn-rate condition: breached when the SLO's error budget burns faster than
/// `maxBurnRate` times the sustainable rate over `window`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BurnRate {
    /// SLO name from the SLO file.
    pub slo: String,
    /// Look-back window (e.g. `5m`).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub window: Duration,
    /// A second, shorter window (e.g. `30s` with `window: 5m`): the condition is breached
    /// only when both windows burn faster than `maxBurnRate`, as the generated alerts do.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub short_window: Option<Duration>,
    /// Burn-rate limit (14.4 burns a 30-day budget's 2% in one hour).
    pub max_burn_rate: f64,
    /// What an empty result means.
    #[serde(default)]
    pub on_empty: OnEmpty,
}

impl BurnRate {
    /// The PromQL of this condition for `slo`: one window's burn rate, or the smaller of
    /// two windows' with `shortWindow`.
    pub fn query(&self, slo: &crate::spec::slo::Slo) -> Option<String> {
        match self.short_window {
            Some(short) => slo.multi_window_burn_rate_query(self.window, short),
            None => slo.burn_rate_query(self.window),
        }
    }
}

/// An HTTP probe: breached when the status differs, the answer is slower than
/// `maxLatency`, or the body lacks `bodyContains`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    /// URL to GET.
    pub url: String,
    /// Expected status code.
    #[serde(default = "ok_status")]
    pub expect_status: u16,
    /// Slowest acceptable answer.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub max_latency: Option<Duration>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Request timeout.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

fn ok_status() -> u16 {
    200
}

/// A reading of the local machine compared with a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostSignal {
    /// What to read.
    pub metric: HostMetric,
    /// The comparison that means "breached".
    pub breach_when: Comparison,
    /// The threshold compared with.
    pub threshold: f64,
}

/// Readings of the local machine, from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HostMetric {
    /// Share of CPU time not idle since the previous check, all CPUs, in percent.
    CpuBusyPercent,
    /// Memory in use (total minus available), in percent.
    MemoryUsedPercent,
    /// One-minute load average.
    Load1,
}
