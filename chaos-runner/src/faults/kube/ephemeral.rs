//! `pod-cpu-hog`, `pod-memory-hog`, `pod-net-delay` and `pod-net-loss`: an ephemeral
//! container (the "helper") in each picked pod runs `chaos-runner stress cpu|memory|netem`
//! with the fault's duration and an absolute end (`--not-after`), so it ends by itself
//! even if the runner dies, and a helper that starts late still ends with the fault.
//!
//! The helper joins the process namespace of a target container (`targetContainerName`:
//! the `container` parameter, else the pod's first container), so it is not the init of
//! its namespace. Ephemeral containers cannot be removed from a pod, and the API only
//! lets one target a regular container; revert therefore adds a second, short-lived
//! ephemeral container (the "stopper") targeting the same container, which runs
//! `chaos-runner stress stop --run-id R --fault F`: it finds the helper in the shared
//! process namespace by its arguments and sends it SIGTERM (a netem helper then deletes
//! its qdisc). Revert then reads the pods back until every helper shows as terminated.
//! Both containers stay listed in the pod's spec, terminated, until the pod is replaced.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::KubeConnector;
use super::{target, KubeError};
use crate::faults::{Fault, FaultError, FaultRecord};
use crate::helper::HelperCommand;
use crate::spec::PodSelector;

/// How long a helper may take to start (image pull included) before inject gives up.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Waiting reasons that will not fix themselves during a run: inject fails at once.
pub const FATAL_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];
/// How long revert waits for the helpers to show as terminated.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the helper does.
#[derive(Debug, Clone, PartialEq)]
pub enum Helper {
    /// `stress cpu`: `workers` threads at `load` percent.
    Cpu {
        /// Threads.
        workers: u32,
        /// Percent busy.
        load: u8,
    },
    /// `stress memory`: `bytes` held, every page written when `touch`.
    Memory {
        /// Bytes.
        bytes: u64,
        /// Write every page.
        touch: bool,
    },
    /// `stress netem`: a netem root qdisc on `interface` (needs `NET_ADMIN`, as root).
    Netem {
        /// The pod's interface.
        interface: String,
        /// Added delay (zero for none).
        delay: Duration,
        /// Jitter around the delay.
        jitter: Duration,
        /// Loss in percent (zero for none).
        loss_percent: f64,
    },
}

impl Helper {
    fn is_netem(&self) -> bool {
        matches!(self, Helper::Netem { .. })
    }

    /// The helper's command: the stress it does, held `hold`, never past `not_after`
    /// (seconds since the Unix epoch). Stress helpers end at once on SIGTERM (they may be
    /// the init of their PID namespace); the netem helper removes its qdisc first.
    fn command(&self, ids: &HelperIds, hold: Duration, not_after: u64) -> HelperCommand {
        let (run_id, fault) = (ids.run_id.clone(), ids.fault.clone());
        match self {
            Helper::Cpu { workers, load } => HelperCommand::Cpu {
                workers: *workers,
                load: *load,
                duration: hold,
                not_after: Some(not_after),
                run_id,
                fault,
                exit_on_term: true,
            },
            Helper::Memory { bytes, touch } => HelperCommand::Memory {
                bytes: *bytes,
                touch: *touch,
                duration: hold,
                not_after: Some(not_after),
                run_id,
                fault,
                exit_on_term: true,
            },
            Helper::Netem {
                interface,
                delay,
                jitter,
                loss_percent,
            } => HelperCommand::Netem {
                interface: interface.clone(),
                delay: (!delay.is_zero()).then_some(*delay),
                jitter: (!delay.is_zero() && !jitter.is_zero()).then_some(*jitter),
                loss: (*loss_percent > 0.0).then_some(*loss_percent),
                duration: hold,
                not_after: Some(not_after),
                run_id,
                fault,
            },
        }
    }

    /// The helper's security context: a netem helper runs as root with only `NET_ADMIN`;
    /// the stress helpers run as the image's user.
    fn security_context(&self) -> Value {
        if self.is_netem() {
            json!({
                "runAsUser": 0,
                "runAsNonRoot": false,
                "allowPrivilegeEscalation": false,
                "capabilities": { "drop": ["ALL"], "add": ["NET_ADMIN"] },
            })
        } else {
            json!({
                "allowPrivilegeEscalation": false,
                "capabilities": { "drop": ["ALL"] },
            })
        }
    }

    /// The stopper's security context: the helper's user (a process may signal only its
    /// own user's processes without capabilities), no capabilities.
    fn stopper_security_context(&self) -> Value {
        if self.is_netem() {
            json!({
                "runAsUser": 0,
                "runAsNonRoot": false,
                "allowPrivilegeEscalation": false,
                "capabilities": { "drop": ["ALL"] },
            })
        } else {
            json!({
                "allowPrivilegeEscalation": false,
                "capabilities": { "drop": ["ALL"] },
            })
        }
    }
}

/// Where a fault's helper of one pod runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperPod {
    /// The pod.
    pub pod: String,
    /// The container whose process namespace the helper (and its stopper) join.
    pub target: String,
}

/// The helper container's name for `fault` of `run_id` at step `step` (a pod keeps every
/// ephemeral container it ever had, so each step gets a name of its own); the stopper's
/// is this plus `-stop`, both DNS labels.
///
/// ```
/// let n = chaos_runner::faults::kube::ephemeral::helper_name("r-1", "burn", "step-0");
/// assert!(n.starts_with("chaos-burn-"));
/// assert!(format!("{n}-stop").len() <= 63);
/// ```
pub fn helper_name(run_id: &str, fault: &str, step: &str) -> String {
    let short: String = fault
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(36)
        .collect();
    let hash = format!("{run_id}\u{0}{fault}\u{0}{step}")
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    format!("chaos-{}-{hash:08x}", short.trim_matches('-'))
}

/// The environment naming the run, the experiment and the fault on every helper (an
/// ephemeral container carries no labels of its own).
pub(crate) fn run_env(run_id: &str, experiment: &str, fault: &str) -> Value {
    json!([
        { "name": "CHAOS_RUN_ID", "value": run_id },
        { "name": "CHAOS_EXPERIMENT", "value": experiment },
        { "name": "CHAOS_FAULT", "value": fault },
    ])
}

/// The labels of a fault's helpers, for everything that talks about them.
#[derive(Debug, Clone)]
pub struct HelperIds {
    /// The run.
    pub run_id: String,
    /// The experiment.
    pub experiment: String,
    /// The fault.
    pub fault: String,
}

/// The helper container: `chaos-runner <helper args> --duration Ns --not-after T
/// --run-id R --fault F [--exit-on-term]`, joining `target`'s process namespace.
///
/// ```
/// use chaos_runner::faults::kube::ephemeral::{helper_container, Helper, HelperIds};
/// let ids = HelperIds { run_id: "r1".into(), experiment: "e".into(), fault: "burn".into() };
/// let c = helper_container("h", "img:1", "app", &Helper::Cpu { workers: 1, load: 50 }, &ids, 20, 1000);
/// assert_eq!(c["targetContainerName"], "app");
/// assert_eq!(c["args"][0], "stress");
/// ```
pub fn helper_container(
    name: &str,
    image: &str,
    target: &str,
    helper: &Helper,
    ids: &HelperIds,
    hold_secs: u64,
    not_after: u64,
) -> Value {
    let args = helper
        .command(ids, Duration::from_secs(hold_secs.max(1)), not_after)
        .to_args();
    json!({
        "name": name,
        "image": image,
        "command": ["chaos-runner"],
        "args": args,
        "targetContainerName": target,
        "env": run_env(&ids.run_id, &ids.experiment, &ids.fault),
        "securityContext": helper.security_context(),
    })
}

/// The stopper of helper `name` (without `targetContainerName`, added per pod).
pub fn stopper_container(name: &str, image: &str, helper: &Helper, ids: &HelperIds) -> Value {
    json!({
        "name": format!("{name}-stop"),
        "image": image,
        "command": ["chaos-runner"],
        "args": HelperCommand::Stop {
            run_id: ids.run_id.clone(),
            fault: ids.fault.clone(),
            grace: Duration::from_secs(10),
        }
        .to_args(),
        "env": run_env(&ids.run_id, &ids.experiment, &ids.fault),
        "securityContext": helper.stopper_security_context(),
    })
}

/// The state of ephemeral container `name` in `pod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperState {
    /// Not listed in the status (yet).
    Unknown,
    /// Waiting to start, with the kubelet's reason (`ErrImagePull`, ...).
    Waiting(String),
    /// Running.
    Running,
    /// Ended, with its exit code and message.
    Terminated(i32, String),
}

/// Reads the state of ephemeral container `name` from `pod`'s status.
pub fn helper_state(pod: &Pod, name: &str) -> HelperState {
    let Some(status) = pod
        .status
        .as_ref()
        .and_then(|s| s.ephemeral_container_statuses.as_ref())
        .and_then(|list| list.iter().find(|c| c.name == name))
    else {
        return HelperState::Unknown;
    };
    let Some(state) = &status.state else {
        return HelperState::Unknown;
    };
    if let Some(t) = &state.terminated {
        let text = t
            .message
            .clone()
            .or_else(|| t.reason.clone())
            .unwrap_or_default();
        return HelperState::Terminated(t.exit_code, text);
    }
    if state.running.is_some() {
        return HelperState::Running;
    }
    let reason = state
        .waiting
        .as_ref()
        .and_then(|w| w.reason.clone())
        .unwrap_or_default();
    HelperState::Waiting(reason)
}

fn has_ephemeral(pod: &Pod, name: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref())
        .is_some_and(|list| list.iter().any(|c| c.name == name))
}

pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

pub(crate) async fn patch_ephemeral(
    api: &Api<Pod>,
    pod: &str,
    container: Value,
) -> Result<(), kube::Error> {
    let patch = json!({ "spec": { "ephemeralContainers": [container] } });
    api.patch_ephemeral_containers(pod, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map(|_| ())
}

/// Adds the helper to each pod in turn (reading each first for its target container),
/// then waits until every helper runs. On an error, stops the helpers already added
/// and says which pods were hit.
async fn add_helpers(
    client: kube::Client,
    namespace: &str,
    pods: &[String],
    wanted_target: Option<&str>,
    build: impl Fn(&str) -> Value,
    name: &str,
    stopper: &Value,
) -> Result<Vec<HelperPod>, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut hit = Vec::new();
    let mut outcome = Ok(());
    for pod in pods {
        let step = async {
            let current = api
                .get(pod)
                .await
                .map_err(KubeError::api(format!("cannot read pod `{pod}`")))?;
            let containers: Vec<String> = current
                .spec
                .as_ref()
                .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default();
            let target = match wanted_target {
                Some(t) if containers.iter().any(|c| c == t) => t.to_owned(),
                Some(t) => {
                    return Err(KubeError::Refused(format!(
                        "pod `{pod}` has no container `{t}` (it has: {})",
                        containers.join(", ")
                    )))
                }
                None => containers
                    .first()
                    .cloned()
                    .ok_or_else(|| KubeError::Refused(format!("pod `{pod}` lists no container")))?,
            };
            if has_ephemeral(&current, name) {
                return Err(KubeError::Refused(format!(
                    "pod `{pod}` already has an ephemeral container `{name}`"
                )));
            }
            patch_ephemeral(&api, pod, build(&target))
                .await
                .map_err(KubeError::api(format!("cannot add the helper to `{pod}`")))?;
            Ok(target)
        };
        match step.await {
            Ok(target) => {
                tracing::info!(pod = %pod, namespace, container = name, target = %target, "added helper ephemeral container");
                hit.push(HelperPod {
                    pod: pod.clone(),
                    target,
                });
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if outcome.is_ok() {
        outcome = wait_started(&api, &hit, name).await;
    }
    match outcome {
        Ok(()) => Ok(hit),
        Err(e) if hit.is_empty() => Err(e),
        Err(e) => {
            let names: Vec<&str> = hit.iter().map(|h| h.pod.as_str()).collect();
            let cleanup =
                match stop_helpers(client, namespace, &hit, name, stopper, STOP_TIMEOUT).await {
                    Ok(()) => "stopped again".to_owned(),
                    Err(stop) => format!("NOT stopped: {stop}"),
                };
            Err(KubeError::Partly {
                source: Box::new(e),
                cleanup: format!(" (helpers added to {}: {cleanup})", names.join(", ")),
            })
        }
    }
}

/// Waits until every helper runs (or already ended cleanly); a helper that ended with
/// an error or never starts fails the injection.
async fn wait_started(api: &Api<Pod>, hit: &[HelperPod], name: &str) -> Result<(), KubeError> {
    let started = Instant::now();
    loop {
        let mut pending = Vec::new();
        for h in hit {
            let pod = api
                .get(&h.pod)
                .await
                .map_err(KubeError::api(format!("cannot read pod `{}` back", h.pod)))?;
            match helper_state(&pod, name) {
                HelperState::Running | HelperState::Terminated(0, _) => {}
                HelperState::Terminated(code, text) => {
                    return Err(KubeError::Refused(format!(
                        "the helper in `{}` failed (exit {code}): {text}",
                        h.pod
                    )))
                }
                HelperState::Waiting(reason) if FATAL_WAITING.contains(&reason.as_str()) => {
                    return Err(KubeError::Refused(format!(
                        "the helper in `{}` cannot start: {reason}",
                        h.pod
                    )))
                }
                HelperState::Waiting(reason) => pending.push(format!("{} ({reason})", h.pod)),
                HelperState::Unknown => pending.push(format!("{} (no status yet)", h.pod)),
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= START_TIMEOUT {
            return Err(KubeError::Timeout(format!(
                "the helper did not start within {}s in {}",
                START_TIMEOUT.as_secs(),
                pending.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Stops helper `name` early: adds its stopper (targeting the helper's container) to
/// every pod whose helper still runs, then reads the pods back until each helper shows
/// as terminated (a deleted pod took its helper with it) or `limit` passes. What revert
/// and `recover` both do.
pub async fn stop_helpers(
    client: kube::Client,
    namespace: &str,
    pods: &[HelperPod],
    name: &str,
    stopper: &Value,
    limit: Duration,
) -> Result<(), KubeError> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let stop_name = format!("{name}-stop");
    for h in pods {
        let pod = match api.get_opt(&h.pod).await {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                return Err(KubeError::Api {
                    action: format!("cannot read pod `{}`", h.pod),
                    source: Box::new(e),
                })
            }
        };
        if matches!(
            helper_state(&pod, name),
            HelperState::Terminated(..) | HelperState::Waiting(_)
        ) || has_ephemeral(&pod, &stop_name)
        {
            continue;
        }
        let mut stopper = stopper.clone();
        stopper["targetContainerName"] = json!(h.target);
        match patch_ephemeral(&api, &h.pod, stopper).await {
            Ok(()) => {
                tracing::info!(pod = %h.pod, namespace, container = %stop_name, "added stopper ephemeral container")
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(KubeError::Api {
                    action: format!("cannot add the stopper to `{}`", h.pod),
                    source: Box::new(e),
                })
            }
        }
    }
    let started = Instant::now();
    loop {
        let left = still_running(&api, pods, name).await?;
        let (waiting, running): (Vec<_>, Vec<_>) = left
            .into_iter()
            .partition(|(_, s)| matches!(s, HelperState::Waiting(_)));
        if running.is_empty() {
            if waiting.is_empty() {
                return Ok(());
            }
            // A helper that never started cannot be signalled; it ends by itself at the
            // fault's end (`--not-after`) if it ever starts.
            return Err(KubeError::Left(format!(
                "helper `{name}` never started in {} and may still start (it would end by itself at the fault's end)",
                describe(&waiting)
            )));
        }
        if started.elapsed() >= limit {
            return Err(KubeError::Left(format!(
                "helper `{name}` still not terminated after {}s in {}",
                limit.as_secs(),
                describe(&running)
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn describe(pods: &[(String, HelperState)]) -> String {
    pods.iter()
        .map(|(pod, state)| format!("{pod} ({state:?})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every pod of `namespace` holding ephemeral container `name`, with the container it
/// targets (what `recover` stops when the journal lacks the pods).
pub async fn pods_holding(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<HelperPod>, KubeError> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let list = api
        .list(&kube::api::ListParams::default())
        .await
        .map_err(KubeError::api(format!(
            "cannot list the pods of `{namespace}`"
        )))?;
    Ok(list
        .items
        .iter()
        .filter_map(|pod| {
            let helper = pod
                .spec
                .as_ref()?
                .ephemeral_containers
                .as_ref()?
                .iter()
                .find(|c| c.name == name)?;
            Some(HelperPod {
                pod: pod.metadata.name.clone()?,
                target: helper.target_container_name.clone()?,
            })
        })
        .collect())
}

/// The pods (of `pods`) whose helper `name` has not terminated, with its state, read
/// from the cluster (a deleted pod took its helper with it).
pub async fn still_running(
    api: &Api<Pod>,
    pods: &[HelperPod],
    name: &str,
) -> Result<Vec<(String, HelperState)>, KubeError> {
    let mut left = Vec::new();
    for h in pods {
        match api.get_opt(&h.pod).await {
            Ok(Some(pod)) => match helper_state(&pod, name) {
                HelperState::Terminated(..) => {}
                state => left.push((h.pod.clone(), state)),
            },
            Ok(None) => {}
            Err(e) => {
                return Err(KubeError::Api {
                    action: format!("cannot read pod `{}` back", h.pod),
                    source: Box::new(e),
                })
            }
        }
    }
    Ok(left)
}

/// An in-pod helper fault.
pub struct PodHelperFault {
    name: String,
    run_id: String,
    selector: PodSelector,
    helper: Helper,
    image: String,
    target_container: Option<String>,
    ids: HelperIds,
    hold: Duration,
    summary: String,
    kube: Arc<KubeConnector>,
    container_name: String,
    hit: Vec<HelperPod>,
}

impl PodHelperFault {
    /// The fault `name` of run `run_id` (experiment `experiment`) running `helper` from
    /// `image` in the process namespace of `target_container` (the pod's first when
    /// `None`), held for `hold` (the helper's own expiry); `summary` describes the step.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        run_id: &str,
        experiment: &str,
        selector: PodSelector,
        (helper, image, target_container): (Helper, &str, Option<String>),
        summary: String,
        hold: Duration,
        kube: Arc<KubeConnector>,
    ) -> PodHelperFault {
        let step = format!("{summary}\u{0}{}", hold.as_millis());
        PodHelperFault {
            name: name.to_owned(),
            run_id: run_id.to_owned(),
            selector,
            helper,
            image: image.to_owned(),
            target_container,
            ids: HelperIds {
                run_id: run_id.to_owned(),
                experiment: experiment.to_owned(),
                fault: name.to_owned(),
            },
            hold,
            summary,
            kube,
            container_name: helper_name(run_id, name, &step),
            hit: Vec::new(),
        }
    }

    /// The helper container's name.
    pub fn container_name(&self) -> &str {
        &self.container_name
    }

    fn stopper(&self) -> Value {
        stopper_container(&self.container_name, &self.image, &self.helper, &self.ids)
    }

    fn record(&self) -> FaultRecord {
        FaultRecord::KubeEphemeral {
            namespace: self.selector.namespace.clone(),
            container: self.container_name.clone(),
            pods: self.hit.clone(),
            stopper: self.stopper(),
        }
    }

    fn revert_error(&self, reason: impl std::fmt::Display) -> FaultError {
        FaultError::revert(&self.name, reason.to_string())
    }
}

impl Fault for PodHelperFault {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let mut text = format!(
            "{} as `{}` on {}",
            self.summary,
            self.container_name,
            self.selector.summary()
        );
        if !self.hit.is_empty() {
            let names: Vec<&str> = self.hit.iter().map(|h| h.pod.as_str()).collect();
            text.push_str(&format!(": {}", names.join(", ")));
        }
        text
    }

    fn targets(&self) -> Option<Result<Vec<String>, KubeError>> {
        Some(super::resolve_targets(
            &self.kube,
            &self.selector,
            &self.run_id,
            &self.name,
        ))
    }

    fn planned_record(&self) -> Option<FaultRecord> {
        Some(self.record())
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let error = |e: KubeError| FaultError::Inject {
            fault: self.name.clone(),
            reason: e.to_string(),
        };
        let env = self.kube.get().cloned().map_err(error)?;
        let seed = target::seed_for(&self.selector, &self.run_id, &self.name);
        let selector = self.selector.clone();
        let hold_secs = self.hold.as_secs() + u64::from(self.hold.subsec_nanos() > 0);
        let not_after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + hold_secs.max(1);
        let (name, image, helper, ids) = (
            self.container_name.clone(),
            self.image.clone(),
            self.helper.clone(),
            self.ids.clone(),
        );
        let wanted_target = self.target_container.clone();
        let stopper = self.stopper();
        let client = env.client();
        let hit = env
            .block_on(async move {
                let selection = target::select(client.clone(), &selector, seed).await?;
                let pods: Vec<String> = selection.picked.iter().map(|p| p.name.clone()).collect();
                add_helpers(
                    client,
                    &selector.namespace,
                    &pods,
                    wanted_target.as_deref(),
                    |target| {
                        helper_container(&name, &image, target, &helper, &ids, hold_secs, not_after)
                    },
                    &name,
                    &stopper,
                )
                .await
            })
            .map_err(error)?
            .map_err(error)?;
        self.hit = hit;
        Ok(self.record())
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        let env = self.kube.get().cloned().map_err(|e| self.revert_error(e))?;
        let client = env.client();
        let (ns, pods, name, stopper) = (
            self.selector.namespace.clone(),
            self.hit.clone(),
            self.container_name.clone(),
            self.stopper(),
        );
        env.block_on(async move {
            stop_helpers(client, &ns, &pods, &name, &stopper, STOP_TIMEOUT).await
        })
        .map_err(|e| self.revert_error(e))?
        .map_err(|e| self.revert_error(e))
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        let env = self.kube.get().cloned().map_err(|e| self.revert_error(e))?;
        let client = env.client();
        let (ns, pods, name) = (
            self.selector.namespace.clone(),
            self.hit.clone(),
            self.container_name.clone(),
        );
        let running = env
            .block_on(async move {
                let api: Api<Pod> = Api::namespaced(client, &ns);
                still_running(&api, &pods, &name).await
            })
            .map_err(|e| self.revert_error(e))?
            .map_err(|e| self.revert_error(e))?;
        if running.is_empty() {
            Ok(())
        } else {
            Err(self.revert_error(format!(
                "helper `{}` not terminated in {}",
                self.container_name,
                describe(&running)
            )))
        }
    }

    fn measurements(&self) -> Vec<(String, String)> {
        vec![("pods_hit".into(), self.hit.len().to_string())]
    }
}
