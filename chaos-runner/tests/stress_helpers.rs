//! The in-pod helpers as real processes: `stress cpu|memory --exit-on-term` end at once
//! (status 0) on SIGTERM, `stress stop` finds the helpers of one run's fault by their
//! arguments and stops only those, and `--not-after` in the past ends a helper at once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
}

fn start(args: &[&str]) -> Child {
    runner()
        .args(args)
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start chaos-runner")
}

/// Starts `chaos-runner` with the white-space separated words of `line`.
fn start_words(line: &str) -> Child {
    start(&line.split_whitespace().collect::<Vec<_>>())
}

/// A `stress cpu` helper (one worker at 5 % for 60 s) of run `run`'s fault `fault`,
/// ending at once on SIGTERM.
fn cpu_helper(run: &str, fault: &str) -> Child {
    start_words(&format!(
        "stress cpu --workers 1 --load 5 --duration 60s \
         --run-id {run} --fault {fault} --exit-on-term"
    ))
}

/// Waits (10 s at most) until process `pid` runs `chaos-runner` and takes SIGTERM itself
/// (as `stress signal-init` judges it, [`chaos_runner::stress::process_takes`]), so a
/// SIGTERM sent from then on cannot kill it by the default action. Before its `exec` a
/// child may still carry its launcher's mask (`unshare` blocks SIGTERM while it waits),
/// which says nothing.
fn wait_taking_term(pid: u32) {
    wait_running(pid, "chaos-runner");
    let started = Instant::now();
    while !chaos_runner::stress::process_takes(pid, libc::SIGTERM).unwrap_or(false) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "process {pid} never took SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (10 s at most) until process `pid` runs `command` (its `exec` is done).
fn wait_running(pid: u32, command: &str) {
    let started = Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        != command
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "process {pid} never ran {command}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `chaos-runner` with the white-space separated words of `line` to its end.
fn output_of(line: &str) -> std::process::Output {
    runner().args(line.split_whitespace()).output().unwrap()
}

/// Waits up to `limit` for `child` to end.
fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn stop(run_id: &str, fault: &str) -> std::process::Output {
    runner()
        .args([
            "stress", "stop", "--run-id", run_id, "--fault", fault, "--grace", "5s",
        ])
        .output()
        .unwrap()
}

#[test]
fn stop_ends_the_helpers_of_its_fault_only() {
    let run = format!("run-{}", std::process::id());
    let mut cpu = cpu_helper(&run, "burn");
    let mut memory = start_words(&format!(
        "stress memory --bytes 1048576 --touch --duration 60s \
         --run-id {run} --fault burn --exit-on-term"
    ));
    let mut other = cpu_helper(&run, "other");
    for helper in [&cpu, &memory, &other] {
        wait_taking_term(helper.id());
    }
    let sent = Instant::now();
    let out = stop(&run, "burn");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stopped 2 helper(s)"),
        "{out:?}"
    );
    // Exit code 0: each helper ended on the SIGTERM itself (a helper that ignored it would
    // be killed after the grace period and have no exit code).
    for child in [&mut cpu, &mut memory] {
        let status = wait(child, Duration::from_secs(10)).expect("helper still running");
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
    eprintln!(
        "helpers stopped {:?} after `stop` was started",
        sent.elapsed()
    );
    // The other fault's helper is untouched; stopping it works the same way.
    assert!(other.try_wait().unwrap().is_none());
    assert!(stop(&run, "other").status.success());
    assert_eq!(
        wait(&mut other, Duration::from_secs(2)).and_then(|s| s.code()),
        Some(0)
    );
    // Nothing left: stop succeeds, having stopped none.
    let out = stop(&run, "burn");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped 0 helper(s)"));
}

#[test]
fn not_after_in_the_past_ends_a_helper_at_once() {
    let started = Instant::now();
    let mut hog = start_words(
        "stress cpu --workers 1 --load 5 --duration 60s --not-after 1 \
         --run-id r --fault late --exit-on-term",
    );
    // At once, not after its 60 s: the bound tells the two apart on a busy machine.
    let status = wait(&mut hog, Duration::from_secs(30)).expect("a late helper kept running");
    assert!(status.success());
    eprintln!(
        "a late helper ended {:?} after its start",
        started.elapsed()
    );
}

#[test]
fn netem_needs_a_delay_or_a_loss() {
    let out = output_of("stress netem --interface eth0 --duration 1s --run-id r --fault f");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out =
        output_of("stress netem --interface eth0 --loss 0 --duration 1s --run-id r --fault f");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("above 0"),
        "{out:?}"
    );
}

/// In a fresh network namespace (`unshare -Urn`, CAP_NET_ADMIN there without root) the
/// netem helper either holds the qdisc and removes it when stopped, or, on a kernel
/// without `sch_netem` (this project's CI machine), fails at once saying so.
#[test]
fn netem_helper_in_a_network_namespace_adds_and_removes_or_reports_a_missing_netem() {
    let out = Command::new("unshare")
        .args(["-Urn", env!("CARGO_BIN_EXE_chaos-runner")])
        .args([
            "stress",
            "netem",
            "--interface",
            "lo",
            "--delay",
            "10ms",
            "--loss",
            "1",
        ])
        .args(["--duration", "1s", "--run-id", "r", "--fault", "slow"])
        .output()
        .expect("cannot run unshare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // netem exists here: the helper added it, held it 1 s, and deleted its own qdisc.
        assert!(stderr.contains("netem delay 10000us loss 1%"), "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(stderr.contains("sch_netem"), "{stderr}");
    }
}

/// The host pid of the only child of `parent` (the init of the PID namespace `unshare -f`
/// made), once it exists.
fn only_child(parent: u32) -> u32 {
    let started = Instant::now();
    loop {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        if let Some(pid) = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
        {
            return pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "unshare started no child"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `stress signal-init` run inside another process's PID (and mount) namespace, as the
/// `container-kill` helper is with `targetContainerName`.
fn signal_init_in(init: u32, signal: &str) -> std::process::Output {
    Command::new("nsenter")
        .args([
            "-t",
            &init.to_string(),
            "-U",
            "-m",
            "-p",
            "--preserve-credentials",
        ])
        .arg(env!("CARGO_BIN_EXE_chaos-runner"))
        .args([
            "stress",
            "signal-init",
            "--signal",
            signal,
            "--run-id",
            "r",
            "--fault",
            "k",
        ])
        .output()
        .expect("cannot run nsenter")
}

/// A namespace's init takes a signal from inside only if it catches or waits for it: the
/// helper signals an init that waits for SIGTERM (a helper with `--exit-on-term`, which
/// then ends) and refuses, saying why, for one with no handler (`sleep`).
#[test]
fn signal_init_stops_an_init_that_takes_the_signal_and_refuses_one_that_would_drop_it() {
    let exe = env!("CARGO_BIN_EXE_chaos-runner");
    let mut taker = Command::new("unshare")
        .args(["-Urpf", "--mount-proc", exe])
        .args([
            "stress",
            "cpu",
            "--workers",
            "1",
            "--load",
            "5",
            "--duration",
            "60s",
        ])
        .args(["--run-id", "r", "--fault", "init", "--exit-on-term"])
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot run unshare");
    let init = only_child(taker.id());
    wait_taking_term(init);
    let out = signal_init_in(init, "TERM");
    // The helper either ends first (status 0, saying what it did) or, when the init ends
    // first, is SIGKILLed with the rest of the namespace (a pod reports exit code 137,
    // which `container-kill` accepts).
    if out.status.success() {
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("sent SIGTERM to PID 1 (chaos-runner)"),
            "{out:?}"
        );
    } else {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
    }
    let status = wait(&mut taker, Duration::from_secs(3)).expect("the init did not end");
    assert!(status.success(), "{status:?}");

    let mut deaf = Command::new("unshare")
        .args(["-Urpf", "--mount-proc", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot run unshare");
    let init = only_child(deaf.id());
    wait_running(init, "sleep");
    let out = signal_init_in(init, "TERM");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PID 1 (`sleep`) neither catches nor waits for SIGTERM"),
        "{stderr}"
    );
    // It really would have been dropped: the init is still there.
    assert!(deaf.try_wait().unwrap().is_none());
    // The init first: killing `unshare` alone would leave `sleep` running past the test.
    // SAFETY: kill only sends a signal to the process named by its pid.
    unsafe { libc::kill(init as libc::pid_t, libc::SIGKILL) };
    let _ = deaf.kill();
    deaf.wait().unwrap();
}
