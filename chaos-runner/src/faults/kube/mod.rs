//! Faults on a Kubernetes cluster, through the API server with kube-rs: pod kill (delete
//! or evict), network partition and database partition (NetworkPolicy), in-pod CPU
//! and memory hogs, network delay and loss, container kill (ephemeral helper
//! containers), and database query faults (a proxy Deployment in front of a Service).
//!
//! Every object the runner creates carries the labels of [`target::object_labels`] (run,
//! experiment, fault), so `recover` finds leftovers by label; pods annotated
//! `chaos.game-resilience.dev/protected: "true"` are never picked.

pub mod client;
pub mod container_kill;
pub mod db_proxy;
pub mod ephemeral;
pub mod network_policy;
pub mod pod_kill;
pub mod target;

pub use client::{KubeConnector, KubeEnv};

use crate::spec::PodSelector;

/// A Kubernetes fault, `doctor` or `recover` could not do what it asked of the cluster.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The client's runtime could not start.
    #[error("cannot start the Kubernetes client runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The client's runtime went away while connecting.
    #[error("the Kubernetes client runtime is gone")]
    RuntimeGone,
    /// No client could be built from the kubeconfig or the service account.
    #[error("cannot build a Kubernetes client (kubeconfig or in-cluster): {0}")]
    Connect(#[source] Box<kube::Error>),
    /// The connection failed earlier (the first failure, remembered).
    #[error(transparent)]
    Remembered(std::sync::Arc<KubeError>),
    /// The client's runtime stopped before a request was answered.
    #[error("the Kubernetes client runtime stopped before answering")]
    NoAnswer,
    /// No pod could be picked.
    #[error(transparent)]
    Pick(#[from] target::PickError),
    /// An API request failed.
    #[error("{action}: {source}")]
    Api {
        /// What was asked (`cannot delete NetworkPolicy `x``).
        action: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// An object could not be built or read as JSON.
    #[error("{action}: {source}")]
    Json {
        /// What was built or read.
        action: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The cluster's objects are not what the fault can work on (a Service without a
    /// selector, a pod without the target container, ...): the text says why.
    #[error("{0}")]
    Refused(String),
    /// Something did not happen in time (a helper that does not start, replacements not
    /// Ready, a proxy Deployment not available).
    #[error("{0}")]
    Timeout(String),
    /// Something of the fault is still there after its removal.
    #[error("{0}")]
    Left(String),
    /// Injecting failed part way; what was added was stopped or removed again (or not).
    #[error("{source}{cleanup}")]
    Partly {
        /// The first failure.
        #[source]
        source: Box<KubeError>,
        /// What happened to what was added, e.g. ` (the objects created so far were
        /// deleted)`.
        cleanup: String,
    },
    /// The record is not one of a Kubernetes fault.
    #[error("not a Kubernetes record")]
    NotKubeRecord,
}

impl KubeError {
    /// A closure turning a client error into [`KubeError::Api`] saying `action`.
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
        let action = action.into();
        move |source| KubeError::Api {
            action,
            source: Box::new(source),
        }
    }

    /// A closure turning a JSON error into [`KubeError::Json`] saying `action`.
    pub(crate) fn json(action: impl Into<String>) -> impl FnOnce(serde_json::Error) -> KubeError {
        let action = action.into();
        move |source| KubeError::Json { action, source }
    }
}

/// The pods a fault of `run_id` named `fault` would pick now (read-only): for `plan` and
/// preflight.
pub(crate) fn resolve_targets(
    kube: &KubeConnector,
    selector: &PodSelector,
    run_id: &str,
    fault: &str,
) -> Result<Vec<String>, KubeError> {
    target::check_scope(selector)?;
    let env = kube.get()?;
    let seed = target::seed_for(selector, run_id, fault);
    let selector = selector.clone();
    let client = env.client();
    env.block_on(async move { target::select(client, &selector, seed).await })?
        .map(|s| {
            s.picked
                .into_iter()
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect()
        })
        .map_err(KubeError::from)
}

/// Reverts a Kubernetes fault from its journal record (after a crash).
pub(crate) fn revert_record(
    kube: &KubeConnector,
    run_id: &str,
    fault: &str,
    record: &crate::faults::FaultRecord,
) -> Result<(), KubeError> {
    match record {
        // Killed pods come back through their owners; nothing is left to remove.
        crate::faults::FaultRecord::KubePodsKilled { .. } => Ok(()),
        // The kubelet restarts a stopped container; nothing is left to remove.
        crate::faults::FaultRecord::KubeContainersKilled { .. } => Ok(()),
        crate::faults::FaultRecord::KubeNetworkPolicy { namespace, name } => {
            let env = kube.get()?;
            let client = env.client();
            let (ns, name, run, fault) = (
                namespace.clone(),
                name.clone(),
                run_id.to_owned(),
                fault.to_owned(),
            );
            env.block_on(async move {
                network_policy::remove_policy(client, &ns, &name, &run, &fault).await
            })?
        }
        crate::faults::FaultRecord::KubeEphemeral {
            namespace,
            container,
            pods,
            stopper,
        } => {
            let env = kube.get()?;
            let client = env.client();
            let (ns, name, pods, stopper) = (
                namespace.clone(),
                container.clone(),
                pods.clone(),
                stopper.clone(),
            );
            env.block_on(async move {
                // The journal may hold only the intent (the runner died while adding
                // helpers): find every pod holding the helper, not just the recorded ones.
                let found = ephemeral::pods_holding(client.clone(), &ns, &name).await?;
                let mut all = pods;
                for h in found {
                    if !all.iter().any(|p| p.pod == h.pod) {
                        all.push(h);
                    }
                }
                ephemeral::stop_helpers(client, &ns, &all, &name, &stopper, ephemeral::STOP_TIMEOUT)
                    .await
            })?
        }
        crate::faults::FaultRecord::KubeDbProxy {
            namespace,
            service,
            original_selector,
            objects,
        } => {
            let env = kube.get()?;
            let client = env.client();
            let (ns, svc, original, objects) = (
                namespace.clone(),
                service.clone(),
                original_selector.clone(),
                objects.clone(),
            );
            let sweep = target::run_selector(run_id, fault);
            env.block_on(async move {
                db_proxy::remove(client.clone(), &ns, &svc, &objects, &original, Some(&sweep))
                    .await?;
                db_proxy::check_removed(client, &ns, &svc, &objects, &original).await
            })?
        }
        _ => Err(KubeError::NotKubeRecord),
    }
}
