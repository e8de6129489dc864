//! Fault parameters and selectors by fault type: the typed form of a fault's
//! `parameters` map (and of each ramp step), and which selector each type needs.
//!
//! Each fault family keeps its parameter structs and checks in its own module; this one
//! maps a [`FaultType`] to them. A new fault type adds one [`FaultParams`] variant, one arm
//! in [`parse`] and one in [`check_selector`].

mod db;
pub mod kube;
pub mod network;
pub mod pod_helper;
mod process;
mod proxy;
mod resource;

pub use self::kube::{DbPartitionParams, NetworkPartitionParams, PodKillParams, PolicyDirection};
pub use db::{
    DbParams, PgSeverity, PostgresErrorParams, PostgresLatencyParams, PostgresRefuseParams,
    PostgresResetParams, RedisErrorParams, RedisLatencyParams,
};
pub use network::{
    NetBandwidthParams, NetDelayParams, NetLossParams, NetPartitionParams, PartitionAction,
};
pub use pod_helper::{
    ContainerKillParams, PodCpuHogParams, PodMemoryHogParams, PodNetDelayParams, PodNetLossParams,
};
pub use process::{KillSignal, ProcessKillParams, ProcessPauseParams, ProcessRestartParams};
pub use proxy::{ProxyAction, ProxyParams, ProxyStream};
pub use resource::{CpuHogParams, DiskFillParams, MemoryHogParams};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::model::{Backend, FaultType, Selector};

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
    /// `memory-hog`.
    MemoryHog(MemoryHogParams),
    /// `disk-fill`.
    DiskFill(DiskFillParams),
    /// `process-kill`.
    ProcessKill(ProcessKillParams),
    /// `process-pause`.
    ProcessPause(ProcessPauseParams),
    /// `process-restart`.
    ProcessRestart(ProcessRestartParams),
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
    /// `postgres-error`, `postgres-latency`, `postgres-reset`, `postgres-refuse`,
    /// `redis-error`, `redis-latency`.
    Db(DbParams),
    /// `pod-kill`.
    PodKill(PodKillParams),
    /// `network-partition`.
    NetworkPartition(NetworkPartitionParams),
    /// `db-partition`.
    DbPartition(DbPartitionParams),
    /// `pod-cpu-hog`.
    PodCpuHog(PodCpuHogParams),
    /// `pod-memory-hog`.
    PodMemoryHog(PodMemoryHogParams),
    /// `pod-net-delay`.
    PodNetDelay(PodNetDelayParams),
    /// `pod-net-loss`.
    PodNetLoss(PodNetLossParams),
    /// `container-kill`.
    ContainerKill(ContainerKillParams),
}

impl FaultParams {
    /// A short human summary of the step, for plans and progress
    /// (`2 worker(s) at 80%`).
    pub fn summary(&self) -> String {
        match self {
            FaultParams::CpuHog(p) => {
                let mut text = format!("{} worker(s) at {}%", p.workers, p.load);
                if p.cgroup {
                    text.push_str(" in a cgroup");
                    if let Some(q) = p.cpu_quota_percent {
                        text.push_str(&format!(" capped at {q}% of a CPU"));
                    }
                }
                text
            }
            FaultParams::MemoryHog(p) => {
                let mut text = format!(
                    "{}{}",
                    p.bytes.display().iec(),
                    if p.touch { " touched" } else { " untouched" }
                );
                if p.cgroup {
                    text.push_str(" in a cgroup");
                    if let Some(limit) = p.memory_limit {
                        text.push_str(&format!(" limited to {}", limit.display().iec()));
                    }
                }
                text
            }
            FaultParams::DiskFill(p) => format!(
                "fill {} with {}, keeping at least {} / {}% free",
                p.path,
                match (p.bytes, p.percent_of_free) {
                    (Some(b), _) => b.display().iec().to_string(),
                    (_, Some(pc)) => format!("{pc}% of the free space"),
                    _ => "nothing".to_owned(),
                },
                p.min_free_bytes.display().iec(),
                p.safety_floor_percent
            ),
            FaultParams::ProcessKill(p) => format!(
                "SIG{}{}",
                p.signal.name(),
                if p.allow_unrevertable {
                    " (unrevertable allowed)"
                } else {
                    ""
                }
            ),
            FaultParams::ProcessPause(_) => "SIGSTOP until the end, then SIGCONT".to_owned(),
            FaultParams::ProcessRestart(p) => format!("SIG{} then start again", p.signal.name()),
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
            FaultParams::Db(p) => p.summary(),
            FaultParams::PodKill(p) => {
                let mut text = if p.evict {
                    "evict (respecting PodDisruptionBudgets)".to_owned()
                } else {
                    "delete".to_owned()
                };
                if let Some(g) = p.grace_period {
                    text.push_str(&format!(
                        " with grace period {}",
                        humantime::format_duration(g)
                    ));
                }
                if p.wait_ready {
                    text.push_str(&format!(
                        ", then wait up to {} for Ready replacements",
                        humantime::format_duration(p.ready_timeout)
                    ));
                }
                text
            }
            FaultParams::NetworkPartition(p) => format!(
                "NetworkPolicy denying {}",
                match p.direction {
                    PolicyDirection::Ingress => "all ingress",
                    PolicyDirection::Egress => "all egress",
                    PolicyDirection::Both => "all ingress and egress",
                }
            ),
            FaultParams::PodCpuHog(p) => format!(
                "ephemeral container ({}) with {} worker(s) at {}%",
                p.image, p.workers, p.load
            ),
            FaultParams::PodMemoryHog(p) => format!(
                "ephemeral container ({}) holding {}{}",
                p.image,
                p.bytes.display().iec(),
                if p.touch { " touched" } else { " untouched" }
            ),
            FaultParams::PodNetDelay(p) => format!(
                "ephemeral container ({}, NET_ADMIN) delaying {} egress {} (jitter {}), {}% lost",
                p.image,
                p.interface,
                humantime::format_duration(p.delay),
                humantime::format_duration(p.jitter),
                p.loss_percent
            ),
            FaultParams::PodNetLoss(p) => format!(
                "ephemeral container ({}, NET_ADMIN) dropping {}% of {} egress",
                p.image, p.loss_percent, p.interface
            ),
            FaultParams::ContainerKill(p) => format!(
                "SIG{} to the main process of container `{}` (ephemeral container, {}), then wait up to {} for its restart",
                p.signal.name(),
                p.container,
                p.image,
                humantime::format_duration(p.restart_timeout)
            ),
            FaultParams::DbPartition(p) => format!(
                "NetworkPolicy denying egress to port {} on {}",
                p.port,
                p.cidr.as_deref().unwrap_or("any address")
            ),
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
        FaultType::MemoryHog => typed(fault_type, at, value, problems).map(FaultParams::MemoryHog),
        FaultType::DiskFill => typed(fault_type, at, value, problems).map(FaultParams::DiskFill),
        FaultType::ProcessKill => {
            typed(fault_type, at, value, problems).map(FaultParams::ProcessKill)
        }
        FaultType::ProcessPause => {
            typed(fault_type, at, value, problems).map(FaultParams::ProcessPause)
        }
        FaultType::ProcessRestart => {
            typed(fault_type, at, value, problems).map(FaultParams::ProcessRestart)
        }
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
        FaultType::PostgresError
        | FaultType::PostgresLatency
        | FaultType::PostgresReset
        | FaultType::PostgresRefuse
        | FaultType::RedisError
        | FaultType::RedisLatency => {
            db::parse(fault_type, at, value, problems).map(FaultParams::Db)
        }
        FaultType::PodKill => typed(fault_type, at, value, problems).map(FaultParams::PodKill),
        FaultType::NetworkPartition => {
            typed(fault_type, at, value, problems).map(FaultParams::NetworkPartition)
        }
        FaultType::DbPartition => {
            typed(fault_type, at, value, problems).map(FaultParams::DbPartition)
        }
        FaultType::PodCpuHog => typed(fault_type, at, value, problems).map(FaultParams::PodCpuHog),
        FaultType::PodMemoryHog => {
            typed(fault_type, at, value, problems).map(FaultParams::PodMemoryHog)
        }
        FaultType::PodNetDelay => {
            typed(fault_type, at, value, problems).map(FaultParams::PodNetDelay)
        }
        FaultType::PodNetLoss => {
            typed(fault_type, at, value, problems).map(FaultParams::PodNetLoss)
        }
        FaultType::ContainerKill => {
            typed(fault_type, at, value, problems).map(FaultParams::ContainerKill)
        }
    }
}

/// Checks that `selector` (at `at`) says what a fault of `fault_type` on `backend` needs,
/// and nothing it would ignore.
pub fn check_selector(
    fault_type: FaultType,
    backend: Backend,
    selector: &Selector,
    at: &str,
    problems: &mut Problems,
) {
    match fault_type {
        FaultType::CpuHog | FaultType::MemoryHog | FaultType::DiskFill => {
            resource::check_host_selector(selector, at, problems)
        }
        FaultType::ProcessKill | FaultType::ProcessPause | FaultType::ProcessRestart => {
            process::check_process_selector(fault_type, selector, at, problems)
        }
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
        | FaultType::ProxyLoss => {
            proxy::check_proxy_selector(selector, at, problems);
            proxy::check_toxic_protocol(selector, at, problems);
        }
        FaultType::ProxyDown => proxy::check_proxy_selector(selector, at, problems),
        FaultType::PostgresError
        | FaultType::PostgresLatency
        | FaultType::PostgresReset
        | FaultType::PostgresRefuse
        | FaultType::RedisError
        | FaultType::RedisLatency => match backend {
            Backend::Kubernetes => self::kube::check_service_selector(selector, at, problems),
            Backend::Local => db::check_db_selector(fault_type, selector, at, problems),
        },
        FaultType::PodKill
        | FaultType::NetworkPartition
        | FaultType::DbPartition
        | FaultType::PodCpuHog
        | FaultType::PodMemoryHog
        | FaultType::PodNetDelay
        | FaultType::PodNetLoss
        | FaultType::ContainerKill => self::kube::check_pod_selector(selector, at, problems),
    }
}

/// Checks that need both a step's parameters (at `at`) and the fault's selector: a kill of
/// a process the runner cannot restart must be allowed explicitly.
pub fn check_with_selector(
    params: &FaultParams,
    selector: &Selector,
    at: &str,
    problems: &mut Problems,
) {
    if let FaultParams::ProcessKill(p) = params {
        process::check_kill_with_selector(p, selector, at, problems);
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
