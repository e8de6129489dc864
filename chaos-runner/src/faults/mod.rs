//! Faults: what the engine injects, reverts and verifies. Each carries its own expiry, so a
//! runner that dies cannot leave it live for ever.

pub mod kube;
pub mod local;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use local::process::PausedTarget;
use local::supervisor::Supervisor;

use crate::spec::params::network::NetMatch;
use crate::spec::{FaultParams, FaultSpec, PartitionAction, ValidatedFault};

/// Injecting, reverting or verifying a fault failed.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The fault could not be started.
    #[error("cannot inject {fault}: {reason}")]
    Inject {
        /// Fault name.
        fault: String,
        /// Why.
        reason: String,
    },
    /// The fault could not be removed.
    #[error("cannot revert {fault}: {reason}")]
    Revert {
        /// Fault name.
        fault: String,
        /// Why.
        reason: String,
    },
}

impl FaultError {
    /// The fault `fault` could not be started, because `reason`.
    ///
    /// ```
    /// let e = chaos_runner::faults::FaultError::inject("slow-saves", "proxy not found");
    /// assert_eq!(e.to_string(), "cannot inject slow-saves: proxy not found");
    /// ```
    pub fn inject(fault: &str, reason: impl Into<String>) -> FaultError {
        FaultError::Inject {
            fault: fault.to_owned(),
            reason: reason.into(),
        }
    }

    /// The fault `fault` could not be removed, because `reason`.
    ///
    /// ```
    /// let e = chaos_runner::faults::FaultError::revert("slow-saves", "API down");
    /// assert_eq!(e.to_string(), "cannot revert slow-saves: API down");
    /// ```
    pub fn revert(fault: &str, reason: impl Into<String>) -> FaultError {
        FaultError::Revert {
            fault: fault.to_owned(),
            reason: reason.into(),
        }
    }
}

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

/// A fault the engine drives: inject, revert, verify.
pub trait Fault: Send {
    /// Name shown in plans, progress and reports.
    fn name(&self) -> &str;
    /// One line saying exactly what is injected.
    fn describe(&self) -> String;
    /// Injects the fault and returns what the journal must keep to revert it. The engine
    /// journals the intent before calling this, and the record after.
    fn inject(&mut self) -> Result<FaultRecord, FaultError>;
    /// What the journal should keep with the intent, when the fault knows before
    /// injecting how it will be found (e.g. a remote proxy toxic whose name is fixed), so
    /// `recover` can revert it even if the runner dies during the injection.
    fn planned_record(&self) -> Option<FaultRecord> {
        None
    }
    /// Removes the fault.
    fn revert(&mut self) -> Result<(), FaultError>;
    /// Checks that nothing of the fault is left.
    fn verify_reverted(&self) -> Result<(), FaultError>;
    /// Checks, before anything is touched, that the fault can run here (e.g. that the
    /// kernel has the qdisc it needs). The default resolves [`Fault::targets`], so a
    /// Kubernetes fault with nothing to hit or a refused pick fails before anything
    /// changes; faults without targets check nothing.
    fn preflight(&self) -> Result<(), FaultError> {
        self.targets()
            .unwrap_or(Ok(Vec::new()))
            .map(|_| ())
            .map_err(|reason| FaultError::Inject {
                fault: self.name().to_owned(),
                reason,
            })
    }
    /// Whether revert puts the system back (false: e.g. a process the runner could not
    /// restart was killed by request); the report says so.
    fn revertible(&self) -> bool {
        true
    }
    /// What the fault measured (name, value), copied into the report after revert (e.g.
    /// a supervised command's outage, a cgroup's peak memory).
    fn measurements(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// What the fault would hit if injected now (`namespace/pod`), resolved read-only;
    /// `None` for faults whose target is fixed by the selector alone (local ones).
    fn targets(&self) -> Option<Result<Vec<String>, String>> {
        None
    }
}

/// What every fault of one run shares: the run id (which names everything a fault
/// creates, so `recover` can find it), the runner's own binary (which runs the
/// stress children) and the run's in-process TCP fault proxies.
#[derive(Debug, Clone)]
pub struct FaultContext {
    /// The run id.
    pub run_id: String,
    /// This runner's executable.
    pub exe: PathBuf,
    /// The supervised commands of the run, by fault name (`process: { command: ... }`).
    pub supervisors: Arc<BTreeMap<String, Arc<Supervisor>>>,
    /// The run's own proxies (started on first use, stopped when the run ends).
    pub proxies: local::proxy_fault::ProxyPool,
    /// The experiment's name (a label on every Kubernetes object the run creates).
    pub experiment: String,
    /// The Kubernetes client, connected on first use.
    pub kube: Arc<kube::KubeConnector>,
}

impl FaultContext {
    /// The context of run `run_id` whose runner binary is `exe`.
    pub fn new(run_id: impl Into<String>, exe: impl Into<PathBuf>) -> FaultContext {
        FaultContext {
            run_id: run_id.into(),
            exe: exe.into(),
            proxies: Default::default(),
            supervisors: Default::default(),
            experiment: String::new(),
            kube: Arc::new(kube::KubeConnector::lazy()),
        }
    }
}

/// The supervised command a fault's selector asks for, if any.
///
/// ```
/// let s = chaos_runner::spec::Selector::default();
/// assert!(chaos_runner::faults::supervised_command("f", &s).is_none());
/// ```
pub fn supervised_command(
    name: &str,
    selector: &crate::spec::Selector,
) -> Option<local::supervisor::SupervisedCommand> {
    let p = selector.process.as_ref()?;
    Some(local::supervisor::SupervisedCommand {
        name: name.to_owned(),
        argv: p.command.clone()?,
        restart: p.restart.unwrap_or_default(),
        ready_port: p.ready_port,
        ready_timeout: p.ready_timeout.unwrap_or(Duration::from_secs(10)),
    })
}

/// How the supervised command of `selector` is launched: its `env`, its `cwd` and a
/// relative program path (one with a `/`) both taken relative to `here` (the runner's
/// working directory), and its `readyHttp`; its output is discarded. The defaults when
/// the selector names no command.
///
/// ```
/// use chaos_runner::spec::{ProcessSelector, Selector};
/// let s = Selector {
///     process: Some(ProcessSelector {
///         command: Some(vec!["bin/game".into()]),
///         cwd: Some("srv".into()),
///         env: [("GAME_LISTEN".to_owned(), "127.0.0.1:18080".to_owned())].into(),
///         ..Default::default()
///     }),
///     ..Default::default()
/// };
/// let (argv0, launch) = chaos_runner::faults::supervised_launch(&s, std::path::Path::new("/repo"));
/// assert_eq!(argv0.as_deref(), Some("/repo/bin/game"));
/// assert_eq!(launch.cwd, Some(std::path::PathBuf::from("/repo/srv")));
/// assert_eq!(launch.env, vec![("GAME_LISTEN".to_owned(), "127.0.0.1:18080".to_owned())]);
/// ```
pub fn supervised_launch(
    selector: &crate::spec::Selector,
    here: &std::path::Path,
) -> (Option<String>, local::supervisor::Launch) {
    let mut launch = local::supervisor::Launch::default();
    let Some(p) = selector.process.as_ref().filter(|p| p.command.is_some()) else {
        return (None, launch);
    };
    launch.env = p.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    launch.cwd = p.cwd.as_ref().map(|c| here.join(c));
    launch.ready_http = p.ready_http.clone();
    let program = p
        .command
        .as_ref()
        .and_then(|argv| argv.first())
        .filter(|a| a.contains('/') && std::path::Path::new(a).is_relative())
        .map(|a| here.join(a).display().to_string());
    (program, launch)
}

/// Builds the fault for one step of `fault` with `params` (one of its steps), to hold for
/// at most `remaining` (its own expiry). Nothing is injected until [`Fault::inject`].
///
/// ```
/// use chaos_runner::faults::{build, FaultContext};
/// let exp = chaos_runner::spec::load_experiment(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/local/cpu-hog.yaml"))).unwrap();
/// let ctx = FaultContext::new("r1", "/bin/false");
/// let hog = &exp.faults[0];
/// let fault = build(&ctx, hog, &hog.steps[0], std::time::Duration::from_secs(1));
/// assert!(fault.describe().contains("worker"));
/// ```
pub fn build(
    ctx: &FaultContext,
    fault: &ValidatedFault,
    params: &FaultParams,
    remaining: Duration,
) -> Box<dyn Fault> {
    let spec = &fault.spec;
    match params {
        FaultParams::CpuHog(p) => Box::new(local::cpu_hog::CpuHog::new(
            &spec.name,
            &ctx.run_id,
            *p,
            remaining,
            ctx.exe.clone(),
        )),
        FaultParams::Db(p) => match &spec.selector.service {
            Some(service) => Box::new(kube::db_proxy::DbProxyFault::new(
                (&spec.name, spec.fault_type.name()),
                (&ctx.run_id, &ctx.experiment),
                p.clone(),
                service.clone(),
                remaining,
                ctx.kube.clone(),
            )),
            None => Box::new(local::db_fault::DbFault::new(
                &spec.name,
                spec.fault_type.name(),
                &ctx.run_id,
                p.clone(),
                &spec.selector.proxy.clone().unwrap_or_default(),
                &ctx.proxies,
                remaining,
            )),
        },
        FaultParams::MemoryHog(p) => Box::new(local::memory_hog::MemoryHog::new(
            &spec.name,
            &ctx.run_id,
            *p,
            remaining,
            ctx.exe.clone(),
        )),
        FaultParams::DiskFill(p) => Box::new(local::disk_fill::DiskFill::new(
            &spec.name,
            &ctx.run_id,
            p.clone(),
            remaining,
            ctx.exe.clone(),
        )),
        FaultParams::ProcessKill(_)
        | FaultParams::ProcessPause(_)
        | FaultParams::ProcessRestart(_) => {
            let action = match params {
                FaultParams::ProcessKill(p) => local::process::Action::Kill(*p),
                FaultParams::ProcessRestart(p) => local::process::Action::Restart(*p),
                _ => local::process::Action::Pause,
            };
            Box::new(local::process::ProcessFault::new(
                &spec.name,
                &ctx.run_id,
                action,
                spec.selector.process.clone().unwrap_or_default(),
                ctx.supervisors.get(&spec.name).cloned(),
                remaining,
                ctx.exe.clone(),
            ))
        }
        FaultParams::NetLoss(p) => net_filter(
            ctx,
            fault,
            local::nftables::Action::Loss(p.percent),
            remaining,
        ),
        FaultParams::NetPartition(p) => net_filter(
            ctx,
            fault,
            match p.action {
                PartitionAction::Drop => local::nftables::Action::Drop,
                PartitionAction::Reject => local::nftables::Action::Reject,
            },
            remaining,
        ),
        FaultParams::NetBandwidth(p) => {
            qdisc(ctx, fault, local::tc::Shape::Bandwidth(*p), remaining)
        }
        FaultParams::NetDelay(p) => qdisc(ctx, fault, local::tc::Shape::Delay(*p), remaining),
        FaultParams::PodKill(p) => Box::new(kube::pod_kill::PodKill::new(
            &spec.name,
            &ctx.run_id,
            spec.selector.pods.clone().unwrap_or_default(),
            *p,
            ctx.kube.clone(),
        )),
        FaultParams::PodCpuHog(p) => pod_helper(
            ctx,
            spec,
            params,
            kube::ephemeral::Helper::Cpu {
                workers: p.workers,
                load: p.load,
            },
            (&p.image, &p.container),
            remaining,
        ),
        FaultParams::PodMemoryHog(p) => pod_helper(
            ctx,
            spec,
            params,
            kube::ephemeral::Helper::Memory {
                bytes: p.bytes.as_u64(),
                touch: p.touch,
            },
            (&p.image, &p.container),
            remaining,
        ),
        FaultParams::PodNetDelay(p) => pod_helper(
            ctx,
            spec,
            params,
            kube::ephemeral::Helper::Netem {
                interface: p.interface.clone(),
                delay: p.delay,
                jitter: p.jitter,
                loss_percent: p.loss_percent,
            },
            (&p.image, &p.container),
            remaining,
        ),
        FaultParams::PodNetLoss(p) => pod_helper(
            ctx,
            spec,
            params,
            kube::ephemeral::Helper::Netem {
                interface: p.interface.clone(),
                delay: Duration::ZERO,
                jitter: Duration::ZERO,
                loss_percent: p.loss_percent,
            },
            (&p.image, &p.container),
            remaining,
        ),
        FaultParams::ContainerKill(p) => Box::new(kube::container_kill::ContainerKill::new(
            &spec.name,
            &ctx.run_id,
            &ctx.experiment,
            spec.selector.pods.clone().unwrap_or_default(),
            p.clone(),
            remaining,
            ctx.kube.clone(),
        )),
        FaultParams::NetworkPartition(p) => policy_fault(
            ctx,
            spec,
            kube::network_policy::PolicyKind::Partition(p.direction),
        ),
        FaultParams::DbPartition(p) => policy_fault(
            ctx,
            spec,
            kube::network_policy::PolicyKind::Database(p.clone()),
        ),
        FaultParams::Proxy(p) => Box::new(local::proxy_fault::ProxyFault::new(
            &spec.name,
            spec.fault_type.name(),
            &ctx.run_id,
            p.clone(),
            &spec.selector.proxy.clone().unwrap_or_default(),
            &ctx.proxies,
            remaining,
        )),
    }
}

fn pod_helper(
    ctx: &FaultContext,
    spec: &FaultSpec,
    params: &FaultParams,
    helper: kube::ephemeral::Helper,
    (image, container): (&str, &Option<String>),
    remaining: Duration,
) -> Box<dyn Fault> {
    Box::new(kube::ephemeral::PodHelperFault::new(
        &spec.name,
        &ctx.run_id,
        &ctx.experiment,
        spec.selector.pods.clone().unwrap_or_default(),
        (helper, image, container.clone()),
        params.summary(),
        remaining,
        ctx.kube.clone(),
    ))
}

fn policy_fault(
    ctx: &FaultContext,
    spec: &FaultSpec,
    kind: kube::network_policy::PolicyKind,
) -> Box<dyn Fault> {
    Box::new(kube::network_policy::PolicyFault::new(
        &spec.name,
        &ctx.run_id,
        &ctx.experiment,
        spec.selector.pods.clone().unwrap_or_default(),
        kind,
        ctx.kube.clone(),
    ))
}

fn net_filter(
    ctx: &FaultContext,
    fault: &ValidatedFault,
    action: local::nftables::Action,
    remaining: Duration,
) -> Box<dyn Fault> {
    Box::new(local::nftables::NetFilter::new(
        &fault.spec.name,
        &ctx.run_id,
        network_match(fault),
        action,
        remaining,
        ctx.exe.clone(),
    ))
}

fn qdisc(
    ctx: &FaultContext,
    fault: &ValidatedFault,
    shape: local::tc::Shape,
    remaining: Duration,
) -> Box<dyn Fault> {
    let m = network_match(fault);
    Box::new(local::tc::Qdisc::new(
        &fault.spec.name,
        &ctx.run_id,
        m.as_ref().ok().and_then(|m| m.netns.clone()),
        m.and_then(|m| {
            m.interface
                .ok_or_else(|| "the selector names no `interface`".to_owned())
        }),
        shape,
        remaining,
        ctx.exe.clone(),
    ))
}

/// The resolved network selector of a network fault (validation requires one; its
/// absence fails the injection instead of panicking).
fn network_match(fault: &ValidatedFault) -> Result<NetMatch, String> {
    fault
        .network
        .clone()
        .ok_or_else(|| "the selector has no `network` part".to_owned())
}

/// Reverts a fault known only from the journal (after a crash): by its record when the
/// journal has one, else (the runner died between the intent and the injection) by
/// sweeping every backend for what run `run_id` may have left under the name `name`.
pub fn revert_from_journal(
    run_id: &str,
    name: &str,
    record: Option<&FaultRecord>,
) -> Result<(), FaultError> {
    revert_from_journal_with(run_id, name, record, &kube::KubeConnector::lazy())
}

/// [`revert_from_journal`] with a given Kubernetes client (connected on first use when
/// lazy; only Kubernetes records use it).
pub fn revert_from_journal_with(
    run_id: &str,
    name: &str,
    record: Option<&FaultRecord>,
    kube_client: &kube::KubeConnector,
) -> Result<(), FaultError> {
    let revert_error = |reason: String| FaultError::Revert {
        fault: name.to_owned(),
        reason,
    };
    let remove_cgroups = |dirs: &[PathBuf]| -> Result<(), FaultError> {
        for dir in dirs {
            local::cgroup::remove_dir(dir).map_err(|e| revert_error(e.to_string()))?;
        }
        Ok(())
    };
    match record {
        Some(FaultRecord::CpuHog {
            pid,
            start_ticks,
            cgroups,
        })
        | Some(FaultRecord::MemoryHog {
            pid,
            start_ticks,
            cgroups,
        }) => {
            local::cpu_hog::kill_if_ours(name, *pid, *start_ticks)?;
            remove_cgroups(cgroups)
        }
        Some(FaultRecord::DiskFill {
            pid,
            start_ticks,
            file,
        }) => {
            if *pid == 0 {
                // Journaled with the intent, before the child started: stop whatever
                // child of this fault may have started since.
                local::sweep(run_id, name).map_err(revert_error)?;
            } else {
                local::child::stop_if_ours(
                    *pid,
                    *start_ticks,
                    libc::SIGTERM,
                    Duration::from_secs(3),
                )
                .map_err(revert_error)?;
            }
            local::disk_fill::remove_fill(file).map_err(revert_error)
        }
        Some(FaultRecord::ProcessPaused { targets }) => {
            local::process::resume_from_journal(targets).map_err(revert_error)
        }
        Some(FaultRecord::ProcessKilled { .. }) => Ok(()),
        Some(FaultRecord::SetupService {
            pid,
            start_ticks,
            dir,
        }) => crate::setup::revert_record(*pid, *start_ticks, dir).map_err(revert_error),
        Some(FaultRecord::NetTable { netns, table }) => {
            local::nftables::revert_record(name, netns.as_deref(), table)
        }
        Some(FaultRecord::NetQdisc {
            netns,
            interface,
            handle,
        }) => local::tc::revert_record(name, netns.as_deref(), interface, *handle),
        Some(
            r @ (FaultRecord::ProxyToxic { .. }
            | FaultRecord::ProxyDown { .. }
            | FaultRecord::ProxyDbFault { .. }),
        ) => local::proxy_fault::revert_record(name, r)
            .and_then(|()| local::proxy_fault::verify_record(name, r)),
        Some(
            r @ (FaultRecord::KubePodsKilled { .. }
            | FaultRecord::KubeNetworkPolicy { .. }
            | FaultRecord::KubeEphemeral { .. }
            | FaultRecord::KubeContainersKilled { .. }
            | FaultRecord::KubeDbProxy { .. }),
        ) => kube::revert_record(kube_client, run_id, name, r).map_err(revert_error),
        None => revert_unknown(run_id, name),
    }
}

/// Removes whatever any backend may have left for `run_id`'s fault `name` when the
/// journal holds only the intent. Proxy faults need no sweep here: an in-run proxy died
/// with its runner, and a remote one's API is journaled with the intent
/// ([`Fault::planned_record`]), so `recover` reverts it by its record.
fn revert_unknown(run_id: &str, name: &str) -> Result<(), FaultError> {
    local::sweep(run_id, name).map_err(|reason| FaultError::Revert {
        fault: name.to_owned(),
        reason,
    })?;
    let net_error = |e: local::netcmd::NetCmdError| FaultError::Revert {
        fault: name.to_owned(),
        reason: e.to_string(),
    };
    local::nftables::sweep(&local::nftables::table_name(run_id, name)).map_err(net_error)?;
    local::tc::sweep(local::tc::handle_for(run_id, name)).map_err(net_error)
}
