//! SIGTERM to the runner while a Kubernetes fault is live (against the in-memory fake API
//! server): the engine reverts (the helpers are stopped and read back), the outcome is
//! "aborted" (exit code 2) and the report is written. Its own test binary, because the
//! signal goes to the whole test process: any other engine running in it would take the
//! signal too.

mod kube_fake;

use chaos_runner::engine::{self, RunOptions};
use chaos_runner::exit::Outcome;
use chaos_runner::journal;
use chaos_runner::output::Format;
use kube_fake::FakeCluster;
use std::time::{Duration, Instant};

#[test]
fn sigterm_mid_fault_stops_the_helpers_exits_2_and_writes_the_report() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("chaos-kube-sigterm-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = FakeCluster::new(Duration::from_millis(10));
    for name in ["matchmaking-a", "matchmaking-b"] {
        fake.add_pod("games", name, &[("app", "matchmaking")], Some("mm-rs"));
    }
    let path = dir.join("experiment.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: kube-sigterm
spec:
  target:
    backend: kubernetes
  checkInterval: 100ms
  faults:
    - name: burn
      type: pod-cpu-hog
      selector:
        pods:
          namespace: games
          labelSelector: {{app: matchmaking}}
          mode: all
      parameters:
        workers: 1
        load: 50
      duration: 60s
  report:
    dir: {}/reports
    formats: [json]
",
            dir.display()
        ),
    )
    .unwrap();
    let running = |fake: &FakeCluster| {
        fake.pods("games")
            .iter()
            .flat_map(|p| {
                p["status"]["ephemeralContainerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|s| s["state"]["running"].is_object())
            .count()
    };
    let watcher = fake.clone();
    let killer = std::thread::spawn(move || {
        let started = Instant::now();
        while running(&watcher) < 2 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the helpers never ran"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = Instant::now();
        // SAFETY: kill(2) on our own pid takes no pointers; the engine handles SIGTERM.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGTERM);
            std::thread::sleep(Duration::from_millis(50));
            // A second signal must not skip the revert.
            libc::kill(libc::getpid(), libc::SIGTERM);
        }
        sent
    });
    let state = dir.join("state");
    let outcome = engine::run(
        &path,
        RunOptions {
            state_dir: state.clone(),
            recover_first: false,
            kube: Some(fake.connector(&rt)),
            deadline: None,
        },
        chaos_runner::output::sink(Format::Json).as_mut(),
    );
    let sent = killer.join().unwrap();
    assert_eq!(outcome, Outcome::Aborted);
    assert_eq!(outcome.code(), 2);
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "{:?}",
        sent.elapsed()
    );
    // Reverted and read back: every helper ended by its stopper, nothing live.
    assert_eq!(running(&fake), 0);
    for pod in fake.pods("games") {
        let names: Vec<&str> = pod["spec"]["ephemeralContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(format!("{}-stop", names[0]), names[1]);
    }
    assert!(journal::live_faults(&state).unwrap().is_empty());
    // The report was written and says why.
    let reports = dir.join("reports");
    let run_dir = std::fs::read_dir(&reports)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();
    assert!(
        report["reason"].as_str().unwrap().contains("SIGTERM"),
        "{report:#}"
    );
    assert_eq!(report["faults"][0]["reverted"], true, "{report:#}");
    let _ = std::fs::remove_dir_all(&dir);
}
