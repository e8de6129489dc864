//! What `chaos-runner run` writes on stderr when it is not a terminal (a CI log): one
//! line per phase and notable event, each prefixed with the seconds since the run
//! started; the per-check status only with `--verbose`.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{hogs, wait_for, wait_for_hog, MetricsServer, TempDir};

/// An experiment with a two-step CPU hog named `fault`, a host steady-state check and an
/// abort condition that never breach (memory is never over 100%), checked every 250 ms.
fn quiet_experiment(dir: &Path, fault: &str) -> PathBuf {
    let path = dir.join("experiment.yaml");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: test-{fault}
spec:
  target: {{ backend: local }}
  steadyState:
    - name: memory-fits
      host: {{ metric: memoryUsedPercent, breachWhen: ">", threshold: 100 }}
  faults:
    - name: {fault}
      type: cpu-hog
      selector: {{ host: localhost }}
      parameters: {{ workers: 1, load: 10 }}
      duration: 2s
      ramp:
        steps:
          - {{ load: 5 }}
          - {{ load: 10 }}
  abortWhen:
    - name: memory-full
      host: {{ metric: memoryUsedPercent, breachWhen: ">", threshold: 100 }}
  checkInterval: 250ms
  report:
    dir: {}
    formats: [json]
"#,
            dir.join("reports").display()
        ),
    )
    .unwrap();
    path
}

/// `chaos-runner run` with text output (the default), stderr piped: not a terminal.
fn text_run(experiment: &Path, state: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chaos-runner"));
    command
        .arg("run")
        .args(extra)
        .arg(experiment)
        .arg("--state-dir")
        .arg(state)
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Whether `line` starts with the elapsed time, `  12.3s `: right-aligned seconds (at
/// least six characters wide) with one decimal.
fn has_elapsed_prefix(line: &str) -> bool {
    let Some((head, _)) = line.split_once("s ") else {
        return false;
    };
    let number = head.trim_start();
    let Some((whole, tenths)) = number.split_once('.') else {
        return false;
    };
    head.len() >= 6
        && !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && tenths.len() == 1
        && tenths.bytes().all(|b| b.is_ascii_digit())
}

fn any_line(lines: &[String], all: &[&str]) -> bool {
    lines
        .iter()
        .any(|l| all.iter().all(|part| l.contains(part)))
}

#[test]
fn run_output_in_a_log_has_a_timed_line_per_step_check_and_revert() {
    let dir = TempDir::new("out-log");
    let exp = quiet_experiment(dir.path(), "hog-out-log");
    let out = text_run(&exp, &dir.path().join("state"), &[])
        .output()
        .unwrap();
    let lines = stderr_lines(&out);
    let all = lines.join("\n");
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!lines.is_empty());
    for line in &lines {
        // Messages outside the run's story (`warning: ...`) start the line for tools.
        let message = ["warning: ", "note: ", "error: "]
            .iter()
            .any(|m| line.starts_with(m));
        assert!(
            message || has_elapsed_prefix(line),
            "no elapsed prefix: {line:?}\n{all}"
        );
        assert!(!line.contains('\x1b'), "no colour in a log: {line:?}");
    }
    assert!(
        any_line(
            &lines,
            &["[preflight] steady state `memory-fits`", "> 100", "ok"]
        ),
        "{all}"
    );
    assert!(
        any_line(&lines, &["[preflight] abort condition `memory-full`", "ok"]),
        "{all}"
    );
    assert!(
        any_line(&lines, &["[hold] `hog-out-log` step 1/2"]),
        "{all}"
    );
    assert!(
        any_line(&lines, &["[hold] `hog-out-log` step 2/2"]),
        "{all}"
    );
    assert!(
        any_line(&lines, &["[revert] `hog-out-log`", "reverted", "verified"]),
        "{all}"
    );
    assert!(
        any_line(&lines, &["[after] steady state `memory-fits`", "ok"]),
        "{all}"
    );
    // Nothing per check without --verbose: the status line's `left |` is not there.
    assert!(!all.contains("s left |"), "{all}");
    // The outcome and reports stay on stdout.
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("passed: "));
}

#[test]
fn run_output_verbose_keeps_each_status_as_a_line_in_a_log() {
    let dir = TempDir::new("out-verbose");
    let exp = quiet_experiment(dir.path(), "hog-out-verbose");
    let out = text_run(&exp, &dir.path().join("state"), &["--verbose"])
        .output()
        .unwrap();
    let lines = stderr_lines(&out);
    let all = lines.join("\n");
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        any_line(
            &lines,
            &["[hold] hog-out-verbose step", "left |", "memory-full="]
        ),
        "{all}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| !l.starts_with("warning: ") && !l.starts_with("note: "))
            .all(|l| has_elapsed_prefix(l)),
        "{all}"
    );
}

#[test]
fn run_output_json_has_no_progress_lines() {
    let dir = TempDir::new("out-json");
    let exp = quiet_experiment(dir.path(), "hog-out-json");
    let out = support::run_to_end(&exp, &dir.path().join("state"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains('['), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["outcome"], "passed");
}

#[test]
fn run_output_names_each_abort_condition_breach_with_its_count() {
    let metrics = MetricsServer::start();
    let dir = TempDir::new("out-abort");
    let exp = quiet_experiment(dir.path(), "hog-out-abort");
    let text = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("      duration: 2s", "      duration: 60s");
    let text = text.replace(
        "  checkInterval: 250ms",
        &format!(
            r#"    - name: signal-clear
      http: {{ url: "http://{}/metrics", expectStatus: 200, bodyContains: "chaos_test_signal 0" }}
      for: 2
  checkInterval: 250ms"#,
            metrics.addr
        ),
    );
    std::fs::write(&exp, text).unwrap();
    let runner = text_run(&exp, &dir.path().join("state"), &[])
        .spawn()
        .unwrap();
    wait_for_hog("hog-out-abort");
    metrics.set(1.0);
    let out = runner.wait_with_output().unwrap();
    let lines = stderr_lines(&out);
    let all = lines.join("\n");
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        any_line(
            &lines,
            &[
                "[hold] abort condition `signal-clear`",
                "breach 1 of 2 in a row"
            ]
        ),
        "{all}"
    );
    assert!(
        any_line(
            &lines,
            &[
                "[hold] abort condition `signal-clear`",
                "breach 2 of 2 in a row"
            ]
        ),
        "{all}"
    );
    assert!(
        any_line(
            &lines,
            &["[revert] `hog-out-abort`", "reverted", "verified"]
        ),
        "{all}"
    );
    wait_for(Duration::from_secs(3), "no hog left", || {
        hogs("hog-out-abort").is_empty()
    });
}
