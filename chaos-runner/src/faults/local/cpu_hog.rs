//! CPU hog: a child process (`chaos-runner stress cpu`) that keeps `workers` threads busy
//! at `load` percent. It dies with the runner (parent-death signal) and stops by itself when
//! its time is up, so no exit path of the runner can leave it burning CPU.

use crate::helper::HelperCommand;
use std::path::PathBuf;
use std::time::Duration;

use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::CpuHogParams;
use crate::sys::cgroup::{Cgroup, CgroupError, Controller};
use crate::sys::child::StressChild;
use crate::sys::proc;

/// The CFS period the quota is expressed against (100 ms, the kernel default).
const CFS_PERIOD_US: u64 = 100_000;

/// A CPU hog fault.
#[derive(Debug)]
pub struct CpuHog {
    name: String,
    run_id: String,
    params: CpuHogParams,
    duration: Duration,
    exe: PathBuf,
    child: Option<StressChild>,
    cgroup: Option<Cgroup>,
    measurements: Vec<(String, String)>,
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
            cgroup: None,
            measurements: Vec::new(),
        }
    }

    /// The process id of the running hog.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(StressChild::pid)
    }

    /// The hog's cgroup directories (when confined).
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.cgroup.as_ref().map(Cgroup::paths).unwrap_or_default()
    }

    /// CPU time the hog's cgroup has used so far, in nanoseconds (`cpuacct.usage`).
    pub fn cpu_usage_ns(&self) -> Option<u64> {
        self.cgroup
            .as_ref()?
            .read_u64(Controller::Cpuacct, "cpuacct.usage")
            .ok()
    }

    fn revert_error(&self, reason: impl Into<String>) -> FaultError {
        FaultError::revert(&self.name, reason)
    }

    fn inject_error(&self, reason: impl Into<String>) -> FaultError {
        FaultError::inject(&self.name, reason)
    }

    fn make_cgroup(&self) -> Result<Cgroup, CgroupError> {
        let cgroup = Cgroup::create(
            &[Controller::Cpu, Controller::Cpuacct],
            &self.run_id,
            &self.name,
        )?;
        if let Some(percent) = self.params.cpu_quota_percent {
            let quota = (CFS_PERIOD_US * u64::from(percent) / 100).max(1000);
            let set = cgroup
                .write(
                    Controller::Cpu,
                    "cpu.cfs_period_us",
                    &CFS_PERIOD_US.to_string(),
                )
                .and_then(|()| {
                    cgroup.write(Controller::Cpu, "cpu.cfs_quota_us", &quota.to_string())
                });
            if let Err(e) = set {
                let _ = cgroup.remove();
                return Err(e);
            }
        }
        Ok(cgroup)
    }
}

impl Fault for CpuHog {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let confined = match (self.params.cgroup, self.params.cpu_quota_percent) {
            (false, _) => String::new(),
            (true, None) => " in its own cgroup".to_owned(),
            (true, Some(q)) => format!(" in its own cgroup capped at {q}% of a CPU"),
        };
        format!(
            "cpu-hog `{}`: {} worker thread(s) at {}%{confined} on localhost for at most {}",
            self.name,
            self.params.workers,
            self.params.load,
            humantime::format_duration(Duration::from_millis(self.duration.as_millis() as u64))
        )
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let cgroup = if self.params.cgroup {
            Some(
                self.make_cgroup()
                    .map_err(|e| self.inject_error(e.to_string()))?,
            )
        } else {
            None
        };
        let procs = match cgroup.as_ref().map(Cgroup::procs_files).transpose() {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => return Err(self.inject_error(e.to_string())),
        };
        // Argument vector, no shell: nothing here is interpreted.
        let hog = HelperCommand::Cpu {
            workers: self.params.workers,
            load: self.params.load,
            duration: self.duration,
            run_id: self.run_id.clone(),
            fault: self.name.clone(),
            exit_on_term: false,
            not_after: None,
        };
        let child = match StressChild::spawn(&self.exe, &hog, procs) {
            Ok(c) => c,
            Err(e) => {
                if let Some(cg) = &cgroup {
                    let _ = cg.remove();
                }
                return Err(self.inject_error(e.to_string()));
            }
        };
        let record = FaultRecord::CpuHog {
            pid: child.pid(),
            start_ticks: child.start_ticks,
            cgroups: cgroup.as_ref().map(Cgroup::paths).unwrap_or_default(),
        };
        self.child = Some(child);
        self.cgroup = cgroup;
        Ok(record)
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        if let Some(usage) = self.cpu_usage_ns() {
            self.measurements
                .push(("cpu_time_ms".into(), format!("{:.1}", usage as f64 / 1e6)));
        }
        if let Some(mut child) = self.child.take() {
            child
                .stop(libc::SIGTERM, Duration::from_secs(2))
                .map_err(|e| self.revert_error(e.to_string()))?;
        }
        if let Some(cg) = &self.cgroup {
            cg.remove().map_err(|e| self.revert_error(e.to_string()))?;
        }
        self.cgroup = None;
        Ok(())
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        if let Some(child) = &self.child {
            if proc::is_running(child.pid(), child.start_ticks) {
                return Err(self.revert_error(format!("hog process {} still runs", child.pid())));
            }
        }
        if let Some(pid) = hogs_of(&self.run_id, &self.name).first() {
            return Err(self.revert_error(format!("hog process {pid} still runs")));
        }
        if let Some(cg) = &self.cgroup {
            if let Some(dir) = cg.paths().into_iter().find(|d| d.exists()) {
                return Err(self.revert_error(format!("cgroup {} still exists", dir.display())));
            }
        }
        Ok(())
    }

    fn measurements(&self) -> Vec<(String, String)> {
        self.measurements.clone()
    }
}

/// Hog processes of `run_id`'s fault `name`, found by their command line.
fn hogs_of(run_id: &str, name: &str) -> Vec<u32> {
    proc::pids()
        .into_iter()
        .filter(|pid| {
            proc::cmdline(*pid)
                .and_then(|argv| HelperCommand::from_cmdline(&argv))
                .is_some_and(|helper| helper.owner() == Some((run_id, name)))
                && proc::stat(*pid).is_some_and(|(s, _)| s != 'Z')
        })
        .collect()
}

/// Kills the hog `pid` if it is still the process that started at `start_ticks` and
/// waits until it is gone (used by `recover`).
pub fn kill_if_ours(name: &str, pid: u32, start_ticks: u64) -> Result<(), FaultError> {
    if !proc::is_running(pid, start_ticks) {
        return Ok(());
    }
    proc::signal(pid, libc::SIGKILL);
    if proc::wait_until(Duration::from_secs(3), || {
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
