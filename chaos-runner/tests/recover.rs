//! The CPU hog fault and crash recovery with real processes: inject, revert and verify;
//! the hog dies with its parent; `recover` reverts what a dead run left, from the journal.

use chaos_runner::faults::local::cpu_hog::CpuHog;
use chaos_runner::faults::{Fault, FaultRecord};
use chaos_runner::journal::{self, Event, Journal};
use chaos_runner::spec::CpuHogParams;
use chaos_runner::sys::proc;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chaos-runner"))
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("chaos-{tag}-{}-{}", std::process::id(), rand_tag()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_tag() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

fn gone_within(limit: Duration, pid: u32, ticks: u64) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !proc::is_running(pid, ticks) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn hog(name: &str, run: &str, secs: u64) -> CpuHog {
    CpuHog::new(
        name,
        run,
        CpuHogParams {
            workers: 1,
            load: 5,
            ..Default::default()
        },
        Duration::from_secs(secs),
        exe(),
    )
}

#[test]
fn cpu_hog_injects_reverts_and_verifies() {
    let mut fault = hog("cpu", "run-inject", 60);
    assert!(fault.describe().contains("1 worker thread(s) at 5%"));
    let FaultRecord::CpuHog {
        pid, start_ticks, ..
    } = fault.inject().unwrap()
    else {
        panic!("not a cpu hog record")
    };
    assert!(proc::is_running(pid, start_ticks));
    assert!(
        fault.verify_reverted().is_err(),
        "live hog must fail verification"
    );
    fault.revert().unwrap();
    assert!(!proc::is_running(pid, start_ticks));
    fault.verify_reverted().unwrap();
}

#[test]
fn cpu_hog_stops_by_itself_when_its_time_is_up() {
    let mut fault = hog("short", "run-expiry", 1);
    let FaultRecord::CpuHog {
        pid, start_ticks, ..
    } = fault.inject().unwrap()
    else {
        panic!("not a cpu hog record")
    };
    // Reap it as the runner would; the point is that it ended on its own.
    let start = Instant::now();
    // It ends a second in; the bound only tells "ended" from "never" on a busy machine.
    while proc::is_running(pid, start_ticks) && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!proc::is_running(pid, start_ticks), "hog outlived its 1 s");
    fault.revert().unwrap();
}

#[test]
fn hog_dies_with_its_parent() {
    // A real run (host signals only, no Prometheus) whose runner is SIGKILLed mid-hold: no
    // handler runs, and the kernel's parent-death signal must take the hog down with it.
    let dir = temp_dir("orphan");
    let exp = dir.join("orphan.yaml");
    std::fs::write(
        &exp,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: orphan }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: orphan-cpu\n      type: cpu-hog\n      selector: {{ host: localhost }}\n      parameters: {{ workers: 1, load: 5 }}\n      duration: 60s\n  abortWhen:\n    - name: never\n      host: {{ metric: load1, breachWhen: \">\", threshold: 100000 }}\n  report: {{ dir: {} }}\n",
            dir.join("reports").display()
        ),
    )
    .unwrap();
    let mut runner = Command::new(exe())
        .arg("run")
        .arg(&exp)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let (pid, ticks) = loop {
        let found = proc::pids().into_iter().find(|pid| {
            proc::cmdline(*pid).is_some_and(|a| {
                a.windows(2)
                    .any(|w| w[0] == "--fault" && w[1] == "orphan-cpu")
            })
        });
        if let Some((pid, (_, ticks))) = found.and_then(|pid| proc::stat(pid).map(|s| (pid, s))) {
            break (pid, ticks);
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the hog never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    runner.kill().unwrap(); // SIGKILL
    runner.wait().unwrap();
    assert!(
        gone_within(Duration::from_secs(10), pid, ticks),
        "hog {pid} outlived its runner"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn recover_reverts_what_a_dead_run_left_and_journals_it() {
    let state = temp_dir("recover");
    // A run that journaled its intent and injection, then "died" (we never revert it).
    let mut fault = hog("cpu", "run-crashed", 60);
    let mut journal = Journal::create(&state, "run-crashed").unwrap();
    journal
        .append(Event::RunStarted {
            experiment: "x".into(),
            pid: std::process::id(),
        })
        .unwrap();
    journal
        .append(Event::Intent {
            fault: "cpu".into(),
            description: fault.describe(),
            record: None,
        })
        .unwrap();
    let record = fault.inject().unwrap();
    let FaultRecord::CpuHog {
        pid, start_ticks, ..
    } = record.clone()
    else {
        panic!("not a cpu hog record")
    };
    journal
        .append(Event::Injected {
            fault: "cpu".into(),
            record,
        })
        .unwrap();
    // A second run died between intent and injection record: found by run id.
    let mut unrecorded = hog("cpu2", "run-torn", 60);
    let mut torn = Journal::create(&state, "run-torn").unwrap();
    torn.append(Event::Intent {
        fault: "cpu2".into(),
        description: unrecorded.describe(),
        record: None,
    })
    .unwrap();
    let FaultRecord::CpuHog {
        pid: pid2,
        start_ticks: ticks2,
        ..
    } = unrecorded.inject().unwrap()
    else {
        panic!("not a cpu hog record")
    };
    assert_eq!(journal::live_faults(&state).unwrap().len(), 2);

    let out = Command::new(exe())
        .args(["--output", "json", "recover", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["reverted_all"], true);
    assert_eq!(doc["faults"].as_array().unwrap().len(), 2);
    // The hogs are our children here: reap them so they do not linger as zombies.
    fault.revert().unwrap();
    unrecorded.revert().unwrap();
    assert!(!proc::is_running(pid, start_ticks));
    assert!(!proc::is_running(pid2, ticks2));
    assert!(journal::live_faults(&state).unwrap().is_empty());
    let again = Command::new(exe())
        .args(["recover", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to recover"));
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn torn_last_journal_line_is_skipped() {
    let state = temp_dir("torn");
    let mut journal = Journal::create(&state, "run-1").unwrap();
    journal.append(Event::RunEnded { exit_code: 0 }).unwrap();
    let path = journal.path().to_owned();
    drop(journal);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"at_unix_ms\": 12, \"event\": {\"type\": \"inte");
    std::fs::write(&path, text).unwrap();
    assert_eq!(journal::read(&path).unwrap().len(), 1);
    std::fs::remove_dir_all(&state).unwrap();
}
