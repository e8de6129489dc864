//! The one error of injecting, reverting and verifying faults.

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

impl FaultError {
    /// The fault `fault` could not be started, because `reason`.
    ///
    /// ```
    /// let e = chaos_runner::faults::FaultError::inject("slow-saves", "proxy not found");
    /// assert_eq!(e.to_string(), "cannot inject slow-saves: proxy not found");
    /// ```
    pub fn inject(fault: &str, reason: impl Into<String>) -> FaultError {
        FaultError::Inject {
            fault: fault.to_owned(),
            reason: reason.into(),
        }
    }

    /// The fault `fault` could not be removed, because `reason`.
    ///
    /// ```
    /// let e = chaos_runner::faults::FaultError::revert("slow-saves", "API down");
    /// assert_eq!(e.to_string(), "cannot revert slow-saves: API down");
    /// ```
    pub fn revert(fault: &str, reason: impl Into<String>) -> FaultError {
        FaultError::Revert {
            fault: fault.to_owned(),
            reason: reason.into(),
        }
    }
}
