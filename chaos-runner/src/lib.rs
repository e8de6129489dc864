//! `chaos-runner`: runs YAML chaos experiments against game services, checks SLO abort
//! conditions while faults are live, and always puts the system back.
//!
//! This version reads and checks experiment and SLO files (`validate`, `schema`); the run
//! engine, journal and fault backends are still to come.

pub mod cli;
pub mod exit;
pub mod spec;
