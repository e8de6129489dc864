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
    let mut cpu = start(&[
        "stress",
        "cpu",
        "--workers",
        "1",
        "--load",
        "5",
        "--duration",
        "60s",
        "--run-id",
        &run,
        "--fault",
        "burn",
        "--exit-on-term",
    ]);
    let mut memory = start(&[
        "stress",
        "memory",
        "--bytes",
        "1048576",
        "--touch",
        "--duration",
        "60s",
        "--run-id",
        &run,
        "--fault",
        "burn",
        "--exit-on-term",
    ]);
    let mut other = start(&[
        "stress",
        "cpu",
        "--workers",
        "1",
        "--load",
        "5",
        "--duration",
        "60s",
        "--run-id",
        &run,
        "--fault",
        "other",
        "--exit-on-term",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    let out = stop(&run, "burn");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stopped 2 helper(s)"),
        "{out:?}"
    );
    for child in [&mut cpu, &mut memory] {
        let status = wait(child, Duration::from_secs(2)).expect("helper still running");
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
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
    let mut hog = start(&[
        "stress",
        "cpu",
        "--workers",
        "1",
        "--load",
        "5",
        "--duration",
        "60s",
        "--not-after",
        "1",
        "--run-id",
        "r",
        "--fault",
        "late",
        "--exit-on-term",
    ]);
    let status = wait(&mut hog, Duration::from_secs(5)).expect("a late helper kept running");
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn netem_needs_a_delay_or_a_loss() {
    let out = runner()
        .args([
            "stress",
            "netem",
            "--interface",
            "eth0",
            "--duration",
            "1s",
            "--run-id",
            "r",
            "--fault",
            "f",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = runner()
        .args([
            "stress",
            "netem",
            "--interface",
            "eth0",
            "--loss",
            "0",
            "--duration",
            "1s",
            "--run-id",
            "r",
            "--fault",
            "f",
        ])
        .output()
        .unwrap();
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
