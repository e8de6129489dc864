//! `chaos-runner run` end to end with a real Prometheus (scraping a metrics server the test
//! controls at a 1 s scrape interval) and real hog processes.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child we started.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Starts a run of `experiment` (a CPU hog named `fault`, `duration`, checked every
/// `interval`) in a temp dir named after `tag`, its state in `dir/state`, and waits for
/// the hog.
fn start_hog_run(
    prom: &PrometheusServer,
    tag: &str,
    fault: &str,
    duration: &str,
    interval: &str,
) -> (TempDir, std::path::PathBuf, std::process::Child) {
    let dir = TempDir::new(tag);
    let exp = experiment(dir.path(), &prom.url, fault, duration, interval);
    let runner = start_run(&exp, &dir.path().join("state"));
    wait_for_hog(fault);
    (dir, exp, runner)
}

#[test]
fn passing_run_reverts_and_writes_every_report() {
    let Some((_metrics, prom)) = metrics_and_prometheus() else {
        return;
    };
    let dir = TempDir::new("pass");
    let exp = experiment(dir.path(), &prom.url, "hog-pass", "3s", "500ms");
    let out = run_to_end(&exp, &dir.path().join("state"));
    assert_exit(&out, 0);
    let summary = summary_of(&out);
    assert_eq!(summary["outcome"], "passed");
    let reports: Vec<String> = summary["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reports.len(), 3);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&reports[0]).unwrap()).unwrap();
    assert_eq!(json["faults"][0]["reverted"], true);
    let holds = json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["phase"] == "hold")
        .count();
    // Checked every 500 ms for 3 s: about six; a busy machine can stretch a check, so
    // what is asserted is that the hold was watched more than once.
    assert!(holds >= 2, "checked every 500 ms for 3 s, got {holds}");
    let junit = std::fs::read_to_string(&reports[1]).unwrap();
    assert!(
        junit.contains("<testcase") && junit.contains("failures=\"0\""),
        "{junit}"
    );
    assert!(std::fs::read_to_string(&reports[2])
        .unwrap()
        .contains("passed"));
    assert!(hogs("hog-pass").is_empty());
}

#[test]
fn abort_condition_stops_the_hog_within_interval_plus_scrape_plus_500ms() {
    let Some((metrics, prom)) = metrics_and_prometheus() else {
        return;
    };
    let (_dir, _exp, runner) = start_hog_run(&prom, "abort", "hog-abort", "60s", "500ms");
    std::thread::sleep(Duration::from_secs(1));
    metrics.set(1.0);
    let visible = prom.wait_until(Duration::from_secs(10), |p| {
        p.query("max(chaos_test_signal)") == Some(1.0)
    });
    let gone = wait_for(Duration::from_secs(10), "the hog to stop", || {
        hogs("hog-abort").is_empty()
    });
    let lag = gone.saturating_duration_since(visible);
    // interval (500 ms) + scrape interval (1 s) + 500 ms
    assert!(
        lag <= Duration::from_millis(2000),
        "hog stopped {lag:?} after the breach was visible"
    );
    let out = runner.wait_with_output().unwrap();
    assert_exit(&out, 2);
    let summary = summary_of(&out);
    assert_reason_contains(&summary, "signal-raised");
}

#[test]
fn sigterm_mid_hold_reverts_and_exits_2() {
    let Some((_metrics, prom)) = metrics_and_prometheus() else {
        return;
    };
    let (_dir, _exp, runner) = start_hog_run(&prom, "sigterm", "hog-sigterm", "60s", "1s");
    signal(runner.id(), libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(50));
    signal(runner.id(), libc::SIGTERM); // a second signal must not skip the revert
    let out = runner.wait_with_output().unwrap();
    assert_exit(&out, 2);
    assert!(hogs("hog-sigterm").is_empty());
    let summary = summary_of(&out);
    assert!(summary["reason"].as_str().unwrap().contains("SIGTERM"));
}

#[test]
fn prometheus_dying_mid_run_aborts_fail_closed() {
    let Some((_metrics, mut prom)) = metrics_and_prometheus() else {
        return;
    };
    let (_dir, _exp, runner) = start_hog_run(&prom, "failclosed", "hog-failclosed", "60s", "500ms");
    prom.kill();
    let out = runner.wait_with_output().unwrap();
    assert_exit(&out, 2);
    let summary = summary_of(&out);
    assert_reason_contains(&summary, "failed 3 checks in a row");
    assert!(hogs("hog-failclosed").is_empty());
}

#[test]
fn sigkill_then_recover_leaves_nothing_live() {
    let Some((_metrics, prom)) = metrics_and_prometheus() else {
        return;
    };
    let (dir, exp, mut runner) = start_hog_run(&prom, "sigkill", "hog-sigkill", "60s", "1s");
    let state = dir.path().join("state");
    runner.kill().unwrap(); // SIGKILL: no handler runs
    runner.wait().unwrap();
    // The journal still lists the fault as live (what `run` does with it is the next
    // test's); `recover` reverts it.
    assert_eq!(chaos_runner::journal::live_faults(&state).unwrap().len(), 1);
    let _ = &exp;
    let recovered = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["recover", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(
        recovered.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&recovered.stderr)
    );
    wait_for(Duration::from_secs(3), "no hog left", || {
        hogs("hog-sigkill").is_empty()
    });
    assert!(chaos_runner::journal::live_faults(&state)
        .unwrap()
        .is_empty());
}

#[test]
fn failing_steady_state_injects_nothing_and_exits_1() {
    let Some((_metrics, prom)) = metrics_and_prometheus() else {
        return;
    };
    let dir = TempDir::new("steady");
    let exp = experiment(dir.path(), &prom.url, "hog-steady", "5s", "1s");
    edit_file(&exp, "threshold: 1 }", "threshold: 2 }");
    let out = run_to_end(&exp, &dir.path().join("state"));
    assert_exit(&out, 1);
    assert!(hogs("hog-steady").is_empty());
}

#[test]
fn shipped_cpu_hog_experiment_runs_with_no_prometheus() {
    // A shipped experiment, as a new user runs it (only the state and report dirs are
    // moved into a temp dir). Its verdict depends on how busy this machine is (other tests
    // run beside it), so each outcome is checked for what it must mean: 0, all three ramp
    // steps ran; 1, the host was already too busy (nothing injected) or stayed busy after;
    // 2, the guard rail tripped. In every case the report exists and nothing is left live.
    let dir = TempDir::new("shipped");
    let exp =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/local/cpu-hog.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["--output", "json", "run"])
        .arg(&exp)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let code = out.status.code();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{code:?} {e}: {}", String::from_utf8_lossy(&out.stderr)));
    let reason = summary["reason"].as_str().unwrap().to_owned();
    let report = summary["reports"][0].as_str().unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(report)).unwrap()).unwrap();
    let faults = report["faults"].as_array().unwrap();
    match code {
        Some(0) => {
            assert_eq!(faults[0]["steps"].as_array().unwrap().len(), 3);
            assert_eq!(faults[0]["reverted"], true);
        }
        Some(1) if reason.starts_with("preflight") => assert!(faults.is_empty(), "{reason}"),
        Some(1) => {
            assert!(reason.contains("steady state after"), "{reason}");
            assert_eq!(faults[0]["reverted"], true);
        }
        Some(2) => {
            assert!(reason.contains("host-"), "{reason}");
            assert_eq!(faults[0]["reverted"], true);
        }
        other => panic!("{other:?}: {reason}"),
    }
    assert!(hogs("cpu-pressure").is_empty());
}

/// After a SIGKILLed run, `run` refuses only for what can still be live, naming it. The
/// killed run's hog and disk fill ended with it (the filler deletes its file as it goes):
/// both are closed in its journal with a note. A toxic another dead run left on a
/// standalone proxy can still be in effect: `run` refuses, naming it, until it is gone.
#[test]
fn run_after_a_sigkill_refuses_only_what_can_still_be_live() {
    use chaos_runner::faults::FaultRecord;
    let dir = TempDir::new("crash-path");
    let state = dir.path().join("state");
    let fill_dir = dir.path().join("volume");
    std::fs::create_dir_all(&fill_dir).unwrap();
    let crashed = dir.path().join("crashed.yaml");
    std::fs::write(
        &crashed,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: crash-path }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: hog-crash-path\n      type: cpu-hog\n      selector: {{ host: localhost }}\n      parameters: {{ workers: 1, load: 10 }}\n      duration: 60s\n    - name: fill-crash-path\n      type: disk-fill\n      selector: {{ host: localhost }}\n      parameters: {{ path: {}, bytes: 1 MiB, minFreeBytes: 1 MiB, safetyFloorPercent: 1 }}\n      duration: 60s\n  report: {{ dir: {}, formats: [json] }}\n",
            fill_dir.display(),
            dir.path().join("reports").display()
        ),
    )
    .unwrap();
    let mut runner = start_run(&crashed, &state);
    // Both injected and journaled as such (each record names its process).
    wait_for(Duration::from_secs(30), "both faults injected", || {
        let injected = chaos_runner::journal::live_faults(&state)
            .map(|live| {
                live.iter()
                    .filter(|f| match &f.record {
                        Some(FaultRecord::DiskFill { pid, .. }) => *pid != 0,
                        Some(FaultRecord::CpuHog { pid, .. }) => *pid != 0,
                        _ => false,
                    })
                    .count()
            })
            .unwrap_or(0);
        injected == 2 && std::fs::read_dir(&fill_dir).unwrap().count() == 1
    });
    runner.kill().unwrap(); // SIGKILL: no handler runs
    runner.wait().unwrap();
    wait_for(
        Duration::from_secs(10),
        "the hog and the filler to end",
        || hogs("hog-crash-path").is_empty() && std::fs::read_dir(&fill_dir).unwrap().count() == 0,
    );
    // Another dead run (its runner pid is taken by no process) left a toxic on a
    // standalone proxy that does not answer: that can still be live.
    let other_path = dead_run_with_toxic(&state, "other-run", "slow-saves", "http://127.0.0.1:9");
    // A third dead run's toxic on a standalone proxy that no longer lists it: gone.
    let proxy = support::proxy_process::ProxyProcess::start(None);
    dead_run_with_toxic(&state, "third-run", "lossy-saves", &proxy.api);

    let next = dir.path().join("next.yaml");
    std::fs::write(
        &next,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: after-crash }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: hog-after-crash\n      type: cpu-hog\n      selector: {{ host: localhost }}\n      parameters: {{ workers: 1, load: 10 }}\n      duration: 1s\n  report: {{ dir: {}, formats: [json] }}\n",
            dir.path().join("reports").display()
        ),
    )
    .unwrap();
    let run_next = || {
        Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
            .arg("run")
            .arg(&next)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap()
    };
    let refused = run_next();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("fault `slow-saves` of run other-run is still live"),
        "the toxic is named as live: {stderr}"
    );
    for gone in ["hog-crash-path", "fill-crash-path"] {
        let said = format!("fault `{gone}` of run crash-path-");
        assert!(
            stderr
                .lines()
                .any(|line| line.contains(&said) && line.contains(" is gone (")),
            "{gone} is closed with a note: {stderr}"
        );
    }
    assert!(
        stderr.contains("fault `lossy-saves` of run third-run is gone (the proxy at"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("is gone (").count(), 3, "{stderr}");
    assert_eq!(stderr.matches("still live").count(), 1, "{stderr}");
    let live: Vec<String> = chaos_runner::journal::live_faults(&state)
        .unwrap()
        .into_iter()
        .map(|f| f.fault)
        .collect();
    assert_eq!(live, ["slow-saves"], "the crashed run's journal is closed");
    // With the toxic's run dealt with, the next run starts.
    std::fs::remove_file(&other_path).unwrap();
    let started = run_next();
    assert_eq!(
        started.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
}

/// Writes the journal of a dead run (its runner pid is taken by no process) whose `fault`
/// put a toxic on the proxy `saves` behind the admin API `api`; returns its path.
fn dead_run_with_toxic(state: &Path, run_id: &str, fault: &str, api: &str) -> PathBuf {
    use chaos_runner::faults::FaultRecord;
    use chaos_runner::journal::{Event, Journal};
    let mut journal = Journal::create(state, run_id).unwrap();
    for event in [
        Event::RunStarted {
            experiment: run_id.into(),
            pid: u32::MAX,
        },
        Event::Intent {
            fault: fault.into(),
            description: "toxic".into(),
            record: None,
        },
        Event::Injected {
            fault: fault.into(),
            record: FaultRecord::ProxyToxic {
                api: Some(api.into()),
                proxy: "saves".into(),
                toxic: format!("chaos-{run_id}-{fault}"),
            },
        },
    ] {
        journal.append(event).unwrap();
    }
    journal.path().to_owned()
}

/// `run --recover`: a dead run's toxic, still on a standalone proxy, is reverted (and
/// journaled) before the new run starts; the run says so and goes on.
#[test]
fn run_with_recover_reverts_a_dead_runs_fault_first_and_says_so() {
    let dir = TempDir::new("run-recover");
    let state = dir.path().join("state");
    let config = dir.path().join("proxies.json");
    let upstream = free_port();
    std::fs::write(
        &config,
        format!(
            r#"[{{"name": "saves", "listen": "127.0.0.1:{}", "upstream": "127.0.0.1:{upstream}", "enabled": true}}]"#,
            free_port()
        ),
    )
    .unwrap();
    let proxy = support::proxy_process::ProxyProcess::start(Some(&config));
    let toxic = "chaos-dead-run-slow-saves";
    let (status, body) = proxy.call(
        "POST",
        "/proxies/saves/toxics",
        Some(&format!(
            r#"{{"name": "{toxic}", "type": "latency", "attributes": {{"latency": 300}}}}"#
        )),
    );
    assert_eq!(status, 200, "{body}");
    dead_run_with_toxic(&state, "dead-run", "slow-saves", &proxy.api);
    assert_eq!(proxy.toxic_names("saves"), [toxic]);

    let next = dir.path().join("next.yaml");
    std::fs::write(
        &next,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: after-recover }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: hog-after-recover\n      type: cpu-hog\n      selector: {{ host: localhost }}\n      parameters: {{ workers: 1, load: 10 }}\n      duration: 1s\n  report: {{ dir: {}, formats: [json] }}\n",
            dir.path().join("reports").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["run", "--recover", "--state-dir"])
        .arg(&state)
        .arg(&next)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("reverted: slow-saves (run dead-run)"),
        "the recovery is reported: {stderr}"
    );
    assert!(proxy.toxic_names("saves").is_empty(), "the toxic is gone");
    assert!(
        chaos_runner::journal::live_faults(&state)
            .unwrap()
            .is_empty(),
        "and journaled as reverted"
    );

    // With `--output json`, stdout stays one JSON document: the recovery is on stderr.
    let (status, body) = proxy.call(
        "POST",
        "/proxies/saves/toxics",
        Some(
            r#"{"name": "chaos-dead-again-slow-saves", "type": "latency", "attributes": {"latency": 300}}"#,
        ),
    );
    assert_eq!(status, 200, "{body}");
    dead_run_with_toxic(&state, "dead-again", "slow-saves", &proxy.api);
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["--output", "json", "run", "--recover", "--state-dir"])
        .arg(&state)
        .arg(&next)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(doc["outcome"], "passed");
    assert!(
        stderr.contains("reverted: slow-saves (run dead-again)"),
        "{stderr}"
    );
    assert!(proxy.toxic_names("saves").is_empty());
}

/// `run --recover` never reverts the faults of a run that is still going (another
/// experiment, a GameDay sharing the state directory): it refuses to start, naming the run,
/// and the other run's fault stays until that run reverts it itself.
#[test]
fn recover_first_leaves_a_live_runs_faults_alone() {
    let dir = TempDir::new("recover-live");
    let state = dir.path().join("state");
    let first = dir.path().join("first.yaml");
    let hog = |name: &str, secs: u32| {
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: {name} }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: {name}\n      type: cpu-hog\n      selector: {{ host: localhost }}\n      parameters: {{ workers: 1, load: 10 }}\n      duration: {secs}s\n  report: {{ dir: {}, formats: [json] }}\n",
            dir.path().join("reports").display()
        )
    };
    std::fs::write(&first, hog("live-run-hog", 60)).unwrap();
    let second = dir.path().join("second.yaml");
    std::fs::write(&second, hog("second-run-hog", 1)).unwrap();
    let running = start_run(&first, &state);
    wait_for_hog("live-run-hog");
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["run", "--recover", "--state-dir"])
        .arg(&state)
        .arg(&second)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("is still running"), "{stderr}");
    assert!(
        !hogs("live-run-hog").is_empty(),
        "the live run's fault was reverted under it"
    );
    assert!(hogs("second-run-hog").is_empty(), "nothing was injected");
    // The live run still owns its fault and reverts it when stopped.
    unsafe { libc::kill(running.id() as i32, libc::SIGTERM) };
    let out = running.wait_with_output().unwrap();
    assert_exit(&out, 2);
    assert!(hogs("live-run-hog").is_empty());
}

/// A Prometheus that answers every query after `delay`: 1 for `up`, 0 for anything else.
/// Returns its URL and how many queries it has been asked.
fn slow_prometheus(delay: Duration) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let n = stream.read(&mut request).unwrap_or(0);
                let request = String::from_utf8_lossy(&request[..n]).into_owned();
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(delay);
                let value = if request.contains("query=up") {
                    "1"
                } else {
                    "0"
                };
                let body = format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[0,"{value}"]}}]}}}}"#
                );
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (url, asked)
}

/// SIGINT while the preflight checks wait on Prometheus ends the run before anything is
/// injected: the signal is not left for the first injection to find.
#[test]
fn sigint_during_the_preflight_checks_injects_nothing() {
    let (url, asked) = slow_prometheus(Duration::from_millis(1500));
    let dir = TempDir::new("preflight-sigint");
    let exp = experiment(dir.path(), &url, "hog-preflight-sigint", "5s", "500ms");
    let runner = start_run(&exp, &dir.path().join("state"));
    wait_for(Duration::from_secs(30), "the first preflight query", || {
        asked.load(std::sync::atomic::Ordering::SeqCst) > 0
    });
    signal(runner.id(), libc::SIGINT);
    let out = runner.wait_with_output().unwrap();
    assert_exit(&out, 2);
    let summary = summary_of(&out);
    assert_eq!(summary["reason"], "interrupted (SIGINT)", "{summary}");
    let report = first_report(&summary);
    let windows = report["faults"][0]["windows"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(windows, 0, "nothing was injected: {report}");
    assert!(hogs("hog-preflight-sigint").is_empty());
}
