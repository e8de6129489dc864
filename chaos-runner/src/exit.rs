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
    Passed = 0,
    /// The steady state or an SLO did not hold.
    Failed = 1,
    /// Aborted by a condition or a signal.
    Aborted = 2,
    /// Bad input: a file, field or flag was invalid. Nothing was injected.
    InvalidInput = 3,
    /// A fault could not be reverted. The worst outcome; always reported loudly.
    NotReverted = 4,
}

impl Outcome {
    /// The numeric exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        ExitCode::from(outcome.code())
    }
}
