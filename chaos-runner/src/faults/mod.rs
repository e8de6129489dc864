//! Faults: what the engine injects, reverts and verifies. Each carries its own expiry, so a
//! runner that dies cannot leave it live for ever.

pub mod local;

use serde::{Deserialize, Serialize};

/// Injecting, reverting or verifying a fault failed.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The fault could not be started.
    #[error("cannot inject {fault}: {reason}")]
    Inject {
        /// Fault name.
        fault: String,
        /// Why.
        reason: String,
    },
    /// The fault could not be removed.
    #[error("cannot revert {fault}: {reason}")]
    Revert {
        /// Fault name.
        fault: String,
        /// Why.
        reason: String,
    },
}

/// What the journal keeps about a live fault so that any later process can revert it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultRecord {
    /// A CPU hog child process.
    CpuHog {
        /// Its process id.
        pid: u32,
        /// Its start time in clock ticks since boot (`/proc/<pid>/stat` field 22), so a
        /// reused pid is never mistaken for the hog.
        start_ticks: u64,
    },
}

/// A fault the engine drives: inject, revert, verify.
pub trait Fault: Send {
    /// Name shown in plans, progress and reports.
    fn name(&self) -> &str;
    /// One line saying exactly what is injected.
    fn describe(&self) -> String;
    /// Injects the fault and returns what the journal must keep to revert it. The engine
    /// journals the intent before calling this, and the record after.
    fn inject(&mut self) -> Result<FaultRecord, FaultError>;
    /// Removes the fault.
    fn revert(&mut self) -> Result<(), FaultError>;
    /// Checks that nothing of the fault is left.
    fn verify_reverted(&self) -> Result<(), FaultError>;
}

/// Reverts a fault known only from the journal (after a crash): by its record when the
/// journal has one, else by finding the fault's processes by run id and name.
pub fn revert_from_journal(
    run_id: &str,
    name: &str,
    record: Option<&FaultRecord>,
) -> Result<(), FaultError> {
    match record {
        Some(FaultRecord::CpuHog { pid, start_ticks }) => {
            local::cpu_hog::kill_if_ours(name, *pid, *start_ticks)
        }
        None => local::cpu_hog::kill_by_run(run_id, name),
    }
}
