//! Faults on this machine.

pub mod cgroup;
pub mod child;
pub mod cpu_hog;
pub mod db_fault;
pub mod disk_fill;
pub mod memory_hog;
pub mod netcmd;
pub mod nftables;
pub mod proc;
pub mod process;
pub mod supervisor;

pub mod proxy_fault;
pub mod tc;

/// Removes whatever run `run_id`'s fault `name` may have left on this machine when the
/// journal holds only its intent: its stress children (a resume watchdog resumes its
/// target first; a disk filler's file is deleted) and its cgroups.
pub fn sweep(run_id: &str, name: &str) -> Result<(), String> {
    for (pid, kind, args) in proc::stress_children(run_id, name) {
        let Some((_, ticks)) = proc::stat(pid) else {
            continue;
        };
        if kind == "resume" {
            let target = proc::flag_value(&args, "--pid").and_then(|p| p.parse().ok());
            let target_ticks =
                proc::flag_value(&args, "--start-ticks").and_then(|t| t.parse().ok());
            if let (Some(p), Some(t)) = (target, target_ticks) {
                if proc::is_running(p, t) {
                    proc::signal(p, libc::SIGCONT);
                }
            }
        }
        child::stop_if_ours(pid, ticks, libc::SIGTERM, std::time::Duration::from_secs(3))?;
        if kind == "disk" {
            if let Some(file) = proc::flag_value(&args, "--path") {
                disk_fill::remove_fill(std::path::Path::new(file))?;
            }
        }
    }
    cgroup::remove_run(run_id, Some(name)).map_err(|e| e.to_string())
}
