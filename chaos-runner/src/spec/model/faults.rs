//! The faults of an experiment (`spec.faults`): their types, durations and ramps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

/// Fault types this runner knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FaultType {
    /// Burns CPU: `workers` busy loops at `load` percent each.
    CpuHog,
    /// Drops a share of matching packets (nftables `numgen random`).
    NetLoss,
    /// Drops or rejects every matching packet (nftables).
    NetPartition,
    /// Caps an interface's egress rate (tc `tbf`).
    NetBandwidth,
    /// Delays (and optionally drops) an interface's egress packets (tc `netem`; needs a
    /// kernel with `sch_netem`).
    NetDelay,
    /// Allocates and holds memory (`bytes`), optionally in a cgroup with a limit.
    MemoryHog,
    /// Fills a filesystem with one file, never past a safety floor of free space.
    DiskFill,
    /// Kills a process (SIGKILL or SIGTERM).
    ProcessKill,
    /// Pauses a process (SIGSTOP) until the fault ends (SIGCONT).
    ProcessPause,
    /// Kills a supervised process and starts it again.
    ProcessRestart,
    /// TCP proxy toxic: adds `latency` (+/- `jitter`) to every chunk.
    ProxyLatency,
    /// TCP proxy toxic: limits throughput to `rate` KB/s.
    ProxyBandwidth,
    /// TCP proxy toxic: delays the close of connections by `delay`.
    ProxySlowClose,
    /// TCP proxy toxic: holds all data (`timeout: 0` = partition until reverted), or
    /// closes connections after `timeout`.
    ProxyTimeout,
    /// TCP proxy toxic: resets connections (TCP RST) after `timeout`.
    ProxyResetPeer,
    /// TCP proxy toxic: cuts data into small delayed slices.
    ProxySlicer,
    /// TCP proxy toxic: closes connections after `bytes` bytes.
    ProxyLimitData,
    /// TCP proxy toxic: drops (or, with `delay`, delays) a share of chunks.
    ProxyLoss,
    /// TCP proxy down: refuses new connections and cuts open ones.
    ProxyDown,
    /// PostgreSQL: statements matching a pattern fail with a chosen SQLSTATE.
    PostgresError,
    /// PostgreSQL: statements matching a pattern are delayed.
    PostgresLatency,
    /// PostgreSQL: the connection is reset mid-query on statements matching a pattern.
    PostgresReset,
    /// PostgreSQL: new connections are refused at startup (53300, 57P03) or dropped.
    PostgresRefuse,
    /// Redis: commands matching a pattern fail with a RESP error (`-READONLY`, ...).
    RedisError,
    /// Redis: commands matching a pattern are delayed.
    RedisLatency,
    /// Kubernetes: deletes (or evicts) the picked pods.
    PodKill,
    /// Kubernetes: a NetworkPolicy cutting the picked pods off (ingress, egress or both).
    NetworkPartition,
    /// Kubernetes: a NetworkPolicy denying the picked pods' egress to a database port.
    DbPartition,
    /// Kubernetes: an ephemeral container burning CPU in each picked pod.
    PodCpuHog,
    /// Kubernetes: an ephemeral container holding memory in each picked pod.
    PodMemoryHog,
    /// Kubernetes: an ephemeral container (NET_ADMIN) adding a netem delay in each picked pod.
    PodNetDelay,
    /// Kubernetes: an ephemeral container (NET_ADMIN) adding netem packet loss in each picked pod.
    PodNetLoss,
    /// Kubernetes: a container of each picked pod is sent a signal it catches, and restarts.
    ContainerKill,
}

impl FaultType {
    /// The name as written in experiment files (`cpu-hog`).
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::FaultType::CpuHog.name(), "cpu-hog");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            FaultType::CpuHog => "cpu-hog",
            FaultType::NetLoss => "net-loss",
            FaultType::NetPartition => "net-partition",
            FaultType::NetBandwidth => "net-bandwidth",
            FaultType::NetDelay => "net-delay",
            FaultType::MemoryHog => "memory-hog",
            FaultType::DiskFill => "disk-fill",
            FaultType::ProcessKill => "process-kill",
            FaultType::ProcessPause => "process-pause",
            FaultType::ProcessRestart => "process-restart",
            FaultType::ProxyLatency => "proxy-latency",
            FaultType::ProxyBandwidth => "proxy-bandwidth",
            FaultType::ProxySlowClose => "proxy-slow-close",
            FaultType::ProxyTimeout => "proxy-timeout",
            FaultType::ProxyResetPeer => "proxy-reset-peer",
            FaultType::ProxySlicer => "proxy-slicer",
            FaultType::ProxyLimitData => "proxy-limit-data",
            FaultType::ProxyLoss => "proxy-loss",
            FaultType::ProxyDown => "proxy-down",
            FaultType::PostgresError => "postgres-error",
            FaultType::PostgresLatency => "postgres-latency",
            FaultType::PostgresReset => "postgres-reset",
            FaultType::PostgresRefuse => "postgres-refuse",
            FaultType::RedisError => "redis-error",
            FaultType::RedisLatency => "redis-latency",
            FaultType::PodKill => "pod-kill",
            FaultType::NetworkPartition => "network-partition",
            FaultType::DbPartition => "db-partition",
            FaultType::PodCpuHog => "pod-cpu-hog",
            FaultType::PodMemoryHog => "pod-memory-hog",
            FaultType::PodNetDelay => "pod-net-delay",
            FaultType::PodNetLoss => "pod-net-loss",
            FaultType::ContainerKill => "container-kill",
        }
    }

    /// The backend that runs this fault type.
    ///
    /// ```
    /// use chaos_runner::spec::{Backend, FaultType};
    /// assert_eq!(FaultType::PodKill.backend(), Backend::Kubernetes);
    /// assert_eq!(FaultType::CpuHog.backend(), Backend::Local);
    /// ```
    pub fn backend(self) -> Backend {
        match self {
            FaultType::PodKill
            | FaultType::NetworkPartition
            | FaultType::DbPartition
            | FaultType::PodCpuHog
            | FaultType::PodMemoryHog
            | FaultType::PodNetDelay
            | FaultType::PodNetLoss
            | FaultType::ContainerKill => Backend::Kubernetes,
            _ => Backend::Local,
        }
    }

    /// Whether this fault type runs on `backend`: its own [`FaultType::backend`], and
    /// for the database faults (`postgres-*`, `redis-*`) Kubernetes too (through a proxy
    /// Deployment in front of the database's Service).
    ///
    /// ```
    /// use chaos_runner::spec::{Backend, FaultType};
    /// assert!(FaultType::PostgresLatency.runs_on(Backend::Kubernetes));
    /// assert!(FaultType::PostgresLatency.runs_on(Backend::Local));
    /// assert!(!FaultType::CpuHog.runs_on(Backend::Kubernetes));
    /// ```
    pub fn runs_on(self, backend: Backend) -> bool {
        self.backend() == backend || (backend == Backend::Kubernetes && self.is_db())
    }

    /// Whether this is a protocol-aware database fault (`postgres-*`, `redis-*`).
    ///
    /// ```
    /// assert!(chaos_runner::spec::FaultType::RedisError.is_db());
    /// ```
    pub fn is_db(self) -> bool {
        matches!(
            self,
            FaultType::PostgresError
                | FaultType::PostgresLatency
                | FaultType::PostgresReset
                | FaultType::PostgresRefuse
                | FaultType::RedisError
                | FaultType::RedisLatency
        )
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// Name shown in plans, progress and reports.
    pub name: String,
    /// The kind of fault.
    #[serde(rename = "type")]
    pub fault_type: FaultType,
    /// What the fault hits.
    pub selector: Selector,
    /// Type-specific parameters (cpu-hog: `workers`, `load`).
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// How long the fault stays in (1 s to 24 h).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub duration: Duration,
    /// Grow the fault in steps, checking conditions between them.
    #[serde(default)]
    pub ramp: Option<Ramp>,
}

/// A ramp: each step overrides some parameters and lasts `duration / steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ramp {
    /// Parameter overrides per step, smallest first.
    pub steps: Vec<BTreeMap<String, serde_json::Value>>,
}
