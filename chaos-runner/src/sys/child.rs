//! Starting and stopping the runner's own stress children (`<runner> stress <kind> ...`):
//! argument vectors only, optional cgroup join before exec, start time recorded so a
//! reused pid is never mistaken for the child.

use crate::helper::HelperCommand;
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{cgroup, proc};

/// Starting, stopping or cleaning up after a stress child failed.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The child process could not be started.
    #[error("cannot start {exe}: {source}")]
    Spawn {
        /// The program.
        exe: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The child was gone before its start time could be read.
    #[error("stress process {0} vanished at start")]
    Vanished(u32),
    /// Waiting for the killed child failed.
    #[error("waiting for stress process {pid}: {source}")]
    Wait {
        /// The child.
        pid: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process still runs after SIGKILL.
    #[error("stress process {0} survived SIGKILL")]
    SurvivedKill(u32),
    /// A directory could not be removed.
    #[error("cannot remove {dir}: {source}")]
    RemoveDir {
        /// The directory.
        dir: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running stress child.
#[derive(Debug)]
pub struct StressChild {
    /// The process.
    pub child: Child,
    /// Its start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl StressChild {
    /// Starts `exe stress <helper...>`, joining the cgroups of `procs_files` (if any) before
    /// exec, so everything it does is accounted there.
    pub fn spawn(
        exe: &Path,
        helper: &HelperCommand,
        procs_files: Vec<CString>,
    ) -> Result<Self, ChildError> {
        let mut command = Command::new(exe);
        command
            .args(helper.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if !procs_files.is_empty() {
            // SAFETY: join_in_child only makes async-signal-safe calls (open, write, close).
            unsafe {
                command.pre_exec(move || cgroup::join_in_child(&procs_files));
            }
        }
        let child = command.spawn().map_err(|source| ChildError::Spawn {
            exe: exe.display().to_string(),
            source,
        })?;
        let pid = child.id();
        let mut ticks = None;
        proc::wait_until(Duration::from_secs(2), || {
            ticks = proc::stat(pid).map(|(_, t)| t);
            ticks.is_some()
        });
        let start_ticks = ticks.ok_or(ChildError::Vanished(pid))?;
        Ok(StressChild { child, start_ticks })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops it: `first` (SIGTERM lets it clean up), then SIGKILL after `grace`; reaps it.
    pub fn stop(&mut self, first: libc::c_int, grace: Duration) -> Result<(), ChildError> {
        if self.exited().is_some() {
            return Ok(());
        }
        let pid = self.pid();
        proc::signal(pid, first);
        let exited = proc::wait_until(grace, || matches!(self.child.try_wait(), Ok(Some(_))));
        if !exited {
            proc::signal(pid, libc::SIGKILL);
            self.child
                .wait()
                .map_err(|source| ChildError::Wait { pid, source })?;
        }
        Ok(())
    }
}

/// Kills the stress process `pid` if it is still the one that started at `start_ticks`
/// (`first`, then SIGKILL after `grace`) and waits until it is gone.
pub fn stop_if_ours(
    pid: u32,
    start_ticks: u64,
    first: libc::c_int,
    grace: Duration,
) -> Result<(), ChildError> {
    if !proc::is_running(pid, start_ticks) {
        return Ok(());
    }
    proc::signal(pid, first);
    if proc::wait_until(grace, || !proc::is_running(pid, start_ticks)) {
        return Ok(());
    }
    proc::signal(pid, libc::SIGKILL);
    if proc::wait_until(Duration::from_secs(3), || {
        !proc::is_running(pid, start_ticks)
    }) {
        Ok(())
    } else {
        Err(ChildError::SurvivedKill(pid))
    }
}

/// Stops what a dead run's service left (by pid and start ticks, so a reused pid is never
/// hit; `None` or 0 when it never started) and removes its directory.
pub fn stop_service_left(pid: Option<u32>, start_ticks: u64, dir: &Path) -> Result<(), ChildError> {
    if let Some(pid) = pid.filter(|p| *p > 0) {
        stop_if_ours(pid, start_ticks, libc::SIGTERM, Duration::from_secs(5))?;
    }
    remove_dir_if_any(dir)
}

/// Removes `dir` and everything in it; a directory already gone is fine.
///
/// ```
/// let dir = std::env::temp_dir().join("chaos-doc-remove-dir-if-any");
/// std::fs::create_dir_all(dir.join("sub")).unwrap();
/// chaos_runner::sys::child::remove_dir_if_any(&dir).unwrap();
/// assert!(!dir.exists());
/// chaos_runner::sys::child::remove_dir_if_any(&dir).unwrap(); // already gone: fine
/// ```
pub fn remove_dir_if_any(dir: &Path) -> Result<(), ChildError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ChildError::RemoveDir {
            dir: dir.display().to_string(),
            source,
        }),
    }
}
