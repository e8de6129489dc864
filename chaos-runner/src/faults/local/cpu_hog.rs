//! CPU hog: a child process (`chaos-runner stress cpu`) that keeps `workers` threads busy
//! at `load` percent. It dies with the runner (parent-death signal) and stops by itself when
//! its time is up, so no exit path of the runner can leave it burning CPU.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::proc;
use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::CpuHogParams;

/// A CPU hog fault.
#[derive(Debug)]
pub struct CpuHog {
    name: String,
    run_id: String,
    params: CpuHogParams,
    duration: Duration,
    exe: PathBuf,
    child: Option<(Child, u64)>,
}

impl CpuHog {
    /// A hog of `params` for at most `duration`, run by the `exe` binary (this runner).
    pub fn new(
        name: &str,
        run_id: &str,
        params: CpuHogParams,
        duration: Duration,
        exe: PathBuf,
    ) -> Self {
        CpuHog {
            name: name.to_owned(),
            run_id: run_id.to_owned(),
            params,
            duration,
            exe,
            child: None,
        }
    }

    /// The process id of the running hog.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|(c, _)| c.id())
    }

    fn revert_error(&self, reason: impl Into<String>) -> FaultError {
        FaultError::Revert {
            fault: self.name.clone(),
            reason: reason.into(),
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we checked is ours; no memory is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Waits until `gone()` or `limit` passes; returns whether it went.
fn wait_until(limit: Duration, mut gone: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if gone() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    gone()
}

impl Fault for CpuHog {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!(
            "cpu-hog `{}`: {} worker thread(s) at {}% on localhost for at most {}",
            self.name,
            self.params.workers,
            self.params.load,
            humantime::format_duration(Duration::from_millis(self.duration.as_millis() as u64))
        )
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let inject_error = |reason: String| FaultError::Inject {
            fault: self.name.clone(),
            reason,
        };
        // Argument vector, no shell: nothing here is interpreted.
        let child = Command::new(&self.exe)
            .arg("stress")
            .arg("cpu")
            .args(["--workers", &self.params.workers.to_string()])
            .args(["--load", &self.params.load.to_string()])
            .args(["--duration", &format!("{}ms", self.duration.as_millis())])
            .args(["--run-id", &self.run_id])
            .args(["--fault", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| inject_error(format!("cannot start {}: {e}", self.exe.display())))?;
        let pid = child.id();
        let mut ticks = None;
        wait_until(Duration::from_secs(2), || {
            ticks = proc::stat(pid).map(|(_, t)| t);
            ticks.is_some()
        });
        let start_ticks =
            ticks.ok_or_else(|| inject_error(format!("hog process {pid} vanished at start")))?;
        self.child = Some((child, start_ticks));
        Ok(FaultRecord::CpuHog { pid, start_ticks })
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        let Some((mut child, _)) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        signal(pid, libc::SIGTERM);
        let exited = wait_until(Duration::from_secs(2), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            signal(pid, libc::SIGKILL);
            child
                .wait()
                .map_err(|e| self.revert_error(format!("waiting for hog {pid}: {e}")))?;
        }
        Ok(())
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        if let Some((child, ticks)) = &self.child {
            if proc::is_running(child.id(), *ticks) {
                return Err(self.revert_error(format!("hog process {} still runs", child.id())));
            }
        }
        if let Some(pid) = hogs_of(&self.run_id, &self.name).first() {
            return Err(self.revert_error(format!("hog process {pid} still runs")));
        }
        Ok(())
    }
}

/// Hog processes of `run_id`'s fault `name`, found by their command line.
fn hogs_of(run_id: &str, name: &str) -> Vec<u32> {
    proc::pids()
        .into_iter()
        .filter(|pid| {
            proc::cmdline(*pid).is_some_and(|args| {
                let has = |flag: &str, value: &str| {
                    args.windows(2).any(|w| w[0] == flag && w[1] == value)
                };
                args.get(1).is_some_and(|a| a == "stress")
                    && has("--run-id", run_id)
                    && has("--fault", name)
            }) && proc::stat(*pid).is_some_and(|(s, _)| s != 'Z')
        })
        .collect()
}

/// Kills the hog `pid` if it is still the process that started at `start_ticks` and
/// waits until it is gone (used by `recover`).
pub fn kill_if_ours(name: &str, pid: u32, start_ticks: u64) -> Result<(), FaultError> {
    if !proc::is_running(pid, start_ticks) {
        return Ok(());
    }
    signal(pid, libc::SIGKILL);
    if wait_until(Duration::from_secs(3), || {
        !proc::is_running(pid, start_ticks)
    }) {
        Ok(())
    } else {
        Err(FaultError::Revert {
            fault: name.to_owned(),
            reason: format!("hog process {pid} survived SIGKILL"),
        })
    }
}

/// Kills every hog of `run_id`'s fault `name` found by command line (when the journal has
/// no pid: the runner died between the intent and the injection).
pub fn kill_by_run(run_id: &str, name: &str) -> Result<(), FaultError> {
    for pid in hogs_of(run_id, name) {
        if let Some((_, ticks)) = proc::stat(pid) {
            kill_if_ours(name, pid, ticks)?;
        }
    }
    Ok(())
}
