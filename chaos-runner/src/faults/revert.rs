//! Reverting what a crashed run left, from its journal record alone.

use std::path::PathBuf;
use std::time::Duration;

use super::{kube, local, FaultError, FaultRecord};
use crate::sys::{cgroup, child};

/// Reverts a fault known only from the journal (after a crash): by its record when the
/// journal has one, else (the runner died between the intent and the injection) by
/// sweeping every backend for what run `run_id` may have left under the name `name`.
pub fn revert_from_journal(
    run_id: &str,
    name: &str,
    record: Option<&FaultRecord>,
) -> Result<(), FaultError> {
    revert_from_journal_with(run_id, name, record, &kube::KubeConnector::lazy())
}

/// [`revert_from_journal`] with a given Kubernetes client (connected on first use when
/// lazy; only Kubernetes records use it).
pub fn revert_from_journal_with(
    run_id: &str,
    name: &str,
    record: Option<&FaultRecord>,
    kube_client: &kube::KubeConnector,
) -> Result<(), FaultError> {
    let revert_error = |reason: String| FaultError::Revert {
        fault: name.to_owned(),
        reason,
    };
    let remove_cgroups = |dirs: &[PathBuf]| -> Result<(), FaultError> {
        for dir in dirs {
            cgroup::remove_dir(dir).map_err(|e| revert_error(e.to_string()))?;
        }
        Ok(())
    };
    match record {
        Some(FaultRecord::CpuHog {
            pid,
            start_ticks,
            cgroups,
        })
        | Some(FaultRecord::MemoryHog {
            pid,
            start_ticks,
            cgroups,
        }) => {
            local::cpu_hog::kill_if_ours(name, *pid, *start_ticks)?;
            remove_cgroups(cgroups)
        }
        Some(FaultRecord::DiskFill {
            pid,
            start_ticks,
            file,
        }) => {
            if *pid == 0 {
                // Journaled with the intent, before the child started: stop whatever
                // child of this fault may have started since.
                local::sweep(run_id, name).map_err(|e| revert_error(e.to_string()))?;
            } else {
                child::stop_if_ours(*pid, *start_ticks, libc::SIGTERM, Duration::from_secs(3))
                    .map_err(|e| revert_error(e.to_string()))?;
            }
            local::disk_fill::remove_fill(file).map_err(|e| revert_error(e.to_string()))
        }
        Some(FaultRecord::ProcessPaused { targets }) => {
            local::process::resume_from_journal(targets).map_err(|e| revert_error(e.to_string()))
        }
        Some(FaultRecord::ProcessKilled { .. }) => Ok(()),
        Some(FaultRecord::SetupService {
            pid,
            start_ticks,
            dir,
        }) => child::stop_service_left(*pid, *start_ticks, dir)
            .map_err(|e| revert_error(e.to_string())),
        Some(FaultRecord::NetTable { netns, table }) => {
            local::nftables::revert_record(name, netns.as_deref(), table)
        }
        Some(FaultRecord::NetQdisc {
            netns,
            interface,
            handle,
        }) => local::tc::revert_record(name, netns.as_deref(), interface, *handle),
        Some(
            r @ (FaultRecord::ProxyToxic { .. }
            | FaultRecord::ProxyDown { .. }
            | FaultRecord::ProxyDbFault { .. }),
        ) => local::proxy_fault::revert_record(name, r)
            .and_then(|()| local::proxy_fault::verify_record(name, r)),
        Some(
            r @ (FaultRecord::KubePodsKilled { .. }
            | FaultRecord::KubeNetworkPolicy { .. }
            | FaultRecord::KubeEphemeral { .. }
            | FaultRecord::KubeContainersKilled { .. }
            | FaultRecord::KubeDbProxy { .. }),
        ) => kube::revert_record(kube_client, run_id, name, r)
            .map_err(|e| revert_error(e.to_string())),
        None => revert_unknown(run_id, name),
    }
}

/// Removes whatever any backend may have left for `run_id`'s fault `name` when the
/// journal holds only the intent. Proxy faults need no sweep here: an in-run proxy died
/// with its runner, and a remote one's API is journaled with the intent
/// ([`Fault::planned_record`]), so `recover` reverts it by its record.
fn revert_unknown(run_id: &str, name: &str) -> Result<(), FaultError> {
    local::sweep(run_id, name).map_err(|e| FaultError::Revert {
        fault: name.to_owned(),
        reason: e.to_string(),
    })?;
    let net_error = |e: local::netcmd::NetCmdError| FaultError::Revert {
        fault: name.to_owned(),
        reason: e.to_string(),
    };
    local::nftables::sweep(&local::nftables::table_name(run_id, name)).map_err(net_error)?;
    local::tc::sweep(local::tc::handle_for(run_id, name)).map_err(net_error)
}
