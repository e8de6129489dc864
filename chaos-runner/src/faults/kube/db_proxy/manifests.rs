//! What the database proxy fault writes to the cluster, built from the database's Service
//! and the fault: the proxy config (the `chaos-runner proxy --config` list, with the
//! fault's rule), the upstream Service, the proxy Deployment, and the selector patches.
//! Pure functions of their inputs; [`super`] sends them.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    DbProxyObjects, ADMIN_LISTEN, CONFIG_DIR, CONFIG_FILE, ORIGINAL_SELECTOR_ANNOTATION,
    PROXY_LABEL,
};
use crate::faults::kube::KubeError;
use crate::spec::DbParams;
use fault_proxy::db_rules::DbFaultInput;
use fault_proxy::{Protocol, ProxyInput};

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
) -> Result<(Vec<PortPlan>, usize), KubeError> {
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    if ports.is_empty() {
        return Err(KubeError::Refused(format!("Service `{what}` has no ports")));
    }
    let mut plans = Vec::new();
    for p in &ports {
        if p.protocol.as_deref().is_some_and(|proto| proto != "TCP") {
            return Err(KubeError::Refused(format!(
                "Service `{what}` port {} is {}; the proxy relays TCP only",
                p.port,
                p.protocol.as_deref().unwrap_or_default()
            )));
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
            return Err(KubeError::Refused(format!(
                "Service `{what}` sends two ports to target port {listen}; the proxy cannot \
                 listen on it twice"
            )));
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
            .ok_or_else(|| {
                KubeError::Refused(format!(
                    "Service `{what}` has no port {w} (it has: {})",
                    list()
                ))
            })?,
        None if plans.len() == 1 => 0,
        None => {
            return Err(KubeError::Refused(format!(
                "Service `{what}` has {} ports ({}); set `service.port` to the one to intercept",
                plans.len(),
                list()
            )))
        }
    };
    Ok((plans, at))
}

/// The Service's selector, refusing one the proxy cannot take the place of (none, empty:
/// ExternalName or hand-managed endpoints) or one already fronted by a proxy.
pub(super) fn selector_of(
    service: &Service,
    what: &str,
) -> Result<BTreeMap<String, String>, KubeError> {
    let spec = service.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        return Err(KubeError::Refused(format!(
            "Service `{what}` is an ExternalName Service: there are no pods behind it for a \
             proxy to stand in front of"
        )));
    }
    let selector = spec.selector.unwrap_or_default();
    if selector.is_empty() {
        return Err(KubeError::Refused(format!(
            "Service `{what}` has no selector (its endpoints are managed by hand or by \
             another controller), so the proxy cannot take its place"
        )));
    }
    let annotated = service
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ORIGINAL_SELECTOR_ANNOTATION));
    if selector.contains_key(PROXY_LABEL) || annotated {
        return Err(KubeError::Refused(format!(
            "Service `{what}` is already fronted by a chaos proxy (selector `{PROXY_LABEL}` or \
             annotation `{ORIGINAL_SELECTOR_ANNOTATION}`); run `chaos-runner recover` first"
        )));
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
///     std::time::Duration::from_secs(45)).unwrap();
/// let json = serde_json::to_value(&c).unwrap();
/// assert_eq!(json[0]["dbfaults"][0]["attributes"]["delay"], "300ms");
/// assert_eq!(json[0]["dbfaults"][0]["expiresIn"], "45s");
/// ```
pub fn proxy_config(
    ports: &[PortPlan],
    intercepted: usize,
    upstream_host: &str,
    (rule, fault_type, params): (&str, &str, &DbParams),
    expires_in: Duration,
) -> Result<Vec<ProxyInput>, KubeError> {
    let attributes = serde_json::to_value(params)
        .map_err(KubeError::json("cannot write the fault's parameters"))?;
    let rule = DbFaultInput {
        name: rule.to_owned(),
        fault_type: fault_type.to_owned(),
        attributes,
        // Whole seconds, rounded up: the rule never ends before the fault does.
        expires_in: Some(Duration::from_secs(expires_in.as_secs_f64().ceil() as u64)),
    };
    Ok(ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut input = ProxyInput {
                listen: Some(format!("0.0.0.0:{}", p.listen)),
                upstream: Some(format!("{upstream_host}:{}", p.port)),
                ..ProxyInput::default()
            };
            if i == intercepted {
                input.name = Some("db".to_owned());
                input.protocol = Some(params.protocol().into());
                input.dbfaults = Some(vec![rule.clone()]);
            } else {
                input.name = Some(format!("tcp-{}", p.port));
                input.protocol = Some(Protocol::Tcp);
            }
            input
        })
        .collect())
}

/// The upstream Service: the original's ports and selector, under `name`.
pub(super) fn upstream_service(
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
pub(super) fn swap_patch(
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
pub(super) fn restore_patch(
    original: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> Value {
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

pub(super) fn typed<T: serde::de::DeserializeOwned>(
    value: Value,
    what: &str,
) -> Result<T, KubeError> {
    serde_json::from_value(value).map_err(KubeError::json(format!("cannot build the {what}")))
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
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!([{
                "name": "db", "listen": "0.0.0.0:5432",
                "upstream": "chaos-slow-1-up.games.svc:5432", "protocol": "postgres",
                "dbfaults": [{"name": "chaos-r1-slow", "type": "postgres-latency",
                    "attributes": {"pattern": "^UPDATE", "delay": "300ms", "rate": 1.0},
                    "expiresIn": "1m 35s"}]
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
            .to_string()
            .contains("set `service.port`"));
        assert!(plan_ports(&svc, "games/pg", Some(1))
            .unwrap_err()
            .to_string()
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
        )
        .unwrap();
        assert_eq!(c[1].protocol, Some(Protocol::Tcp));
        assert!(c[1].dbfaults.is_none());
        assert_eq!(c[1].upstream.as_deref(), Some("up.games.svc:9187"));
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
            .to_string()
            .contains("no selector"));
        let external: Service = serde_json::from_value(
            json!({"spec": {"type": "ExternalName", "externalName": "db.example"}}),
        )
        .unwrap();
        assert!(selector_of(&external, "games/pg")
            .unwrap_err()
            .to_string()
            .contains("ExternalName"));
        let fronted: Service = serde_json::from_value(
            json!({"spec": {"selector": {PROXY_LABEL: "chaos-x"}, "ports": [{"port": 5432}]}}),
        )
        .unwrap();
        assert!(selector_of(&fronted, "games/pg")
            .unwrap_err()
            .to_string()
            .contains("recover"));
        let udp: Service = serde_json::from_value(
            json!({"spec": {"selector": {"app": "pg"}, "ports": [{"port": 53, "protocol": "UDP"}]}}),
        )
        .unwrap();
        assert!(plan_ports(&udp, "games/dns", None)
            .unwrap_err()
            .to_string()
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
        use fault_proxy::{server::ProxyServer, ProxyInput};
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
        )
        .unwrap();
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
        fault_proxy::dbproto::DbRelays::default().register(server.registry());
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
