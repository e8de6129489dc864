//! An in-memory fake Kubernetes API server behind a `kube::Client`: pods with owners and
//! readiness (an owner replaces a deleted pod with one that turns Ready after a delay),
//! evictions checked against PodDisruptionBudgets, NetworkPolicies, label and field
//! selectors, ephemeral containers (the `ephemeralcontainers` subresource, with statuses:
//! a helper runs until its `--duration`, a stopper ends the helpers of its run and fault
//! that share its target container's process namespace), Services, ConfigMaps and
//! Deployments (create, get, list by label, JSON merge patch with a `resourceVersion`
//! precondition, delete; a Deployment turns available after the replacement delay unless
//! stalled), and a log of every request. It speaks the API's JSON over the tower
//! service kube's client uses, so everything above the wire is the real code.

#![allow(dead_code)]

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaos_runner::faults::kube::{KubeConnector, KubeEnv};

/// A PodDisruptionBudget: at least `min_available` Ready pods with `labels` in `namespace`.
#[derive(Clone)]
struct Pdb {
    namespace: String,
    labels: BTreeMap<String, String>,
    min_available: usize,
}

#[derive(Default)]
struct State {
    pods: BTreeMap<(String, String), Value>,
    policies: BTreeMap<(String, String), Value>,
    pdbs: Vec<Pdb>,
    ready_at: BTreeMap<(String, String), Instant>,
    log: Vec<String>,
    next_id: u64,
    replacement_delay: Duration,
    fail_policy_delete: bool,
    denied: Vec<(String, String)>,
    /// Running ephemeral helpers: (namespace, pod, container) -> when they end by themselves.
    helper_ends: BTreeMap<(String, String, String), Instant>,
    /// Images whose pull fails (their containers stay waiting in `ErrImagePull`).
    bad_images: Vec<String>,
    /// Stoppers do nothing (a helper that ignores SIGTERM).
    stoppers_ignored: bool,
    /// Pods whose containers' main process catches no signal.
    deaf: Vec<(String, String)>,
    /// Containers stopped by a signal: (namespace, pod, container) -> when they are Ready again.
    restarting: BTreeMap<(String, String, String), Instant>,
    /// Services, ConfigMaps and Deployments: (resource, namespace, name) -> object.
    objects: BTreeMap<(String, String, String), Value>,
    /// Deployments not yet available: (namespace, name) -> when they are.
    deployments_due: BTreeMap<(String, String), Instant>,
    /// Deployments never become available (an image that cannot be pulled).
    deployments_stalled: bool,
    /// The last resourceVersion handed out.
    resource_version: u64,
}

/// The resources kept in the generic object store, by their path segment.
const STORED: &[&str] = &["services", "configmaps", "deployments"];

/// A ClusterIP Service `name` in `ns` selecting `selector`, with one TCP port per entry
/// of `ports` (named `p<port>`, targetPort the same number), as the API server returns it.
pub fn service_json(ns: &str, name: &str, selector: &[(&str, &str)], ports: &[u16]) -> Value {
    let selector: BTreeMap<&str, &str> = selector.iter().copied().collect();
    let ports: Vec<Value> = ports
        .iter()
        .map(|p| json!({"name": format!("p{p}"), "port": p, "targetPort": p, "protocol": "TCP"}))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-svc-{name}"), "resourceVersion": "7"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "selector": selector, "ports": ports}
    })
}

/// RFC 7386 JSON merge patch: objects merge key by key, `null` removes, anything else
/// replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().unwrap();
    for (k, v) in fields {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The fake cluster; clones share state.
#[derive(Clone, Default)]
pub struct FakeCluster {
    state: Arc<Mutex<State>>,
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Status", "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "reason": reason, "message": message, "code": code,
    })
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(uri: &http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (decode(k), decode(v))))
        .collect()
}

fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `obj` matches a label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`).
fn label_match(obj: &Value, selector: Option<&String>) -> bool {
    let labels = labels_of(obj);
    selector.is_none_or(|s| {
        s.split(',').filter(|t| !t.is_empty()).all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                labels.get(k).map(String::as_str) != Some(v)
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                labels.get(k).map(String::as_str) == Some(v)
            } else if let Some(k) = term.strip_prefix('!') {
                !labels.contains_key(k)
            } else {
                labels.contains_key(term)
            }
        })
    })
}

/// Whether a pod matches a field selector over name, namespace, node and phase.
fn field_match(obj: &Value, selector: Option<&String>) -> bool {
    selector.is_none_or(|s| {
        s.split(',').filter(|t| !t.is_empty()).all(|term| {
            let (path, value, equal) = match term.split_once("!=") {
                Some((p, v)) => (p, v, false),
                None => match term.split_once("==").or_else(|| term.split_once('=')) {
                    Some((p, v)) => (p, v, true),
                    None => return false,
                },
            };
            let actual = match path {
                "metadata.name" => obj["metadata"]["name"].as_str(),
                "metadata.namespace" => obj["metadata"]["namespace"].as_str(),
                "spec.nodeName" => obj["spec"]["nodeName"].as_str(),
                "status.phase" => obj["status"]["phase"].as_str(),
                _ => return false,
            };
            (actual == Some(value)) == equal
        })
    })
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn pod_json(
    ns: &str,
    name: &str,
    uid: &str,
    labels: &BTreeMap<String, String>,
    owner: Option<&str>,
    ready: bool,
) -> Value {
    let owners: Vec<Value> = owner
        .map(|o| {
            vec![json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": o, "uid": format!("uid-{o}"), "controller": true})]
        })
        .unwrap_or_default();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": uid, "labels": labels, "ownerReferences": owners, "annotations": {}},
        "spec": {"containers": [{"name": "app", "image": "game:1"}], "nodeName": "node-1"},
        "status": {
            "phase": if ready { "Running" } else { "Pending" },
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{"name": "app", "image": "game:1", "imageID": "", "ready": ready, "restartCount": 0,
                "state": if ready { json!({"running": {"startedAt": "2026-11-25T12:00:00Z"}}) } else { json!({"waiting": {"reason": "ContainerCreating"}}) }}]
        }
    })
}

fn set_ready(pod: &mut Value) {
    pod["status"]["phase"] = json!("Running");
    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    if let Some(list) = pod["status"]["containerStatuses"].as_array_mut() {
        for c in list {
            c["ready"] = json!(true);
            c["state"] = json!({"running": {"startedAt": "2026-11-25T12:00:00Z"}});
        }
    }
}

impl FakeCluster {
    /// An empty cluster whose owners bring replacements Ready after `replacement_delay`.
    pub fn new(replacement_delay: Duration) -> FakeCluster {
        let fake = FakeCluster::default();
        fake.state.lock().unwrap().replacement_delay = replacement_delay;
        fake
    }

    /// Adds a Ready, Running pod.
    pub fn add_pod(&self, ns: &str, name: &str, labels: &[(&str, &str)], owner: Option<&str>) {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let uid = format!("uid-{}", s.next_id);
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s.pods.insert(
            (ns.into(), name.into()),
            pod_json(ns, name, &uid, &labels, owner, true),
        );
    }

    /// Annotates a pod `chaos.game-resilience.dev/protected: "true"`.
    pub fn protect(&self, ns: &str, name: &str) {
        let mut s = self.state.lock().unwrap();
        let pod = s.pods.get_mut(&(ns.into(), name.into())).unwrap();
        pod["metadata"]["annotations"]["chaos.game-resilience.dev/protected"] = json!("true");
    }

    /// Adds a PodDisruptionBudget.
    pub fn add_pdb(&self, ns: &str, labels: &[(&str, &str)], min_available: usize) {
        self.state.lock().unwrap().pdbs.push(Pdb {
            namespace: ns.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            min_available,
        });
    }

    /// Makes NetworkPolicy deletes fail with 500 (a broken revert).
    pub fn fail_policy_deletes(&self, fail: bool) {
        self.state.lock().unwrap().fail_policy_delete = fail;
    }

    /// Makes pulls of `image` fail (`ErrImagePull`).
    pub fn bad_image(&self, image: &str) {
        self.state.lock().unwrap().bad_images.push(image.into());
    }

    /// Makes the main process of every container of pod `name` catch no signal.
    pub fn deaf(&self, ns: &str, name: &str) {
        self.state
            .lock()
            .unwrap()
            .deaf
            .push((ns.into(), name.into()));
    }

    /// Makes stopper containers stop nothing.
    pub fn ignore_stoppers(&self, ignore: bool) {
        self.state.lock().unwrap().stoppers_ignored = ignore;
    }

    /// Denies `verb` on `resource` in SelfSubjectAccessReviews.
    pub fn deny(&self, verb: &str, resource: &str) {
        self.state
            .lock()
            .unwrap()
            .denied
            .push((verb.into(), resource.into()));
    }

    /// The pods of `ns` now.
    pub fn pods(&self, ns: &str) -> Vec<Value> {
        let mut s = self.state.lock().unwrap();
        tick(&mut s);
        s.pods
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// The names of the pods of `ns` now.
    pub fn pod_names(&self, ns: &str) -> Vec<String> {
        self.pods(ns)
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The NetworkPolicies of `ns` now.
    pub fn policies(&self, ns: &str) -> Vec<Value> {
        let s = self.state.lock().unwrap();
        s.policies
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Stores a NetworkPolicy directly (a leftover of some crashed run).
    pub fn put_policy(&self, ns: &str, policy: Value) {
        let name = policy["metadata"]["name"].as_str().unwrap().to_owned();
        self.state
            .lock()
            .unwrap()
            .policies
            .insert((ns.into(), name), policy);
    }

    /// Adds a Service selecting `selector` with TCP `ports`.
    pub fn add_service(&self, ns: &str, name: &str, selector: &[(&str, &str)], ports: &[u16]) {
        self.put_object("services", service_json(ns, name, selector, ports));
    }

    /// Stores a Service, ConfigMap or Deployment (`resource` as in its path) directly.
    pub fn put_object(&self, resource: &str, object: Value) {
        let ns = object["metadata"]["namespace"].as_str().unwrap().to_owned();
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        self.state
            .lock()
            .unwrap()
            .objects
            .insert((resource.into(), ns, name), object);
    }

    /// The stored object, if any.
    pub fn object(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let mut s = self.state.lock().unwrap();
        tick(&mut s);
        s.objects
            .get(&(resource.into(), ns.into(), name.into()))
            .cloned()
    }

    /// The stored objects of `resource` in `ns`.
    pub fn objects(&self, resource: &str, ns: &str) -> Vec<Value> {
        let mut s = self.state.lock().unwrap();
        tick(&mut s);
        s.objects
            .iter()
            .filter(|((r, n, _), _)| r == resource && n == ns)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Makes Deployments never become available.
    pub fn stall_deployments(&self, stall: bool) {
        self.state.lock().unwrap().deployments_stalled = stall;
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// A kube client on this fake (call inside a runtime).
    pub fn client(&self) -> kube::Client {
        let fake = self.clone();
        let svc = tower::service_fn(move |req: Request<Body>| {
            let fake = fake.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                Ok::<_, Infallible>(fake.handle(&parts.method, &parts.uri, &bytes))
            }
        });
        kube::Client::new(svc, "default")
    }

    /// A connector handing out a client on this fake, running on `rt`.
    pub fn connector(&self, rt: &tokio::runtime::Runtime) -> Arc<KubeConnector> {
        let _guard = rt.enter();
        Arc::new(KubeConnector::with(KubeEnv::new(
            self.client(),
            rt.handle().clone(),
        )))
    }

    fn handle(&self, method: &Method, uri: &http::Uri, body: &[u8]) -> Response<Body> {
        let mut s = self.state.lock().unwrap();
        tick(&mut s);
        s.log.push(format!(
            "{method} {}{}",
            uri.path(),
            uri.query()
                .filter(|q| !q.is_empty())
                .map(|q| format!("?{}", decode(q).trim_start_matches('&')))
                .unwrap_or_default()
        ));
        let q = query(uri);
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let path: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
        let (code, value) = match (method.clone(), path.as_slice()) {
            (Method::GET, ["api", "v1", "namespaces", ns, "pods"]) => {
                let items: Vec<Value> = s
                    .pods
                    .iter()
                    .filter(|((n, _), p)| {
                        n == ns
                            && label_match(p, q.get("labelSelector"))
                            && field_match(p, q.get("fieldSelector"))
                    })
                    .map(|(_, p)| p.clone())
                    .collect();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            (Method::GET, ["api", "v1", "namespaces", ns, "pods", name]) => {
                match s.pods.get(&(ns.to_string(), name.to_string())) {
                    Some(p) => (200, p.clone()),
                    None => (
                        404,
                        status(404, "NotFound", &format!("pods \"{name}\" not found")),
                    ),
                }
            }
            (Method::DELETE, ["api", "v1", "namespaces", ns, "pods", name]) => {
                match delete_pod(&mut s, ns, name) {
                    Some(p) => (200, p),
                    None => (
                        404,
                        status(404, "NotFound", &format!("pods \"{name}\" not found")),
                    ),
                }
            }
            (Method::POST, ["api", "v1", "namespaces", ns, "pods", name, "eviction"]) => {
                let key = (ns.to_string(), name.to_string());
                match s.pods.get(&key).cloned() {
                    None => (
                        404,
                        status(404, "NotFound", &format!("pods \"{name}\" not found")),
                    ),
                    Some(pod) => {
                        let labels = labels_of(&pod);
                        let blocked = s.pdbs.iter().any(|pdb| {
                            pdb.namespace == *ns
                                && pdb.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
                                && {
                                    let healthy =
                                        s.pods
                                            .iter()
                                            .filter(|((n, _), p)| {
                                                n == ns
                                                    && is_ready(p)
                                                    && pdb.labels.iter().all(|(k, v)| {
                                                        labels_of(p).get(k) == Some(v)
                                                    })
                                            })
                                            .count();
                                    healthy.saturating_sub(usize::from(is_ready(&pod)))
                                        < pdb.min_available
                                }
                        });
                        if blocked {
                            (429, status(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget."))
                        } else {
                            delete_pod(&mut s, ns, name);
                            (201, status(201, "", ""))
                        }
                    }
                }
            }
            (
                Method::PATCH,
                ["api", "v1", "namespaces", ns, "pods", name, "ephemeralcontainers"],
            ) => add_ephemeral(&mut s, ns, name, &body),
            (Method::PATCH, ["api", "v1", "namespaces", ns, "pods", name]) => {
                match s.pods.get_mut(&(ns.to_string(), name.to_string())) {
                    None => (
                        404,
                        status(404, "NotFound", &format!("pods \"{name}\" not found")),
                    ),
                    Some(pod) => {
                        if let Some(labels) = body["metadata"]["labels"].as_object() {
                            for (k, v) in labels {
                                if v.is_null() {
                                    if let Some(m) = pod["metadata"]["labels"].as_object_mut() {
                                        m.remove(k);
                                    }
                                } else {
                                    pod["metadata"]["labels"][k] = v.clone();
                                }
                            }
                        }
                        (200, pod.clone())
                    }
                }
            }
            (
                Method::GET,
                ["apis", "networking.k8s.io", "v1", "namespaces", ns, "networkpolicies"],
            ) => {
                let items: Vec<Value> = s
                    .policies
                    .iter()
                    .filter(|((n, _), p)| n == ns && label_match(p, q.get("labelSelector")))
                    .map(|(_, p)| p.clone())
                    .collect();
                (
                    200,
                    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList", "metadata": {}, "items": items}),
                )
            }
            (
                Method::POST,
                ["apis", "networking.k8s.io", "v1", "namespaces", ns, "networkpolicies"],
            ) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let key = (ns.to_string(), name.clone());
                match s.policies.entry(key) {
                    std::collections::btree_map::Entry::Occupied(_) => (
                        409,
                        status(
                            409,
                            "AlreadyExists",
                            &format!("networkpolicies \"{name}\" already exists"),
                        ),
                    ),
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        let mut stored = body.clone();
                        stored["metadata"]["uid"] = json!(format!("np-{name}"));
                        slot.insert(stored.clone());
                        (201, stored)
                    }
                }
            }
            (
                Method::GET,
                ["apis", "networking.k8s.io", "v1", "namespaces", ns, "networkpolicies", name],
            ) => match s.policies.get(&(ns.to_string(), name.to_string())) {
                Some(p) => (200, p.clone()),
                None => (
                    404,
                    status(
                        404,
                        "NotFound",
                        &format!("networkpolicies \"{name}\" not found"),
                    ),
                ),
            },
            (
                Method::DELETE,
                ["apis", "networking.k8s.io", "v1", "namespaces", ns, "networkpolicies", name],
            ) => {
                if s.fail_policy_delete {
                    (
                        500,
                        status(500, "InternalError", "etcd is having a bad day"),
                    )
                } else {
                    match s.policies.remove(&(ns.to_string(), name.to_string())) {
                        Some(p) => (200, p),
                        None => (
                            404,
                            status(
                                404,
                                "NotFound",
                                &format!("networkpolicies \"{name}\" not found"),
                            ),
                        ),
                    }
                }
            }
            (m, ["api", "v1", "namespaces", ns, resource, rest @ ..])
            | (m, ["apis", "apps", "v1", "namespaces", ns, resource, rest @ ..])
                if STORED.contains(resource) && rest.len() <= 1 =>
            {
                stored_object(&mut s, &m, (resource, ns, rest.first().copied()), &q, &body)
            }
            (Method::POST, ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"]) => {
                let attrs = &body["spec"]["resourceAttributes"];
                let verb = attrs["verb"].as_str().unwrap_or_default().to_owned();
                let resource = match attrs["subresource"].as_str() {
                    Some(sub) if !sub.is_empty() => {
                        format!("{}/{sub}", attrs["resource"].as_str().unwrap_or_default())
                    }
                    _ => attrs["resource"].as_str().unwrap_or_default().to_owned(),
                };
                let allowed = !s.denied.iter().any(|(v, r)| *v == verb && *r == resource);
                let mut answer = body.clone();
                answer["status"] = json!({"allowed": allowed});
                (201, answer)
            }
            _ => (
                404,
                status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            ),
        };
        Response::builder()
            .status(StatusCode::from_u16(code).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&value).unwrap()))
            .unwrap()
    }
}

/// Services, ConfigMaps and Deployments: list (by label), create (409 when taken), get,
/// merge patch (409 when the patch's `resourceVersion` is stale), delete.
fn stored_object(
    s: &mut State,
    method: &Method,
    (resource, ns, name): (&str, &str, Option<&str>),
    q: &BTreeMap<String, String>,
    body: &Value,
) -> (u16, Value) {
    let missing = |name: &str| {
        (
            404,
            status(404, "NotFound", &format!("{resource} \"{name}\" not found")),
        )
    };
    match (method.clone(), name) {
        (Method::GET, None) => {
            let items: Vec<Value> = s
                .objects
                .iter()
                .filter(|((r, n, _), o)| {
                    r == resource && n == ns && label_match(o, q.get("labelSelector"))
                })
                .map(|(_, o)| o.clone())
                .collect();
            (
                200,
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
            )
        }
        (Method::POST, None) => {
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let key = (resource.to_owned(), ns.to_owned(), name.clone());
            if s.objects.contains_key(&key) {
                return (
                    409,
                    status(
                        409,
                        "AlreadyExists",
                        &format!("{resource} \"{name}\" already exists"),
                    ),
                );
            }
            s.resource_version += 1;
            let mut stored = body.clone();
            stored["metadata"]["uid"] = json!(format!("uid-{resource}-{name}"));
            stored["metadata"]["resourceVersion"] = json!(s.resource_version.to_string());
            if resource == "deployments" {
                stored["status"] = json!({"replicas": 1, "availableReplicas": 0, "conditions": [
                    {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                     "message": "Deployment does not have minimum availability."}]});
                s.deployments_due
                    .insert((ns.to_owned(), name), Instant::now() + s.replacement_delay);
            }
            s.objects.insert(key, stored.clone());
            (201, stored)
        }
        (Method::GET, Some(name)) => {
            match s.objects.get(&(resource.into(), ns.into(), name.into())) {
                Some(o) => (200, o.clone()),
                None => missing(name),
            }
        }
        (Method::PATCH, Some(name)) => {
            let next = s.resource_version + 1;
            let Some(o) = s
                .objects
                .get_mut(&(resource.into(), ns.into(), name.into()))
            else {
                return missing(name);
            };
            let mut patch = body.clone();
            if let Some(rv) = patch["metadata"]
                .as_object_mut()
                .and_then(|m| m.remove("resourceVersion"))
            {
                if rv != o["metadata"]["resourceVersion"] {
                    return (409, status(409, "Conflict", &format!("Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified")));
                }
            }
            merge_patch(o, &patch);
            o["metadata"]["resourceVersion"] = json!(next.to_string());
            let answer = o.clone();
            s.resource_version = next;
            (200, answer)
        }
        (Method::DELETE, Some(name)) => {
            s.deployments_due.remove(&(ns.to_owned(), name.to_owned()));
            match s.objects.remove(&(resource.into(), ns.into(), name.into())) {
                Some(o) => (200, o),
                None => missing(name),
            }
        }
        _ => (
            405,
            status(405, "MethodNotAllowed", "not supported by the fake"),
        ),
    }
}

fn arg_after<'a>(args: &'a [Value], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(Value::as_str)
}

fn terminate(pod: &mut Value, container: &str, code: i32, reason: &str, message: &str) {
    if let Some(list) = pod["status"]["ephemeralContainerStatuses"].as_array_mut() {
        for st in list.iter_mut().filter(|st| st["name"] == container) {
            st["state"] =
                json!({"terminated": {"exitCode": code, "reason": reason, "message": message}});
        }
    }
}

/// The `ephemeralcontainers` subresource: a strategic merge patch adding containers by
/// name. Like the API server, refuses a name already used and a target that is not a
/// regular container; like the kubelet, reports a status for each, and plays what the
/// container runs (`chaos-runner stress ...`).
fn add_ephemeral(s: &mut State, ns: &str, name: &str, body: &Value) -> (u16, Value) {
    let key = (ns.to_string(), name.to_string());
    let Some(pod) = s.pods.get(&key).cloned() else {
        return (
            404,
            status(404, "NotFound", &format!("pods \"{name}\" not found")),
        );
    };
    let Some(added) = body["spec"]["ephemeralContainers"].as_array() else {
        return (
            400,
            status(400, "BadRequest", "no spec.ephemeralContainers"),
        );
    };
    let mut pod = pod;
    let regular: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for c in added {
        let cname = c["name"].as_str().unwrap_or_default().to_owned();
        let taken = regular.contains(&cname)
            || pod["spec"]["ephemeralContainers"]
                .as_array()
                .is_some_and(|l| l.iter().any(|e| e["name"] == cname.as_str()));
        if cname.is_empty() || taken {
            return (422, status(422, "Invalid", &format!("spec.ephemeralContainers: Forbidden: existing ephemeral containers \"{cname}\" may not be changed")));
        }
        if let Some(t) = c["targetContainerName"].as_str() {
            if !regular.iter().any(|r| r == t) {
                return (
                    422,
                    status(
                        422,
                        "Invalid",
                        &format!(
                            "spec.ephemeralContainers[0].targetContainerName: Not found: \"{t}\""
                        ),
                    ),
                );
            }
        }
        if pod["spec"]["ephemeralContainers"].is_null() {
            pod["spec"]["ephemeralContainers"] = json!([]);
        }
        pod["spec"]["ephemeralContainers"]
            .as_array_mut()
            .unwrap()
            .push(c.clone());
        let image = c["image"].as_str().unwrap_or_default().to_owned();
        let state = if s.bad_images.contains(&image) {
            json!({"waiting": {"reason": "ErrImagePull", "message": format!("pull access denied for {image}")}})
        } else {
            json!({"running": {"startedAt": "2026-11-25T12:00:00Z"}})
        };
        if pod["status"]["ephemeralContainerStatuses"].is_null() {
            pod["status"]["ephemeralContainerStatuses"] = json!([]);
        }
        pod["status"]["ephemeralContainerStatuses"].as_array_mut().unwrap().push(json!({
            "name": cname, "image": image, "imageID": "", "ready": false, "restartCount": 0, "state": state,
        }));
        if s.bad_images.contains(&image) {
            continue;
        }
        let args = c["args"].as_array().cloned().unwrap_or_default();
        let kind = args.get(1).and_then(Value::as_str).unwrap_or_default();
        if c["command"] != json!(["chaos-runner"]) || args.first() != Some(&json!("stress")) {
            continue; // some other program: runs until the pod goes
        }
        if kind == "signal-init" {
            let target = c["targetContainerName"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let sc = &c["securityContext"];
            let can_kill = sc["runAsUser"] == 0
                && sc["capabilities"]["add"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("KILL")));
            if s.deaf.contains(&(ns.to_string(), name.to_string())) {
                terminate(
                    &mut pod,
                    &cname,
                    3,
                    "Error",
                    "PID 1 (`app`) neither catches nor waits for SIGTERM",
                );
            } else if !can_kill {
                terminate(
                    &mut pod,
                    &cname,
                    3,
                    "Error",
                    "cannot send SIGTERM to PID 1: Operation not permitted",
                );
            } else {
                // The main process shuts down; the kubelet restarts the container, which
                // turns Ready again after the replacement delay.
                if let Some(list) = pod["status"]["containerStatuses"].as_array_mut() {
                    for st in list.iter_mut().filter(|st| st["name"] == target.as_str()) {
                        let n = st["restartCount"].as_i64().unwrap_or(0);
                        st["restartCount"] = json!(n + 1);
                        st["ready"] = json!(false);
                        st["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
                    }
                }
                s.restarting.insert(
                    (ns.to_string(), name.to_string(), target),
                    Instant::now() + s.replacement_delay,
                );
                // The main process ended before the helper did: the helper went down
                // with the namespace (SIGKILL, exit code 137).
                terminate(&mut pod, &cname, 137, "Error", "");
            }
            continue;
        }
        if kind == "stop" {
            let (run, fault) = (arg_after(&args, "--run-id"), arg_after(&args, "--fault"));
            let target = c["targetContainerName"].clone();
            let victims: Vec<String> = if s.stoppers_ignored {
                Vec::new()
            } else {
                pod["spec"]["ephemeralContainers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| {
                        let a = e["args"].as_array().cloned().unwrap_or_default();
                        // Same process namespace, a helper (not a stopper) of the run's fault.
                        e["targetContainerName"] == target
                            && a.first() == Some(&json!("stress"))
                            && a.get(1) != Some(&json!("stop"))
                            && arg_after(&a, "--run-id") == run
                            && arg_after(&a, "--fault") == fault
                    })
                    .filter_map(|e| e["name"].as_str().map(str::to_owned))
                    .collect()
            };
            for v in victims {
                if s.helper_ends
                    .remove(&(ns.to_string(), name.to_string(), v.clone()))
                    .is_some()
                {
                    terminate(&mut pod, &v, 0, "Completed", "stopped by SIGTERM");
                }
            }
            terminate(&mut pod, &cname, 0, "Completed", "");
            continue;
        }
        if kind == "netem" {
            let sc = &c["securityContext"];
            let can = sc["runAsUser"] == 0
                && sc["capabilities"]["add"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("NET_ADMIN")));
            if !can {
                terminate(
                    &mut pod,
                    &cname,
                    2,
                    "Error",
                    "RTNETLINK answers: Operation not permitted",
                );
                continue;
            }
        }
        let secs = arg_after(&args, "--duration")
            .and_then(|d| d.strip_suffix('s'))
            .and_then(|d| d.parse::<u64>().ok())
            .unwrap_or(0);
        s.helper_ends.insert(
            (ns.to_string(), name.to_string(), cname.clone()),
            Instant::now() + Duration::from_secs(secs),
        );
    }
    s.pods.insert(key, pod.clone());
    (200, pod)
}

/// Turns replacements Ready once their time has come, and ends helpers whose time is up.
fn tick(s: &mut State) {
    let now = Instant::now();
    if !s.deployments_stalled {
        let available: Vec<(String, String)> = s
            .deployments_due
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for (ns, name) in available {
            s.deployments_due.remove(&(ns.clone(), name.clone()));
            if let Some(d) = s.objects.get_mut(&("deployments".to_owned(), ns, name)) {
                d["status"] = json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                    "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]});
            }
        }
    }
    let ended: Vec<(String, String, String)> = s
        .helper_ends
        .iter()
        .filter(|(_, t)| **t <= now)
        .map(|(k, _)| k.clone())
        .collect();
    let restarted: Vec<(String, String, String)> = s
        .restarting
        .iter()
        .filter(|(_, t)| **t <= now)
        .map(|(k, _)| k.clone())
        .collect();
    for key in restarted {
        s.restarting.remove(&key);
        if let Some(p) = s.pods.get_mut(&(key.0.clone(), key.1.clone())) {
            if let Some(list) = p["status"]["containerStatuses"].as_array_mut() {
                for st in list.iter_mut().filter(|st| st["name"] == key.2.as_str()) {
                    st["ready"] = json!(true);
                    st["state"] = json!({"running": {"startedAt": "2026-11-25T12:00:01Z"}});
                }
            }
        }
    }
    for key in ended {
        s.helper_ends.remove(&key);
        if let Some(p) = s.pods.get_mut(&(key.0.clone(), key.1.clone())) {
            terminate(p, &key.2, 0, "Completed", "duration over");
        }
    }
    let due: Vec<(String, String)> = s
        .ready_at
        .iter()
        .filter(|(_, t)| **t <= now)
        .map(|(k, _)| k.clone())
        .collect();
    for key in due {
        s.ready_at.remove(&key);
        if let Some(p) = s.pods.get_mut(&key) {
            set_ready(p);
        }
    }
}

/// Deletes a pod; its owner (if any) creates a replacement that turns Ready later.
fn delete_pod(s: &mut State, ns: &str, name: &str) -> Option<Value> {
    let pod = s.pods.remove(&(ns.to_string(), name.to_string()))?;
    s.ready_at.remove(&(ns.to_string(), name.to_string()));
    let owner = pod["metadata"]["ownerReferences"][0]["name"]
        .as_str()
        .map(str::to_owned);
    if let Some(owner) = owner {
        s.next_id += 1;
        let id = s.next_id;
        let new_name = format!("{owner}-r{id}");
        let mut labels = labels_of(&pod);
        labels.remove("chaos.game-resilience.dev/policy");
        let replacement = pod_json(
            ns,
            &new_name,
            &format!("uid-{id}"),
            &labels,
            Some(&owner),
            false,
        );
        s.pods
            .insert((ns.to_string(), new_name.clone()), replacement);
        s.ready_at.insert(
            (ns.to_string(), new_name),
            Instant::now() + s.replacement_delay,
        );
    }
    Some(pod)
}
