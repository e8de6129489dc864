//! `container-kill`: stops one container of each picked pod so the kubelet restarts it.
//!
//! The API has no "kill a container" call, and a signal sent from inside a PID namespace
//! to its init (the container's main process) is dropped by the kernel unless the process
//! catches it: SIGKILL from inside never arrives. Chaos Mesh and Litmus kill through the
//! node's container runtime (a privileged daemon with the runtime socket), which this
//! runner does not deploy. Instead a one-shot ephemeral container joins the target
//! container's process namespace (`targetContainerName`) and runs
//! `chaos-runner stress signal-init --signal TERM`: it checks in `/proc/1/status` that the
//! main process takes the signal (catches or waits for it) and sends it; otherwise it
//! fails, saying so, and so does the injection. The process shuts down as it does on
//! SIGTERM from the kubelet, and the container restarts under the pod's restart policy.
//!
//! Inject records each container's `restartCount` and waits for the helper's exit;
//! revert waits (up to `restartTimeout`) until every container has restarted and is
//! Ready again, measuring how long that took; both read the pods back.

use crate::helper::HelperCommand;
use crate::spec::params::pod_helper::CatchableSignal;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::KubeConnector;
use super::ephemeral::{self, HelperState};
use super::{target, KubeError};
use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::{ContainerKillParams, PodSelector};

/// A container hit: its pod and restart count before the signal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hit {
    pod: String,
    restarts_before: i32,
}

/// The restart count and readiness of container `name` in `pod`.
fn container_status(pod: &Pod, name: &str) -> Option<(i32, bool)> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|l| l.iter().find(|c| c.name == name))
        .map(|c| (c.restart_count, c.ready))
}

/// A `container-kill` fault.
pub struct ContainerKill {
    name: String,
    run_id: String,
    experiment: String,
    selector: PodSelector,
    params: ContainerKillParams,
    hold: Duration,
    kube: Arc<KubeConnector>,
    helper_name: String,
    hit: Vec<Hit>,
    signalled_at: Option<Instant>,
    measurements: Vec<(String, String)>,
}

impl ContainerKill {
    /// The fault `name` of run `run_id` (experiment `experiment`), killing container
    /// `params.container` of the pods `selector` picks; `hold` bounds the helper's life.
    pub fn new(
        name: &str,
        run_id: &str,
        experiment: &str,
        selector: PodSelector,
        params: ContainerKillParams,
        hold: Duration,
        kube: Arc<KubeConnector>,
    ) -> ContainerKill {
        let step = format!("container-kill\u{0}{}", hold.as_millis());
        ContainerKill {
            name: name.to_owned(),
            run_id: run_id.to_owned(),
            experiment: experiment.to_owned(),
            selector,
            params,
            hold,
            kube,
            helper_name: ephemeral::helper_name(run_id, name, &step),
            hit: Vec::new(),
            signalled_at: None,
            measurements: Vec::new(),
        }
    }

    fn record(&self) -> FaultRecord {
        FaultRecord::KubeContainersKilled {
            namespace: self.selector.namespace.clone(),
            container: self.params.container.clone(),
            pods: self.hit.iter().map(|h| h.pod.clone()).collect(),
        }
    }

    fn error(&self, inject: bool, reason: impl std::fmt::Display) -> FaultError {
        let reason = reason.to_string();
        if inject {
            FaultError::Inject {
                fault: self.name.clone(),
                reason,
            }
        } else {
            FaultError::Revert {
                fault: self.name.clone(),
                reason,
            }
        }
    }
}

/// The one-shot helper that signals the target container's main process.
///
/// ```
/// use chaos_runner::spec::params::pod_helper::CatchableSignal;
/// let c = chaos_runner::faults::kube::container_kill::signal_container(
///     "chaos-k-1", "img:1", "app", CatchableSignal::default(), ("r1", "exp", "k"), 99);
/// assert_eq!(c["args"][1], "signal-init");
/// assert_eq!(c["securityContext"]["capabilities"]["add"][0], "KILL");
/// ```
pub fn signal_container(
    name: &str,
    image: &str,
    target: &str,
    signal: CatchableSignal,
    (run_id, experiment, fault): (&str, &str, &str),
    not_after: u64,
) -> serde_json::Value {
    json!({
        "name": name,
        "image": image,
        "command": ["chaos-runner"],
        "args": HelperCommand::SignalInit {
            signal,
            not_after: Some(not_after),
            run_id: run_id.to_owned(),
            fault: fault.to_owned(),
        }
        .to_args(),
        "targetContainerName": target,
        "env": ephemeral::run_env(run_id, experiment, fault),
        // Root with only CAP_KILL: the target's main process may run as any user.
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": false,
            "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"], "add": ["KILL"] },
        },
    })
}

impl Fault for ContainerKill {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let mut text = format!(
            "{} on {}",
            crate::spec::FaultParams::ContainerKill(self.params.clone()).summary(),
            self.selector.summary()
        );
        if !self.hit.is_empty() {
            let names: Vec<&str> = self.hit.iter().map(|h| h.pod.as_str()).collect();
            text.push_str(&format!(": {}", names.join(", ")));
        }
        text
    }

    fn preflight(&self) -> Result<(), FaultError> {
        self.targets()
            .unwrap_or(Ok(Vec::new()))
            .map(|_| ())
            .map_err(|e| self.error(true, e))
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
        let env = self.kube.get().cloned().map_err(|e| self.error(true, e))?;
        let seed = target::seed_for(&self.selector, &self.run_id, &self.name);
        let selector = self.selector.clone();
        let hold_secs = self.hold.as_secs().max(1);
        let not_after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + hold_secs;
        let container = self.params.container.clone();
        let helper = signal_container(
            &self.helper_name,
            &self.params.image,
            &container,
            self.params.signal,
            (&self.run_id, &self.experiment, &self.name),
            not_after,
        );
        let helper_name = self.helper_name.clone();
        let client = env.client();
        let outcome = env
            .block_on(async move {
                let selection = target::select(client.clone(), &selector, seed)
                    .await
                    .map_err(|e| (KubeError::from(e), Vec::new()))?;
                let api: Api<Pod> = Api::namespaced(client, &selector.namespace);
                let mut hit = Vec::new();
                for picked in &selection.picked {
                    let pod = match api.get(&picked.name).await {
                        Ok(p) => p,
                        Err(source) => {
                            let action = format!("cannot read pod `{}`", picked.name);
                            return Err((KubeError::Api {
    action,
    source: Box::new(source),
}, hit));
                        }
                    };
                    let Some((restarts_before, _)) = container_status(&pod, &container) else {
                        return Err((
                            KubeError::Refused(format!(
                                "pod `{}` has no running container `{container}`",
                                picked.name
                            )),
                            hit,
                        ));
                    };
                    if let Err(source) =
                        ephemeral::patch_ephemeral(&api, &picked.name, helper.clone()).await
                    {
                        let action = format!("cannot add the signal helper to `{}`", picked.name);
                        return Err((KubeError::Api {
    action,
    source: Box::new(source),
}, hit));
                    }
                    tracing::info!(pod = %picked.name, container = %container, "added container-kill helper");
                    hit.push(Hit {
                        pod: picked.name.clone(),
                        restarts_before,
                    });
                }
                // The helpers are one-shot: wait for each to exit, and say why one failed.
                let started = Instant::now();
                loop {
                    let mut pending = Vec::new();
                    for h in &hit {
                        let pod = match api.get(&h.pod).await {
                            Ok(p) => p,
                            Err(source) => {
                                let action = format!("cannot read pod `{}` back", h.pod);
                                return Err((KubeError::Api {
    action,
    source: Box::new(source),
}, hit));
                            }
                        };
                        match ephemeral::helper_state(&pod, &helper_name) {
                            // 137: SIGKILLed with its namespace when the signalled
                            // main process ended before the helper did.
                            HelperState::Terminated(0 | 137, _) => {}
                            HelperState::Terminated(code, text) => {
                                return Err((
                                    KubeError::Refused(format!(
                                        "the signal helper in `{}` failed (exit {code}): {text}",
                                        h.pod
                                    )),
                                    hit,
                                ))
                            }
                            HelperState::Waiting(reason)
                                if ephemeral::FATAL_WAITING.contains(&reason.as_str()) =>
                            {
                                return Err((
                                    KubeError::Refused(format!(
                                        "the signal helper in `{}` cannot start: {reason}",
                                        h.pod
                                    )),
                                    hit,
                                ))
                            }
                            other => pending.push(format!("{} ({other:?})", h.pod)),
                        }
                    }
                    if pending.is_empty() {
                        return Ok(hit);
                    }
                    if started.elapsed() >= ephemeral::START_TIMEOUT {
                        return Err((
                            KubeError::Timeout(format!(
                                "the signal helper did not finish in {}",
                                pending.join(", ")
                            )),
                            hit,
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
            .map_err(|e| self.error(true, e))?;
        match outcome {
            Ok(hit) => {
                self.hit = hit;
                self.signalled_at = Some(Instant::now());
                Ok(self.record())
            }
            Err((reason, hit)) => {
                let names: Vec<String> = hit.iter().map(|h| h.pod.clone()).collect();
                self.hit = hit;
                let already = if names.is_empty() {
                    String::new()
                } else {
                    format!(" (helpers added to: {})", names.join(", "))
                };
                Err(self.error(true, format!("{reason}{already}")))
            }
        }
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        // The kubelet restarts the container; wait until it has, and is Ready again.
        let env = self.kube.get().cloned().map_err(|e| self.error(false, e))?;
        let client = env.client();
        let ns = self.selector.namespace.clone();
        let container = self.params.container.clone();
        let hit: Vec<(String, i32)> = self
            .hit
            .iter()
            .map(|h| (h.pod.clone(), h.restarts_before))
            .collect();
        let limit = self.params.restart_timeout;
        let result = env
            .block_on(async move {
                let api: Api<Pod> = Api::namespaced(client, &ns);
                let started = Instant::now();
                loop {
                    let waiting = not_restarted(&api, &hit, &container).await?;
                    if waiting.is_empty() {
                        return Ok(());
                    }
                    if started.elapsed() >= limit {
                        return Err(KubeError::Timeout(format!(
                            "container `{container}` not restarted and Ready within {}: {}",
                            humantime::format_duration(limit),
                            waiting.join(", ")
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
            .map_err(|e| self.error(false, e))?;
        if let Some(at) = self.signalled_at {
            self.measurements
                .retain(|(n, _)| n != "container_restarted_ms");
            if result.is_ok() {
                self.measurements.push((
                    "container_restarted_ms".into(),
                    at.elapsed().as_millis().to_string(),
                ));
            }
        }
        result.map_err(|e| self.error(false, e))
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        let env = self.kube.get().cloned().map_err(|e| self.error(false, e))?;
        let client = env.client();
        let ns = self.selector.namespace.clone();
        let container = self.params.container.clone();
        let hit: Vec<(String, i32)> = self
            .hit
            .iter()
            .map(|h| (h.pod.clone(), h.restarts_before))
            .collect();
        let waiting = env
            .block_on(async move {
                let api: Api<Pod> = Api::namespaced(client, &ns);
                not_restarted(&api, &hit, &container).await
            })
            .map_err(|e| self.error(false, e))?
            .map_err(|e| self.error(false, e))?;
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(self.error(
                false,
                format!("not restarted and Ready: {}", waiting.join(", ")),
            ))
        }
    }

    fn measurements(&self) -> Vec<(String, String)> {
        let mut m = self.measurements.clone();
        m.push(("containers_killed".into(), self.hit.len().to_string()));
        m
    }
}

/// The pods (of `hit`, with their restart counts before) whose `container` has not been
/// restarted and become Ready since, read from the cluster (a deleted pod counts as done:
/// its owner replaces it).
async fn not_restarted(
    api: &Api<Pod>,
    hit: &[(String, i32)],
    container: &str,
) -> Result<Vec<String>, KubeError> {
    let mut waiting = Vec::new();
    for (pod, before) in hit {
        match api.get_opt(pod).await {
            Ok(Some(p)) => match container_status(&p, container) {
                Some((restarts, true)) if restarts > *before => {}
                Some((restarts, ready)) => {
                    waiting.push(format!("{pod} (restarts {restarts}, ready {ready})"))
                }
                None => waiting.push(format!("{pod} (no status)")),
            },
            Ok(None) => {}
            Err(source) => {
                return Err(KubeError::Api {
                    action: format!("cannot read pod `{pod}` back"),
                    source: Box::new(source),
                })
            }
        }
    }
    Ok(waiting)
}
