//! `chaos-runner`: runs YAML chaos experiments against game services, checks SLO abort
//! conditions while faults are live, and always puts the system back.
//!
//! This version reads and checks experiment and SLO files (`validate`, `schema`, `plan`),
//! has the crash-safe journal, the CPU hog fault and `recover`; the run engine (inject,
//! watch, abort, revert, report) is still to come.

pub mod cli;
pub mod exit;
pub mod faults;
pub mod journal;
pub mod plan;
pub mod recover;
pub mod spec;
pub mod stress;
