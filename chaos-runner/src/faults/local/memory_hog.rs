//! Memory hog: a child process (`chaos-runner stress memory`) that maps `bytes` of
//! anonymous memory, writes every page (so it is really resident) and holds it until its
//! time is up. It dies with the runner (parent-death signal). With `cgroup: true` it runs
//! in its own cgroup v1 `memory` group, joined before it allocates, optionally limited by
//! `memoryLimit` (a hog above the limit is OOM-killed inside its group); the group's peak
//! usage is reported.

use crate::helper::HelperCommand;
use std::path::PathBuf;
use std::time::Duration;

use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::MemoryHogParams;
use crate::sys::cgroup::{Cgroup, CgroupError, Controller};
use crate::sys::child::StressChild;
use crate::sys::proc;

/// A memory hog fault.
#[derive(Debug)]
pub struct MemoryHog {
    name: String,
    run_id: String,
    params: MemoryHogParams,
    duration: Duration,
    exe: PathBuf,
    child: Option<StressChild>,
    cgroup: Option<Cgroup>,
    measurements: Vec<(String, String)>,
}

/// `VmRSS` of `pid` in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

/// `RssAnon` of `pid` in bytes (resident anonymous memory: what the hog holds).
pub fn rss_anon_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "RssAnon:")
}

fn status_bytes(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = text
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `MemAvailable` and `MemTotal` in bytes, from `/proc/meminfo`.
fn meminfo() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let get = |key: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    Some((get("MemAvailable:")?, get("MemTotal:")?))
}

impl MemoryHog {
    /// A hog of `params` for at most `duration`, run by the `exe` binary (this runner).
    pub fn new(
        name: &str,
        run_id: &str,
        params: MemoryHogParams,
        duration: Duration,
        exe: PathBuf,
    ) -> Self {
        MemoryHog {
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

    /// The hog's cgroup directory (when confined).
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.cgroup.as_ref().map(Cgroup::paths).unwrap_or_default()
    }

    /// The cgroup's peak memory use so far (`memory.max_usage_in_bytes`).
    pub fn max_usage_bytes(&self) -> Option<u64> {
        self.cgroup
            .as_ref()?
            .read_u64(Controller::Memory, "memory.max_usage_in_bytes")
            .ok()
    }

    /// Whether the hog has exited (e.g. OOM-killed at its cgroup's limit), and how.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.exited()
    }

    fn error(&self, revert: bool, reason: impl Into<String>) -> FaultError {
        let (fault, reason) = (self.name.clone(), reason.into());
        if revert {
            FaultError::Revert { fault, reason }
        } else {
            FaultError::Inject { fault, reason }
        }
    }

    fn make_cgroup(&self) -> Result<Cgroup, CgroupError> {
        let cgroup = Cgroup::create(&[Controller::Memory], &self.run_id, &self.name)?;
        if let Some(limit) = self.params.memory_limit {
            if let Err(e) = cgroup.write(
                Controller::Memory,
                "memory.limit_in_bytes",
                &limit.as_u64().to_string(),
            ) {
                let _ = cgroup.remove();
                return Err(e);
            }
        }
        Ok(cgroup)
    }
}

impl Fault for MemoryHog {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let confined = match (self.params.cgroup, self.params.memory_limit) {
            (false, _) => String::new(),
            (true, None) => " in its own cgroup".to_owned(),
            (true, Some(l)) => format!(" in its own cgroup limited to {}", l.display().iec()),
        };
        format!(
            "memory-hog `{}`: {} {}{confined} on localhost for at most {}",
            self.name,
            self.params.bytes.display().iec(),
            if self.params.touch {
                "resident (every page written)"
            } else {
                "mapped"
            },
            humantime::format_duration(Duration::from_millis(self.duration.as_millis() as u64))
        )
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let bytes = self.params.bytes.as_u64();
        // Without a cgroup limit the hog could push the machine into its OOM killer: keep
        // the larger of 5% of memory and 256 MiB available.
        let limited = self.params.cgroup && self.params.memory_limit.is_some();
        if !limited {
            if let Some((available, total)) = meminfo() {
                let keep = (total / 20).max(256 << 20);
                if bytes.saturating_add(keep) > available {
                    return Err(self.error(
                        false,
                        format!(
                            "{bytes} bytes would leave less than {keep} bytes of memory available ({available} available now); ask for less or confine it with `cgroup: true` and `memoryLimit`"
                        ),
                    ));
                }
            }
        }
        let cgroup = if self.params.cgroup {
            Some(
                self.make_cgroup()
                    .map_err(|e| self.error(false, e.to_string()))?,
            )
        } else {
            None
        };
        let procs = match cgroup.as_ref().map(Cgroup::procs_files).transpose() {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => return Err(self.error(false, e.to_string())),
        };
        let hog = HelperCommand::Memory {
            bytes,
            touch: self.params.touch,
            duration: self.duration,
            run_id: self.run_id.clone(),
            fault: self.name.clone(),
            exit_on_term: false,
            not_after: None,
        };
        let mut child = match StressChild::spawn(&self.exe, &hog, procs) {
            Ok(c) => c,
            Err(e) => {
                if let Some(cg) = &cgroup {
                    let _ = cg.remove();
                }
                return Err(self.error(false, e.to_string()));
            }
        };
        let pid = child.pid();
        if self.params.touch {
            // Wait until the pages are resident, the hog died (a limit's OOM kill is a
            // result, not an error), or a generous time for the size passed.
            let limit = Duration::from_secs(10) + Duration::from_millis(bytes / (100 << 10));
            proc::wait_until(limit, || {
                child.exited().is_some() || rss_anon_bytes(pid).is_some_and(|r| r >= bytes)
            });
            if let Some(rss) = rss_bytes(pid) {
                self.measurements
                    .push(("rss_bytes_after_inject".into(), rss.to_string()));
            }
        }
        let record = FaultRecord::MemoryHog {
            pid,
            start_ticks: child.start_ticks,
            cgroups: cgroup.as_ref().map(Cgroup::paths).unwrap_or_default(),
        };
        self.child = Some(child);
        self.cgroup = cgroup;
        Ok(record)
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        if let Some(cg) = &self.cgroup {
            for (key, file) in [
                ("cgroup_max_usage_bytes", "memory.max_usage_in_bytes"),
                ("cgroup_limit_bytes", "memory.limit_in_bytes"),
                ("cgroup_limit_hits", "memory.failcnt"),
            ] {
                if let Ok(v) = cg.read_u64(Controller::Memory, file) {
                    self.measurements.push((key.into(), v.to_string()));
                }
            }
        }
        if let Some(mut child) = self.child.take() {
            if let Some(status) = child.exited() {
                use std::os::unix::process::ExitStatusExt;
                if status.signal() == Some(libc::SIGKILL) {
                    self.measurements
                        .push(("hog_killed".into(), "SIGKILL (OOM at the limit)".into()));
                }
            }
            child
                .stop(libc::SIGKILL, Duration::from_secs(2))
                .map_err(|e| self.error(true, e.to_string()))?;
        }
        if let Some(cg) = &self.cgroup {
            cg.remove().map_err(|e| self.error(true, e.to_string()))?;
        }
        self.cgroup = None;
        Ok(())
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        if let Some(child) = &self.child {
            if proc::is_running(child.pid(), child.start_ticks) {
                return Err(self.error(true, format!("hog process {} still runs", child.pid())));
            }
        }
        if let Some((pid, _)) = proc::stress_children(&self.run_id, &self.name).first() {
            return Err(self.error(true, format!("hog process {pid} still runs")));
        }
        if let Some(cg) = &self.cgroup {
            if let Some(dir) = cg.paths().into_iter().find(|d| d.exists()) {
                return Err(self.error(true, format!("cgroup {} still exists", dir.display())));
            }
        }
        Ok(())
    }

    fn measurements(&self) -> Vec<(String, String)> {
        self.measurements.clone()
    }
}
