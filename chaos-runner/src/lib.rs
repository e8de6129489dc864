//! `chaos-runner`: runs YAML chaos experiments against game services, checks SLO abort
//! conditions while faults are live, and always puts the system back.
//!
//! Commands: `validate`, `schema`, `plan`, `run`, `recover`, `doctor`, `proxy`. Fault
//! backends: this machine and a Kubernetes cluster.
//!
//! # Embedding
//!
//! What a program embedding the runner uses: [`spec`] (load and check experiment and SLO
//! files: every problem with its file, field and line), [`engine::run`] with its
//! [`engine::RunOptions`] (a run, start to report, telling an [`events::EventSink`] what
//! happens; [`output`] has the text and JSON sinks the command line uses), [`recover`]
//! (revert what a dead run left), [`plan`] and [`doctor`], [`report`] (the run's report and
//! its formats), [`journal`] (where runs are recorded) and [`exit`] (the exit codes).
//!
//! ```no_run
//! use chaos_runner::{engine, output};
//! use std::path::Path;
//!
//! let file = Path::new("experiments/local/db-latency.yaml");
//! let options = engine::RunOptions {
//!     state_dir: chaos_runner::journal::state_dir(None),
//!     recover_first: false,
//!     kube: None,
//! };
//! let outcome = engine::run(file, options, output::sink(output::Format::Json).as_mut());
//! std::process::exit(outcome.code().into());
//! ```
//!
//! The modules hidden from these docs (`cli`, `faults`, `setup`, `stress`, `sys`) are the
//! command line and the runner's own machinery, public only so its integration tests and
//! benches can reach them: not an API to build on.

#![warn(missing_docs)]

#[doc(hidden)]
pub mod cli;
pub mod doctor;
pub mod engine;
pub mod events;
pub mod exit;
#[doc(hidden)]
pub mod faults;
mod helper;
mod interrupt;
pub mod journal;
pub mod load;
pub mod output;
pub mod plan;
pub mod recover;
pub mod report;
#[doc(hidden)]
pub mod setup;
pub mod spec;
#[doc(hidden)]
pub mod stress;
#[doc(hidden)]
pub mod sys;
mod watch;
