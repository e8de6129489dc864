//! `spec.setup` through the real `chaos-runner run`: a `command` service (python3's
//! http.server) started, ready, used by an http steady-state check and gone after the
//! run; a declared port already in use refused; a built-in PostgreSQL with its database;
//! a SIGKILLed run's services left for `recover`; a SIGTERM while a service starts; a
//! service that exits while starting.

use crate::support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{free_port, start_run, wait_for, TempDir};

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Whether python3 is there; under CI=true its absence fails the test.
fn have_python() -> bool {
    if Command::new("python3").arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "python3 is not installed");
    eprintln!("skipping: python3 is not installed");
    false
}

fn experiment(dir: &Path, fault: &str, setup: &str, steady: &str, duration: &str) -> PathBuf {
    let path = dir.join("experiment.yaml");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: setup-test
spec:
  target: {{ backend: local }}
  setup:
{setup}
{steady}
  faults:
    - name: {fault}
      type: cpu-hog
      selector: {{ host: localhost }}
      parameters: {{ workers: 1, load: 5 }}
      duration: {duration}
  report:
    dir: {}
"#,
            dir.join("reports").display()
        ),
    )
    .unwrap();
    path
}

fn http_server(port: u16) -> String {
    format!(
        r#"    - name: web
      command: ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
      env: {{ PYTHONUNBUFFERED: "1" }}
      readyHttp: "http://127.0.0.1:{port}/"
      readyPort: {port}
      readyTimeout: 30s"#
    )
}

fn setup_dir(run_id: &str, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chaos-setup-{run_id}-{name}"))
}

#[test]
fn command_service_is_ready_checked_and_gone_after_the_run() {
    if !have_python() {
        return;
    }
    let dir = TempDir::new("setup-cmd");
    let port = free_port();
    let exp = experiment(
        dir.path(),
        "hog-setup-cmd",
        &http_server(port),
        &format!(
            r#"  steadyState:
    - name: web-up
      http: {{ url: "http://127.0.0.1:{port}/", expectStatus: 200 }}"#
        ),
        "2s",
    );
    let state = dir.path().join("state");
    let runner = start_run(&exp, &state);
    wait_for(Duration::from_secs(30), "the service to listen", || {
        port_open(port)
    });
    let out = runner.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(summary["reports"][0].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let checks: Vec<&serde_json::Value> = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["check"] == "web-up")
        .collect();
    assert!(
        checks.len() >= 2 && checks.iter().all(|o| o["verdict"] == "ok"),
        "{checks:?}"
    );
    assert!(!port_open(port), "the service still listens after the run");
    let run_id = summary["run_id"].as_str().unwrap();
    assert!(!setup_dir(run_id, "web").exists());
    assert!(chaos_runner::journal::live_faults(&state)
        .unwrap()
        .is_empty());
}

#[test]
fn a_declared_port_in_use_is_refused_naming_the_field() {
    let dir = TempDir::new("setup-busy");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let exp = experiment(dir.path(), "hog-setup-busy", &http_server(port), "", "2s");
    let out = start_run(&exp, &dir.path().join("state"))
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("spec.setup[0].readyPort") && stderr.contains("already in use"),
        "{stderr}"
    );
    assert!(support::hogs("hog-setup-busy").is_empty());
}

#[test]
fn a_sigkilled_runs_services_are_stopped_by_recover() {
    if !have_python() {
        return;
    }
    let dir = TempDir::new("setup-kill");
    let port = free_port();
    let exp = experiment(dir.path(), "hog-setup-kill", &http_server(port), "", "60s");
    let state = dir.path().join("state");
    let mut runner = start_run(&exp, &state);
    wait_for(Duration::from_secs(30), "the hog to start", || {
        !support::hogs("hog-setup-kill").is_empty()
    });
    runner.kill().unwrap();
    runner.wait().unwrap();
    let live = chaos_runner::journal::live_faults(&state).unwrap();
    assert!(live.iter().any(|f| f.fault == "setup/web"), "{live:?}");
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
    wait_for(Duration::from_secs(5), "the service to stop", || {
        !port_open(port)
    });
    let run_id = &live[0].run_id;
    assert!(!setup_dir(run_id, "web").exists());
    assert!(chaos_runner::journal::live_faults(&state)
        .unwrap()
        .is_empty());
}

/// A service that starts but never becomes ready (its port never opens) within a long
/// `readyTimeout`.
fn never_ready_service(port: u16) -> String {
    format!(
        r#"    - name: slow
      command: ["python3", "-c", "import time; open('started', 'w').close(); time.sleep(600)"]
      readyPort: {port}
      readyTimeout: 10m"#
    )
}

#[test]
fn sigterm_while_a_service_starts_ends_the_run_at_once_and_stops_it() {
    if !have_python() {
        return;
    }
    let dir = TempDir::new("setup-sigterm");
    let exp = experiment(
        dir.path(),
        "hog-setup-sigterm",
        &never_ready_service(free_port()),
        "",
        "2s",
    );
    let state = dir.path().join("state");
    let runner = start_run(&exp, &state);
    // The journal names the service's directory before it starts; the service marks
    // that it runs.
    let mut started = None;
    wait_for(Duration::from_secs(30), "the service to start", || {
        let live = chaos_runner::journal::live_faults(&state).unwrap_or_default();
        started = live
            .iter()
            .find(|f| f.fault == "setup/slow")
            .map(|f| setup_dir(&f.run_id, "slow"));
        started.as_ref().is_some_and(|d| d.join("started").exists())
    });
    let service_dir = started.unwrap();
    let signalled = std::time::Instant::now();
    // SAFETY: kill with a pid we own and a valid signal.
    assert_eq!(unsafe { libc::kill(runner.id() as i32, libc::SIGTERM) }, 0);
    let out = runner.wait_with_output().unwrap();
    // Stopping the service (SIGTERM, SIGKILL after 3 s) is the only wait left.
    let summary = ended_before_any_fault(
        &out,
        signalled.elapsed(),
        Duration::from_secs(4),
        "hog-setup-sigterm",
        &state,
    );
    assert_eq!(summary["reason"], "terminated (SIGTERM)", "{summary}");
    assert!(!service_dir.exists(), "{} is left", service_dir.display());
}

/// Checks a run that ended during setup: exit 2 within `limit`, no hog named `hog`
/// started, nothing left live in the journal under `state`; returns its JSON summary.
fn ended_before_any_fault(
    out: &std::process::Output,
    took: Duration,
    limit: Duration,
    hog: &str,
    state: &Path,
) -> serde_json::Value {
    support::assert_exit(out, 2);
    assert!(took < limit, "the run took {took:?} to end");
    assert!(support::hogs(hog).is_empty(), "a fault was injected");
    assert!(chaos_runner::journal::live_faults(state)
        .unwrap()
        .is_empty());
    support::summary_of(out)
}

#[test]
fn a_service_that_exits_while_starting_fails_the_run_at_once_with_its_output() {
    if !have_python() {
        return;
    }
    let dir = TempDir::new("setup-exits");
    let port = free_port();
    let service = format!(
        r#"    - name: broken
      command: ["python3", "-c", "import sys; print('boot: no such table: players', file=sys.stderr); sys.exit(3)"]
      readyPort: {port}
      readyTimeout: 10m"#
    );
    let exp = experiment(dir.path(), "hog-setup-exits", &service, "", "2s");
    let state = dir.path().join("state");
    let started = std::time::Instant::now();
    let out = start_run(&exp, &state).wait_with_output().unwrap();
    // Not the 10-minute readyTimeout: the exit is seen as it happens.
    let summary = ended_before_any_fault(
        &out,
        started.elapsed(),
        Duration::from_secs(30),
        "hog-setup-exits",
        &state,
    );
    assert_eq!(summary["outcome"], "aborted", "{summary}");
    let reason = summary["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("exited before it was ready (exit status: 3)")
            && reason.ends_with("; its output ends: boot: no such table: players"),
        "{reason}"
    );
}

#[test]
fn postgres_service_has_its_database_during_the_run_only() {
    if chaos_runner::setup::postgres::bin_dir(None).is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL is not installed"
        );
        eprintln!("skipping: PostgreSQL is not installed");
        return;
    }
    let dir = TempDir::new("setup-pg");
    let port = free_port();
    let exp = experiment(
        dir.path(),
        "hog-setup-pg",
        &format!(
            r#"    - name: db
      postgres: {{ port: {port}, database: game }}"#
        ),
        "",
        // Long enough for the query below to land during the run on a busy machine.
        "10s",
    );
    let runner = start_run(&exp, &dir.path().join("state"));
    wait_for(Duration::from_secs(60), "the hog (setup done)", || {
        !support::hogs("hog-setup-pg").is_empty()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let name: String = rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=game"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        let conn = tokio::spawn(connection);
        let row = client
            .query_one("SELECT current_database()", &[])
            .await
            .unwrap();
        drop(client);
        let _ = conn.await;
        row.get(0)
    });
    assert_eq!(name, "game");
    let out = runner.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!port_open(port), "postgres still listens after the run");
}

/// `chaos-runner run` with text output, stderr piped (not a terminal): its stderr lines.
fn text_run_lines(exp: &Path, state: &Path) -> (Option<i32>, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .arg("run")
        .arg(exp)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect();
    (out.status.code(), lines)
}

#[test]
fn setup_service_lines_say_starting_what_it_waits_for_ready_and_stopped() {
    if !have_python() {
        return;
    }
    let dir = TempDir::new("setup-lines");
    let port = free_port();
    let exp = experiment(dir.path(), "hog-setup-lines", &http_server(port), "", "1s");
    let (code, lines) = text_run_lines(&exp, &dir.path().join("state"));
    let all = lines.join("\n");
    assert_eq!(code, Some(0), "{all}");
    let has = |parts: &[&str]| lines.iter().any(|l| parts.iter().all(|p| l.contains(p)));
    assert!(
        has(&[
            "[setup] starting `web`: python3 -m http.server",
            &format!("port {port}"),
            "output.log",
        ]),
        "{all}"
    );
    assert!(has(&["[setup] `web` ready after "]), "{all}");
    assert!(has(&["[setup] stopped `web`"]), "{all}");
}

#[test]
fn a_slow_setup_service_says_it_is_still_starting_with_its_last_output_line() {
    if !have_python() {
        return;
    }
    let dir = TempDir::new("setup-slow");
    let port = free_port();
    let service = format!(
        r#"    - name: slow
      command: ["sh", "-c", "echo '   Compiling tokio v1.0.0'; echo; sleep 13; exec python3 -m http.server {port} --bind 127.0.0.1"]
      readyPort: {port}
      readyTimeout: 60s"#
    );
    let exp = experiment(dir.path(), "hog-setup-slow", &service, "", "1s");
    let (code, lines) = text_run_lines(&exp, &dir.path().join("state"));
    let all = lines.join("\n");
    assert_eq!(code, Some(0), "{all}");
    let still = lines
        .iter()
        .position(|l| l.contains("[setup] `slow` still starting after 10s"))
        .unwrap_or_else(|| panic!("no waiting line: {all}"));
    assert!(
        lines[still].contains("its output ends: Compiling tokio v1.0.0"),
        "{all}"
    );
    let ready = lines
        .iter()
        .position(|l| l.contains("[setup] `slow` ready after "))
        .unwrap_or_else(|| panic!("no ready line: {all}"));
    assert!(still < ready, "{all}");
}
