//! `chaos-runner`: the chaos experiment runner.
//!
//! The engine, experiment files and fault backends arrive with their own issues; this binary
//! only reports that it is not implemented yet so nobody mistakes it for a working runner.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "chaos-runner {}: the experiment engine is not implemented yet (see issue 3)",
        env!("CARGO_PKG_VERSION")
    );
    // Exit code 3 is the runner's "invalid input" code: nothing was run.
    ExitCode::from(3)
}
