//! `chaos-runner recover`: reverts what crashed or killed runs left live.

use std::path::Path;

use crate::exit::Outcome;
use crate::faults::kube::KubeConnector;
use crate::faults::revert_from_journal_with;
use crate::journal::{self, Event, Journal, LiveFault};
use crate::output::Format;

/// Whether a journaled fault provably ended with its runner, and how that is known; `None`
/// when it may still be in effect (then `run` refuses until `recover` has reverted it).
///
/// Only a dead runner's faults can have ended. Checked against the system: its own
/// in-process proxy went with it (toxics and all); a hog or filler whose process is gone
/// (by pid and start time) with nothing left on disk; a toxic, rule or disabled proxy that
/// its standalone proxy's admin API no longer lists; an nftables table or root qdisc that
/// is no longer there; and a kill (nothing to revert). Anything that cannot be checked (an
/// admin API that does not answer, a Kubernetes object) may still be live.
///
/// ```
/// use chaos_runner::faults::FaultRecord;
/// use chaos_runner::journal::LiveFault;
/// let fault = LiveFault {
///     journal: "/tmp/x.jsonl".into(),
///     run_id: "x".into(),
///     experiment: "cpu".into(),
///     fault: "hog".into(),
///     // No process has this pid: the hog and its runner are gone.
///     record: Some(FaultRecord::CpuHog { pid: u32::MAX, start_ticks: 1, cgroups: Vec::new() }),
///     runner_pid: Some(u32::MAX),
/// };
/// assert!(chaos_runner::recover::provably_gone(&fault).is_some());
/// ```
pub fn provably_gone(fault: &LiveFault) -> Option<String> {
    use crate::faults::FaultRecord;
    use crate::sys::proc;
    let runner = fault.runner_pid?;
    if runner_alive(runner) {
        return None; // the runner (or a process that took its pid) is alive
    }
    // A process id of 0 is an intent's plan: the runner died before it knew the process,
    // so nothing about it can be proven here (`recover` finds it by its run id).
    match fault.record.as_ref()? {
        FaultRecord::CpuHog {
            pid,
            start_ticks,
            cgroups,
        }
        | FaultRecord::MemoryHog {
            pid,
            start_ticks,
            cgroups,
        } => (*pid != 0
            && !proc::is_running(*pid, *start_ticks)
            && cgroups.iter().all(|c| !c.exists()))
        .then(|| format!("its process {pid} ended with runner {runner}")),
        FaultRecord::DiskFill {
            pid,
            start_ticks,
            file,
        } => (*pid != 0 && !proc::is_running(*pid, *start_ticks) && !file.exists()).then(|| {
            format!(
                "its process {pid} ended with runner {runner} and {} is gone",
                file.display()
            )
        }),
        FaultRecord::ProxyToxic { api: None, .. } | FaultRecord::ProxyDown { api: None, .. } => {
            Some(format!("the run's own proxy ended with runner {runner}"))
        }
        record @ (FaultRecord::ProxyToxic { api: Some(api), .. }
        | FaultRecord::ProxyDown { api: Some(api), .. }
        | FaultRecord::ProxyDbFault { api, .. }) => {
            crate::faults::local::proxy_fault::verify_record(&fault.fault, record)
                .is_ok()
                .then(|| format!("the proxy at {api} no longer has it"))
        }
        FaultRecord::NetTable { netns, table } => {
            crate::faults::local::nftables::tables(netns.as_deref())
                .is_ok_and(|tables| !tables.contains(table))
                .then(|| format!("nftables table {table} is no longer there"))
        }
        FaultRecord::NetQdisc {
            netns,
            interface,
            handle,
        } => crate::faults::local::tc::root_qdisc(netns.as_deref(), interface)
            .is_ok_and(|(_, root)| root != *handle)
            .then(|| format!("the root qdisc of {interface} is no longer this run's")),
        FaultRecord::ProcessKilled { .. } => Some("a kill leaves nothing to revert".to_owned()),
        _ => None,
    }
}

/// Reverts every live fault in the journals under `state_dir`, journaling each revert;
/// each fault with its result (`Err`: why it is still live). A revert that could not be
/// journaled is passed to `warn`.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("recover-doc-{}", std::process::id()));
/// let kube = chaos_runner::faults::kube::KubeConnector::lazy();
/// let results = chaos_runner::recover::revert_all(&dir, &kube, |_| {}).unwrap();
/// assert!(results.is_empty());
/// ```
pub fn revert_all(
    state_dir: &Path,
    kube: &KubeConnector,
    mut warn: impl FnMut(String),
) -> Result<Vec<Recovery>, journal::JournalError> {
    let live = journal::live_faults(state_dir)?;
    let mut results = Vec::new();
    for fault in live {
        let result =
            revert_from_journal_with(&fault.run_id, &fault.fault, fault.record.as_ref(), kube);
        let event = match &result {
            Ok(()) => Event::Reverted {
                fault: fault.fault.clone(),
            },
            Err(e) => Event::RevertFailed {
                fault: fault.fault.clone(),
                error: e.to_string(),
            },
        };
        if let Err(e) = Journal::open(&fault.journal).and_then(|mut j| j.append(event)) {
            warn(e.to_string());
        }
        results.push(Recovery { fault, result });
    }
    Ok(results)
}

/// One fault `recover` found live, and how its revert went.
#[derive(Debug)]
pub struct Recovery {
    /// The fault, as its journal has it.
    pub fault: LiveFault,
    /// `Err`: why it is still live.
    pub result: Result<(), crate::faults::FaultError>,
}

/// Reverts every live fault in the journals under `state_dir`, journaling each revert.
/// Exit: 0 when nothing is left live, 4 when a fault could not be reverted.
pub fn run(state_dir: &Path, output: Format) -> Outcome {
    run_with(state_dir, output, &KubeConnector::lazy())
}

/// [`run`] with a given Kubernetes client (used only for Kubernetes faults; a lazy one
/// connects from the kubeconfig or in-cluster service account when first needed).
pub fn run_with(state_dir: &Path, output: Format, kube: &KubeConnector) -> Outcome {
    let results = match revert_all(state_dir, kube, |warning| eprintln!("warning: {warning}")) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::NotReverted;
        }
    };
    let failed = results.iter().filter(|r| r.result.is_err()).count();
    match output {
        Format::Text => {
            if results.is_empty() {
                println!("nothing to recover in {}", state_dir.display());
            }
            for Recovery { fault, result } in &results {
                match result {
                    Ok(()) => println!("reverted: {} (run {})", fault.fault, fault.run_id),
                    Err(e) => {
                        eprintln!("NOT REVERTED: {} (run {}): {e}", fault.fault, fault.run_id)
                    }
                }
            }
        }
        Format::Json => {
            let faults: Vec<serde_json::Value> = results
                .iter()
                .map(
                    |Recovery {
                         fault: f,
                         result: r,
                     }| {
                        serde_json::json!({
                            "run_id": f.run_id,
                            "fault": f.fault,
                            "reverted": r.is_ok(),
                            "error": r.as_ref().err().map(|e| e.to_string()),
                        })
                    },
                )
                .collect();
            println!(
                "{}",
                serde_json::json!({ "command": "recover", "reverted_all": failed == 0, "faults": faults })
            );
        }
    }
    if failed == 0 {
        Outcome::Passed
    } else {
        Outcome::NotReverted
    }
}

/// Whether the process `pid` (a run's runner) is alive: neither gone nor a zombie.
///
/// ```
/// assert!(chaos_runner::recover::runner_alive(std::process::id()));
/// assert!(!chaos_runner::recover::runner_alive(u32::MAX));
/// ```
pub fn runner_alive(pid: u32) -> bool {
    matches!(crate::sys::proc::stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}
