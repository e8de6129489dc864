//! `chaos-runner`: runs YAML chaos experiments against game services, checks SLO abort
//! conditions while faults are live, and always puts the system back.
//!
//! Commands: `validate`, `schema`, `plan`, `run`, `gate`, `gameday`, `recover`, `doctor`,
//! `proxy`. Fault
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
//!     deadline: None,
//! };
//! let outcome = engine::run(file, options, output::sink(output::Format::Json).as_mut());
//! std::process::exit(outcome.code().into());
//! ```
//!
//! The runner's own machinery (`faults`, `setup`, `stress`, `sys`) is crate-private; the
//! `internals` feature makes it public for the crate's integration tests, benches and the
//! workspace's end-to-end tests only: not an API to build on. `cli` is the binary's.

#![warn(missing_docs)]
// Without the `internals` feature the runner's machinery is crate-private, and what only
// its integration tests reach (accessors, test probes) would read as dead code. With the
// feature (every test build, and clippy over all targets) those modules are public and
// the lints see what they always saw.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]

#[doc(hidden)]
pub mod cli;
pub mod doctor;
pub mod engine;
pub mod events;
pub mod exit;
pub mod exporter;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod faults;
#[cfg(not(feature = "internals"))]
pub(crate) mod faults;
pub mod gameday;
pub mod gate;
mod helper;
mod interrupt;
pub mod journal;
pub mod load;
pub mod output;
pub mod plan;
pub mod recover;
pub mod redact;
pub mod report;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod setup;
#[cfg(not(feature = "internals"))]
pub(crate) mod setup;
pub mod slo;
pub mod spec;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod stress;
#[cfg(not(feature = "internals"))]
pub(crate) mod stress;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod sys;
#[cfg(not(feature = "internals"))]
pub(crate) mod sys;
mod watch;
