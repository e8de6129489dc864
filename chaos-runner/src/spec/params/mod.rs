//! Fault parameters and selectors by fault type: the typed form of a fault's
//! `parameters` map (and of each ramp step), and which selector each type needs.
//!
//! Each fault family keeps its parameter structs and checks in its own module; this one
//! maps a [`FaultType`] to them. A new fault type adds one [`FaultParams`] variant, one arm
//! in [`parse`] and one in [`check_selector`].

pub mod network;
mod proxy;
mod resource;

pub use network::{
    NetBandwidthParams, NetDelayParams, NetLossParams, NetPartitionParams, PartitionAction,
};

pub use proxy::{ProxyAction, ProxyParams, ProxyStream};
pub use resource::CpuHogParams;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::model::{FaultType, Selector};

/// Problems found in one fault's parameters or selector, each with its field path.
///
/// ```
/// let mut p = chaos_runner::spec::Problems::default();
/// assert!(!p.check(false, "spec.faults[0].parameters.load", "must be a percentage"));
/// assert_eq!(p.found().len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct Problems {
    found: Vec<(String, String)>,
}

impl Problems {
    /// Records `message` against `field` unless `ok`; returns `ok`.
    pub fn check(
        &mut self,
        ok: bool,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> bool {
        if !ok {
            self.found.push((field.into(), message.into()));
        }
        ok
    }

    /// The problems so far, as `(field path, message)`.
    pub fn found(&self) -> &[(String, String)] {
        &self.found
    }

    pub(crate) fn into_found(self) -> Vec<(String, String)> {
        self.found
    }
}

/// Range and consistency checks of one parameter struct, reported under the field path
/// `at` (e.g. `spec.faults[0].parameters`).
pub trait CheckParams {
    /// Records every problem of `self` in `problems`.
    fn check(&self, at: &str, problems: &mut Problems);
}

/// The parameters of one fault step, typed by fault type.
///
/// ```
/// use chaos_runner::spec::{params, FaultParams, FaultType, Problems};
/// let mut problems = Problems::default();
/// let p = params::parse(FaultType::CpuHog, "p", serde_json::json!({"workers": 1, "load": 50}), &mut problems);
/// assert!(matches!(p, Some(FaultParams::CpuHog(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FaultParams {
    /// `cpu-hog`.
    CpuHog(CpuHogParams),
    /// `net-loss`.
    NetLoss(NetLossParams),
    /// `net-partition`.
    NetPartition(NetPartitionParams),
    /// `net-bandwidth`.
    NetBandwidth(NetBandwidthParams),
    /// `net-delay`.
    NetDelay(NetDelayParams),
    /// `proxy-latency`, `proxy-bandwidth`, ..., `proxy-down`.
    Proxy(ProxyParams),
}

impl FaultParams {
    /// A short human summary of the step, for plans and progress
    /// (`2 worker(s) at 80%`).
    pub fn summary(&self) -> String {
        match self {
            FaultParams::CpuHog(p) => format!("{} worker(s) at {}%", p.workers, p.load),
            FaultParams::NetLoss(p) => format!("drop {}% of matching packets", p.percent),
            FaultParams::NetPartition(p) => match p.action {
                PartitionAction::Drop => "drop every matching packet".to_owned(),
                PartitionAction::Reject => "reject every matching packet".to_owned(),
            },
            FaultParams::NetBandwidth(p) => format!("egress capped at {} kbit/s", p.rate_kbit),
            FaultParams::NetDelay(p) => format!(
                "egress delayed {} (jitter {}), {}% lost",
                humantime::format_duration(p.delay),
                humantime::format_duration(p.jitter),
                p.loss_percent
            ),
            FaultParams::Proxy(p) => p.summary(),
        }
    }
}

/// Parses and checks `value` (a fault's parameters merged with a ramp step's) as the
/// parameters of `fault_type`; problems go to `problems` under `at`.
pub fn parse(
    fault_type: FaultType,
    at: &str,
    value: serde_json::Value,
    problems: &mut Problems,
) -> Option<FaultParams> {
    match fault_type {
        FaultType::CpuHog => typed(fault_type, at, value, problems).map(FaultParams::CpuHog),
        FaultType::NetLoss => typed(fault_type, at, value, problems).map(FaultParams::NetLoss),
        FaultType::NetPartition => {
            typed(fault_type, at, value, problems).map(FaultParams::NetPartition)
        }
        FaultType::NetBandwidth => {
            typed(fault_type, at, value, problems).map(FaultParams::NetBandwidth)
        }
        FaultType::NetDelay => typed(fault_type, at, value, problems).map(FaultParams::NetDelay),
        FaultType::ProxyLatency
        | FaultType::ProxyBandwidth
        | FaultType::ProxySlowClose
        | FaultType::ProxyTimeout
        | FaultType::ProxyResetPeer
        | FaultType::ProxySlicer
        | FaultType::ProxyLimitData
        | FaultType::ProxyLoss
        | FaultType::ProxyDown => {
            proxy::parse(fault_type, at, value, problems).map(FaultParams::Proxy)
        }
    }
}

/// Checks that `selector` (at `at`) says what a fault of `fault_type` needs, and nothing
/// it would ignore.
pub fn check_selector(
    fault_type: FaultType,
    selector: &Selector,
    at: &str,
    problems: &mut Problems,
) {
    match fault_type {
        FaultType::CpuHog => resource::check_host_selector(selector, at, problems),
        FaultType::NetLoss
        | FaultType::NetPartition
        | FaultType::NetBandwidth
        | FaultType::NetDelay => {
            network::check_network_selector(fault_type, selector, at, problems)
        }
        FaultType::ProxyLatency
        | FaultType::ProxyBandwidth
        | FaultType::ProxySlowClose
        | FaultType::ProxyTimeout
        | FaultType::ProxyResetPeer
        | FaultType::ProxySlicer
        | FaultType::ProxyLimitData
        | FaultType::ProxyLoss
        | FaultType::ProxyDown => proxy::check_proxy_selector(selector, at, problems),
    }
}

/// Deserializes `value` into `T` (the error names the field inside the parameters), then
/// runs `T`'s own checks. `None` when anything is wrong.
fn typed<T: DeserializeOwned + CheckParams>(
    fault_type: FaultType,
    at: &str,
    value: serde_json::Value,
    problems: &mut Problems,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(params) => {
            let before = problems.found().len();
            params.check(at, problems);
            (problems.found().len() == before).then_some(params)
        }
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                at.to_owned()
            } else {
                format!("{at}.{path}")
            };
            problems.check(
                false,
                field,
                format!("{} parameters: {}", fault_type.name(), e.inner()),
            );
            None
        }
    }
}

/// Refuses selector parts a fault type does not use, so a typo'd target never silently
/// means "everything".
pub(crate) fn only(selector: &Selector, at: &str, allowed: &[&str], problems: &mut Problems) {
    for (part, present) in selector.parts() {
        problems.check(
            !present || allowed.contains(&part),
            format!("{at}.{part}"),
            format!(
                "not used by this fault type (it takes: {})",
                allowed.join(", ")
            ),
        );
    }
}
