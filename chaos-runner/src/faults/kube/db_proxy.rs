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
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::{KubeConnector, KubeEnv};
use super::ephemeral::is_not_found;
use super::target;
use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::{DbParams, ProxyProtocol, ServiceSelector};

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

/// One proxy of the config `chaos-runner proxy --config` reads (a list, like
/// toxiproxy's `/populate`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyConfig {
    /// The proxy's name.
    pub name: String,
    /// Where it listens in the proxy pod (`0.0.0.0:5432`).
    pub listen: String,
    /// The upstream Service (`<name>.<namespace>.svc:<port>`).
    pub upstream: String,
    /// `postgres` or `redis` for the intercepted port, `tcp` for the Service's others.
    pub protocol: ProxyProtocol,
    /// The database fault rules set at start.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dbfaults: Vec<DbFaultConfig>,
}

/// A database fault rule in the proxy config.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbFaultConfig {
    /// The rule's name (`chaos-<run>-<fault>`).
    pub name: String,
    /// The fault type (`postgres-latency`).
    #[serde(rename = "type")]
    pub fault_type: String,
    /// Exactly the fault's `parameters`.
    pub attributes: DbParams,
    /// When the rule ends by itself, from the proxy's start (`95s`).
    pub expires_in: String,
}

/// How one port of the Service is relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    /// The Service port's name, if any.
    pub name: Option<String>,
    /// The Service port.
    pub port: i32,
    /// The port the proxy listens on in its pod (the Service's `targetPort` when it is a
    /// number, else the Service port).
    pub listen: i32,
    /// The named `targetPort`, which the proxy container's port then carries.
    pub target_name: Option<String>,
}

/// The ports of `service` as the proxy relays them, and the index of the intercepted one
/// (`wanted`, or the only port). Refuses UDP ports and two ports on one target port.
///
/// ```
/// use chaos_runner::faults::kube::db_proxy::plan_ports;
/// let svc = serde_json::from_value(serde_json::json!({"spec": {"selector": {"app": "pg"},
///     "ports": [{"port": 5432, "targetPort": 15432}]}})).unwrap();
/// let (ports, at) = plan_ports(&svc, "games/postgres", None).unwrap();
/// assert_eq!((ports[at].port, ports[at].listen), (5432, 15432));
/// ```
pub fn plan_ports(
    service: &Service,
    what: &str,
    wanted: Option<u16>,
) -> Result<(Vec<PortPlan>, usize), String> {
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    if ports.is_empty() {
        return Err(format!("Service `{what}` has no ports"));
    }
    let mut plans = Vec::new();
    for p in &ports {
        if p.protocol.as_deref().is_some_and(|proto| proto != "TCP") {
            return Err(format!(
                "Service `{what}` port {} is {}; the proxy relays TCP only",
                p.port,
                p.protocol.as_deref().unwrap_or_default()
            ));
        }
        let (listen, target_name) = match &p.target_port {
            Some(IntOrString::Int(n)) => (*n, None),
            Some(IntOrString::String(s)) => match s.parse::<i32>() {
                Ok(n) => (n, None),
                Err(_) => (p.port, Some(s.clone())),
            },
            None => (p.port, None),
        };
        if plans.iter().any(|q: &PortPlan| q.listen == listen) {
            return Err(format!(
                "Service `{what}` sends two ports to target port {listen}; the proxy cannot \
                 listen on it twice"
            ));
        }
        plans.push(PortPlan {
            name: p.name.clone(),
            port: p.port,
            listen,
            target_name,
        });
    }
    let list = || {
        plans
            .iter()
            .map(|p| p.port.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let at = match wanted {
        Some(w) => plans
            .iter()
            .position(|p| p.port == i32::from(w))
            .ok_or_else(|| format!("Service `{what}` has no port {w} (it has: {})", list()))?,
        None if plans.len() == 1 => 0,
        None => {
            return Err(format!(
                "Service `{what}` has {} ports ({}); set `service.port` to the one to intercept",
                plans.len(),
                list()
            ))
        }
    };
    Ok((plans, at))
}

/// The Service's selector, refusing one the proxy cannot take the place of (none, empty:
/// ExternalName or hand-managed endpoints) or one already fronted by a proxy.
fn selector_of(service: &Service, what: &str) -> Result<BTreeMap<String, String>, String> {
    let spec = service.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        return Err(format!(
            "Service `{what}` is an ExternalName Service: there are no pods behind it for a \
             proxy to stand in front of"
        ));
    }
    let selector = spec.selector.unwrap_or_default();
    if selector.is_empty() {
        return Err(format!(
            "Service `{what}` has no selector (its endpoints are managed by hand or by \
             another controller), so the proxy cannot take its place"
        ));
    }
    let annotated = service
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ORIGINAL_SELECTOR_ANNOTATION));
    if selector.contains_key(PROXY_LABEL) || annotated {
        return Err(format!(
            "Service `{what}` is already fronted by a chaos proxy (selector `{PROXY_LABEL}` or \
             annotation `{ORIGINAL_SELECTOR_ANNOTATION}`); run `chaos-runner recover` first"
        ));
    }
    Ok(selector)
}

/// The proxy config: the intercepted port with the fault's rule, the Service's other
/// ports as plain TCP relays, all to the upstream Service.
///
/// ```
/// use chaos_runner::faults::kube::db_proxy::{proxy_config, PortPlan};
/// use chaos_runner::spec::{DbParams, PostgresLatencyParams};
/// let ports = [PortPlan { name: None, port: 5432, listen: 5432, target_name: None }];
/// let p = DbParams::PostgresLatency(PostgresLatencyParams {
///     pattern: "^UPDATE".into(), delay: std::time::Duration::from_millis(300), rate: 1.0 });
/// let c = proxy_config(&ports, 0, "pg-up.games.svc", ("chaos-r1-slow", "postgres-latency", &p),
///     std::time::Duration::from_secs(95));
/// let json = serde_json::to_value(&c).unwrap();
/// assert_eq!(json[0]["dbfaults"][0]["attributes"]["delay"], "300ms");
/// assert_eq!(json[0]["dbfaults"][0]["expiresIn"], "95s");
/// ```
pub fn proxy_config(
    ports: &[PortPlan],
    intercepted: usize,
    upstream_host: &str,
    (rule, fault_type, params): (&str, &str, &DbParams),
    expires_in: Duration,
) -> Vec<ProxyConfig> {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let upstream = format!("{upstream_host}:{}", p.port);
            let listen = format!("0.0.0.0:{}", p.listen);
            if i == intercepted {
                ProxyConfig {
                    name: "db".to_owned(),
                    listen,
                    upstream,
                    protocol: params.protocol(),
                    dbfaults: vec![DbFaultConfig {
                        name: rule.to_owned(),
                        fault_type: fault_type.to_owned(),
                        attributes: params.clone(),
                        expires_in: format!("{}s", expires_in.as_secs_f64().ceil() as u64),
                    }],
                }
            } else {
                ProxyConfig {
                    name: format!("tcp-{}", p.port),
                    listen,
                    upstream,
                    protocol: ProxyProtocol::Tcp,
                    dbfaults: Vec::new(),
                }
            }
        })
        .collect()
}

/// The upstream Service: the original's ports and selector, under `name`.
fn upstream_service(
    original: &Service,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    selector: &BTreeMap<String, String>,
) -> Value {
    let ports: Vec<Value> = original
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let mut v =
                json!({ "port": p.port, "protocol": p.protocol.unwrap_or_else(|| "TCP".into()) });
            if let Some(n) = p.name {
                v["name"] = json!(n);
            }
            if let Some(t) = p.target_port {
                v["targetPort"] = serde_json::to_value(t).unwrap_or(Value::Null);
            }
            v
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "namespace": namespace, "labels": labels },
        "spec": { "type": "ClusterIP", "selector": selector, "ports": ports },
    })
}

/// The proxy Deployment: one replica of `image` running `chaos-runner proxy` with the
/// config of ConfigMap `objects.config_map`, ready once the intercepted port accepts
/// connections.
///
/// ```
/// use chaos_runner::faults::kube::db_proxy::{deployment, DbProxyObjects, PortPlan};
/// let o = DbProxyObjects::for_fault("r1", "slow");
/// let ports = [PortPlan { name: None, port: 5432, listen: 5432, target_name: None }];
/// let d = deployment("games", &o, &Default::default(), "chaos-runner:latest", &ports, 0);
/// assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["args"][0], "proxy");
/// ```
pub fn deployment(
    namespace: &str,
    objects: &DbProxyObjects,
    labels: &BTreeMap<String, String>,
    image: &str,
    ports: &[PortPlan],
    intercepted: usize,
) -> Value {
    let mut pod_labels = labels.clone();
    pod_labels.insert(PROXY_LABEL.to_owned(), objects.deployment.clone());
    let container_ports: Vec<Value> = ports
        .iter()
        .map(|p| {
            let mut v = json!({ "containerPort": p.listen, "protocol": "TCP" });
            if let Some(n) = &p.target_name {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    let probe_port = ports.get(intercepted).map_or(0, |p| p.listen);
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": objects.deployment, "namespace": namespace, "labels": labels },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { PROXY_LABEL: objects.deployment } },
            "template": {
                "metadata": { "labels": pod_labels },
                "spec": {
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": "proxy",
                        "image": image,
                        "command": ["chaos-runner"],
                        "args": ["proxy", "--listen", ADMIN_LISTEN, "--config",
                                 format!("{CONFIG_DIR}/{CONFIG_FILE}")],
                        "ports": container_ports,
                        "readinessProbe": {
                            "tcpSocket": { "port": probe_port },
                            "periodSeconds": 1,
                            "failureThreshold": 3,
                        },
                        "resources": {
                            "requests": { "cpu": "50m", "memory": "32Mi" },
                            "limits": { "cpu": "500m", "memory": "128Mi" },
                        },
                        // Admitted under the `restricted` Pod Security level (the runner
                        // image runs as user 10001).
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "seccompProfile": { "type": "RuntimeDefault" },
                            "capabilities": { "drop": ["ALL"] },
                        },
                        "volumeMounts": [{ "name": "config", "mountPath": CONFIG_DIR, "readOnly": true }],
                    }],
                    "volumes": [{ "name": "config", "configMap": { "name": objects.config_map } }],
                },
            },
        },
    })
}

/// The merge patch pointing the Service at the proxy pods: every original selector key
/// removed, the proxy label set, the original kept in the annotation. With the
/// `resourceVersion` read, so a Service changed in between is not overwritten.
fn swap_patch(
    original: &BTreeMap<String, String>,
    proxy: &str,
    resource_version: Option<&str>,
) -> Value {
    let mut selector = serde_json::Map::new();
    for k in original.keys() {
        selector.insert(k.clone(), Value::Null);
    }
    selector.insert(PROXY_LABEL.to_owned(), json!(proxy));
    let annotation = serde_json::to_string(original).unwrap_or_default();
    let mut patch = json!({
        "metadata": { "annotations": { ORIGINAL_SELECTOR_ANNOTATION: annotation } },
        "spec": { "selector": selector },
    });
    if let Some(rv) = resource_version {
        patch["metadata"]["resourceVersion"] = json!(rv);
    }
    patch
}

/// The merge patch restoring `original` and dropping the annotation.
fn restore_patch(original: &BTreeMap<String, String>, current: &BTreeMap<String, String>) -> Value {
    let mut selector = serde_json::Map::new();
    for k in current.keys() {
        selector.insert(k.clone(), Value::Null);
    }
    for (k, v) in original {
        selector.insert(k.clone(), json!(v));
    }
    json!({
        "metadata": { "annotations": { ORIGINAL_SELECTOR_ANNOTATION: Value::Null } },
        "spec": { "selector": selector },
    })
}

fn typed<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("cannot build the {what}: {e}"))
}

/// Waits until Deployment `name` has an available replica, for at most `timeout`.
async fn wait_available(
    api: &Api<Deployment>,
    name: &str,
    timeout: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let d = api
            .get(name)
            .await
            .map_err(|e| format!("cannot read Deployment `{name}`: {e}"))?;
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
            return Err(format!(
                "proxy Deployment `{name}` is not available after {}: {available}/1 replicas \
                 available{} (is its image pullable? `kubectl describe deployment {name}`)",
                humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
                if conditions.is_empty() {
                    String::new()
                } else {
                    format!(", conditions: {}", conditions.join("; "))
                }
            ));
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
async fn swap_in(client: kube::Client, plan: Plan) -> Result<BTreeMap<String, String>, String> {
    let ns = plan.namespace.as_str();
    let what = format!("{ns}/{}", plan.service);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc = services
        .get(&plan.service)
        .await
        .map_err(|e| format!("cannot read Service `{what}`: {e}"))?;
    let original = selector_of(&svc, &what)?;
    let (ports, at) = plan_ports(&svc, &what, plan.port)?;
    let upstream_host = format!("{}.{ns}.svc", plan.objects.upstream_service);
    let config = proxy_config(
        &ports,
        at,
        &upstream_host,
        (&plan.rule, plan.fault_type, &plan.params),
        plan.expires_in,
    );
    let config_json = serde_json::to_string_pretty(&config)
        .map_err(|e| format!("cannot write the proxy config: {e}"))?;
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
            .map_err(|e| format!("cannot create ConfigMap `{}`: {e}", plan.objects.config_map))?;
        services
            .create(&PostParams::default(), &up)
            .await
            .map_err(|e| {
                format!("cannot create Service `{}`: {e}", plan.objects.upstream_service)
            })?;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        deployments
            .create(&PostParams::default(), &dep)
            .await
            .map_err(|e| format!("cannot create Deployment `{}`: {e}", plan.objects.deployment))?;
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
            .map_err(|e| format!("cannot point Service `{what}` at the proxy: {e}"))?;
        Ok::<_, String>(())
    }
    .await;
    match created {
        Ok(()) => {
            tracing::info!(service = %what, proxy = %plan.objects.deployment, "Service now points at the DB proxy");
            Ok(original)
        }
        Err(e) => {
            let cleanup = delete_objects(client, ns, &plan.objects).await;
            Err(match cleanup {
                Ok(()) => format!("{e} (the objects created so far were deleted)"),
                Err(c) => format!("{e}; and cleaning up failed too: {c}"),
            })
        }
    }
}

/// Deletes the Deployment, the upstream Service and the ConfigMap (absent ones are fine).
async fn delete_objects(
    client: kube::Client,
    ns: &str,
    objects: &DbProxyObjects,
) -> Result<(), String> {
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

fn absent_ok(result: Result<(), kube::Error>, kind: &str, name: &str) -> Result<(), String> {
    match result {
        Ok(()) => {
            tracing::info!(kind, name, "deleted");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(format!("cannot delete {kind} `{name}`: {e}")),
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
) -> Result<(), String> {
    let api: Api<Service> = Api::namespaced(client, ns);
    let Some(svc) = api
        .get_opt(service)
        .await
        .map_err(|e| format!("cannot read Service `{ns}/{service}`: {e}"))?
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
                return Err(format!(
                    "Service `{ns}/{service}` points at the proxy but neither its annotation \
                     `{ORIGINAL_SELECTOR_ANNOTATION}` nor the journal holds the original selector"
                ))
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
        .map_err(|e| format!("cannot restore the selector of Service `{ns}/{service}`: {e}"))?;
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
) -> Result<(), String> {
    restore_service(client.clone(), ns, service, objects, recorded).await?;
    delete_objects(client.clone(), ns, objects).await?;
    let Some(labels) = sweep else { return Ok(()) };
    let by_run = ListParams::default().labels(labels);
    let names = |items: Vec<Option<String>>| items.into_iter().flatten().collect::<Vec<_>>();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let found = deployments
        .list(&by_run)
        .await
        .map_err(|e| format!("cannot list Deployments of the run: {e}"))?;
    for name in names(found.items.into_iter().map(|d| d.metadata.name).collect()) {
        absent_ok(
            deployments
                .delete(&name, &DeleteParams::background())
                .await
                .map(|_| ()),
            "Deployment",
            &name,
        )?;
    }
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let found = services
        .list(&by_run)
        .await
        .map_err(|e| format!("cannot list Services of the run: {e}"))?;
    for name in names(found.items.into_iter().map(|d| d.metadata.name).collect()) {
        absent_ok(
            services
                .delete(&name, &DeleteParams::default())
                .await
                .map(|_| ()),
            "Service",
            &name,
        )?;
    }
    let maps: Api<ConfigMap> = Api::namespaced(client, ns);
    let found = maps
        .list(&by_run)
        .await
        .map_err(|e| format!("cannot list ConfigMaps of the run: {e}"))?;
    for name in names(found.items.into_iter().map(|d| d.metadata.name).collect()) {
        absent_ok(
            maps.delete(&name, &DeleteParams::default())
                .await
                .map(|_| ()),
            "ConfigMap",
            &name,
        )?;
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
) -> Result<(), String> {
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    if let Some(svc) = services
        .get_opt(service)
        .await
        .map_err(|e| format!("cannot read Service `{ns}/{service}` back: {e}"))?
    {
        let current = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if current.get(PROXY_LABEL) == Some(&objects.deployment) {
            return Err(format!(
                "Service `{ns}/{service}` still points at the proxy"
            ));
        }
        if !original.is_empty() && current != *original {
            return Err(format!(
                "Service `{ns}/{service}` has selector {current:?}, not the original {original:?}"
            ));
        }
        if annotation_of(&svc).is_some() {
            return Err(format!(
                "Service `{ns}/{service}` still carries `{ORIGINAL_SELECTOR_ANNOTATION}`"
            ));
        }
    }
    let gone = |found: Result<bool, kube::Error>, kind: &str, name: &str| match found {
        Ok(false) => Ok(()),
        Ok(true) => Err(format!("{kind} `{name}` is still there")),
        Err(e) => Err(format!("cannot read {kind} `{name}` back: {e}")),
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

    fn record(&self) -> FaultRecord {
        FaultRecord::KubeDbProxy {
            namespace: self.service.namespace.clone(),
            service: self.service.name.clone(),
            original_selector: self.original.clone(),
            objects: self.objects.clone(),
        }
    }

    fn env(&self) -> Result<KubeEnv, String> {
        self.kube.get().cloned()
    }

    fn error(&self, inject: bool) -> impl Fn(String) -> FaultError + '_ {
        move |reason| {
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

    fn targets(&self) -> Option<Result<Vec<String>, String>> {
        let (ns, name, port) = (
            self.service.namespace.clone(),
            self.service.name.clone(),
            self.service.port,
        );
        let resolve = || -> Result<Vec<String>, String> {
            let env = self.env()?;
            let client = env.client();
            env.block_on(async move {
                let what = format!("{ns}/{name}");
                let svc = Api::<Service>::namespaced(client, &ns)
                    .get(&name)
                    .await
                    .map_err(|e| format!("cannot read Service `{what}`: {e}"))?;
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
        let (ns, svc, objects, original) = (
            self.service.namespace.clone(),
            self.service.name.clone(),
            self.objects.clone(),
            self.original.clone(),
        );
        let client = env.client();
        env.block_on(async move { remove(client, &ns, &svc, &objects, &original, None).await })
            .map_err(self.error(false))?
            .map_err(self.error(false))
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        let env = self.env().map_err(self.error(false))?;
        let (ns, svc, objects, original) = (
            self.service.namespace.clone(),
            self.service.name.clone(),
            self.objects.clone(),
            self.original.clone(),
        );
        let client = env.client();
        env.block_on(async move { check_removed(client, &ns, &svc, &objects, &original).await })
            .map_err(self.error(false))?
            .map_err(self.error(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{PostgresErrorParams, PostgresLatencyParams};

    fn one_port() -> Vec<PortPlan> {
        vec![PortPlan {
            name: None,
            port: 5432,
            listen: 5432,
            target_name: None,
        }]
    }

    #[test]
    fn proxy_config_is_the_populate_list_with_the_fault_parameters_as_attributes() {
        let p = DbParams::PostgresLatency(PostgresLatencyParams {
            pattern: "^UPDATE".into(),
            delay: Duration::from_millis(300),
            rate: 1.0,
        });
        let c = proxy_config(
            &one_port(),
            0,
            "chaos-slow-1-up.games.svc",
            ("chaos-r1-slow", "postgres-latency", &p),
            Duration::from_millis(94_200),
        );
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!([{
                "name": "db", "listen": "0.0.0.0:5432",
                "upstream": "chaos-slow-1-up.games.svc:5432", "protocol": "postgres",
                "dbfaults": [{"name": "chaos-r1-slow", "type": "postgres-latency",
                    "attributes": {"pattern": "^UPDATE", "delay": "300ms", "rate": 1.0},
                    "expiresIn": "95s"}]
            }])
        );
    }

    #[test]
    fn other_service_ports_become_plain_tcp_relays() {
        let svc: Service =
            serde_json::from_value(json!({"spec": {"selector": {"app": "pg"}, "ports": [
                {"name": "sql", "port": 5432, "targetPort": "pgport"},
                {"name": "metrics", "port": 9187, "targetPort": 9187}
            ]}}))
            .unwrap();
        assert!(plan_ports(&svc, "games/pg", None)
            .unwrap_err()
            .contains("set `service.port`"));
        assert!(plan_ports(&svc, "games/pg", Some(1))
            .unwrap_err()
            .contains("no port 1 (it has: 5432, 9187)"));
        let (ports, at) = plan_ports(&svc, "games/pg", Some(5432)).unwrap();
        assert_eq!(at, 0);
        assert_eq!(ports[0].target_name.as_deref(), Some("pgport"));
        assert_eq!(ports[0].listen, 5432);
        let p = DbParams::PostgresError(PostgresErrorParams {
            pattern: "^INSERT".into(),
            sqlstate: "40001".into(),
            severity: Default::default(),
            message: None,
            rate: 0.5,
        });
        let c = proxy_config(
            &ports,
            at,
            "up.games.svc",
            ("r", "postgres-error", &p),
            Duration::from_secs(5),
        );
        assert_eq!(c[1].protocol, ProxyProtocol::Tcp);
        assert!(c[1].dbfaults.is_empty());
        assert_eq!(c[1].upstream, "up.games.svc:9187");
        let d = deployment(
            "games",
            &DbProxyObjects::for_fault("r", "f"),
            &BTreeMap::new(),
            "img:1",
            &ports,
            at,
        );
        let container = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["ports"][0],
            json!({"containerPort": 5432, "protocol": "TCP", "name": "pgport"})
        );
        assert_eq!(container["readinessProbe"]["tcpSocket"]["port"], 5432);
    }

    #[test]
    fn services_the_proxy_cannot_front_are_refused() {
        let none: Service =
            serde_json::from_value(json!({"spec": {"ports": [{"port": 5432}]}})).unwrap();
        assert!(selector_of(&none, "games/pg")
            .unwrap_err()
            .contains("no selector"));
        let external: Service = serde_json::from_value(
            json!({"spec": {"type": "ExternalName", "externalName": "db.example"}}),
        )
        .unwrap();
        assert!(selector_of(&external, "games/pg")
            .unwrap_err()
            .contains("ExternalName"));
        let fronted: Service = serde_json::from_value(
            json!({"spec": {"selector": {PROXY_LABEL: "chaos-x"}, "ports": [{"port": 5432}]}}),
        )
        .unwrap();
        assert!(selector_of(&fronted, "games/pg")
            .unwrap_err()
            .contains("recover"));
        let udp: Service = serde_json::from_value(
            json!({"spec": {"selector": {"app": "pg"}, "ports": [{"port": 53, "protocol": "UDP"}]}}),
        )
        .unwrap();
        assert!(plan_ports(&udp, "games/dns", None)
            .unwrap_err()
            .contains("TCP only"));
    }

    #[test]
    fn swap_and_restore_patches_replace_the_selector_rather_than_merge_into_it() {
        let original = BTreeMap::from([("app".to_owned(), "postgres".to_owned())]);
        let swap = swap_patch(&original, "chaos-db-1", Some("42"));
        assert_eq!(
            swap,
            json!({"metadata": {"resourceVersion": "42", "annotations": {ORIGINAL_SELECTOR_ANNOTATION: "{\"app\":\"postgres\"}"}},
                   "spec": {"selector": {"app": null, PROXY_LABEL: "chaos-db-1"}}})
        );
        let current = BTreeMap::from([(PROXY_LABEL.to_owned(), "chaos-db-1".to_owned())]);
        assert_eq!(
            restore_patch(&original, &current),
            json!({"metadata": {"annotations": {ORIGINAL_SELECTOR_ANNOTATION: null}},
                   "spec": {"selector": {"app": "postgres", PROXY_LABEL: null}}})
        );
    }

    /// The config is what `chaos-runner proxy --config` reads: it deserializes into the
    /// proxy's own input type, and a real proxy server populated with it (as the proxy
    /// pod's is at start) holds the rule with the fault's attributes and expiry.
    #[test]
    fn generated_config_populates_a_real_proxy_server() {
        use crate::faults::local::proxy::{server::ProxyServer, ProxyInput};
        let p = DbParams::PostgresLatency(PostgresLatencyParams {
            pattern: "^UPDATE".into(),
            delay: Duration::from_millis(300),
            rate: 1.0,
        });
        let ports = vec![
            PortPlan {
                name: None,
                port: 5432,
                listen: 5432,
                target_name: None,
            },
            PortPlan {
                name: Some("metrics".into()),
                port: 9187,
                listen: 9187,
                target_name: None,
            },
        ];
        let config = proxy_config(
            &ports,
            0,
            "chaos-slow-1-up.games.svc",
            ("chaos-r1-slow", "postgres-latency", &p),
            Duration::from_secs(95),
        );
        let text = serde_json::to_string_pretty(&config).unwrap();
        let mut inputs: Vec<ProxyInput> = serde_json::from_str(&text).unwrap();
        let rules = inputs[0].dbfaults.clone().unwrap();
        assert_eq!(rules[0].expires_in, Some(Duration::from_secs(95)));
        assert_eq!(rules[0].fault_type, "postgres-latency");
        rules[0].check().unwrap();
        assert!(inputs[1].dbfaults.is_none());
        // The pod listens on 0.0.0.0:5432; here a free loopback port stands in.
        for input in &mut inputs {
            input.listen = Some("127.0.0.1:0".into());
        }
        let server = ProxyServer::start(None).unwrap();
        crate::faults::local::dbproto::DbRelays::default().register(server.registry());
        server.registry().populate(inputs).unwrap();
        let set = server.registry().db_faults("db").unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].name, "chaos-r1-slow");
        assert_eq!(
            set[0].attributes,
            json!({"pattern": "^UPDATE", "delay": "300ms", "rate": 1.0})
        );
        let left = set[0].expires_in_ms.unwrap();
        assert!((90_000..=95_000).contains(&left), "{left}");
        assert_eq!(
            server.registry().get("tcp-9187").unwrap().upstream,
            "chaos-slow-1-up.games.svc:9187"
        );
    }
}
