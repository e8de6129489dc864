//! The runner's exit codes: a contract scripts and CI rely on.

use std::process::ExitCode;

/// How a command ended.
///
/// ```
/// use chaos_runner::exit::Outcome;
/// assert_eq!(Outcome::InvalidInput.code(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The experiment passed (or the command succeeded).
    Passed,
    /// The steady state or an SLO did not hold.
    Failed,
    /// Aborted by a condition or a signal.
    Aborted,
    /// Bad input: a file, field or flag was invalid. Nothing was injected.
    InvalidInput,
    /// A fault could not be reverted. The worst outcome; always reported loudly.
    NotReverted,
    /// `chaos-runner gate`'s decision, with its own codes (0 proceed, 1 pause, 2 rollback,
    /// 4 unknown; 3 stays invalid input).
    Gate(crate::gate::Decision),
}

impl Outcome {
    /// The numeric exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Failed => 1,
            Outcome::Aborted => 2,
            Outcome::InvalidInput => 3,
            Outcome::NotReverted => 4,
            Outcome::Gate(decision) => decision.exit_code(),
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        ExitCode::from(outcome.code())
    }
}
