//! The `chaos-runner` binary: parses the command line and exits with the run's outcome.

use clap::Parser;
use std::process::ExitCode;

use chaos_runner::cli::{run, Cli};
use chaos_runner::exit::Outcome;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Outcome::Passed.into()
                }
                _ => Outcome::InvalidInput.into(),
            };
        }
    };
    run(cli).into()
}
