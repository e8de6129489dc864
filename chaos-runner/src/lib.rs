//! `chaos-runner`: runs YAML chaos experiments against game services, checks SLO abort
//! conditions while faults are live, and always puts the system back.
//!
//! Commands: `validate`, `schema`, `plan`, `run`, `recover`. One fault type so far (the
//! local CPU hog); the other fault backends come with their own work.

pub mod cli;
pub mod engine;
pub mod exit;
pub mod faults;
pub mod journal;
pub mod load;
pub mod plan;
pub mod recover;
pub mod report;
pub mod setup;
pub mod spec;
pub mod stress;
pub mod watch;
