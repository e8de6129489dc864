//! The exact requests the Kubernetes backend sends, per fault and per revert: method,
//! path, query and body, against a `tower-test` mock standing in for the API server.

use crate::kube_fake;

use chaos_runner::faults::kube::{KubeConnector, KubeEnv};
use chaos_runner::faults::{build, Fault, FaultContext, FaultRecord};
use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{json, Value};
use std::sync::Arc;
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

const POLICY_LABEL: &str = "chaos.game-resilience.dev/policy";

/// A fault of `yaml` (one fault, Kubernetes backend) wired to a mock API server.
fn fault_on_mock(fault_yaml: &str) -> (Box<dyn Fault>, Handle) {
    let text = format!(
        "apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: mock-test
spec:
  target:
    backend: kubernetes
  faults:
{fault_yaml}"
    );
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = FILES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path =
        std::env::temp_dir().join(format!("chaos-kube-mock-{}-{n}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let exp = chaos_runner::spec::load_experiment(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let (kube, handle) = connector_on_mock();
    let mut ctx = FaultContext::new("run-1", "/bin/false");
    ctx.experiment = "mock-test".into();
    ctx.kube = Arc::new(kube);
    let spec = &exp.experiment.spec.faults[0];
    let fault = build(&ctx, &exp.faults[0], &exp.faults[0].steps[0], spec.duration);
    (fault, handle)
}

/// A Kubernetes connector whose client talks to a mock API server (call inside a
/// runtime).
fn connector_on_mock() -> (KubeConnector, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let env = KubeEnv::new(client, tokio::runtime::Handle::current());
    (KubeConnector::with(env), handle)
}

/// Runs `call` on `fault` on a blocking thread (the fault blocks on the client's
/// runtime, which this test's mock answers), handing both back.
fn in_background<T: Send + 'static>(
    mut fault: Box<dyn Fault>,
    call: impl FnOnce(&mut Box<dyn Fault>) -> T + Send + 'static,
) -> tokio::task::JoinHandle<(Box<dyn Fault>, T)> {
    tokio::task::spawn_blocking(move || {
        let r = call(&mut fault);
        (fault, r)
    })
}

fn pod(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "games", "uid": format!("uid-{name}"), "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-1", "controller": true}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// The labels the backend puts on every object it creates for the fault `fault` of
/// run `run-1` of the experiment `mock-test`.
fn run_labels(fault: &str) -> Value {
    json!({
        "chaos.game-resilience.dev/run-id": "run-1",
        "chaos.game-resilience.dev/experiment": "mock-test",
        "chaos.game-resilience.dev/fault": fault,
    })
}

/// The pods of namespace `games`.
const PODS: &str = "/api/v1/namespaces/games/pods";

/// The network policies of namespace `games`.
const POLICIES: &str = "/apis/networking.k8s.io/v1/namespaces/games/networkpolicies";

/// The pod `name` of namespace `games`.
fn pod_path(name: &str) -> String {
    format!("{PODS}/{name}")
}

/// One request the backend must send next (method, path, decoded query, JSON body or
/// none) and the mock's answer to it.
struct Req {
    method: &'static str,
    path: String,
    query: String,
    body: Option<Value>,
    reply: (u16, Value),
}

impl Req {
    fn new(
        method: &'static str,
        path: impl Into<String>,
        query: impl Into<String>,
        body: Option<Value>,
        reply: (u16, Value),
    ) -> Self {
        Req {
            method,
            path: path.into(),
            query: query.into(),
            body,
            reply,
        }
    }
}

/// A `GET` of `path` with `query` and no body.
fn get(path: impl Into<String>, query: impl Into<String>, reply: (u16, Value)) -> Req {
    Req::new("GET", path, query, None, reply)
}

/// A `POST` of `body` to `path`, no query.
fn post(path: impl Into<String>, body: Value, reply: (u16, Value)) -> Req {
    Req::new("POST", path, "", Some(body), reply)
}

/// A `PATCH` of `path` with `body`, no query.
fn patch(path: impl Into<String>, body: Value, reply: (u16, Value)) -> Req {
    Req::new("PATCH", path, "", Some(body), reply)
}

/// A `DELETE` of `path` with `body` (delete options), no query.
fn delete(path: impl Into<String>, body: Value, reply: (u16, Value)) -> Req {
    Req::new("DELETE", path, "", Some(body), reply)
}

/// Takes the next requests, in order, asserting and answering each.
async fn expect_all(handle: &mut Handle, requests: impl IntoIterator<Item = Req>) {
    for request in requests {
        expect(handle, request).await;
    }
}

/// Takes the next request, asserts it, answers it.
async fn expect(handle: &mut Handle, expected: Req) {
    let Req {
        method,
        path,
        query,
        body,
        reply: answer,
    } = expected;
    let path = path.as_str();
    let (request, send) = handle.next_request().await.expect("no request came");
    let (parts, req_body) = request.into_parts();
    assert_eq!(parts.method.as_str(), method, "{}", parts.uri);
    assert_eq!(parts.uri.path(), path);
    let got_query = parts.uri.query().map(url_decode).unwrap_or_default();
    assert_eq!(got_query, query, "query of {method} {path}");
    let bytes = req_body.collect().await.unwrap().to_bytes();
    match body {
        Some(expected) => {
            let got: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {bytes:?}"));
            assert_eq!(got, expected, "body of {method} {path}");
        }
        None => assert!(bytes.is_empty(), "{method} {path} sent a body: {bytes:?}"),
    }
    reply(send, answer.0, &answer.1);
}

fn url_decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

const KILL: &str = "    - name: kill
      type: pod-kill
      selector:
        pods:
          namespace: games
          labelSelector: {app: game-server}
          fieldSelector: status.phase=Running
          seed: 1
      parameters:
        gracePeriod: 5s
      duration: 10s
";

/// The two listings a pod kill of `KILL` sends (the pick, then the re-read of the
/// picked pods), each answered with the one pod `game-server-a`.
fn kill_listings() -> [Req; 2] {
    let pods = list(
        "PodList",
        vec![pod("game-server-a", json!({"app": "game-server"}))],
    );
    let q = "&fieldSelector=status.phase=Running&labelSelector=app=game-server";
    [get(PODS, q, (200, pods.clone())), get(PODS, q, (200, pods))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_kill_lists_then_deletes_with_the_grace_period() {
    let (fault, mut handle) = fault_on_mock(KILL);
    let task = in_background(fault, |f| f.inject());
    expect_all(&mut handle, kill_listings()).await;
    expect(
        &mut handle,
        delete(
            pod_path("game-server-a"),
            json!({"gracePeriodSeconds": 5}),
            (200, pod("game-server-a", json!({}))),
        ),
    )
    .await;
    let (mut fault, record) = task.await.unwrap();
    assert_eq!(
        record.unwrap(),
        FaultRecord::KubePodsKilled {
            namespace: "games".into(),
            pods: vec!["game-server-a".into()]
        }
    );
    // The revert of a kill without waitReady sends nothing: the owner replaces the pod.
    fault.revert().unwrap();
    fault.verify_reverted().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_kill_with_evict_posts_an_eviction() {
    let (fault, mut handle) =
        fault_on_mock(&KILL.replace("gracePeriod: 5s", "gracePeriod: 5s\n        evict: true"));
    let task = in_background(fault, |f| f.inject());
    expect_all(&mut handle, kill_listings()).await;
    let eviction = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "game-server-a", "namespace": "games"},
        "deleteOptions": {"gracePeriodSeconds": 5}
    });
    let success = json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success", "code": 201});
    expect(
        &mut handle,
        post(
            format!("{}/eviction", pod_path("game-server-a")),
            eviction,
            (201, success),
        ),
    )
    .await;
    let (_fault, record) = task.await.unwrap();
    assert!(record.is_ok());
}

/// One fault `name` of type `kind` on all the `app=matchmaking` pods of `games`, with
/// the parameters `params` (`key: value` lines) and `duration`: an entry of `faults:`.
fn matchmaking_fault(name: &str, kind: &str, params: &[&str], duration: &str) -> String {
    let params: String = params.iter().map(|p| format!("        {p}\n")).collect();
    format!(
        "    - name: {name}
      type: {kind}
      selector:
        pods:
          namespace: games
          labelSelector: {{app: matchmaking}}
          mode: all
      parameters:
{params}      duration: {duration}
"
    )
}

/// The listing of the `app=<app>` pods, answered with the one pod `pod_name`, then the
/// PATCH labelling that pod for the policy `policy`, answered with `labelled`.
fn pick_and_label(app: &str, pod_name: &str, policy: &str, labelled: Value) -> [Req; 2] {
    let pods = list("PodList", vec![pod(pod_name, json!({"app": app}))]);
    [
        get(PODS, format!("&labelSelector=app={app}"), (200, pods)),
        patch(
            pod_path(pod_name),
            json!({"metadata": {"labels": {POLICY_LABEL: policy}}}),
            (200, labelled),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_partition_labels_pods_creates_the_policy_and_reverts_by_reading_back() {
    let (fault, mut handle) = fault_on_mock(&matchmaking_fault(
        "cut",
        "network-partition",
        &["direction: egress"],
        "10s",
    ));
    let name = chaos_runner::faults::kube::target::object_name("run-1", "cut");
    let labels = run_labels("cut");
    assert_eq!(
        fault.planned_record(),
        Some(FaultRecord::KubeNetworkPolicy {
            namespace: "games".into(),
            name: name.clone()
        })
    );
    let task = in_background(fault, |f| f.inject());
    let labelled = pod("mm-a", json!({"app": "matchmaking", POLICY_LABEL: name}));
    expect_all(
        &mut handle,
        pick_and_label("matchmaking", "mm-a", &name, labelled),
    )
    .await;
    let policy = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "games", "labels": labels},
        "spec": {"podSelector": {"matchLabels": {POLICY_LABEL: name}}, "policyTypes": ["Egress"]}
    });
    expect(
        &mut handle,
        post(POLICIES, policy.clone(), (201, policy.clone())),
    )
    .await;
    let (fault, record) = task.await.unwrap();
    assert!(record.is_ok());

    let task = in_background(fault, |f| f.revert());
    let np_path = format!("/apis/networking.k8s.io/v1/namespaces/games/networkpolicies/{name}");
    let by_run =
        "&labelSelector=chaos.game-resilience.dev/run-id=run-1,chaos.game-resilience.dev/fault=cut";
    let by_label = format!("&labelSelector={POLICY_LABEL}={name}");
    expect_all(
        &mut handle,
        [
            delete(&np_path, json!({}), (200, policy.clone())),
            get(POLICIES, by_run, (200, list("NetworkPolicyList", vec![]))),
        ],
    )
    .await;
    let still = list(
        "PodList",
        vec![pod(
            "mm-a",
            json!({"app": "matchmaking", POLICY_LABEL: name}),
        )],
    );
    expect_all(
        &mut handle,
        [
            get(PODS, &by_label, (200, still)),
            patch(
                pod_path("mm-a"),
                json!({"metadata": {"labels": {POLICY_LABEL: null}}}),
                (200, pod("mm-a", json!({"app": "matchmaking"}))),
            ),
            // Read back: the policy is gone, no policy of the run is left, no pod is labelled.
            get(&np_path, "", not_found()),
            get(POLICIES, by_run, (200, list("NetworkPolicyList", vec![]))),
            get(PODS, &by_label, (200, list("PodList", vec![]))),
        ],
    )
    .await;
    let (_fault, reverted) = task.await.unwrap();
    reverted.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_partition_policy_denies_only_the_database_port() {
    let yaml = "    - name: cut-db
      type: db-partition
      selector:
        pods:
          namespace: games
          labelSelector: {app: game-server}
      parameters:
        port: 5432
      duration: 10s
";
    let (fault, mut handle) = fault_on_mock(yaml);
    let name = chaos_runner::faults::kube::target::object_name("run-1", "cut-db");
    let task = in_background(fault, |f| f.inject());
    expect_all(
        &mut handle,
        pick_and_label("game-server", "gs-a", &name, pod("gs-a", json!({}))),
    )
    .await;
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request.method(), "POST");
    let body: Value =
        serde_json::from_slice(&request.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["spec"]["policyTypes"], json!(["Egress"]));
    assert_eq!(
        body["spec"]["egress"],
        json!([{ "ports": [
            {"protocol": "TCP", "port": 1, "endPort": 5431},
            {"protocol": "TCP", "port": 5433, "endPort": 65535},
            {"protocol": "UDP", "port": 1, "endPort": 65535}
        ]}])
    );
    send.send_response(
        Response::builder()
            .status(201)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
    let (_fault, record) = task.await.unwrap();
    assert!(record.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_pods_are_never_picked_and_an_all_protected_set_fails() {
    let (fault, mut handle) = fault_on_mock(KILL);
    let task = in_background(fault, |f| f.inject());
    let mut protected = pod("game-server-a", json!({"app": "game-server"}));
    protected["metadata"]["annotations"] = json!({"chaos.game-resilience.dev/protected": "true"});
    let q = "&fieldSelector=status.phase=Running&labelSelector=app=game-server";
    expect(
        &mut handle,
        get(PODS, q, (200, list("PodList", vec![protected]))),
    )
    .await;
    let (_fault, record) = task.await.unwrap();
    let err = record.unwrap_err().to_string();
    assert!(err.contains("1 protected"), "{err}");
}

/// A running pod with one container `app` and the given ephemeral containers and
/// statuses (`(name, state)`).
fn pod_with_helpers(name: &str, ephemeral: Vec<Value>, statuses: Vec<(&str, Value)>) -> Value {
    let statuses: Vec<Value> = statuses
        .into_iter()
        .map(|(n, state)| json!({"name": n, "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": state}))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "games", "uid": format!("uid-{name}"), "labels": {"app": "matchmaking"}},
        "spec": {"containers": [{"name": "app", "image": "mm:1"}, {"name": "sidecar", "image": "envoy:1"}], "ephemeralContainers": ephemeral},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "ephemeralContainerStatuses": statuses}
    })
}

/// The listing of the `app=matchmaking` pods, then the read of the picked pod `mm-a`
/// (a helper fault reads the pod for its containers), each answered with `pod`.
fn pick_and_read(pod: Value) -> [Req; 2] {
    [
        get(
            PODS,
            "&labelSelector=app=matchmaking",
            (200, list("PodList", vec![pod.clone()])),
        ),
        read_mm_a(pod),
    ]
}

/// The pod `mm-a` before any helper was added.
fn bare_mm_a() -> Value {
    pod_with_helpers("mm-a", vec![], vec![])
}

/// A read of the pod `mm-a`, answered with `pod`.
fn read_mm_a(pod: Value) -> Req {
    get(pod_path("mm-a"), "", (200, pod))
}

fn running() -> Value {
    json!({"running": {"startedAt": "2026-11-25T12:00:00Z"}})
}

fn terminated() -> Value {
    json!({"terminated": {"exitCode": 0, "reason": "Completed"}})
}

/// Takes the next request, asserts it is a strategic merge PATCH of the pod's
/// `ephemeralcontainers` subresource with no query, and returns its body.
async fn take_ephemeral_patch(
    handle: &mut Handle,
    pod: &str,
) -> (Value, tower_test::mock::SendResponse<Response<Body>>) {
    let (request, send) = handle.next_request().await.expect("no request came");
    let (parts, body) = request.into_parts();
    assert_eq!(parts.method.as_str(), "PATCH");
    assert_eq!(
        parts.uri.path(),
        format!("/api/v1/namespaces/games/pods/{pod}/ephemeralcontainers")
    );
    assert_eq!(parts.uri.query().unwrap_or(""), "");
    assert_eq!(
        parts.headers["content-type"],
        "application/strategic-merge-patch+json"
    );
    let bytes = body.collect().await.unwrap().to_bytes();
    (serde_json::from_slice(&bytes).unwrap(), send)
}

fn reply(send: tower_test::mock::SendResponse<Response<Body>>, code: u16, value: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(value).unwrap()))
            .unwrap(),
    );
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The words of `line` (split at white space) as a JSON array of strings: a helper's
/// expected `args`.
fn words(line: &str) -> Value {
    json!(line.split_whitespace().collect::<Vec<_>>())
}

fn run_env() -> Value {
    json!([
        {"name": "CHAOS_RUN_ID", "value": "run-1"},
        {"name": "CHAOS_EXPERIMENT", "value": "mock-test"},
        {"name": "CHAOS_FAULT", "value": "burn"},
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_cpu_hog_adds_a_helper_then_stops_it_with_a_stopper_and_reads_back() {
    let (fault, mut handle) = fault_on_mock(&matchmaking_fault(
        "burn",
        "pod-cpu-hog",
        &["workers: 2", "load: 50"],
        "20s",
    ));
    let Some(FaultRecord::KubeEphemeral { container, .. }) = fault.planned_record() else {
        panic!("no ephemeral record planned");
    };
    assert!(container.starts_with("chaos-burn-"), "{container}");
    let task = in_background(fault, |f| f.inject());
    let before = now_secs();
    // The pod is read for its containers (the helper joins the first one, `app`).
    expect_all(&mut handle, pick_and_read(bare_mm_a())).await;
    let (body, send) = take_ephemeral_patch(&mut handle, "mm-a").await;
    let helper = &body["spec"]["ephemeralContainers"][0];
    let not_after: u64 = helper["args"][9].as_str().unwrap().parse().unwrap();
    assert!(
        (before + 20..=now_secs() + 20).contains(&not_after),
        "{not_after}"
    );
    let expected_helper = json!({
        "name": container,
        "image": "chaos-runner:latest",
        "command": ["chaos-runner"],
        "args": ["stress", "cpu", "--workers", "2", "--load", "50",
                 "--duration", "20s", "--not-after", not_after.to_string(),
                 "--run-id", "run-1", "--fault", "burn", "--exit-on-term"],
        "targetContainerName": "app",
        "env": run_env(),
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
    });
    assert_eq!(
        body,
        json!({"spec": {"ephemeralContainers": [expected_helper.clone()]}})
    );
    let with_helper = |state: Value| {
        pod_with_helpers(
            "mm-a",
            vec![expected_helper.clone()],
            vec![(container.as_str(), state)],
        )
    };
    reply(
        send,
        200,
        &with_helper(json!({"waiting": {"reason": "ContainerCreating"}})),
    );
    // Inject reads the pod back until the helper runs.
    expect_all(
        &mut handle,
        [
            read_mm_a(with_helper(
                json!({"waiting": {"reason": "ContainerCreating"}}),
            )),
            read_mm_a(with_helper(running())),
        ],
    )
    .await;
    let (fault, record) = task.await.unwrap();
    let record = record.unwrap();
    let FaultRecord::KubeEphemeral {
        namespace,
        pods,
        stopper,
        ..
    } = &record
    else {
        panic!("{record:?}");
    };
    assert_eq!(namespace, "games");
    assert_eq!(
        pods,
        &vec![chaos_runner::faults::kube::ephemeral::HelperPod {
            pod: "mm-a".into(),
            target: "app".into()
        }]
    );
    let expected_stopper = json!({
        "name": format!("{container}-stop"),
        "image": "chaos-runner:latest",
        "command": ["chaos-runner"],
        "args": ["stress", "stop", "--run-id", "run-1", "--fault", "burn"],
        "env": run_env(),
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
    });
    assert_eq!(stopper, &expected_stopper);

    let task = in_background(fault, |f| f.revert());
    expect(&mut handle, read_mm_a(with_helper(running()))).await;
    let (body, send) = take_ephemeral_patch(&mut handle, "mm-a").await;
    let mut stopper_in_pod = expected_stopper.clone();
    stopper_in_pod["targetContainerName"] = json!("app");
    assert_eq!(
        body,
        json!({"spec": {"ephemeralContainers": [stopper_in_pod]}})
    );
    reply(send, 200, &with_helper(running()));
    // Revert reads the pod back until the helper shows as terminated.
    expect(&mut handle, read_mm_a(with_helper(terminated()))).await;
    let (fault, reverted) = task.await.unwrap();
    reverted.unwrap();
    let task = in_background(fault, |f| f.verify_reverted());
    expect(&mut handle, read_mm_a(with_helper(terminated()))).await;
    let (_fault, verified) = task.await.unwrap();
    verified.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_net_delay_helper_runs_as_root_with_net_admin_only_in_the_named_container() {
    let (fault, mut handle) = fault_on_mock(&matchmaking_fault(
        "burn",
        "pod-net-delay",
        &[
            "delay: 150ms",
            "jitter: 20ms",
            "lossPercent: 1.5",
            "interface: eth1",
            "image: registry.example/chaos-runner:1.2",
            "container: sidecar",
        ],
        "1m",
    ));
    let task = in_background(fault, |f| f.inject());
    expect_all(&mut handle, pick_and_read(bare_mm_a())).await;
    let (body, send) = take_ephemeral_patch(&mut handle, "mm-a").await;
    let helper = body["spec"]["ephemeralContainers"][0].clone();
    let name = helper["name"].as_str().unwrap().to_owned();
    let not_after = helper["args"][13].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        json!({"spec": {"ephemeralContainers": [{
            "name": name,
            "image": "registry.example/chaos-runner:1.2",
            "command": ["chaos-runner"],
            "args": ["stress", "netem", "--interface", "eth1", "--delay", "150ms", "--jitter", "20ms",
                     "--loss", "1.5", "--duration", "60s", "--not-after", not_after,
                     "--run-id", "run-1", "--fault", "burn"],
            "targetContainerName": "sidecar",
            "env": run_env(),
            "securityContext": {
                "runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}
            },
        }]}})
    );
    // The helper failed (no netem in the node's kernel): inject fails, and the helper,
    // having ended, needs no stopper.
    let failed = json!({"terminated": {"exitCode": 4, "reason": "Error", "message": "the kernel has no `netem` qdisc"}});
    let ended = pod_with_helpers("mm-a", vec![helper], vec![(name.as_str(), failed)]);
    reply(send, 200, &ended);
    expect_all(
        &mut handle,
        [
            read_mm_a(ended.clone()),
            // Cleanup of the pods hit: read, helper already terminated, nothing added.
            read_mm_a(ended.clone()),
            read_mm_a(ended),
        ],
    )
    .await;
    let (_fault, result) = task.await.unwrap();
    let err = result.unwrap_err().to_string();
    assert!(err.contains("failed (exit 4)"), "{err}");
    assert!(err.contains("netem"), "{err}");
    assert!(err.contains("stopped again"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_kill_sends_a_one_shot_signal_helper_and_reads_the_restart_back() {
    let (fault, mut handle) = fault_on_mock(&matchmaking_fault(
        "burn",
        "container-kill",
        &["container: sidecar", "signal: HUP", "restartTimeout: 5s"],
        "30s",
    ));
    let task = in_background(fault, |f| f.inject());
    let with_restarts = |restarts: i64,
                         ready: bool,
                         helpers: Vec<Value>,
                         statuses: Vec<(&str, Value)>| {
        let mut p = pod_with_helpers("mm-a", helpers, statuses);
        p["status"]["containerStatuses"] = json!([
            {"name": "app", "image": "mm:1", "imageID": "", "ready": true, "restartCount": 0, "state": running()},
            {"name": "sidecar", "image": "envoy:1", "imageID": "", "ready": ready, "restartCount": restarts, "state": running()},
        ]);
        p
    };
    expect_all(
        &mut handle,
        pick_and_read(with_restarts(3, true, vec![], vec![])),
    )
    .await;
    let (body, send) = take_ephemeral_patch(&mut handle, "mm-a").await;
    let helper = body["spec"]["ephemeralContainers"][0].clone();
    let name = helper["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("chaos-burn-"));
    let not_after = helper["args"][5].as_str().unwrap().to_owned();
    // The pod with the helper in `state`, its `sidecar` restarted `restarts` times.
    let with_helper = |restarts: i64, ready: bool, state: Value| {
        with_restarts(
            restarts,
            ready,
            vec![helper.clone()],
            vec![(name.as_str(), state)],
        )
    };
    assert_eq!(
        body,
        json!({"spec": {"ephemeralContainers": [{
            "name": name,
            "image": "chaos-runner:latest",
            "command": ["chaos-runner"],
            "args": ["stress", "signal-init", "--signal", "HUP", "--not-after", not_after,
                     "--run-id", "run-1", "--fault", "burn"],
            "targetContainerName": "sidecar",
            "env": run_env(),
            "securityContext": {"runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false,
                                "capabilities": {"drop": ["ALL"], "add": ["KILL"]}},
        }]}})
    );
    reply(send, 200, &with_helper(3, true, running()));
    // Inject waits for the one-shot helper to exit.
    expect(&mut handle, read_mm_a(with_helper(4, false, terminated()))).await;
    let (fault, record) = task.await.unwrap();
    assert_eq!(
        record.unwrap(),
        FaultRecord::KubeContainersKilled {
            namespace: "games".into(),
            container: "sidecar".into(),
            pods: vec!["mm-a".into()]
        }
    );
    let task = in_background(fault, |f| f.revert());
    // Revert reads the pod until the container restarted (count above 3) and is Ready.
    expect_all(
        &mut handle,
        [
            read_mm_a(with_helper(4, false, terminated())),
            read_mm_a(with_helper(4, true, terminated())),
        ],
    )
    .await;
    let (fault, reverted) = task.await.unwrap();
    reverted.unwrap();
    assert!(fault
        .measurements()
        .iter()
        .any(|(n, _)| n == "container_restarted_ms"));
}

/// Injects the one-fault `yaml` against the mock up to its helper PATCH, answers that the
/// helper runs, and returns the PATCH body.
async fn helper_patch_of(yaml: &str) -> Value {
    let (mut fault, mut handle) = fault_on_mock(yaml);
    let task = tokio::task::spawn_blocking(move || fault.inject().map(|_| ()));
    expect_all(&mut handle, pick_and_read(bare_mm_a())).await;
    let (body, send) = take_ephemeral_patch(&mut handle, "mm-a").await;
    let helper = body["spec"]["ephemeralContainers"][0].clone();
    let name = helper["name"].as_str().unwrap().to_owned();
    let up = pod_with_helpers("mm-a", vec![helper], vec![(name.as_str(), running())]);
    reply(send, 200, &up);
    expect(&mut handle, read_mm_a(up)).await;
    task.await.unwrap().unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_memory_hog_and_pod_net_loss_send_exactly_these_helpers() {
    let fault = |kind: &str, params: &[&str]| matchmaking_fault("burn", kind, params, "90s");
    let body = helper_patch_of(&fault(
        "pod-memory-hog",
        &["bytes: 256 MiB", "touch: false"],
    ))
    .await;
    let c = &body["spec"]["ephemeralContainers"][0];
    let not_after = c["args"][7].as_str().unwrap();
    let expected = format!(
        "stress memory --bytes 268435456 --duration 90s --not-after {not_after} \
         --run-id run-1 --fault burn --exit-on-term"
    );
    assert_eq!(c["args"], words(&expected));
    assert_eq!(c["targetContainerName"], "app");
    assert_eq!(c["env"], run_env());
    assert_eq!(
        c["securityContext"],
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
    );

    let body = helper_patch_of(&fault("pod-net-loss", &["lossPercent: 7.5"])).await;
    let c = &body["spec"]["ephemeralContainers"][0];
    let not_after = c["args"][9].as_str().unwrap();
    let expected = format!(
        "stress netem --interface eth0 --loss 7.5 --duration 90s --not-after {not_after} \
         --run-id run-1 --fault burn"
    );
    assert_eq!(c["args"], words(&expected));
    assert_eq!(
        c["securityContext"],
        json!({"runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false,
               "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}})
    );
}

const SLOW_SAVES: &str = "    - name: slow-saves
      type: postgres-latency
      selector:
        service:
          namespace: games
          name: postgres
      parameters:
        pattern: ^UPDATE
        delay: 300ms
      duration: 10s
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_proxy_creates_the_proxy_swaps_the_selector_and_reverts_by_reading_back() {
    let (fault, mut handle) = fault_on_mock(SLOW_SAVES);
    let name = chaos_runner::faults::kube::target::object_name("run-1", "slow-saves");
    let up = format!("{name}-up");
    let labels = run_labels("slow-saves");
    let mut pod_labels = labels.clone();
    pod_labels["chaos.game-resilience.dev/db-proxy"] = json!(name);
    let objects =
        chaos_runner::faults::kube::db_proxy::DbProxyObjects::for_fault("run-1", "slow-saves");
    // The intent names every object before anything exists.
    assert_eq!(
        fault.planned_record(),
        Some(FaultRecord::KubeDbProxy {
            namespace: "games".into(),
            service: "postgres".into(),
            original_selector: Default::default(),
            objects: objects.clone(),
        })
    );
    let task = in_background(fault, |f| f.inject());
    let svc_path = "/api/v1/namespaces/games/services/postgres";
    let db = kube_fake::service_json("games", "postgres", &[("app", "postgres")], &[5432]);
    expect(&mut handle, get(svc_path, "", (200, db.clone()))).await;

    // The ConfigMap: the proxy config, the fault's parameters as the rule's attributes.
    let (request, send) = handle.next_request().await.expect("no request came");
    let (parts, body) = request.into_parts();
    assert_eq!(
        (parts.method.as_str(), parts.uri.path()),
        ("POST", "/api/v1/namespaces/games/configmaps")
    );
    let cm: Value = serde_json::from_slice(&body.collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        cm["metadata"],
        json!({"name": name, "namespace": "games", "labels": labels})
    );
    let config: Value = serde_json::from_str(cm["data"]["proxies.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        config,
        json!([{
            "name": "db", "listen": "0.0.0.0:5432", "upstream": format!("{up}.games.svc:5432"),
            "protocol": "postgres",
            "dbfaults": [{"name": "chaos-run-1-slow-saves", "type": "postgres-latency",
                "attributes": {"pattern": "^UPDATE", "delay": "300ms", "rate": 1.0},
                "expiresIn": "20s"}]
        }])
    );
    reply(send, 201, &cm);

    let upstream = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": up, "namespace": "games", "labels": labels},
        "spec": {"type": "ClusterIP", "selector": {"app": "postgres"},
            "ports": [{"name": "p5432", "port": 5432, "targetPort": 5432, "protocol": "TCP"}]}
    });
    expect(
        &mut handle,
        post(
            "/api/v1/namespaces/games/services",
            upstream.clone(),
            (201, upstream),
        ),
    )
    .await;
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "games", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"chaos.game-resilience.dev/db-proxy": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": "proxy",
                        "image": "chaos-runner:latest",
                        "command": ["chaos-runner"],
                        "args": ["proxy", "--listen", "127.0.0.1:8474", "--config", "/etc/chaos-proxy/proxies.json"],
                        "ports": [{"containerPort": 5432, "protocol": "TCP"}],
                        "readinessProbe": {"tcpSocket": {"port": 5432}, "periodSeconds": 1, "failureThreshold": 3},
                        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/chaos-proxy", "readOnly": true}]
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": name}}]
                }
            }
        }
    });
    let deployments = "/apis/apps/v1/namespaces/games/deployments";
    expect(
        &mut handle,
        post(deployments, deployment.clone(), (201, deployment.clone())),
    )
    .await;
    // Not available yet, then available: the selector is swapped only then.
    let dep_path = format!("{deployments}/{name}");
    let mut waiting = deployment.clone();
    waiting["status"] = json!({"replicas": 1, "availableReplicas": 0});
    expect(&mut handle, get(&dep_path, "", (200, waiting))).await;
    let mut available = deployment.clone();
    available["status"] = json!({"replicas": 1, "availableReplicas": 1});
    expect(&mut handle, get(&dep_path, "", (200, available))).await;
    let (request, send) = handle.next_request().await.expect("no request came");
    assert_eq!(
        request.headers()["content-type"],
        "application/merge-patch+json"
    );
    let (parts, body) = request.into_parts();
    assert_eq!(
        (
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query().unwrap_or("")
        ),
        ("PATCH", svc_path, "")
    );
    let selector_patch: Value =
        serde_json::from_slice(&body.collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        selector_patch,
        json!({
            "metadata": {"resourceVersion": "7", "annotations": {"chaos.game-resilience.dev/original-selector": "{\"app\":\"postgres\"}"}},
            "spec": {"selector": {"app": null, "chaos.game-resilience.dev/db-proxy": name}}
        })
    );
    let mut swapped = db.clone();
    kube_fake::merge_patch(&mut swapped, &selector_patch);
    reply(send, 200, &swapped);
    let (fault, record) = task.await.unwrap();
    let original = std::collections::BTreeMap::from([("app".to_owned(), "postgres".to_owned())]);
    assert_eq!(
        record.unwrap(),
        FaultRecord::KubeDbProxy {
            namespace: "games".into(),
            service: "postgres".into(),
            original_selector: original,
            objects,
        }
    );

    // Revert: the selector back first (traffic to the database), then the proxy's objects.
    let task = in_background(fault, |f| f.revert());
    expect(&mut handle, get(svc_path, "", (200, swapped.clone()))).await;
    let restore = json!({
        "metadata": {"annotations": {"chaos.game-resilience.dev/original-selector": null}},
        "spec": {"selector": {"app": "postgres", "chaos.game-resilience.dev/db-proxy": null}}
    });
    expect_all(
        &mut handle,
        [
            patch(svc_path, restore, (200, db.clone())),
            delete(
                &dep_path,
                json!({"propagationPolicy": "Background"}),
                (200, deployment),
            ),
            delete(
                format!("/api/v1/namespaces/games/services/{up}"),
                json!({}),
                (200, db.clone()),
            ),
            delete(
                format!("/api/v1/namespaces/games/configmaps/{name}"),
                json!({}),
                (200, cm),
            ),
        ],
    )
    .await;
    let (fault, reverted) = task.await.unwrap();
    reverted.unwrap();

    // Verify: the Service reads back as before, and every object is gone.
    let task = in_background(fault, |f| f.verify_reverted());
    expect_all(
        &mut handle,
        [
            get(svc_path, "", (200, db)),
            get(&dep_path, "", not_found()),
            get(
                format!("/api/v1/namespaces/games/services/{up}"),
                "",
                not_found(),
            ),
            get(
                format!("/api/v1/namespaces/games/configmaps/{name}"),
                "",
                not_found(),
            ),
        ],
    )
    .await;
    let (_fault, verified) = task.await.unwrap();
    verified.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_proxy_verify_fails_while_the_service_still_names_the_proxy() {
    let (fault, mut handle) = fault_on_mock(SLOW_SAVES);
    let name = chaos_runner::faults::kube::target::object_name("run-1", "slow-saves");
    let task = in_background(fault, |f| f.verify_reverted());
    let mut svc = kube_fake::service_json("games", "postgres", &[], &[5432]);
    svc["spec"]["selector"] = json!({"chaos.game-resilience.dev/db-proxy": name});
    expect(
        &mut handle,
        get("/api/v1/namespaces/games/services/postgres", "", (200, svc)),
    )
    .await;
    let (_fault, verified) = task.await.unwrap();
    let err = verified.unwrap_err().to_string();
    assert!(err.contains("still points at the proxy"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_of_a_db_proxy_restores_from_the_annotation_and_sweeps_by_label() {
    let (kube, mut handle) = connector_on_mock();
    let objects =
        chaos_runner::faults::kube::db_proxy::DbProxyObjects::for_fault("run-1", "slow-saves");
    let name = objects.deployment.clone();
    // The intent only: the runner died before it read the original selector.
    let record = FaultRecord::KubeDbProxy {
        namespace: "games".into(),
        service: "postgres".into(),
        original_selector: Default::default(),
        objects: objects.clone(),
    };
    let task = tokio::task::spawn_blocking(move || {
        chaos_runner::faults::revert_from_journal_with("run-1", "slow-saves", Some(&record), &kube)
    });
    let svc_path = "/api/v1/namespaces/games/services/postgres";
    let db = kube_fake::service_json("games", "postgres", &[("app", "postgres")], &[5432]);
    let mut swapped = db.clone();
    swapped["spec"]["selector"] = json!({"chaos.game-resilience.dev/db-proxy": name});
    swapped["metadata"]["annotations"] =
        json!({"chaos.game-resilience.dev/original-selector": "{\"app\":\"postgres\"}"});
    expect(&mut handle, get(svc_path, "", (200, swapped))).await;
    // The original selector comes from the Service's own annotation.
    let restore = json!({
        "metadata": {"annotations": {"chaos.game-resilience.dev/original-selector": null}},
        "spec": {"selector": {"app": "postgres", "chaos.game-resilience.dev/db-proxy": null}}
    });
    expect(&mut handle, patch(svc_path, restore, (200, db.clone()))).await;
    let deployments = "/apis/apps/v1/namespaces/games/deployments";
    let dep_path = format!("{deployments}/{name}");
    let up_path = format!(
        "/api/v1/namespaces/games/services/{}",
        objects.upstream_service
    );
    let cm_path = format!("/api/v1/namespaces/games/configmaps/{name}");
    // The runner died before creating the Deployment: a 404 is fine.
    let background = json!({"propagationPolicy": "Background"});
    expect_all(
        &mut handle,
        [
            delete(&dep_path, background.clone(), not_found()),
            delete(&up_path, json!({}), (200, db.clone())),
            delete(&cm_path, json!({}), (200, json!({}))),
        ],
    )
    .await;
    // Leftovers by label: one Deployment of the run and fault under another name.
    let by_run = "&labelSelector=chaos.game-resilience.dev/run-id=run-1,chaos.game-resilience.dev/fault=slow-saves";
    let twin = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "chaos-slow-saves-twin", "namespace": "games"}});
    expect_all(
        &mut handle,
        [
            get(
                deployments,
                by_run,
                (200, list("DeploymentList", vec![twin.clone()])),
            ),
            delete(
                format!("{deployments}/chaos-slow-saves-twin"),
                background,
                (200, twin),
            ),
            get(
                "/api/v1/namespaces/games/services",
                by_run,
                (200, list("ServiceList", vec![])),
            ),
            get(
                "/api/v1/namespaces/games/configmaps",
                by_run,
                (200, list("ConfigMapList", vec![])),
            ),
            // Read back.
            get(svc_path, "", (200, db)),
            get(&dep_path, "", not_found()),
            get(&up_path, "", not_found()),
            get(&cm_path, "", not_found()),
        ],
    )
    .await;
    task.await.unwrap().unwrap();
}
