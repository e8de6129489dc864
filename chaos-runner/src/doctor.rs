//! `chaos-runner doctor FILE`: asks the API server, with one SelfSubjectAccessReview per
//! permission, whether the current identity may do what each Kubernetes fault of an
//! experiment needs. Changes nothing.

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use kube::api::{Api, PostParams};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

use crate::exit::Outcome;
use crate::faults::kube::{KubeConnector, KubeError};
use crate::output::Format;
use crate::spec::{FaultParams, ValidatedExperiment};

/// One permission a fault needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Need {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Resource (`pods`).
    pub resource: &'static str,
    /// Subresource (`eviction`), if any.
    pub subresource: Option<&'static str>,
    /// Verb.
    pub verb: &'static str,
}

const fn need(
    group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    verb: &'static str,
) -> Need {
    Need {
        group,
        resource,
        subresource,
        verb,
    }
}

/// The permissions a fault step with `params` needs (none for local faults).
///
/// ```
/// use chaos_runner::doctor::needs;
/// use chaos_runner::spec::{FaultParams, PodKillParams};
/// let p: PodKillParams = serde_json::from_value(serde_json::json!({"evict": true})).unwrap();
/// let n = needs(&FaultParams::PodKill(p));
/// assert!(n.iter().any(|n| n.subresource == Some("eviction") && n.verb == "create"));
/// ```
pub fn needs(params: &FaultParams) -> Vec<Need> {
    match params {
        FaultParams::PodKill(p) => {
            let mut n = vec![need("", "pods", None, "list")];
            if p.evict {
                n.push(need("", "pods", Some("eviction"), "create"));
            } else {
                n.push(need("", "pods", None, "delete"));
            }
            n
        }
        FaultParams::NetworkPartition(_) | FaultParams::DbPartition(_) => vec![
            need("", "pods", None, "list"),
            need("", "pods", None, "patch"),
            need("networking.k8s.io", "networkpolicies", None, "create"),
            need("networking.k8s.io", "networkpolicies", None, "delete"),
            need("networking.k8s.io", "networkpolicies", None, "get"),
            need("networking.k8s.io", "networkpolicies", None, "list"),
        ],
        FaultParams::PodCpuHog(_)
        | FaultParams::PodMemoryHog(_)
        | FaultParams::PodNetDelay(_)
        | FaultParams::PodNetLoss(_) => vec![
            need("", "pods", None, "list"),
            need("", "pods", None, "get"),
            need("", "pods", Some("ephemeralcontainers"), "patch"),
        ],
        FaultParams::ContainerKill(_) => vec![
            need("", "pods", None, "list"),
            need("", "pods", None, "get"),
            need("", "pods", Some("ephemeralcontainers"), "patch"),
        ],
        _ => Vec::new(),
    }
}

/// The permissions a database fault on Kubernetes (`postgres-*`, `redis-*` with a
/// `service` selector) needs: read and patch the Service, create, read and delete the
/// proxy's ConfigMap, upstream Service and Deployment, and list them by label (`recover`).
///
/// ```
/// let n = chaos_runner::doctor::db_proxy_needs();
/// assert!(n.iter().any(|n| n.resource == "services" && n.verb == "patch"));
/// assert!(n.iter().any(|n| n.group == "apps" && n.resource == "deployments" && n.verb == "create"));
/// ```
pub fn db_proxy_needs() -> Vec<Need> {
    let mut n = Vec::new();
    for verb in ["get", "patch", "create", "delete", "list"] {
        n.push(need("", "services", None, verb));
    }
    for verb in ["create", "get", "delete", "list"] {
        n.push(need("", "configmaps", None, verb));
    }
    for verb in ["create", "get", "delete", "list"] {
        n.push(need("apps", "deployments", None, verb));
    }
    n
}

/// The answer for one permission of one fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The fault.
    pub fault: String,
    /// The namespace asked about.
    pub namespace: String,
    /// The permission.
    pub need: Need,
    /// Whether it is granted.
    pub allowed: bool,
    /// The API server's reason, if it gave one.
    pub reason: Option<String>,
}

/// Asks about every permission every Kubernetes fault of `exp` needs.
pub fn check(exp: &ValidatedExperiment, kube: &KubeConnector) -> Result<Vec<Answer>, KubeError> {
    let mut asks = Vec::new();
    for (fault, steps) in exp.faults.iter().map(|f| (&f.spec, &f.steps)) {
        let (namespace, proxied) = match (&fault.selector.pods, &fault.selector.service) {
            (Some(pods), _) => (pods.namespace.clone(), false),
            (None, Some(service)) => (service.namespace.clone(), true),
            (None, None) => continue,
        };
        let mut seen = Vec::new();
        for step in steps {
            let step_needs = if proxied {
                db_proxy_needs()
            } else {
                needs(step)
            };
            for n in step_needs {
                if !seen.contains(&n) {
                    seen.push(n);
                    asks.push((fault.name.clone(), namespace.clone(), n));
                }
            }
        }
    }
    if asks.is_empty() {
        return Ok(Vec::new());
    }
    let env = kube.get()?;
    let client = env.client();
    env.block_on(async move {
        let api: Api<SelfSubjectAccessReview> = Api::all(client);
        let mut answers = Vec::new();
        for (fault, namespace, n) in asks {
            let mut attrs = serde_json::json!({
                "namespace": namespace,
                "verb": n.verb,
                "group": n.group,
                "resource": n.resource,
            });
            if let Some(sub) = n.subresource {
                attrs["subresource"] = sub.into();
            }
            let review: SelfSubjectAccessReview = serde_json::from_value(serde_json::json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "metadata": {},
                "spec": { "resourceAttributes": attrs },
            }))
            .map_err(KubeError::json("cannot build the access review"))?;
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(KubeError::api("cannot ask the API server"))?;
            let status = answer.status.unwrap_or_default();
            answers.push(Answer {
                fault,
                namespace,
                need: n,
                allowed: status.allowed,
                reason: status.reason.filter(|r| !r.is_empty()),
            });
        }
        Ok(answers)
    })?
}

/// Prints what `file`'s faults need and whether it is granted. Exit 0 when everything is
/// granted, 1 when something is denied, 2 when the cluster cannot be reached (an invalid
/// file is refused before, with 3).
pub fn run(exp: &ValidatedExperiment, file: &Path, output: Format) -> Outcome {
    run_with(exp, file, output, Arc::new(KubeConnector::lazy()))
}

/// [`run`] with a given Kubernetes client.
pub fn run_with(
    exp: &ValidatedExperiment,
    file: &Path,
    output: Format,
    kube: Arc<KubeConnector>,
) -> Outcome {
    let answers = match check(exp, &kube) {
        Ok(a) => a,
        Err(e) => {
            // The cluster, not the file: unreachable or not answering.
            eprintln!("error: {e}");
            return Outcome::Aborted;
        }
    };
    let denied = answers.iter().filter(|a| !a.allowed).count();
    match output {
        Format::Json => println!(
            "{}",
            serde_json::json!({ "command": "doctor", "all_allowed": denied == 0, "checks": answers })
        ),
        Format::Text => {
            if answers.is_empty() {
                println!("no Kubernetes fault in {}", file.display());
            }
            for a in &answers {
                let resource = match a.need.subresource {
                    Some(s) => format!("{}/{s}", a.need.resource),
                    None => a.need.resource.to_owned(),
                };
                println!(
                    "{} {} {} {} in {}{}",
                    if a.allowed { "ok    " } else { "DENIED" },
                    a.fault,
                    a.need.verb,
                    resource,
                    a.namespace,
                    a.reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
        }
    }
    if denied == 0 {
        Outcome::Passed
    } else {
        Outcome::Failed
    }
}
