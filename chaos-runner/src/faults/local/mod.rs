//! Faults on this machine.

pub mod cpu_hog;
pub mod db_fault;
pub mod disk_fill;
pub mod memory_hog;
pub mod netcmd;
pub mod nftables;
pub mod process;

pub mod proxy_fault;
pub mod tc;

use crate::helper::HelperCommand;
use crate::sys::{cgroup, child, proc};

/// Sweeping what a dead run's local fault left failed.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A stress child could not be stopped.
    #[error(transparent)]
    Child(#[from] child::ChildError),
    /// A fill file could not be deleted.
    #[error(transparent)]
    Fill(#[from] disk_fill::DiskFillError),
    /// A cgroup could not be removed.
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
}

/// Removes whatever run `run_id`'s fault `name` may have left on this machine when the
/// journal holds only its intent: its stress children (a resume watchdog resumes its
/// target first; a disk filler's file is deleted) and its cgroups.
pub fn sweep(run_id: &str, name: &str) -> Result<(), SweepError> {
    for (pid, helper) in proc::stress_children(run_id, name) {
        let Some((_, ticks)) = proc::stat(pid) else {
            continue;
        };
        if let HelperCommand::Resume {
            pid: target,
            start_ticks,
            ..
        } = &helper
        {
            if proc::is_running(*target, *start_ticks) {
                proc::signal(*target, libc::SIGCONT);
            }
        }
        child::stop_if_ours(pid, ticks, libc::SIGTERM, std::time::Duration::from_secs(3))?;
        if let HelperCommand::Disk { path, .. } = &helper {
            disk_fill::remove_fill(path)?;
        }
    }
    Ok(cgroup::remove_run(run_id, Some(name))?)
}
