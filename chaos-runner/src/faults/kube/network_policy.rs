//! `network-partition` and `db-partition`: a NetworkPolicy, labelled with the run, the
//! experiment and the fault, selecting exactly the picked pods (each gets a label naming
//! the policy). Revert deletes the policy and the pod labels and reads both back;
//! `recover` finds leftovers by label. Policies are enforced only by CNIs that support
//! them (Calico, Cilium, ...); a cluster without one accepts the policy and ignores it.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::sync::Arc;

use super::client::{KubeConnector, KubeEnv};
use super::{target, KubeError};
use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::{DbPartitionParams, PodSelector, PolicyDirection};

/// Label on each picked pod naming the policy that cuts it off.
pub const POLICY_LABEL: &str = "chaos.game-resilience.dev/policy";

/// What the policy denies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyKind {
    /// All ingress, all egress, or both.
    Partition(PolicyDirection),
    /// Egress to a database port (on a network, or anywhere).
    Database(DbPartitionParams),
}

/// The NetworkPolicy of `kind` named `name` in `namespace`, selecting pods labelled
/// `POLICY_LABEL=name`, carrying `labels`.
///
/// ```
/// use chaos_runner::faults::kube::network_policy::{policy, PolicyKind};
/// let p = policy("games", "chaos-cut-1", &Default::default(), &PolicyKind::Partition(Default::default()));
/// assert_eq!(p["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
/// ```
pub fn policy(
    namespace: &str,
    name: &str,
    labels: &std::collections::BTreeMap<String, String>,
    kind: &PolicyKind,
) -> Value {
    let spec = match kind {
        PolicyKind::Partition(direction) => {
            let types: &[&str] = match direction {
                PolicyDirection::Ingress => &["Ingress"],
                PolicyDirection::Egress => &["Egress"],
                PolicyDirection::Both => &["Ingress", "Egress"],
            };
            // No rules for a listed type: nothing is allowed that way.
            json!({
                "podSelector": { "matchLabels": { POLICY_LABEL: name } },
                "policyTypes": types,
            })
        }
        PolicyKind::Database(db) => {
            let mut other_tcp = Vec::new();
            if db.port > 1 {
                other_tcp.push(json!({ "protocol": "TCP", "port": 1, "endPort": db.port - 1 }));
            }
            if db.port < u16::MAX {
                other_tcp.push(json!({ "protocol": "TCP", "port": db.port + 1, "endPort": 65535 }));
            }
            let mut open_ports = other_tcp.clone();
            open_ports.push(json!({ "protocol": "UDP", "port": 1, "endPort": 65535 }));
            let egress = match &db.cidr {
                // Everything but the database network, and that network on other ports.
                Some(cidr) => {
                    let v6 = cidr.contains(':');
                    let (same, other) = if v6 {
                        ("::/0", "0.0.0.0/0")
                    } else {
                        ("0.0.0.0/0", "::/0")
                    };
                    json!([
                        { "to": [
                            { "ipBlock": { "cidr": same, "except": [cidr] } },
                            { "ipBlock": { "cidr": other } }
                        ] },
                        { "to": [ { "ipBlock": { "cidr": cidr } } ], "ports": open_ports }
                    ])
                }
                // Every destination, on every port but the database's.
                None => json!([ { "ports": open_ports } ]),
            };
            json!({
                "podSelector": { "matchLabels": { POLICY_LABEL: name } },
                "policyTypes": ["Egress"],
                "egress": egress,
            })
        }
    };
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": name, "namespace": namespace, "labels": labels },
        "spec": spec,
    })
}

/// A NetworkPolicy fault.
pub struct PolicyFault {
    name: String,
    run_id: String,
    experiment: String,
    selector: PodSelector,
    kind: PolicyKind,
    kube: Arc<KubeConnector>,
    policy_name: String,
    picked: Vec<String>,
}

impl PolicyFault {
    /// The fault `name` of run `run_id` (experiment `experiment`) cutting off the pods
    /// `selector` picks.
    pub fn new(
        name: &str,
        run_id: &str,
        experiment: &str,
        selector: PodSelector,
        kind: PolicyKind,
        kube: Arc<KubeConnector>,
    ) -> PolicyFault {
        PolicyFault {
            name: name.to_owned(),
            run_id: run_id.to_owned(),
            experiment: experiment.to_owned(),
            selector,
            kind,
            kube,
            policy_name: target::object_name(run_id, name),
            picked: Vec::new(),
        }
    }

    fn record(&self) -> FaultRecord {
        FaultRecord::KubeNetworkPolicy {
            namespace: self.selector.namespace.clone(),
            name: self.policy_name.clone(),
        }
    }

    fn env(&self) -> Result<KubeEnv, KubeError> {
        self.kube.get().cloned()
    }
}

/// Labels (`Some`) or unlabels (`None`) one pod with the policy label.
async fn set_pod_label(api: &Api<Pod>, pod: &str, value: Option<&str>) -> Result<(), kube::Error> {
    let patch = json!({ "metadata": { "labels": { POLICY_LABEL: value } } });
    api.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

/// Deletes policy `name` in `namespace`, every other policy of `run_id`'s fault `fault`
/// (leftovers), and the policy label from every pod carrying it; then reads back that
/// nothing is left. What `revert` and `recover` both do.
pub async fn remove_policy(
    client: kube::Client,
    namespace: &str,
    name: &str,
    run_id: &str,
    fault: &str,
) -> Result<(), KubeError> {
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    match policies.delete(name, &DeleteParams::default()).await {
        Ok(_) => tracing::info!(policy = name, namespace, "deleted NetworkPolicy"),
        Err(e) if is_not_found(&e) => {}
        Err(e) => {
            return Err(KubeError::Api {
                action: format!("cannot delete NetworkPolicy `{name}`"),
                source: Box::new(e),
            })
        }
    }
    let by_run = ListParams::default().labels(&target::run_selector(run_id, fault));
    let leftovers = policies
        .list(&by_run)
        .await
        .map_err(KubeError::api("cannot list NetworkPolicies of the run"))?;
    for p in leftovers.items {
        let Some(other) = p.metadata.name else {
            continue;
        };
        match policies.delete(&other, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(policy = %other, namespace, "deleted leftover NetworkPolicy"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(KubeError::Api {
                    action: format!("cannot delete leftover NetworkPolicy `{other}`"),
                    source: Box::new(e),
                })
            }
        }
    }
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let labelled = ListParams::default().labels(&format!("{POLICY_LABEL}={name}"));
    let list = pods
        .list(&labelled)
        .await
        .map_err(KubeError::api("cannot list pods labelled by the policy"))?;
    for pod in list.items {
        let Some(pod_name) = pod.metadata.name else {
            continue;
        };
        match set_pod_label(&pods, &pod_name, None).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(KubeError::Api {
                    action: format!("cannot remove the policy label of `{pod_name}`"),
                    source: Box::new(e),
                })
            }
        }
    }
    check_removed(policies, pods, name, &by_run, &labelled).await
}

async fn check_removed(
    policies: Api<NetworkPolicy>,
    pods: Api<Pod>,
    name: &str,
    by_run: &ListParams,
    labelled: &ListParams,
) -> Result<(), KubeError> {
    if policies
        .get_opt(name)
        .await
        .map_err(KubeError::api(format!(
            "cannot read NetworkPolicy `{name}` back"
        )))?
        .is_some()
    {
        return Err(KubeError::Left(format!(
            "NetworkPolicy `{name}` is still there"
        )));
    }
    let left = policies
        .list(by_run)
        .await
        .map_err(KubeError::api("cannot list NetworkPolicies of the run"))?;
    if !left.items.is_empty() {
        return Err(KubeError::Left(format!(
            "{} NetworkPolicies of the run are still there",
            left.items.len()
        )));
    }
    let still = pods
        .list(labelled)
        .await
        .map_err(KubeError::api("cannot list pods labelled by the policy"))?;
    if !still.items.is_empty() {
        return Err(KubeError::Left(format!(
            "{} pods still carry the policy label",
            still.items.len()
        )));
    }
    Ok(())
}

impl Fault for PolicyFault {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let what = match &self.kind {
            PolicyKind::Partition(d) => {
                crate::spec::FaultParams::NetworkPartition(crate::spec::NetworkPartitionParams {
                    direction: *d,
                })
                .summary()
            }
            PolicyKind::Database(db) => crate::spec::FaultParams::DbPartition(db.clone()).summary(),
        };
        let mut text = format!(
            "{what} `{}` on {}",
            self.policy_name,
            self.selector.summary()
        );
        if !self.picked.is_empty() {
            text.push_str(&format!(": {}", self.picked.join(", ")));
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
        let env = self.env().map_err(error)?;
        let seed = target::seed_for(&self.selector, &self.run_id, &self.name);
        let selector = self.selector.clone();
        let body = policy(
            &self.selector.namespace,
            &self.policy_name,
            &target::object_labels(&self.run_id, &self.experiment, &self.name),
            &self.kind,
        );
        let name = self.policy_name.clone();
        let client = env.client();
        let picked = env
            .block_on(async move {
                let selection = target::select(client.clone(), &selector, seed).await?;
                let pods: Api<Pod> = Api::namespaced(client.clone(), &selector.namespace);
                let mut picked = Vec::new();
                for pod in &selection.picked {
                    set_pod_label(&pods, &pod.name, Some(name.as_str()))
                        .await
                        .map_err(KubeError::api(format!("cannot label pod `{}`", pod.name)))?;
                    picked.push(pod.name.clone());
                }
                let np: NetworkPolicy = serde_json::from_value(body)
                    .map_err(KubeError::json("cannot build the NetworkPolicy"))?;
                let policies: Api<NetworkPolicy> =
                    Api::namespaced(client, &selector.namespace);
                policies
                    .create(&PostParams::default(), &np)
                    .await
                    .map_err(KubeError::api(format!("cannot create NetworkPolicy `{name}`")))?;
                tracing::info!(policy = %name, namespace = %selector.namespace, pods = ?picked, "created NetworkPolicy");
                Ok::<_, KubeError>(picked)
            })
            .map_err(error)?
            .map_err(error)?;
        self.picked = picked;
        Ok(self.record())
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        let error = |e: KubeError| FaultError::Revert {
            fault: self.name.clone(),
            reason: e.to_string(),
        };
        let env = self.env().map_err(error)?;
        let (ns, name, run, fault) = (
            self.selector.namespace.clone(),
            self.policy_name.clone(),
            self.run_id.clone(),
            self.name.clone(),
        );
        let client = env.client();
        env.block_on(async move { remove_policy(client, &ns, &name, &run, &fault).await })
            .map_err(error)?
            .map_err(error)
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        let error = |e: KubeError| FaultError::Revert {
            fault: self.name.clone(),
            reason: e.to_string(),
        };
        let env = self.env().map_err(error)?;
        let client = env.client();
        let ns = self.selector.namespace.clone();
        let name = self.policy_name.clone();
        let by_run = ListParams::default().labels(&target::run_selector(&self.run_id, &self.name));
        let labelled = ListParams::default().labels(&format!("{POLICY_LABEL}={name}"));
        env.block_on(async move {
            check_removed(
                Api::namespaced(client.clone(), &ns),
                Api::namespaced(client, &ns),
                &name,
                &by_run,
                &labelled,
            )
            .await
        })
        .map_err(error)?
        .map_err(error)
    }
}
