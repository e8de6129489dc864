//! Process faults against real processes: kill, pause and restart; the supervisor's
//! restart and measured outage; refusals (pid 1, the runner and its ancestors, kernel
//! threads, too many matches, an unrevertable kill without opt-in); the pause watchdog
//! (expiry, runner death) and `recover` resuming what a SIGKILLed run paused.

use crate::support;

use chaos_runner::faults::local::process::{is_stopped, resolve, Action, ProcessFault};
use chaos_runner::faults::{supervised_command, supervised_launch, Fault, FaultRecord};
use chaos_runner::spec::{
    KillSignal, ProcessKillParams, ProcessRestartParams, ProcessSelector, RestartPolicy, Selector,
};
use chaos_runner::sys::proc;
use chaos_runner::sys::supervisor::{SupervisedCommand, Supervisor};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port, wait_for, TempDir};

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chaos-runner"))
}

/// `python3` serves HTTP in these tests; under CI=true a missing one fails the test.
fn python3() -> Option<&'static str> {
    if Command::new("python3").arg("--version").output().is_ok() {
        return Some("python3");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "python3 is not installed (scripts/test installs it)"
    );
    eprintln!("skipping: python3 is not installed (run scripts/test to install it)");
    None
}

/// `python -m http.server <port> --bind 127.0.0.1`, serving its working directory.
fn http_server_here_argv(python: &str, port: u16) -> Vec<String> {
    let port = port.to_string();
    [python, "-m", "http.server", &port, "--bind", "127.0.0.1"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn http_server_argv(python: &str, port: u16) -> Vec<String> {
    let mut argv = http_server_here_argv(python, port);
    argv.extend(["--directory".to_owned(), "/tmp".to_owned()]);
    argv
}

fn answers(port: u16) -> bool {
    support::http_get(&format!("http://127.0.0.1:{port}/")).is_some()
}

/// A `sleep` child the test owns, killed and reaped on drop.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(
            Command::new("sleep")
                .arg("300")
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pid_file(dir: &Path, pid: u32) -> ProcessSelector {
    let file = dir.join(format!("target-{pid}.pid"));
    std::fs::write(&file, format!("{pid}\n")).unwrap();
    ProcessSelector {
        pid_file: Some(file.display().to_string()),
        ..Default::default()
    }
}

fn fault(action: Action, selector: ProcessSelector, sup: Option<Arc<Supervisor>>) -> ProcessFault {
    ProcessFault::new(
        "proc",
        "run-proc-test",
        action,
        selector,
        sup,
        Duration::from_secs(60),
        exe(),
    )
}

fn kill(allow: bool, signal: KillSignal) -> Action {
    Action::Kill(ProcessKillParams {
        signal,
        grace: Duration::from_secs(2),
        allow_unrevertable: allow,
    })
}

#[test]
fn killing_an_unsupervised_process_needs_opt_in_and_is_reported_not_revertible() {
    let dir = TempDir::new("kill-optin");
    let mut target = Sleeper::start();
    let pid = target.pid();
    let mut refused = fault(
        kill(false, KillSignal::Kill),
        pid_file(dir.path(), pid),
        None,
    );
    let err = refused.inject().unwrap_err().to_string();
    assert!(err.contains("allowUnrevertable"), "{err}");
    assert!(
        proc::stat(pid).is_some_and(|(s, _)| s != 'Z'),
        "target was touched"
    );

    let mut allowed = fault(
        kill(true, KillSignal::Term),
        pid_file(dir.path(), pid),
        None,
    );
    let record = allowed.inject().unwrap();
    assert_eq!(
        record,
        FaultRecord::ProcessKilled {
            pids: vec![pid],
            revertible: false
        }
    );
    assert!(!allowed.revertible());
    let status = target.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    allowed.revert().unwrap();
    allowed.verify_reverted().unwrap();
}

#[test]
fn refuses_init_the_runner_its_ancestors_and_kernel_threads() {
    let dir = TempDir::new("refuse");
    let me = std::process::id();
    let parent = proc::ppid(me).unwrap();
    for (pid, expect) in [(1, "init"), (me, "runner itself"), (parent, "ancestors")] {
        let mut f = fault(Action::Pause, pid_file(dir.path(), pid), None);
        let err = f.inject().unwrap_err().to_string();
        assert!(err.contains(expect), "pid {pid}: {err}");
        assert!(!is_stopped(pid));
    }
    // Kernel threads (visible unless the test runs in its own pid namespace).
    let kthreads: Vec<u32> = proc::pids()
        .into_iter()
        .filter(|p| proc::is_kernel_thread(*p))
        .take(3)
        .collect();
    for k in kthreads {
        let mut f = fault(Action::Pause, pid_file(dir.path(), k), None);
        let err = f.inject().unwrap_err().to_string();
        assert!(err.contains("kernel thread"), "pid {k}: {err}");
    }
}

/// Starts `sleep 300` from a binary this test just wrote. Another test thread forking at
/// that moment briefly holds the file open for writing (until its child execs), and
/// exec then fails with ETXTBSY: retry for a while instead of failing on the race.
fn spawn_fresh_copy(bin: &Path) -> Child {
    let start = Instant::now();
    loop {
        match Command::new(bin).arg("300").spawn() {
            Err(e)
                if e.raw_os_error() == Some(libc::ETXTBSY)
                    && start.elapsed() < Duration::from_secs(5) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
}

#[test]
fn a_name_matching_more_than_max_targets_is_refused_unless_raised() {
    let dir = TempDir::new("names");
    // A copy of `sleep` under a name nothing else on the machine has.
    let name = format!("chsl{}", std::process::id());
    let bin = dir.path().join(&name);
    std::fs::copy("/bin/sleep", &bin).unwrap();
    let mut a = spawn_fresh_copy(&bin);
    let mut b = spawn_fresh_copy(&bin);
    let selector = |max: Option<u32>| ProcessSelector {
        name: Some(name.clone()),
        max_targets: max,
        ..Default::default()
    };
    wait_for(Duration::from_secs(5), "both copies to exec", || {
        resolve(&selector(Some(2))).is_ok_and(|t| t.len() == 2)
    });
    let err = resolve(&selector(None)).unwrap_err().to_string();
    assert!(err.contains("matches 2 processes"), "{err}");
    let mut pause = fault(Action::Pause, selector(Some(2)), None);
    let FaultRecord::ProcessPaused { targets } = pause.inject().unwrap() else {
        panic!("not a pause record");
    };
    assert_eq!(targets.len(), 2);
    assert!(is_stopped(a.id()) && is_stopped(b.id()));
    pause.revert().unwrap();
    pause.verify_reverted().unwrap();
    assert!(!is_stopped(a.id()) && !is_stopped(b.id()));
    for c in [&mut a, &mut b] {
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

#[test]
fn pause_by_port_stalls_the_server_and_revert_resumes_it() {
    let Some(python) = python3() else { return };
    let port = free_port();
    let mut server = Command::new(python)
        .args(&http_server_argv(python, port)[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), "the server", || answers(port));
    let selector = ProcessSelector {
        port: Some(port),
        ..Default::default()
    };
    assert_eq!(resolve(&selector).unwrap()[0].0, server.id());
    let mut pause = fault(Action::Pause, selector, None);
    pause.inject().unwrap();
    assert!(is_stopped(server.id()));
    // A stopped server accepts (the kernel does) but never answers.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    std::io::Write::write_all(&mut stream, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = [0u8; 16];
    assert!(
        std::io::Read::read(&mut stream, &mut buf).is_err(),
        "a paused server answered"
    );
    pause.revert().unwrap();
    pause.verify_reverted().unwrap();
    assert!(!is_stopped(server.id()));
    assert!(answers(port));
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn the_pause_watchdog_resumes_the_target_when_the_time_is_up() {
    let dir = TempDir::new("expiry");
    let target = Sleeper::start();
    let mut pause = ProcessFault::new(
        "short-pause",
        "run-expiry",
        Action::Pause,
        pid_file(dir.path(), target.pid()),
        None,
        Duration::from_secs(1),
        exe(),
    );
    let start = Instant::now();
    pause.inject().unwrap();
    assert!(is_stopped(target.pid()));
    wait_for(Duration::from_secs(5), "the watchdog to resume it", || {
        !is_stopped(target.pid())
    });
    assert!(start.elapsed() >= Duration::from_millis(900));
    pause.revert().unwrap();
    pause.verify_reverted().unwrap();
}

fn supervise(python: &str, port: u16, restart: RestartPolicy) -> Arc<Supervisor> {
    Arc::new(
        Supervisor::start(SupervisedCommand {
            name: "web".into(),
            argv: http_server_argv(python, port),
            restart,
            ready_port: Some(port),
            ready_timeout: Duration::from_secs(15),
        })
        .unwrap(),
    )
}

fn command_selector(python: &str, port: u16) -> ProcessSelector {
    ProcessSelector {
        command: Some(http_server_argv(python, port)),
        ready_port: Some(port),
        ..Default::default()
    }
}

fn outage(f: &ProcessFault) -> Option<u64> {
    f.measurements()
        .iter()
        .find(|(k, _)| k == "outage_ms")
        .map(|(_, v)| v.parse().unwrap())
}

#[test]
fn a_supervised_kill_is_restarted_and_its_outage_measured() {
    let Some(python) = python3() else { return };
    let port = free_port();
    let sup = supervise(python, port, RestartPolicy::Always);
    let (old, _) = sup.current().unwrap();
    assert!(answers(port));
    let mut f = fault(
        kill(false, KillSignal::Kill),
        command_selector(python, port),
        Some(sup.clone()),
    );
    let before = Instant::now();
    f.inject().unwrap();
    let took = before.elapsed();
    let (new, _) = sup.current().unwrap();
    assert_ne!(old, new, "the same process is still there");
    assert!(proc::stat(old).is_none_or(|(s, _)| s == 'Z'));
    assert!(answers(port), "restarted server does not answer");
    let out = outage(&f).expect("outage measured");
    assert!(
        out > 0 && u128::from(out) <= took.as_millis(),
        "{out} ms vs {took:?}"
    );
    assert!(f.revertible());
    f.revert().unwrap();
    f.verify_reverted().unwrap();
    assert_eq!(sup.starts(), 2);
    sup.stop();
    assert!(!answers(port));
}

#[test]
fn restart_never_leaves_it_down_until_revert() {
    let Some(python) = python3() else { return };
    let port = free_port();
    let sup = supervise(python, port, RestartPolicy::Never);
    let mut f = fault(
        kill(false, KillSignal::Term),
        command_selector(python, port),
        Some(sup.clone()),
    );
    f.inject().unwrap();
    assert!(sup.current().is_none());
    assert!(!answers(port), "killed server still answers");
    assert!(f.verify_reverted().is_err());
    f.revert().unwrap();
    f.verify_reverted().unwrap();
    assert!(answers(port));
    assert!(outage(&f).is_some());
}

#[test]
fn process_restart_kills_and_starts_it_again() {
    let Some(python) = python3() else { return };
    let port = free_port();
    let sup = supervise(python, port, RestartPolicy::Never);
    let (old, _) = sup.current().unwrap();
    let mut f = fault(
        Action::Restart(ProcessRestartParams {
            signal: KillSignal::Term,
            grace: Duration::from_secs(3),
        }),
        command_selector(python, port),
        Some(sup.clone()),
    );
    f.inject().unwrap();
    let (new, _) = sup.current().unwrap();
    assert_ne!(old, new);
    assert!(answers(port));
    assert!(outage(&f).is_some());
    f.revert().unwrap();
    f.verify_reverted().unwrap();
    // Without a supervisor, restart is refused.
    let mut unsupervised = fault(
        Action::Restart(ProcessRestartParams {
            signal: KillSignal::Term,
            grace: Duration::from_secs(1),
        }),
        ProcessSelector {
            port: Some(port),
            ..Default::default()
        },
        None,
    );
    assert!(unsupervised.inject().is_err());
    assert_eq!(sup.current().unwrap().0, new);
}

fn pause_experiment(dir: &Path, pid_file: &Path, fault: &str) -> PathBuf {
    let path = dir.join("pause.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: pause-crash }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: {fault}\n      type: process-pause\n      selector: {{ process: {{ pidFile: {} }} }}\n      duration: 60s\n  abortWhen:\n    - name: never\n      host: {{ metric: load1, breachWhen: \">\", threshold: 100000 }}\n  report: {{ dir: {} }}\n",
            pid_file.display(),
            dir.join("reports").display()
        ),
    )
    .unwrap();
    path
}

/// Starts a run of `pause_experiment` (fault `fault`) on `target`, its state in
/// `dir/state`, and waits until the target is paused.
fn start_pausing_run(dir: &TempDir, target: &Sleeper, fault: &str) -> Child {
    let selector = pid_file(dir.path(), target.pid());
    let exp = pause_experiment(
        dir.path(),
        Path::new(selector.pid_file.as_deref().unwrap()),
        fault,
    );
    let runner = support::start_run(&exp, &dir.path().join("state"));
    wait_for(Duration::from_secs(15), "the pause", || {
        is_stopped(target.pid())
    });
    runner
}

fn watchdog_of(fault: &str) -> Option<(u32, u64)> {
    proc::pids().into_iter().find_map(|pid| {
        let args = proc::cmdline(pid)?;
        (args.get(2).is_some_and(|a| a == "resume")
            && proc::flag_value(&args, "--fault") == Some(fault))
        .then(|| proc::stat(pid).map(|(_, t)| (pid, t)))
        .flatten()
    })
}

#[test]
fn a_sigkilled_runner_leaves_no_paused_process_behind() {
    let dir = TempDir::new("pause-runner-dies");
    let target = Sleeper::start();
    let mut runner = start_pausing_run(&dir, &target, "pause-dies");
    runner.kill().unwrap(); // SIGKILL: no handler runs
    runner.wait().unwrap();
    // The watchdog's parent-death signal resumes the target at once.
    wait_for(Duration::from_secs(3), "the watchdog to resume it", || {
        !is_stopped(target.pid())
    });
    wait_for(Duration::from_secs(3), "the watchdog to exit", || {
        watchdog_of("pause-dies").is_none()
    });
}

#[test]
fn recover_resumes_what_a_dead_run_paused_when_its_watchdog_died_too() {
    let dir = TempDir::new("pause-recover");
    let target = Sleeper::start();
    let mut runner = start_pausing_run(&dir, &target, "pause-recover");
    let state = dir.path().join("state");
    // The intent, journaled before SIGSTOP, already names the target: a runner that
    // dies before its `injected` record still leaves `recover` what to resume.
    let journal = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    let intent: serde_json::Value = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"]["type"] == "intent")
        .expect("an intent in the journal");
    assert!(
        intent
            .to_string()
            .contains(&format!("\"pid\":{}", target.pid())),
        "intent without the target pid: {intent}"
    );
    // Both the watchdog and the runner die without running any handler.
    let (watchdog, _) = watchdog_of("pause-recover").unwrap();
    proc::signal(watchdog, libc::SIGKILL);
    wait_for(Duration::from_secs(3), "the watchdog to die", || {
        watchdog_of("pause-recover").is_none()
    });
    runner.kill().unwrap();
    runner.wait().unwrap();
    assert!(
        is_stopped(target.pid()),
        "nothing should have resumed it yet"
    );
    let out = Command::new(exe())
        .args(["--output", "json", "recover", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    support::assert_exit(&out, 0);
    assert!(!is_stopped(target.pid()));
}

#[test]
fn a_run_with_a_supervised_command_kills_restarts_and_reports_the_outage() {
    let Some(python) = python3() else { return };
    let dir = TempDir::new("run-kill");
    let port = free_port();
    let out = run_experiment(
        &dir,
        &format!(
        "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: kill-run }}\nspec:\n  target: {{ backend: local }}\n  steadyState:\n    - name: up\n      http: {{ url: \"http://127.0.0.1:{port}/\", timeout: 1s }}\n  faults:\n    - name: web-kill\n      type: process-kill\n      selector:\n        process:\n          command: [{python}, -m, http.server, \"{port}\", --bind, 127.0.0.1, --directory, /tmp]\n          readyPort: {port}\n      duration: 2s\n  abortWhen:\n    - name: never\n      host: {{ metric: load1, breachWhen: \">\", threshold: 100000 }}\n  checkInterval: 500ms\n  report: {{ dir: {}, formats: [json] }}\n",
        dir.path().join("reports").display()
    ),
    );
    support::assert_exit(&out, 0);
    let summary = support::summary_of(&out);
    let report = support::first_report(&summary);
    let fault = &report["faults"][0];
    assert_eq!(fault["revertible"], true);
    let outage = fault["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "outage_ms")
        .expect("outage reported");
    assert!(outage["value"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    // The run stopped its supervised command at the end.
    assert!(!answers(port));
}

/// Writes `yaml` as `kill.yaml` in `dir` and runs it (state in `dir/state`) to its end.
fn run_experiment(dir: &TempDir, yaml: &str) -> std::process::Output {
    let exp = dir.path().join("kill.yaml");
    std::fs::write(&exp, yaml).unwrap();
    support::run_to_end(&exp, &dir.path().join("state"))
}

/// A directory `www` under `dir` holding `ready.txt`: served only by an HTTP server whose
/// working directory is `www`.
fn www(dir: &Path) -> PathBuf {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("ready.txt"), "cwd-ok").unwrap();
    www
}

#[test]
fn a_supervised_command_gets_its_env_cwd_and_ready_http() {
    let Some(python) = python3() else { return };
    let dir = TempDir::new("launch");
    let www = www(dir.path());
    let port = free_port();
    let selector = Selector {
        process: Some(ProcessSelector {
            command: Some(http_server_here_argv(python, port)),
            env: [("CHAOS_TEST_MARK".to_owned(), "launch-42".to_owned())].into(),
            cwd: Some("www".into()),
            ready_http: Some(format!("http://127.0.0.1:{port}/ready.txt")),
            ready_timeout: Some(Duration::from_secs(15)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let command = supervised_command("web", &selector).unwrap();
    let (program, launch) = supervised_launch(&selector, dir.path());
    assert_eq!(program, None, "`python3` has no `/`: found on PATH");
    let sup = Supervisor::start_with(command, launch).unwrap();
    let (pid, _) = sup.current().unwrap();
    // Ready means the URL answers: the server serves `www`, its working directory.
    assert_eq!(
        support::http_get(&format!("http://127.0.0.1:{port}/ready.txt")).as_deref(),
        Some("cwd-ok")
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        www.canonicalize().unwrap()
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(environ
        .split(|b| *b == 0)
        .any(|kv| kv == b"CHAOS_TEST_MARK=launch-42"));
    // The runner's own environment is inherited too (PATH found python3).
    assert!(environ
        .split(|b| *b == 0)
        .any(|kv| kv.starts_with(b"PATH=")));
    sup.stop();
    assert!(!answers(port));
}

#[test]
fn a_run_launches_its_supervised_command_with_env_and_cwd() {
    let Some(python) = python3() else { return };
    let dir = TempDir::new("run-launch");
    let www = www(dir.path());
    let port = free_port();
    let out = run_experiment(
        &dir,
        &format!(
        "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: kill-launch }}\nspec:\n  target: {{ backend: local }}\n  steadyState:\n    - name: serves-its-cwd\n      http: {{ url: \"http://127.0.0.1:{port}/ready.txt\", bodyContains: cwd-ok, timeout: 1s }}\n  faults:\n    - name: web-kill\n      type: process-kill\n      selector:\n        process:\n          command: [{python}, -m, http.server, \"{port}\", --bind, 127.0.0.1]\n          cwd: {}\n          env: {{ CHAOS_TEST_MARK: run-7 }}\n          readyHttp: http://127.0.0.1:{port}/ready.txt\n      duration: 1s\n  abortWhen:\n    - name: never\n      host: {{ metric: load1, breachWhen: \">\", threshold: 100000 }}\n  checkInterval: 500ms\n  report: {{ dir: {}, formats: [json] }}\n",
        www.display(),
        dir.path().join("reports").display()
    ),
    );
    // The steady state (before and after the kill) reads `ready.txt`, which only a server
    // started in `www` has.
    support::assert_exit(&out, 0);
    let summary = support::summary_of(&out);
    let report = support::first_report(&summary);
    assert!(report["faults"][0]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "outage_ms"));
    assert!(!answers(port));
}

#[test]
fn sigint_while_a_supervised_command_starts_ends_the_run_at_once() {
    // A first start may build the program (`readyTimeout` up to 30m): Ctrl-C then must
    // not wait for it.
    let Some(python) = python3() else { return };
    let dir = TempDir::new("run-start-sigint");
    let marker = dir.path().join("started");
    let exp = dir.path().join("kill.yaml");
    std::fs::write(
        &exp,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: kill-start-sigint }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: slow-kill\n      type: process-kill\n      selector:\n        process:\n          command: [{python}, -c, \"import sys, time; open(sys.argv[1], 'w').close(); time.sleep(600)\", {}]\n          readyPort: {}\n          readyTimeout: 30m\n      duration: 1s\n  report: {{ dir: {}, formats: [json] }}\n",
            marker.display(),
            free_port(),
            dir.path().join("reports").display()
        ),
    )
    .unwrap();
    let runner = support::start_run(&exp, &dir.path().join("state"));
    wait_for(Duration::from_secs(30), "the command to start", || {
        marker.exists()
    });
    let mark = marker.display().to_string();
    let command: Vec<u32> = proc::pids()
        .into_iter()
        .filter(|pid| proc::cmdline(*pid).is_some_and(|argv| argv.contains(&mark)))
        .collect();
    assert_eq!(command.len(), 1, "{command:?}");
    let signalled = Instant::now();
    proc::signal(runner.id(), libc::SIGINT);
    let out = runner.wait_with_output().unwrap();
    let took = signalled.elapsed();
    support::assert_exit(&out, 2);
    // Stopping the command (SIGTERM, SIGKILL after 3 s) is the only wait left.
    assert!(
        took < Duration::from_secs(4),
        "the run took {took:?} to end"
    );
    let summary = support::summary_of(&out);
    assert_eq!(summary["reason"], "interrupted (SIGINT)", "{summary}");
    assert!(
        !Path::new(&format!("/proc/{}", command[0])).exists(),
        "the supervised command outlived the run"
    );
}

#[test]
fn a_run_refuses_a_supervised_command_whose_ready_port_is_taken() {
    let Some(python) = python3() else { return };
    let dir = TempDir::new("run-port-taken");
    // Something else already listens there: it would pass for the command being ready.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run_experiment(
        &dir,
        &format!(
        "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: kill-port-taken }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: web-kill\n      type: process-kill\n      selector:\n        process:\n          command: [{python}, -m, http.server, \"{port}\", --bind, 127.0.0.1]\n          readyPort: {port}\n      duration: 1s\n  report: {{ dir: {}, formats: [json] }}\n",
        dir.path().join("reports").display()
    ),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("spec.faults[0].selector.process.readyPort")
            && stderr.contains(&format!("port {port} is already in use")),
        "{stderr}"
    );
    // Nothing was started: no http.server on that port besides ours.
    assert!(proc::listening_on(port).contains(&std::process::id()));
    assert_eq!(proc::listening_on(port).len(), 1);
}

#[test]
fn an_unrevertable_kill_in_a_run_says_not_revertible() {
    let dir = TempDir::new("run-unrevertable");
    let mut target = Sleeper::start();
    let selector = pid_file(dir.path(), target.pid());
    let exp = dir.path().join("kill.yaml");
    let body = |allow: bool| {
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: kill-unrevertable }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: sleeper-kill\n      type: process-kill\n      selector: {{ process: {{ pidFile: {} }} }}\n      parameters: {{ signal: KILL{} }}\n      duration: 1s\n  report: {{ dir: {}, formats: [json, markdown] }}\n",
            selector.pid_file.as_deref().unwrap(),
            if allow { ", allowUnrevertable: true" } else { "" },
            dir.path().join("reports").display()
        )
    };
    std::fs::write(&exp, body(false)).unwrap();
    let refused = Command::new(exe())
        .arg("validate")
        .arg(&exp)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("allowUnrevertable"));
    std::fs::write(&exp, body(true)).unwrap();
    let out = support::run_to_end(&exp, &dir.path().join("state"));
    support::assert_exit(&out, 0);
    let summary = support::summary_of(&out);
    let report = support::first_report(&summary);
    assert_eq!(report["faults"][0]["revertible"], false);
    let md = std::fs::read_to_string(summary["reports"][1].as_str().unwrap()).unwrap();
    assert!(md.contains("not revertible"), "{md}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(target.0.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn a_supervised_command_that_exits_while_starting_is_named_with_its_exit_status() {
    use chaos_runner::sys::supervisor::SupervisorError;
    let Some(python) = python3() else { return };
    let exits = |restart, ready_timeout| SupervisedCommand {
        name: "exits".into(),
        argv: vec![python.into(), "-c".into(), "import sys; sys.exit(4)".into()],
        restart,
        ready_port: Some(free_port()),
        ready_timeout,
    };
    // `never`: nothing will start it again, so the wait ends as it exits.
    let started = Instant::now();
    let err = Supervisor::start(exits(RestartPolicy::Never, Duration::from_secs(600))).unwrap_err();
    assert!(
        matches!(&err, SupervisorError::Exited { status, .. } if status.code() == Some(4)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err
        .to_string()
        .contains("exited before it was ready (exit status: 4)"));
    // `always`: started again until `readyTimeout`, and the error says how it ended.
    let err = Supervisor::start(exits(RestartPolicy::Always, Duration::from_secs(5))).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, SupervisorError::NotReady { .. }), "{err:?}");
    assert!(
        message.contains("not ready within 5s: it exited")
            && message.ends_with("time(s), last with exit status: 4"),
        "{message}"
    );
}
