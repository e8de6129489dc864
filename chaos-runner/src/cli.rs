//! The command line: `validate`, `schema` (and, as they land, `plan`, `run`, `recover`).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

use crate::exit::Outcome;
use crate::spec;

/// Runs YAML chaos experiments against game services and always puts the system back.
#[derive(Debug, Parser)]
#[command(name = "chaos-runner", version, about)]
pub struct Cli {
    /// Output for machines (`json`) or people (`text`, the default).
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable text.
    Text,
    /// A stable JSON document on stdout.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check experiment and SLO files; every problem is reported with file, field and line.
    Validate {
        /// Files to check (experiments or SLO sets, told apart by `kind`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of experiment files (or SLO files with `--slo`).
    Schema {
        /// The SLO file schema instead.
        #[arg(long)]
        slo: bool,
    },
}

/// Runs the command line and returns its outcome.
pub fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Validate { files } => validate(&files, cli.output),
        Command::Schema { slo } => {
            println!(
                "{}",
                if slo {
                    spec::slo_schema()
                } else {
                    spec::experiment_schema()
                }
            );
            Outcome::Passed
        }
    }
}

fn validate(files: &[PathBuf], output: Output) -> Outcome {
    let mut results = Vec::new();
    for file in files {
        let errors: Vec<spec::SpecError> = match spec::document_kind(file) {
            Err(e) => vec![e],
            Ok(kind) if kind == "SLOSet" => match spec::load_slo_set(file) {
                Ok(_) => Vec::new(),
                Err(e) => e.0,
            },
            Ok(_) => match spec::load_experiment(file) {
                Ok(_) => Vec::new(),
                Err(e) => e.0,
            },
        };
        results.push((file.display().to_string(), errors));
    }
    let ok = results.iter().all(|(_, e)| e.is_empty());
    match output {
        Output::Text => {
            for (file, errors) in &results {
                if errors.is_empty() {
                    println!("ok: {file}");
                }
                for e in errors {
                    eprintln!("error: {e}");
                }
            }
        }
        Output::Json => {
            let files: Vec<serde_json::Value> = results
                .iter()
                .map(|(file, errors)| {
                    serde_json::json!({
                        "file": file,
                        "valid": errors.is_empty(),
                        "errors": errors.iter().map(|e| serde_json::json!({
                            "field": e.field,
                            "line": e.location.map(|l| l.0),
                            "column": e.location.map(|l| l.1),
                            "message": e.message,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({ "command": "validate", "valid": ok, "files": files })
            );
        }
    }
    if ok {
        Outcome::Passed
    } else {
        Outcome::InvalidInput
    }
}
