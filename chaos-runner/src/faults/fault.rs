//! The trait every fault implements: inject, revert, verify.

use super::kube::KubeError;
use super::{FaultError, FaultRecord};

/// A fault the engine drives: inject, revert, verify.
pub trait Fault: Send {
    /// Name shown in plans, progress and reports.
    fn name(&self) -> &str;
    /// One line saying exactly what is injected.
    fn describe(&self) -> String;
    /// Injects the fault and returns what the journal must keep to revert it. The engine
    /// journals the intent before calling this, and the record after.
    fn inject(&mut self) -> Result<FaultRecord, FaultError>;
    /// What the journal should keep with the intent, when the fault knows before
    /// injecting how it will be found (e.g. a remote proxy toxic whose name is fixed), so
    /// `recover` can revert it even if the runner dies during the injection.
    fn planned_record(&self) -> Option<FaultRecord> {
        None
    }
    /// Removes the fault.
    fn revert(&mut self) -> Result<(), FaultError>;
    /// Checks that nothing of the fault is left.
    fn verify_reverted(&self) -> Result<(), FaultError>;
    /// Checks, before anything is touched, that the fault can run here (e.g. that the
    /// kernel has the qdisc it needs). The default resolves [`Fault::targets`], so a
    /// Kubernetes fault with nothing to hit or a refused pick fails before anything
    /// changes; faults without targets check nothing.
    fn preflight(&self) -> Result<(), FaultError> {
        self.targets()
            .unwrap_or(Ok(Vec::new()))
            .map(|_| ())
            .map_err(|e| FaultError::Inject {
                fault: self.name().to_owned(),
                reason: e.to_string(),
            })
    }
    /// Whether revert puts the system back (false: e.g. a process the runner could not
    /// restart was killed by request); the report says so.
    fn revertible(&self) -> bool {
        true
    }
    /// What the fault measured (name, value), copied into the report after revert (e.g.
    /// a supervised command's outage, a cgroup's peak memory).
    fn measurements(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// What the fault would hit if injected now (`namespace/pod`), resolved read-only;
    /// `None` for faults whose target is fixed by the selector alone (local ones).
    fn targets(&self) -> Option<Result<Vec<String>, KubeError>> {
        None
    }
}
