//! The database faults (`postgres-*`, `redis-*`) on Kubernetes: for the run, the database's
//! Service is pointed at a `chaos-runner proxy` Deployment, which relays to the database
//! pods through an "upstream" Service and applies the fault's rule.
//!
//! Inject reads the Service (keeping its selector and ports; a Service without a selector
//! is refused), creates a ConfigMap with the proxy config, the upstream Service (same
//! ports, the original selector) and the proxy Deployment (admin API on the pod's
//! loopback), waits until the Deployment is available, then patches the Service's selector
//! to the proxy pods' label and stores the original selector in the annotation
//! [`ORIGINAL_SELECTOR_ANNOTATION`] in the same patch, so the cluster itself says what to
//! restore. Everything created carries the run, experiment and fault labels.
//!
//! Revert restores the selector, drops the annotation, and deletes the Deployment, the
//! upstream Service and the ConfigMap; verify reads the Service back and expects 404 for
//! each object. The proxy's rule expires by itself shortly after the fault's end
//! (`expiresIn`), after which it passes everything through, so a runner that dies cannot
//! leave queries delayed for ever; `recover` restores the Service and deletes the objects.
//!
//! kube-proxy keeps established connections on the backend they were opened to, so
//! connections opened before the swap keep going to the database directly: a pool only
//! meets the fault once it reconnects (e.g. its max lifetime).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod manifests;

pub use manifests::{deployment, plan_ports, proxy_config, PortPlan};
use manifests::{restore_patch, selector_of, swap_patch, typed, upstream_service};

use super::client::{KubeConnector, KubeEnv};
use super::ephemeral::is_not_found;
use super::{target, KubeError};
use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::{DbParams, ServiceSelector};

/// Annotation on the database Service holding its original selector (JSON) while the
/// proxy stands in front of it.
pub const ORIGINAL_SELECTOR_ANNOTATION: &str = "chaos.game-resilience.dev/original-selector";
/// Label of the proxy pods, which the Service's selector names during the fault.
pub const PROXY_LABEL: &str = "chaos.game-resilience.dev/db-proxy";
/// The proxy's admin API, on the pod's loopback only.
pub const ADMIN_LISTEN: &str = "127.0.0.1:8474";
/// Where the proxy config is mounted in the proxy pod.
pub const CONFIG_DIR: &str = "/etc/chaos-proxy";
/// The proxy config's file name (the ConfigMap key).
pub const CONFIG_FILE: &str = "proxies.json";
/// How long the proxy's rule outlives the fault's planned end.
pub const EXPIRY_GRACE: Duration = Duration::from_secs(10);
/// What a run of a database fault through the proxy does not reach, said in its
/// description and in `plan`.
pub const OPEN_CONNECTIONS_NOTE: &str = "connections opened before the swap keep going to \
    the database directly (kube-proxy keeps established flows), so a pool meets the fault \
    only once it reconnects (e.g. its max connection lifetime)";
/// How often inject reads the Deployment while waiting for it.
const POLL: Duration = Duration::from_millis(500);

/// The names of the objects a database proxy fault creates (stable for the run and the
/// fault, so `recover` finds them from the journal).
///
/// ```
/// let o = chaos_runner::faults::kube::db_proxy::DbProxyObjects::for_fault("r-1", "slow-saves");
/// assert!(o.deployment.starts_with("chaos-slow-saves-"));
/// assert_eq!(o.upstream_service, format!("{}-up", o.deployment));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbProxyObjects {
    /// The ConfigMap holding the proxy config.
    pub config_map: String,
    /// The proxy Deployment.
    pub deployment: String,
    /// The Service reaching the database pods (the original selector).
    pub upstream_service: String,
}

impl DbProxyObjects {
    /// The objects of `fault` of run `run_id` (DNS labels of at most 63 characters).
    pub fn for_fault(run_id: &str, fault: &str) -> DbProxyObjects {
        let base = target::object_name(run_id, fault);
        DbProxyObjects {
            config_map: base.clone(),
            upstream_service: format!("{base}-up"),
            deployment: base,
        }
    }
}

/// Waits until Deployment `name` has an available replica, for at most `timeout`.
async fn wait_available(
    api: &Api<Deployment>,
    name: &str,
    timeout: Duration,
) -> Result<(), KubeError> {
    let started = Instant::now();
    loop {
        let d = api
            .get(name)
            .await
            .map_err(KubeError::api(format!("cannot read Deployment `{name}`")))?;
        let status = d.status.clone().unwrap_or_default();
        let available = status.available_replicas.unwrap_or(0);
        if available >= 1 {
            return Ok(());
        }
        let conditions: Vec<String> = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                format!(
                    "{}={}{}",
                    c.type_,
                    c.status,
                    c.message.map(|m| format!(" ({m})")).unwrap_or_default()
                )
            })
            .collect();
        let stalled = d
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "Progressing"
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                })
            });
        if stalled || started.elapsed() >= timeout {
            return Err(KubeError::Timeout(format!(
                "proxy Deployment `{name}` is not available after {}: {available}/1 replicas \
                 available{} (is its image pullable? `kubectl describe deployment {name}`)",
                humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
                if conditions.is_empty() {
                    String::new()
                } else {
                    format!(", conditions: {}", conditions.join("; "))
                }
            )));
        }
        tokio::time::sleep(POLL.min(timeout.saturating_sub(started.elapsed()))).await;
    }
}

/// What inject needs besides the client.
struct Plan {
    namespace: String,
    service: String,
    port: Option<u16>,
    objects: DbProxyObjects,
    labels: BTreeMap<String, String>,
    image: String,
    rule: String,
    fault_type: &'static str,
    params: DbParams,
    expires_in: Duration,
    ready_timeout: Duration,
}

/// Creates the objects and swaps the selector; returns the original selector. On an
/// error, deletes what it created.
async fn swap_in(client: kube::Client, plan: Plan) -> Result<BTreeMap<String, String>, KubeError> {
    let ns = plan.namespace.as_str();
    let what = format!("{ns}/{}", plan.service);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc = services
        .get(&plan.service)
        .await
        .map_err(KubeError::api(format!("cannot read Service `{what}`")))?;
    let original = selector_of(&svc, &what)?;
    let (ports, at) = plan_ports(&svc, &what, plan.port)?;
    let upstream_host = format!("{}.{ns}.svc", plan.objects.upstream_service);
    let config = proxy_config(
        &ports,
        at,
        &upstream_host,
        (&plan.rule, plan.fault_type, &plan.params),
        plan.expires_in,
    )?;
    let config_json = serde_json::to_string_pretty(&config)
        .map_err(KubeError::json("cannot write the proxy config"))?;
    let cm: ConfigMap = typed(
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": plan.objects.config_map, "namespace": ns, "labels": plan.labels },
            "data": { CONFIG_FILE: config_json },
        }),
        "ConfigMap",
    )?;
    let up: Service = typed(
        upstream_service(
            &svc,
            ns,
            &plan.objects.upstream_service,
            &plan.labels,
            &original,
        ),
        "upstream Service",
    )?;
    let dep: Deployment = typed(
        deployment(ns, &plan.objects, &plan.labels, &plan.image, &ports, at),
        "Deployment",
    )?;
    let created = async {
        Api::<ConfigMap>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &cm)
            .await
            .map_err(KubeError::api(format!(
                "cannot create ConfigMap `{}`",
                plan.objects.config_map
            )))?;
        services
            .create(&PostParams::default(), &up)
            .await
            .map_err(KubeError::api(format!(
                "cannot create Service `{}`",
                plan.objects.upstream_service
            )))?;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        deployments
            .create(&PostParams::default(), &dep)
            .await
            .map_err(KubeError::api(format!(
                "cannot create Deployment `{}`",
                plan.objects.deployment
            )))?;
        tracing::info!(namespace = ns, deployment = %plan.objects.deployment, "created the DB proxy; waiting until it is available");
        wait_available(&deployments, &plan.objects.deployment, plan.ready_timeout).await?;
        let patch = swap_patch(
            &original,
            &plan.objects.deployment,
            svc.metadata.resource_version.as_deref(),
        );
        services
            .patch(&plan.service, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(KubeError::api(format!(
                "cannot point Service `{what}` at the proxy"
            )))?;
        Ok::<_, KubeError>(())
    }
    .await;
    match created {
        Ok(()) => {
            tracing::info!(service = %what, proxy = %plan.objects.deployment, "Service now points at the DB proxy");
            Ok(original)
        }
        Err(e) => {
            let cleanup = delete_objects(client, ns, &plan.objects).await;
            Err(KubeError::Partly {
                source: Box::new(e),
                cleanup: match cleanup {
                    Ok(()) => " (the objects created so far were deleted)".to_owned(),
                    Err(c) => format!("; and cleaning up failed too: {c}"),
                },
            })
        }
    }
}

/// Deletes the Deployment, the upstream Service and the ConfigMap (absent ones are fine).
async fn delete_objects(
    client: kube::Client,
    ns: &str,
    objects: &DbProxyObjects,
) -> Result<(), KubeError> {
    let deleted = Api::<Deployment>::namespaced(client.clone(), ns)
        .delete(&objects.deployment, &DeleteParams::background())
        .await
        .map(|_| ());
    absent_ok(deleted, "Deployment", &objects.deployment)?;
    let deleted = Api::<Service>::namespaced(client.clone(), ns)
        .delete(&objects.upstream_service, &DeleteParams::default())
        .await
        .map(|_| ());
    absent_ok(deleted, "Service", &objects.upstream_service)?;
    let deleted = Api::<ConfigMap>::namespaced(client, ns)
        .delete(&objects.config_map, &DeleteParams::default())
        .await
        .map(|_| ());
    absent_ok(deleted, "ConfigMap", &objects.config_map)
}

fn absent_ok(result: Result<(), kube::Error>, kind: &str, name: &str) -> Result<(), KubeError> {
    match result {
        Ok(()) => {
            tracing::info!(kind, name, "deleted");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(source) => Err(KubeError::Api {
            action: format!("cannot delete {kind} `{name}`"),
            source: Box::new(source),
        }),
    }
}

fn annotation_of(svc: &Service) -> Option<String> {
    svc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ORIGINAL_SELECTOR_ANNOTATION).cloned())
}

/// Points Service `service` back at its original selector (from its annotation, else
/// `recorded`) when it names the proxy of `objects`, and drops the annotation.
async fn restore_service(
    client: kube::Client,
    ns: &str,
    service: &str,
    objects: &DbProxyObjects,
    recorded: &BTreeMap<String, String>,
) -> Result<(), KubeError> {
    let api: Api<Service> = Api::namespaced(client, ns);
    let Some(svc) = api.get_opt(service).await.map_err(KubeError::api(format!(
        "cannot read Service `{ns}/{service}`"
    )))?
    else {
        tracing::warn!(
            namespace = ns,
            service,
            "the database Service is gone; nothing to restore"
        );
        return Ok(());
    };
    let current = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let annotation = annotation_of(&svc);
    let ours = current.get(PROXY_LABEL) == Some(&objects.deployment);
    let patch = if ours {
        let original = match annotation
            .as_deref()
            .map(serde_json::from_str::<BTreeMap<String, String>>)
        {
            Some(Ok(o)) if !o.is_empty() => o,
            _ if !recorded.is_empty() => recorded.clone(),
            _ => {
                return Err(KubeError::Refused(format!(
                    "Service `{ns}/{service}` points at the proxy but neither its annotation \
                     `{ORIGINAL_SELECTOR_ANNOTATION}` nor the journal holds the original selector"
                )))
            }
        };
        restore_patch(&original, &current)
    } else if annotation.is_some() {
        // Someone changed the selector since: keep theirs, drop our annotation.
        json!({ "metadata": { "annotations": { ORIGINAL_SELECTOR_ANNOTATION: Value::Null } } })
    } else {
        return Ok(());
    };
    api.patch(service, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(KubeError::api(format!(
            "cannot restore the selector of Service `{ns}/{service}`"
        )))?;
    tracing::info!(namespace = ns, service, "Service selector restored");
    Ok(())
}

/// Restores the Service and deletes the proxy's objects; with `sweep` (`recover`), also
/// every Deployment, Service and ConfigMap carrying the run and fault labels.
pub async fn remove(
    client: kube::Client,
    ns: &str,
    service: &str,
    objects: &DbProxyObjects,
    recorded: &BTreeMap<String, String>,
    sweep: Option<&str>,
) -> Result<(), KubeError> {
    restore_service(client.clone(), ns, service, objects, recorded).await?;
    delete_objects(client.clone(), ns, objects).await?;
    let Some(labels) = sweep else { return Ok(()) };
    let by_run = ListParams::default().labels(labels);
    let background = DeleteParams::background();
    let plain = DeleteParams::default();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    delete_listed(&deployments, &by_run, &background, "Deployment").await?;
    let services = Api::<Service>::namespaced(client.clone(), ns);
    delete_listed(&services, &by_run, &plain, "Service").await?;
    let maps = Api::<ConfigMap>::namespaced(client, ns);
    delete_listed(&maps, &by_run, &plain, "ConfigMap").await
}

/// Deletes every object of `api` that `by_run` lists (absent ones are fine).
async fn delete_listed<K>(
    api: &Api<K>,
    by_run: &ListParams,
    how: &DeleteParams,
    kind: &str,
) -> Result<(), KubeError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let found = api
        .list(by_run)
        .await
        .map_err(KubeError::api(format!("cannot list {kind}s of the run")))?;
    for item in found.items {
        let Some(name) = item.meta().name.clone() else {
            continue;
        };
        absent_ok(api.delete(&name, how).await.map(|_| ()), kind, &name)?;
    }
    Ok(())
}

/// Reads back that Service `service` no longer names the proxy nor carries the
/// annotation (and has `original` as its selector, when known), and that every object
/// of `objects` is gone.
pub async fn check_removed(
    client: kube::Client,
    ns: &str,
    service: &str,
    objects: &DbProxyObjects,
    original: &BTreeMap<String, String>,
) -> Result<(), KubeError> {
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    if let Some(svc) = services
        .get_opt(service)
        .await
        .map_err(KubeError::api(format!(
            "cannot read Service `{ns}/{service}` back"
        )))?
    {
        let current = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if current.get(PROXY_LABEL) == Some(&objects.deployment) {
            return Err(KubeError::Left(format!(
                "Service `{ns}/{service}` still points at the proxy"
            )));
        }
        if !original.is_empty() && current != *original {
            return Err(KubeError::Left(format!(
                "Service `{ns}/{service}` has selector {current:?}, not the original {original:?}"
            )));
        }
        if annotation_of(&svc).is_some() {
            return Err(KubeError::Left(format!(
                "Service `{ns}/{service}` still carries `{ORIGINAL_SELECTOR_ANNOTATION}`"
            )));
        }
    }
    let gone = |found: Result<bool, kube::Error>, kind: &str, name: &str| match found {
        Ok(false) => Ok(()),
        Ok(true) => Err(KubeError::Left(format!("{kind} `{name}` is still there"))),
        Err(source) => Err(KubeError::Api {
            action: format!("cannot read {kind} `{name}` back"),
            source: Box::new(source),
        }),
    };
    gone(
        Api::<Deployment>::namespaced(client.clone(), ns)
            .get_opt(&objects.deployment)
            .await
            .map(|o| o.is_some()),
        "Deployment",
        &objects.deployment,
    )?;
    gone(
        services
            .get_opt(&objects.upstream_service)
            .await
            .map(|o| o.is_some()),
        "Service",
        &objects.upstream_service,
    )?;
    gone(
        Api::<ConfigMap>::namespaced(client, ns)
            .get_opt(&objects.config_map)
            .await
            .map(|o| o.is_some()),
        "ConfigMap",
        &objects.config_map,
    )
}

/// A database fault through a proxy Deployment in front of the database's Service.
pub struct DbProxyFault {
    name: String,
    type_name: &'static str,
    run_id: String,
    experiment: String,
    params: DbParams,
    service: ServiceSelector,
    remaining: Duration,
    kube: Arc<KubeConnector>,
    objects: DbProxyObjects,
    original: BTreeMap<String, String>,
}

impl DbProxyFault {
    /// The fault `name` (of type `type_name`) of run `run_id` (experiment `experiment`)
    /// with `params` on the Service `service` names, for at most `remaining`.
    pub fn new(
        (name, type_name): (&str, &'static str),
        (run_id, experiment): (&str, &str),
        params: DbParams,
        service: ServiceSelector,
        remaining: Duration,
        kube: Arc<KubeConnector>,
    ) -> DbProxyFault {
        DbProxyFault {
            name: name.to_owned(),
            type_name,
            run_id: run_id.to_owned(),
            experiment: experiment.to_owned(),
            params,
            service,
            remaining,
            kube,
            objects: DbProxyObjects::for_fault(run_id, name),
            original: BTreeMap::new(),
        }
    }

    /// The namespace, Service, objects and original selector, owned for an async block.
    fn owned_parts(&self) -> (String, String, DbProxyObjects, BTreeMap<String, String>) {
        (
            self.service.namespace.clone(),
            self.service.name.clone(),
            self.objects.clone(),
            self.original.clone(),
        )
    }

    fn record(&self) -> FaultRecord {
        FaultRecord::KubeDbProxy {
            namespace: self.service.namespace.clone(),
            service: self.service.name.clone(),
            original_selector: self.original.clone(),
            objects: self.objects.clone(),
        }
    }

    fn env(&self) -> Result<KubeEnv, KubeError> {
        self.kube.get().cloned()
    }

    fn error(&self, inject: bool) -> impl Fn(KubeError) -> FaultError + '_ {
        move |e| {
            let reason = e.to_string();
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
}

impl Fault for DbProxyFault {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!(
            "{} `{}`: {} through a chaos-runner proxy Deployment `{}` in front of {} (its \
             selector swapped to the proxy, restored on revert); {OPEN_CONNECTIONS_NOTE}; \
             the proxy passes everything through after {}",
            self.type_name,
            self.name,
            self.params.summary(),
            self.objects.deployment,
            self.service.summary(),
            humantime::format_duration(Duration::from_secs(
                (self.remaining + EXPIRY_GRACE).as_secs()
            ))
        )
    }

    fn targets(&self) -> Option<Result<Vec<String>, KubeError>> {
        let (ns, name, port) = (
            self.service.namespace.clone(),
            self.service.name.clone(),
            self.service.port,
        );
        let resolve = || -> Result<Vec<String>, KubeError> {
            let env = self.env()?;
            let client = env.client();
            env.block_on(async move {
                let what = format!("{ns}/{name}");
                let svc = Api::<Service>::namespaced(client, &ns)
                    .get(&name)
                    .await
                    .map_err(KubeError::api(format!("cannot read Service `{what}`")))?;
                selector_of(&svc, &what)?;
                let (ports, at) = plan_ports(&svc, &what, port)?;
                Ok(vec![format!("{ns}/service/{name}:{}", ports[at].port)])
            })?
        };
        Some(resolve())
    }

    fn planned_record(&self) -> Option<FaultRecord> {
        Some(self.record())
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let env = self.env().map_err(self.error(true))?;
        let plan = Plan {
            namespace: self.service.namespace.clone(),
            service: self.service.name.clone(),
            port: self.service.port,
            objects: self.objects.clone(),
            labels: target::object_labels(&self.run_id, &self.experiment, &self.name),
            image: self.service.proxy_image.clone(),
            rule: crate::faults::local::proxy_fault::toxic_name(&self.run_id, &self.name),
            fault_type: self.type_name,
            params: self.params.clone(),
            expires_in: self.remaining + EXPIRY_GRACE,
            ready_timeout: self.service.ready_timeout,
        };
        let client = env.client();
        let original = env
            .block_on(swap_in(client, plan))
            .map_err(self.error(true))?
            .map_err(self.error(true))?;
        self.original = original;
        Ok(self.record())
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        let env = self.env().map_err(self.error(false))?;
        let (ns, svc, objects, original) = self.owned_parts();
        let client = env.client();
        env.block_on(async move { remove(client, &ns, &svc, &objects, &original, None).await })
            .map_err(self.error(false))?
            .map_err(self.error(false))
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        let env = self.env().map_err(self.error(false))?;
        let (ns, svc, objects, original) = self.owned_parts();
        let client = env.client();
        env.block_on(async move { check_removed(client, &ns, &svc, &objects, &original).await })
            .map_err(self.error(false))?
            .map_err(self.error(false))
    }
}
