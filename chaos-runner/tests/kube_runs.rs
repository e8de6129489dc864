//! Whole Kubernetes experiments through the engine, `plan` and `recover`, against an
//! in-memory fake API server behind the real kube client (no API server can run on
//! these machines; see tests/kube_requests.rs for the exact requests).

use crate::kube_fake;

use chaos_runner::engine::{self, RunOptions};
use chaos_runner::exit::Outcome;
use chaos_runner::faults::{build, FaultContext};
use chaos_runner::journal::{self, Event, Journal};
use chaos_runner::output::Format;
use kube_fake::FakeCluster;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLICY_LABEL: &str = "chaos.game-resilience.dev/policy";

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("chaos-kube-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Dir {
    /// The run's state directory (journals) inside this directory.
    fn state(&self) -> PathBuf {
        self.0.join("state")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Four game servers (one protected), two matchmakers, a pod in kube-system.
fn cluster(replacement_delay: Duration) -> FakeCluster {
    let fake = FakeCluster::new(replacement_delay);
    for name in [
        "game-server-a",
        "game-server-b",
        "game-server-c",
        "game-server-d",
    ] {
        fake.add_pod(
            "games",
            name,
            &[("app", "game-server")],
            Some("game-server-rs"),
        );
    }
    fake.protect("games", "game-server-d");
    for name in ["matchmaking-a", "matchmaking-b"] {
        fake.add_pod(
            "games",
            name,
            &[("app", "matchmaking")],
            Some("matchmaking-rs"),
        );
    }
    fake.add_pod(
        "kube-system",
        "coredns-a",
        &[("app", "game-server")],
        Some("coredns-rs"),
    );
    fake
}

/// Writes an experiment with one fault (`fault` is the YAML of the list item, indented
/// for `faults:`), reporting JSON into `dir/reports`.
fn experiment(dir: &Path, fault: &str, extra: &str) -> PathBuf {
    let text = format!(
        "apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: kube-test
spec:
  target:
    backend: kubernetes
  checkInterval: 100ms
{extra}  faults:
{fault}  report:
    dir: {}/reports
    formats: [json]
",
        dir.display()
    );
    let path = dir.join("experiment.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One fault `name` of type `kind` on the `app=<app>` pods of `games`, with more
/// `selector` lines, the `params` lines (`key: value`) and `duration`: an entry of
/// `faults:`.
fn games_fault(
    name: &str,
    kind: &str,
    app: &str,
    selector: &[&str],
    params: &[&str],
    duration: &str,
) -> String {
    let selector: String = selector
        .iter()
        .map(|l| format!("          {l}\n"))
        .collect();
    let params = if params.is_empty() {
        String::new()
    } else {
        let lines: String = params.iter().map(|l| format!("        {l}\n")).collect();
        format!("      parameters:\n{lines}")
    };
    format!(
        "    - name: {name}
      type: {kind}
      selector:
        pods:
          namespace: games
          labelSelector: {{app: {app}}}
{selector}{params}      duration: {duration}
"
    )
}

fn run(
    path: &Path,
    state: &Path,
    fake: &FakeCluster,
    rt: &tokio::runtime::Runtime,
) -> (Outcome, Value) {
    let outcome = engine::run(
        path,
        RunOptions {
            state_dir: state.to_path_buf(),
            recover_first: false,
            kube: Some(fake.connector(rt)),
            deadline: None,
        },
        chaos_runner::output::sink(Format::Json).as_mut(),
    );
    let reports = path.parent().unwrap().join("reports");
    // Reports go to `reports/<run id>/report.json`; each test writes one run per dir
    // (the newest is taken when a test runs twice).
    let mut found: Vec<PathBuf> = std::fs::read_dir(&reports)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path().join("report.json")))
        .filter(|p| p.exists())
        .collect();
    found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let report = found
        .pop()
        .unwrap_or_else(|| panic!("no JSON report in {}", reports.display()));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    (outcome, report)
}

/// The fixture of one test: a temp dir named after `tag`, a runtime, and `fake`.
fn setup(tag: &str, fake: FakeCluster) -> (Dir, tokio::runtime::Runtime, FakeCluster) {
    (Dir::new(tag), runtime(), fake)
}

/// The `abortWhen:` block (indented for `spec:`) of a health check that passes
/// `healthy` times, then fails.
fn abort_when_health_fails_after(healthy: usize) -> String {
    let (url, _count) = flipping_health(healthy);
    format!("  abortWhen:\n    - name: game-health\n      http:\n        url: {url}\n")
}

/// Asserts the run aborted and returns the report's reason.
fn aborted_reason(outcome: Outcome, report: &Value) -> &str {
    assert_eq!(outcome, Outcome::Aborted, "{report:#}");
    report["reason"].as_str().unwrap()
}

/// Asserts less than `secs` seconds have passed since `started`.
fn assert_within(started: Instant, secs: u64) {
    assert!(
        started.elapsed() < Duration::from_secs(secs),
        "{:?}",
        started.elapsed()
    );
}

/// Asserts the journals in `state` hold no live fault.
fn assert_no_live_faults(state: &Path) {
    assert!(journal::live_faults(state).unwrap().is_empty());
}

/// Asserts `object` carries the labels of a run of `kube-test` and of its fault `fault`.
fn assert_run_labels(object: &Value, fault: &str) {
    let labels = &object["metadata"]["labels"];
    assert_eq!(labels["chaos.game-resilience.dev/experiment"], "kube-test");
    assert_eq!(labels["chaos.game-resilience.dev/fault"], fault);
    assert!(labels["chaos.game-resilience.dev/run-id"]
        .as_str()
        .unwrap()
        .starts_with("kube-test-"));
}

/// `doctor`'s answers as (`verb resource[/subresource]`, allowed).
fn verbs_and_answers(answers: &[chaos_runner::doctor::Answer]) -> Vec<(String, bool)> {
    answers
        .iter()
        .map(|a| {
            let r = a.need.subresource.map_or(a.need.resource.to_owned(), |s| {
                format!("{}/{s}", a.need.resource)
            });
            (format!("{} {r}", a.need.verb), a.allowed)
        })
        .collect()
}

/// Runs `recover` over `state` and asserts it passes.
fn assert_recovers(state: &Path, conn: &chaos_runner::faults::kube::KubeConnector) {
    let outcome = chaos_runner::recover::run_with(state, Format::Json, conn);
    assert_eq!(outcome, Outcome::Passed);
}

/// How many in-pod helpers run in the `app=matchmaking` pods now.
fn running_helpers(fake: &FakeCluster) -> usize {
    helpers_of(fake, "matchmaking")
        .iter()
        .flat_map(|(_, _, s)| s.clone())
        .filter(|s| s["state"]["running"].is_object())
        .count()
}

/// The pods of `games` labelled `app=matchmaking`.
fn matchmaking_pods(fake: &FakeCluster) -> Vec<Value> {
    fake.pods("games")
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "matchmaking")
        .collect()
}

fn labelled(fake: &FakeCluster) -> Vec<String> {
    fake.pods("games")
        .iter()
        .filter(|p| p["metadata"]["labels"].get(POLICY_LABEL).is_some())
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

fn measurement(report: &Value, name: &str) -> Option<String> {
    report["faults"][0]["measurements"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_str().map(str::to_owned))
}

/// Injects the one fault of `path` as run `run_id` and "dies": the journal keeps the
/// intent and, with `journal_injected`, the injected record; nothing is reverted.
fn crash_mid_fault(
    path: &Path,
    state: &Path,
    run_id: &str,
    conn: &Arc<chaos_runner::faults::kube::KubeConnector>,
    journal_injected: bool,
) {
    let exp = chaos_runner::spec::load_experiment(path).unwrap();
    let mut ctx = FaultContext::new(run_id, "/bin/false");
    ctx.kube = conn.clone();
    ctx.experiment = "kube-test".into();
    let spec = &exp.experiment.spec.faults[0];
    let mut fault = build(&ctx, &exp.faults[0], &exp.faults[0].steps[0], spec.duration);
    let mut journal = Journal::create(state, run_id).unwrap();
    journal
        .append(Event::RunStarted {
            experiment: "kube-test".into(),
            pid: std::process::id(),
        })
        .unwrap();
    journal
        .append(Event::Intent {
            fault: spec.name.clone(),
            description: fault.describe(),
            record: fault.planned_record(),
        })
        .unwrap();
    let record = fault.inject().unwrap();
    if journal_injected {
        journal
            .append(Event::Injected {
                fault: spec.name.clone(),
                record,
            })
            .unwrap();
    }
}

fn kill_two() -> String {
    games_fault(
        "kill-game-servers",
        "pod-kill",
        "game-server",
        &["mode: fixed", "value: 2", "seed: 11"],
        &["gracePeriod: 0s", "waitReady: true", "readyTimeout: 10s"],
        "1s",
    )
}

#[test]
fn pod_kill_waits_for_ready_replacements_and_measures_it() {
    let (dir, rt, fake) = setup("kill", cluster(Duration::from_millis(400)));
    let path = experiment(&dir.0, &kill_two(), "");
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    assert_eq!(outcome, Outcome::Passed, "{report:#}");
    let names = fake.pod_names("games");
    // Two of the three unprotected game servers were replaced; the protected one stayed.
    let originals = ["game-server-a", "game-server-b", "game-server-c"]
        .iter()
        .filter(|n| names.contains(&n.to_string()))
        .count();
    assert_eq!(originals, 1, "{names:?}");
    assert!(names.contains(&"game-server-d".to_owned()));
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("game-server-rs-r"))
            .count(),
        2
    );
    let ready_ms: u64 = measurement(&report, "replacements_ready_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!((400..5_000).contains(&ready_ms), "{ready_ms}");
    assert_eq!(measurement(&report, "pods_killed").as_deref(), Some("2"));
    // Nothing outside the namespace was touched, and deletes carried the grace period.
    let requests = fake.requests();
    assert!(
        requests.iter().all(|r| !r.contains("kube-system")),
        "{requests:#?}"
    );
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.starts_with("DELETE /api/v1/namespaces/games/pods/"))
            .count(),
        2
    );
}

#[test]
fn same_seed_picks_the_same_pods_in_plan_and_run() {
    let (dir, rt, fake) = setup("seed", cluster(Duration::from_millis(10)));
    let path = experiment(&dir.0, &kill_two(), "");
    let exp = chaos_runner::spec::load_experiment(&path).unwrap();
    let plan = chaos_runner::plan::plan_value(&exp, fake.connector(&rt));
    let targets: Vec<String> = plan["faults"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().trim_start_matches("games/").to_owned())
        .collect();
    assert_eq!(targets.len(), 2);
    assert_eq!(plan["faults"][0]["targets_exact"], true);
    assert!(
        !targets.contains(&"game-server-d".to_owned()),
        "protected pod planned"
    );
    let (outcome, _) = run(&path, &dir.state(), &fake, &rt);
    assert_eq!(outcome, Outcome::Passed);
    let left = fake.pod_names("games");
    for t in &targets {
        assert!(
            !left.contains(t),
            "{t} was planned but not killed: {left:?}"
        );
    }
}

#[test]
fn selection_modes_and_the_cap_through_plan() {
    let rt = runtime();
    let fake = cluster(Duration::from_millis(10));
    for i in 0..10 {
        fake.add_pod(
            "load",
            &format!("bot-{i}"),
            &[("app", "bot")],
            Some("bots-rs"),
        );
    }
    let dir = Dir::new("modes");
    let count = |mode: &str| -> Result<usize, String> {
        let fault = format!(
            "    - name: kill
      type: pod-kill
      selector:
        pods:
          namespace: load
          labelSelector: {{app: bot}}
{mode}
      duration: 1s
"
        );
        let path = experiment(&dir.0, &fault, "");
        let exp = chaos_runner::spec::load_experiment(&path).map_err(|e| e.to_string())?;
        let plan = chaos_runner::plan::plan_value(&exp, fake.connector(&rt));
        match plan["faults"][0]["targets"].as_array() {
            Some(t) => Ok(t.len()),
            None => Err(plan["faults"][0]["targets_error"].to_string()),
        }
    };
    assert_eq!(count("          mode: one"), Ok(1));
    assert_eq!(count("          mode: all"), Ok(10));
    assert_eq!(count("          mode: fixed\n          value: 3"), Ok(3));
    assert_eq!(
        count("          mode: fixed-percent\n          value: 30"),
        Ok(3)
    );
    let random =
        count("          mode: random-max-percent\n          value: 50\n          seed: 3")
            .unwrap();
    assert!((1..=5).contains(&random), "{random}");
    let capped = count("          mode: all\n          maxPercent: 50").unwrap_err();
    assert!(capped.contains("above maxPercent 50%"), "{capped}");
}

#[test]
fn cap_refusal_stops_the_run_in_preflight_touching_nothing() {
    let (dir, rt, fake) = setup("cap", cluster(Duration::from_millis(10)));
    let fault = &games_fault(
        "kill-all",
        "pod-kill",
        "game-server",
        &["mode: all", "maxPercent: 50"],
        &[],
        "1s",
    );
    let path = experiment(&dir.0, fault, "");
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    assert_eq!(outcome, Outcome::Aborted);
    assert!(
        report["reason"].as_str().unwrap().contains("maxPercent"),
        "{report:#}"
    );
    assert!(
        fake.requests().iter().all(|r| r.starts_with("GET ")),
        "{:#?}",
        fake.requests()
    );
    assert_eq!(fake.pod_names("games").len(), 6);
}

#[test]
fn eviction_blocked_by_a_pdb_aborts_without_killing() {
    let (dir, rt, fake) = setup("pdb", cluster(Duration::from_millis(10)));
    // Three Ready game servers, at least three must stay: no eviction may pass.
    fake.add_pdb("games", &[("app", "game-server")], 4);
    let fault = &games_fault(
        "evict-one",
        "pod-kill",
        "game-server",
        &[],
        &["evict: true"],
        "1s",
    );
    let path = experiment(&dir.0, fault, "");
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    assert_eq!(outcome, Outcome::Aborted);
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("disruption budget"), "{reason}");
    assert_eq!(fake.pod_names("games").len(), 6);
    assert!(fake.requests().iter().any(|r| r.ends_with("/eviction")));
    assert_no_live_faults(&dir.state());
}

fn partition() -> String {
    games_fault(
        "cut-matchmaking",
        "network-partition",
        "matchmaking",
        &["mode: all"],
        &["direction: both"],
        "2s",
    )
}

#[test]
fn network_partition_lives_for_the_hold_then_is_removed_and_verified() {
    let (dir, rt, fake) = setup("partition", cluster(Duration::from_millis(10)));
    let path = experiment(&dir.0, &partition(), "");
    let state = dir.state();
    let watcher = fake.clone();
    let seen = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let policies = watcher.policies("games");
            if !policies.is_empty() {
                return Some((policies, labelled(&watcher)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    });
    let (outcome, report) = run(&path, &state, &fake, &rt);
    assert_eq!(outcome, Outcome::Passed, "{report:#}");
    let (policies, pods) = seen
        .join()
        .unwrap()
        .expect("no NetworkPolicy during the hold");
    assert_eq!(policies.len(), 1);
    assert_run_labels(&policies[0], "cut-matchmaking");
    assert_eq!(
        policies[0]["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert_eq!(
        pods,
        vec!["matchmaking-a".to_owned(), "matchmaking-b".to_owned()]
    );
    // Reverted and read back.
    assert!(fake.policies("games").is_empty());
    assert!(labelled(&fake).is_empty());
    assert_no_live_faults(&state);
}

/// Answers `/health` with 200 for the first `healthy` requests, then 503.
fn flipping_health(healthy: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let status = if n < healthy {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                    .as_bytes(),
            );
        }
    });
    (url, count)
}

#[test]
fn abort_mid_fault_removes_the_partition_at_once() {
    let (dir, rt, fake) = setup("abort", cluster(Duration::from_millis(10)));
    let long = partition().replace("duration: 2s", "duration: 60s");
    let abort = abort_when_health_fails_after(2);
    let path = experiment(&dir.0, &long, &abort);
    let started = Instant::now();
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    assert_eq!(outcome, Outcome::Aborted, "{report:#}");
    assert_within(started, 10);
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("abort condition"),
        "{report:#}"
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r
                .starts_with("POST /apis/networking.k8s.io/v1/namespaces/games/networkpolicies"))
    );
    assert!(fake.policies("games").is_empty());
    assert!(labelled(&fake).is_empty());
}

#[test]
fn failed_policy_delete_is_reported_as_not_reverted() {
    let (dir, rt, fake) = setup("stuck", cluster(Duration::from_millis(10)));
    let path = experiment(
        &dir.0,
        &partition().replace("duration: 2s", "duration: 1s"),
        "",
    );
    let breaker = fake.clone();
    // Deletes fail from the moment the policy exists; the watcher gives up when the run
    // has ended (had it missed the fault's second, the outcome below says so, rather
    // than the test hanging).
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let run_ended = ended.clone();
    let flip = std::thread::spawn(move || {
        while breaker.policies("games").is_empty() {
            if run_ended.load(std::sync::atomic::Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        breaker.fail_policy_deletes(true);
        true
    });
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    ended.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        flip.join().unwrap(),
        "the test never saw the policy while the fault held: {report:#}"
    );
    assert_eq!(outcome, Outcome::NotReverted, "{report:#}");
    assert_eq!(report["faults"][0]["reverted"], false);
    assert_eq!(fake.policies("games").len(), 1);
    // The journal still shows it live, so `recover` can finish the job later.
    let state = dir.state();
    assert_eq!(journal::live_faults(&state).unwrap().len(), 1);
    fake.fail_policy_deletes(false);
    let conn = fake.connector(&rt);
    assert_eq!(
        chaos_runner::recover::run_with(&state, Format::Json, &conn),
        Outcome::Passed
    );
    assert!(fake.policies("games").is_empty());
    assert_no_live_faults(&state);
}

#[test]
fn recover_after_a_crash_deletes_leftover_policies_by_label() {
    let (dir, rt, fake) = setup("crash", cluster(Duration::from_millis(10)));
    let conn = fake.connector(&rt);
    let db = &games_fault(
        "cut-db",
        "db-partition",
        "game-server",
        &["mode: all"],
        &["port: 5432", "cidr: 10.20.0.0/16"],
        "60s",
    );
    let path = experiment(&dir.0, db, "");
    let state = dir.state();
    crash_mid_fault(&path, &state, "kube-test-crashed", &conn, true);
    // The runner "died": nothing is reverted. A second policy of the same run and fault
    // (say, from a retried create) carries the same labels under another name.
    let policies = fake.policies("games");
    assert_eq!(policies.len(), 1);
    let egress = &policies[0]["spec"]["egress"];
    assert_eq!(
        egress[0]["to"][0]["ipBlock"]["except"],
        serde_json::json!(["10.20.0.0/16"])
    );
    let mut twin = policies[0].clone();
    twin["metadata"]["name"] = "chaos-cut-db-twin".into();
    fake.put_policy("games", twin);
    assert_eq!(labelled(&fake).len(), 3);

    assert_recovers(&state, &conn);
    assert!(
        fake.policies("games").is_empty(),
        "{:#?}",
        fake.policies("games")
    );
    assert!(labelled(&fake).is_empty());
    assert_no_live_faults(&state);
}

#[test]
fn protected_namespace_and_empty_selector_are_refused_at_validation() {
    let dir = Dir::new("refuse");
    let fault = "    - name: kill
      type: pod-kill
      selector:
        pods:
          namespace: kube-system
          labelSelector: {app: game-server}
      duration: 1s
";
    let path = experiment(&dir.0, fault, "");
    let err = chaos_runner::spec::load_experiment(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.faults[0].selector.pods.namespace"),
        "{err}"
    );
    let allowed = fault.replace(
        "          labelSelector",
        "          allowProtectedNamespaces: [kube-system]\n          labelSelector",
    );
    let path = experiment(&dir.0, &allowed, "");
    assert!(chaos_runner::spec::load_experiment(&path).is_ok());
    let empty = "    - name: kill
      type: pod-kill
      selector:
        pods:
          namespace: games
      duration: 1s
";
    let path = experiment(&dir.0, empty, "");
    let err = chaos_runner::spec::load_experiment(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.faults[0].selector.pods.labelSelector"),
        "{err}"
    );
}

#[test]
fn shipped_kubernetes_experiments_plan_against_the_fake() {
    let rt = runtime();
    let fake = cluster_with_db();
    fake.add_pod(
        "games",
        "postgres-0",
        &[("app", "postgres")],
        Some("postgres-sts"),
    );
    for name in ["e", "f", "g", "h", "i", "j"] {
        fake.add_pod(
            "games",
            &format!("game-server-{name}"),
            &[("app", "game-server")],
            Some("game-server-rs"),
        );
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/kubernetes");
    let mut planned = 0;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        let exp = chaos_runner::spec::load_experiment(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let plan = chaos_runner::plan::plan_value(&exp, fake.connector(&rt));
        assert_eq!(plan["backend"], "kubernetes");
        assert_eq!(
            plan["warnings"],
            serde_json::json!([]),
            "{}: {plan:#}",
            path.display()
        );
        for fault in plan["faults"].as_array().unwrap() {
            if fault["selector"]["service"].is_object() {
                assert_eq!(
                    fault["targets"],
                    serde_json::json!(["games/service/postgres:5432"])
                );
                assert_eq!(fault["targets_exact"], true);
                let note = fault["note"].as_str().unwrap();
                assert!(
                    note.contains("connections opened before the swap"),
                    "{note}"
                );
            }
            let targets = fault["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: {fault:#}", path.display()));
            assert!(!targets.is_empty());
            assert!(targets.iter().all(|t| t != "games/game-server-d"));
        }
        planned += 1;
    }
    assert!(planned >= 3, "only {planned} experiments");
    names.sort();
    for scenario in [
        "db-connection-failure",
        "db-query-errors",
        "db-query-latency",
        "game-server-db-partition",
        "game-server-memory-hog",
        "game-server-pod-kill",
        "matchmaking-cpu-hog",
        "matchmaking-latency",
        "matchmaking-loss",
        "matchmaking-partition",
    ] {
        assert!(
            names.iter().any(|n| n == scenario),
            "no {scenario}.yaml in {names:?}"
        );
    }
    // Planning touched nothing.
    assert!(fake.requests().iter().all(|r| r.starts_with("GET ")));
}

#[test]
fn deploy_configmap_matches_the_shipped_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("deploy/configmap-experiments.yaml")).unwrap();
    let map: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let data = map["data"].as_mapping().unwrap();
    assert!(data.len() >= 2);
    for (key, value) in data {
        let key = key.as_str().unwrap();
        let source = if key == "game-services.yaml" {
            root.join("../experiments/slo").join(key)
        } else {
            root.join("../experiments/kubernetes").join(key)
        };
        let shipped = std::fs::read_to_string(&source).unwrap();
        assert_eq!(
            value.as_str().unwrap(),
            shipped,
            "{key} differs from {}",
            source.display()
        );
    }
}

#[test]
fn doctor_asks_one_access_review_per_permission_and_reports_denials() {
    let (dir, rt, fake) = setup("doctor", cluster(Duration::from_millis(10)));
    fake.deny("create", "pods/eviction");
    let path = experiment(
        &dir.0,
        &games_fault(
            "evict",
            "pod-kill",
            "game-server",
            &[],
            &["evict: true"],
            "1s",
        ),
        "",
    );
    let exp = chaos_runner::spec::load_experiment(&path).unwrap();
    let answers = chaos_runner::doctor::check(&exp, &fake.connector(&rt)).unwrap();
    let asked = verbs_and_answers(&answers);
    assert_eq!(
        asked,
        vec![
            ("list pods".to_owned(), true),
            ("create pods/eviction".to_owned(), false)
        ]
    );
    assert_eq!(
        fake.requests().iter().filter(|r| r.starts_with("POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews")).count(),
        2
    );
    assert_eq!(
        chaos_runner::doctor::run_with(
            &chaos_runner::spec::load_experiment(&path).unwrap(),
            &path,
            Format::Json,
            fake.connector(&rt),
        ),
        Outcome::Failed
    );
}

/// The ephemeral containers of the pods of `ns` labelled `app=<app>`, with their states.
fn helpers_of(fake: &FakeCluster, app: &str) -> Vec<(String, Vec<Value>, Vec<Value>)> {
    fake.pods("games")
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_owned(),
                p["spec"]["ephemeralContainers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                p["status"]["ephemeralContainerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn args_of(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn cpu_hog() -> String {
    games_fault(
        "burn",
        "pod-cpu-hog",
        "matchmaking",
        &["mode: all"],
        &[
            "workers: 2",
            "load: 60",
            "image: registry.example/chaos-runner:1.0",
            "container: app",
        ],
        "60s",
    )
}

#[test]
fn pod_cpu_hog_abort_mid_fault_stops_the_helpers_and_reads_them_back() {
    let (dir, rt, fake) = setup("hog-abort", cluster(Duration::from_millis(10)));
    let abort = abort_when_health_fails_after(2);
    let path = experiment(&dir.0, &cpu_hog(), &abort);
    let state = dir.state();
    let started = Instant::now();
    let (outcome, report) = run(&path, &state, &fake, &rt);
    assert_eq!(outcome, Outcome::Aborted, "{report:#}");
    assert_within(started, 15);
    assert_eq!(report["faults"][0]["reverted"], true, "{report:#}");
    assert_eq!(measurement(&report, "pods_hit").as_deref(), Some("2"));
    let hit = helpers_of(&fake, "matchmaking");
    assert_eq!(hit.len(), 2);
    for (pod, containers, statuses) in hit {
        assert_eq!(containers.len(), 2, "{pod}: {containers:#?}");
        let (hog, stop) = (&containers[0], &containers[1]);
        let name = hog["name"].as_str().unwrap();
        assert!(name.starts_with("chaos-burn-"), "{name}");
        assert_eq!(hog["image"], "registry.example/chaos-runner:1.0");
        assert_eq!(hog["targetContainerName"], "app");
        let args = args_of(hog);
        assert_eq!(
            &args[..8],
            [
                "stress",
                "cpu",
                "--workers",
                "2",
                "--load",
                "60",
                "--duration",
                "60s"
            ]
        );
        assert!(args.ends_with(&["--exit-on-term".to_owned()]));
        let run_id = report["run_id"].as_str().unwrap();
        assert_eq!(
            hog["env"],
            serde_json::json!([
                {"name": "CHAOS_RUN_ID", "value": run_id},
                {"name": "CHAOS_EXPERIMENT", "value": "kube-test"},
                {"name": "CHAOS_FAULT", "value": "burn"},
            ])
        );
        assert_eq!(stop["name"], format!("{name}-stop"));
        assert_eq!(stop["targetContainerName"], "app");
        assert_eq!(&args_of(stop)[..2], ["stress", "stop"]);
        // Read back: both ended, the hog by the stopper's SIGTERM (not its duration).
        assert_eq!(statuses.len(), 2);
        assert_eq!(
            statuses[0]["state"]["terminated"]["message"],
            "stopped by SIGTERM"
        );
        assert!(statuses[1]["state"]["terminated"].is_object());
    }
    assert_no_live_faults(&state);
}

#[test]
fn pod_memory_hog_and_net_loss_run_their_course_and_pass() {
    for (fault, helper, first_container_default) in [
        (
            &games_fault(
                "hold-memory",
                "pod-memory-hog",
                "matchmaking",
                &["mode: one", "seed: 4"],
                &["bytes: 64 MiB"],
                "1s",
            ),
            "memory",
            true,
        ),
        (
            &games_fault(
                "lose-packets",
                "pod-net-loss",
                "matchmaking",
                &["mode: one", "seed: 4"],
                &["lossPercent: 10"],
                "1s",
            ),
            "netem",
            true,
        ),
    ] {
        let (dir, rt, fake) = setup(helper, cluster(Duration::from_millis(10)));
        let path = experiment(&dir.0, fault, "");
        let state = dir.state();
        let (outcome, report) = run(&path, &state, &fake, &rt);
        assert_eq!(outcome, Outcome::Passed, "{helper}: {report:#}");
        let hit: Vec<_> = helpers_of(&fake, "matchmaking")
            .into_iter()
            .filter(|(_, c, _)| !c.is_empty())
            .collect();
        assert_eq!(hit.len(), 1, "{helper}: mode one hits one pod");
        let (_, containers, statuses) = &hit[0];
        let args = args_of(&containers[0]);
        assert_eq!(args[1], helper);
        if first_container_default {
            assert_eq!(containers[0]["targetContainerName"], "app");
        }
        if helper == "netem" {
            assert_eq!(&args[2..6], ["--interface", "eth0", "--loss", "10"]);
            assert_eq!(
                containers[0]["securityContext"]["capabilities"]["add"],
                serde_json::json!(["NET_ADMIN"])
            );
        } else {
            assert_eq!(&args[2..5], ["--bytes", "67108864", "--touch"]);
        }
        // Ended (by its duration or by the stopper), read back before the run passed.
        assert!(
            statuses
                .iter()
                .all(|s| s["state"]["terminated"]["exitCode"] == 0),
            "{statuses:#?}"
        );
        assert_no_live_faults(&state);
    }
}

#[test]
fn helper_image_that_cannot_be_pulled_fails_the_injection_at_once_and_says_so() {
    let (dir, rt, fake) = setup("bad-image", cluster(Duration::from_millis(10)));
    fake.bad_image("registry.example/missing:1");
    let fault = cpu_hog().replace(
        "registry.example/chaos-runner:1.0",
        "registry.example/missing:1",
    );
    let path = experiment(&dir.0, &fault, "");
    let started = Instant::now();
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    assert_eq!(outcome, Outcome::Aborted, "{report:#}");
    assert_within(started, 15);
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("cannot start: ErrImagePull"), "{reason}");
    // The helpers that went in never started: nothing to signal, and the runner says so.
    assert!(reason.contains("never started"), "{reason}");
}

#[test]
fn pod_net_delay_without_a_target_container_in_the_pod_is_refused() {
    let (dir, rt, fake) = setup("no-container", cluster(Duration::from_millis(10)));
    let fault = &games_fault(
        "slow",
        "pod-net-delay",
        "matchmaking",
        &["mode: all"],
        &["delay: 100ms", "container: matchmaker"],
        "5s",
    );
    let path = experiment(&dir.0, fault, "");
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    let reason = aborted_reason(outcome, &report);
    assert!(reason.contains("has no container `matchmaker`"), "{reason}");
    assert!(helpers_of(&fake, "matchmaking")
        .iter()
        .all(|(_, c, _)| c.is_empty()));
}

/// Crashes a run `run_id` of `cpu_hog()` mid-fault (`crash_mid_fault`), asserts both its
/// helpers run, recovers, and asserts they stopped and no fault is live.
fn crash_hog_then_recover(tag: &str, run_id: &str, journal_injected: bool) -> FakeCluster {
    let (dir, rt, fake) = setup(tag, cluster(Duration::from_millis(10)));
    let conn = fake.connector(&rt);
    let path = experiment(&dir.0, &cpu_hog(), "");
    let state = dir.state();
    crash_mid_fault(&path, &state, run_id, &conn, journal_injected);
    assert_eq!(running_helpers(&fake), 2);
    assert_recovers(&state, &conn);
    assert_eq!(running_helpers(&fake), 0);
    assert_no_live_faults(&state);
    fake
}

#[test]
fn recover_after_a_crash_stops_running_helpers() {
    let fake = crash_hog_then_recover("hog-crash", "kube-test-hog-crashed", true);
    for (_, containers, _) in helpers_of(&fake, "matchmaking") {
        assert_eq!(containers.len(), 2);
        assert!(containers[1]["name"].as_str().unwrap().ends_with("-stop"));
    }
}

#[test]
fn recover_finds_helpers_when_the_journal_holds_only_the_intent() {
    // The helpers go in, but the runner dies before journaling which pods it hit.
    crash_hog_then_recover("hog-intent", "kube-test-died-injecting", false);
}

#[test]
fn doctor_knows_what_in_pod_helpers_need() {
    let (dir, rt, fake) = setup("doctor-helpers", cluster(Duration::from_millis(10)));
    fake.deny("patch", "pods/ephemeralcontainers");
    let path = experiment(&dir.0, &cpu_hog(), "");
    let exp = chaos_runner::spec::load_experiment(&path).unwrap();
    let answers = chaos_runner::doctor::check(&exp, &fake.connector(&rt)).unwrap();
    let asked = verbs_and_answers(&answers);
    assert_eq!(
        asked,
        vec![
            ("list pods".to_owned(), true),
            ("get pods".to_owned(), true),
            ("patch pods/ephemeralcontainers".to_owned(), false),
        ]
    );
    assert_eq!(
        chaos_runner::doctor::run_with(
            &chaos_runner::spec::load_experiment(&path).unwrap(),
            &path,
            Format::Json,
            fake.connector(&rt),
        ),
        Outcome::Failed
    );
    // Every verb the faults ask for is granted by the shipped Role.
    let rbac =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rbac.yaml"))
            .unwrap();
    assert!(
        rbac.contains("resources: [\"pods/ephemeralcontainers\"]\n    verbs: [\"patch\"]"),
        "{rbac}"
    );
}

fn container_kill() -> String {
    games_fault(
        "restart-app",
        "container-kill",
        "matchmaking",
        &["mode: all"],
        &["container: app", "restartTimeout: 10s"],
        "1s",
    )
}

#[test]
fn container_kill_signals_the_main_process_and_reads_the_restart_back() {
    let (dir, rt, fake) = setup("container-kill", cluster(Duration::from_millis(300)));
    let path = experiment(&dir.0, &container_kill(), "");
    let state = dir.state();
    let (outcome, report) = run(&path, &state, &fake, &rt);
    assert_eq!(outcome, Outcome::Passed, "{report:#}");
    assert_eq!(
        measurement(&report, "containers_killed").as_deref(),
        Some("2")
    );
    let took: u64 = measurement(&report, "container_restarted_ms")
        .expect("no restart time measured")
        .parse()
        .unwrap();
    assert!(took >= 250, "{took} ms");
    for pod in &matchmaking_pods(&fake) {
        let status = &pod["status"]["containerStatuses"][0];
        assert_eq!(status["restartCount"], 1, "{pod:#}");
        assert_eq!(status["ready"], true);
        let helper = &pod["spec"]["ephemeralContainers"][0];
        assert_eq!(helper["targetContainerName"], "app");
        assert_eq!(
            &args_of(helper)[..4],
            ["stress", "signal-init", "--signal", "TERM"]
        );
        assert_eq!(
            helper["securityContext"]["capabilities"]["add"],
            serde_json::json!(["KILL"])
        );
    }
    assert_no_live_faults(&state);
}

#[test]
fn container_kill_of_a_process_that_would_drop_the_signal_fails_the_injection() {
    let (dir, rt, fake) = setup("container-kill-deaf", cluster(Duration::from_millis(10)));
    fake.deaf("games", "matchmaking-a");
    fake.deaf("games", "matchmaking-b");
    let path = experiment(&dir.0, &container_kill(), "");
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    let reason = aborted_reason(outcome, &report);
    assert!(
        reason.contains("neither catches nor waits for SIGTERM"),
        "{reason}"
    );
    for pod in &matchmaking_pods(&fake) {
        assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    }
}

#[test]
fn container_kill_of_a_missing_container_is_refused_before_any_helper() {
    let (dir, rt, fake) = setup("container-kill-missing", cluster(Duration::from_millis(10)));
    let path = experiment(
        &dir.0,
        &container_kill().replace("container: app", "container: nope"),
        "",
    );
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    assert_eq!(outcome, Outcome::Aborted, "{report:#}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("no running container `nope`"),
        "{report:#}"
    );
    assert!(!fake
        .requests()
        .iter()
        .any(|r| r.contains("ephemeralcontainers")));
}

const PROXY_LABEL: &str = "chaos.game-resilience.dev/db-proxy";
const ORIGINAL_SELECTOR: &str = "chaos.game-resilience.dev/original-selector";

const SLOW_SAVES: &str = "    - name: slow-saves
      type: postgres-latency
      selector:
        service:
          namespace: games
          name: postgres
          port: 5432
      parameters:
        pattern: ^UPDATE
        delay: 300ms
      duration: 2s
";

/// The test cluster plus the database: a `postgres` Service selecting `app=postgres`.
fn cluster_with_db() -> FakeCluster {
    let fake = cluster(Duration::from_millis(10));
    fake.add_service("games", "postgres", &[("app", "postgres")], &[5432]);
    fake
}

/// The `postgres` Service's selector and annotations now.
fn db_service(fake: &FakeCluster) -> (Value, Value) {
    let svc = fake.object("services", "games", "postgres").unwrap();
    (
        svc["spec"]["selector"].clone(),
        svc["metadata"]["annotations"].clone(),
    )
}

/// Asserts the Service selects the database again, without the annotation, and nothing
/// the proxy fault created is left.
fn assert_db_restored(fake: &FakeCluster) {
    let (selector, annotations) = db_service(fake);
    assert_eq!(selector, serde_json::json!({"app": "postgres"}));
    assert!(
        annotations.get(ORIGINAL_SELECTOR).is_none(),
        "{annotations}"
    );
    assert!(fake.objects("deployments", "games").is_empty());
    assert!(fake.objects("configmaps", "games").is_empty());
    let services: Vec<Value> = fake.objects("services", "games");
    assert_eq!(services.len(), 1, "{services:#?}");
}

#[test]
fn db_proxy_swaps_the_service_selector_for_the_hold_then_restores_it() {
    let (dir, rt, fake) = setup("db-proxy", cluster_with_db());
    let path = experiment(&dir.0, SLOW_SAVES, "");
    let watcher = fake.clone();
    let seen = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let (selector, annotations) = db_service(&watcher);
            if selector.get(PROXY_LABEL).is_some() {
                return Some((
                    selector,
                    annotations,
                    watcher.objects("deployments", "games"),
                    watcher.objects("configmaps", "games"),
                    watcher.objects("services", "games"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    });
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    assert_eq!(outcome, Outcome::Passed, "{report:#}");
    let (selector, annotations, deployments, maps, services) = seen
        .join()
        .unwrap()
        .expect("the selector was never swapped");
    // During the hold: the Service selects the proxy pods, and says what to restore.
    assert_eq!(deployments.len(), 1);
    let proxy = deployments[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(selector, serde_json::json!({ PROXY_LABEL: proxy }));
    assert_eq!(annotations[ORIGINAL_SELECTOR], "{\"app\":\"postgres\"}");
    assert_eq!(
        deployments[0]["spec"]["template"]["metadata"]["labels"][PROXY_LABEL],
        proxy
    );
    // Every object created carries the run, experiment and fault labels.
    let upstream = services
        .iter()
        .find(|s| s["metadata"]["name"] != "postgres")
        .unwrap();
    for object in [&deployments[0], &maps[0], upstream] {
        assert_run_labels(object, "slow-saves");
    }
    // The upstream Service reaches the database pods with the original selector.
    assert_eq!(
        upstream["spec"]["selector"],
        serde_json::json!({"app": "postgres"})
    );
    let up_name = upstream["metadata"]["name"].as_str().unwrap();
    // The proxy config: the fault's parameters as the rule's attributes, to the upstream.
    let config: Value =
        serde_json::from_str(maps[0]["data"]["proxies.json"].as_str().unwrap()).unwrap();
    assert_eq!(config[0]["listen"], "0.0.0.0:5432");
    assert_eq!(config[0]["upstream"], format!("{up_name}.games.svc:5432"));
    assert_eq!(config[0]["protocol"], "postgres");
    let rule = &config[0]["dbfaults"][0];
    assert_eq!(rule["type"], "postgres-latency");
    assert_eq!(
        rule["attributes"],
        serde_json::json!({"pattern": "^UPDATE", "delay": "300ms", "rate": 1.0})
    );
    assert_eq!(rule["expiresIn"], "12s");
    // The step says plainly that open connections are not hit.
    let step = report["faults"][0]["steps"][0].as_str().unwrap();
    assert!(
        step.contains("connections opened before the swap"),
        "{step}"
    );
    // Reverted and read back.
    assert_db_restored(&fake);
    assert_no_live_faults(&dir.state());
}

#[test]
fn db_proxy_abort_mid_fault_restores_the_service_at_once() {
    let (dir, rt, fake) = setup("db-abort", cluster_with_db());
    let long = SLOW_SAVES.replace("duration: 2s", "duration: 60s");
    let abort = abort_when_health_fails_after(2);
    let path = experiment(&dir.0, &long, &abort);
    let started = Instant::now();
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    assert_eq!(outcome, Outcome::Aborted, "{report:#}");
    assert_within(started, 10);
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.starts_with("PATCH /api/v1/namespaces/games/services/postgres")));
    assert_db_restored(&fake);
}

#[test]
fn db_proxy_that_never_becomes_available_fails_the_injection_touching_nothing() {
    let (dir, rt, fake) = setup("db-stall", cluster_with_db());
    fake.stall_deployments(true);
    let fault = SLOW_SAVES.replace("port: 5432", "port: 5432\n          readyTimeout: 1s");
    let path = experiment(&dir.0, &fault, "");
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    let reason = aborted_reason(outcome, &report);
    assert!(
        reason.contains("proxy Deployment `chaos-slow-saves-") && reason.contains("not available"),
        "{reason}"
    );
    // The Service was never patched, and what was created is gone.
    assert!(!fake
        .requests()
        .iter()
        .any(|r| r.starts_with("PATCH /api/v1/namespaces/games/services/postgres")));
    assert_db_restored(&fake);
}

#[test]
fn db_proxy_refuses_a_service_without_a_selector() {
    let (dir, rt, fake) = setup("db-external", cluster(Duration::from_millis(10)));
    fake.add_service("games", "postgres", &[], &[5432]);
    let path = experiment(&dir.0, SLOW_SAVES, "");
    let (outcome, report) = run(&path, &dir.state(), &fake, &rt);
    let reason = aborted_reason(outcome, &report);
    assert!(reason.contains("has no selector"), "{reason}");
    // Refused in preflight: only reads were sent.
    assert!(fake.requests().iter().all(|r| r.starts_with("GET ")));
}

#[test]
fn recover_after_a_crash_restores_the_db_service_and_deletes_the_proxy() {
    for journal_injected in [true, false] {
        let (dir, rt, fake) = setup("db-crash", cluster_with_db());
        let conn = fake.connector(&rt);
        let path = experiment(
            &dir.0,
            &SLOW_SAVES.replace("duration: 2s", "duration: 60s"),
            "",
        );
        let state = dir.state();
        let run_id = "kube-test-db-crashed";
        crash_mid_fault(&path, &state, run_id, &conn, journal_injected);
        let (selector, _) = db_service(&fake);
        assert!(selector.get(PROXY_LABEL).is_some(), "{selector}");
        // A leftover of the same run and fault under another name (a retried create).
        let labels =
            chaos_runner::faults::kube::target::object_labels(run_id, "kube-test", "slow-saves");
        fake.put_object(
            "configmaps",
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "chaos-slow-saves-twin", "namespace": "games", "labels": labels}}),
        );
        assert_eq!(fake.objects("configmaps", "games").len(), 2);

        let outcome = chaos_runner::recover::run_with(&state, Format::Json, &conn);
        assert_eq!(
            outcome,
            Outcome::Passed,
            "journal_injected={journal_injected}"
        );
        assert_db_restored(&fake);
        assert_no_live_faults(&state);
    }
}

#[test]
fn doctor_knows_what_the_db_proxy_needs() {
    let (dir, rt, fake) = setup("db-doctor", cluster_with_db());
    fake.deny("patch", "services");
    let path = experiment(&dir.0, SLOW_SAVES, "");
    let exp = chaos_runner::spec::load_experiment(&path).unwrap();
    let answers = chaos_runner::doctor::check(&exp, &fake.connector(&rt)).unwrap();
    let asked: Vec<String> = answers
        .iter()
        .map(|a| format!("{} {} {}", a.need.verb, a.need.resource, a.namespace))
        .collect();
    for want in [
        "get services games",
        "patch services games",
        "create configmaps games",
        "create deployments games",
        "delete deployments games",
    ] {
        assert!(asked.iter().any(|a| a == want), "{want} not in {asked:?}");
    }
    let denied: Vec<&str> = answers
        .iter()
        .filter(|a| !a.allowed)
        .map(|a| a.need.verb)
        .collect();
    assert_eq!(denied, vec!["patch"]);
}
