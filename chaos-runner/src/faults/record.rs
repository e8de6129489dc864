//! What the journal keeps about a live fault: enough for any later process to revert it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::kube;
use super::local::process::PausedTarget;

/// What the journal keeps about a live fault so that any later process can revert it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultRecord {
    /// A CPU hog child process.
    CpuHog {
        /// Its process id.
        pid: u32,
        /// Its start time in clock ticks since boot (`/proc/<pid>/stat` field 22), so a
        /// reused pid is never mistaken for the hog.
        start_ticks: u64,
        /// Its cgroup directories, when confined.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cgroups: Vec<PathBuf>,
    },
    /// A memory hog child process.
    MemoryHog {
        /// Its process id.
        pid: u32,
        /// Its start time in clock ticks since boot.
        start_ticks: u64,
        /// Its cgroup directories, when confined.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cgroups: Vec<PathBuf>,
    },
    /// A disk fill child process and its file.
    DiskFill {
        /// Its process id.
        pid: u32,
        /// Its start time in clock ticks since boot.
        start_ticks: u64,
        /// The fill file (deleted by `recover`).
        file: PathBuf,
    },
    /// Paused processes and the watchdogs that resume them.
    ProcessPaused {
        /// Each paused process.
        targets: Vec<PausedTarget>,
    },
    /// Killed (or restarted) processes: nothing for `recover` to do (a supervised command
    /// ends with its runner; an unsupervised kill was not revertible).
    ProcessKilled {
        /// The processes killed.
        pids: Vec<u32>,
        /// Whether the runner could start it again.
        revertible: bool,
    },
    /// An nftables `inet` table (`net-loss`, `net-partition`).
    NetTable {
        /// The named network namespace, `None` for the host's.
        netns: Option<String>,
        /// The table, named after the run and the fault.
        table: String,
    },
    /// A root qdisc (`net-bandwidth`, `net-delay`).
    NetQdisc {
        /// The named network namespace, `None` for the host's.
        netns: Option<String>,
        /// The interface.
        interface: String,
        /// The qdisc's handle major number, derived from the run and the fault, so only
        /// our own qdisc is ever deleted.
        handle: u16,
    },
    /// A toxic on a TCP fault proxy.
    ProxyToxic {
        /// The admin API of the proxy server; `None` for the run's own in-process proxy
        /// (which ends with the runner, toxic and all).
        api: Option<String>,
        /// The proxy's name.
        proxy: String,
        /// The toxic's name (`chaos-<run id>-<fault>`).
        toxic: String,
    },
    /// A database fault rule on a proxy of a running `chaos-runner proxy`, set over its
    /// admin API (`/proxies/{proxy}/dbfaults`); `recover` deletes it there. It also
    /// expires by itself on the server at the fault's end.
    ProxyDbFault {
        /// The admin API.
        api: String,
        /// The proxy's name.
        proxy: String,
        /// The rule's name (`chaos-<run id>-<fault>`).
        rule: String,
    },
    /// A `spec.setup` service: its process (unknown while it starts) and its directory.
    SetupService {
        /// Its process id, once started.
        #[serde(default)]
        pid: Option<u32>,
        /// Its start time in clock ticks since boot.
        #[serde(default)]
        start_ticks: u64,
        /// Its temporary directory (removed by `recover`).
        dir: PathBuf,
    },
    /// A TCP fault proxy taken down (`enabled: false`).
    ProxyDown {
        /// The admin API; `None` for the run's own in-process proxy.
        api: Option<String>,
        /// The proxy's name.
        proxy: String,
    },
    /// Pods deleted or evicted on Kubernetes (their owners replace them; nothing for
    /// `recover` to do).
    KubePodsKilled {
        /// The namespace.
        namespace: String,
        /// The pods killed.
        pods: Vec<String>,
    },
    /// A NetworkPolicy on Kubernetes (`network-partition`, `db-partition`); `recover`
    /// deletes it, any other policy labelled with the run and fault, and the policy
    /// label of the pods it selected.
    KubeNetworkPolicy {
        /// The namespace.
        namespace: String,
        /// The policy's name.
        name: String,
    },
    /// Containers signalled to stop on Kubernetes (`container-kill`): the kubelet restarts
    /// them; nothing for `recover` to do.
    KubeContainersKilled {
        /// The namespace.
        namespace: String,
        /// The container.
        container: String,
        /// The pods.
        pods: Vec<String>,
    },
    /// Ephemeral helper containers in pods (`pod-cpu-hog`, `pod-memory-hog`,
    /// `pod-net-delay`, `pod-net-loss`); they end by themselves at the fault's end, and
    /// `recover` stops the ones still running with the stopper container.
    KubeEphemeral {
        /// The namespace.
        namespace: String,
        /// The helper container's name.
        container: String,
        /// The pods holding it, with the container each one's helper targets.
        pods: Vec<kube::ephemeral::HelperPod>,
        /// The stopper container's spec (its `targetContainerName` is set per pod).
        stopper: serde_json::Value,
    },
    /// A database Service fronted by a proxy Deployment on Kubernetes (`postgres-*`,
    /// `redis-*` with a `service` selector); `recover` restores the Service's selector
    /// (from its annotation, else from here) and deletes the objects, and any other
    /// object labelled with the run and fault.
    KubeDbProxy {
        /// The namespace.
        namespace: String,
        /// The database Service.
        service: String,
        /// Its selector before the swap (empty in the intent, before it was read).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        original_selector: BTreeMap<String, String>,
        /// The objects the fault creates.
        objects: kube::db_proxy::DbProxyObjects,
    },
}
