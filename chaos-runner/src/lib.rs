//! `chaos-runner`: runs YAML chaos experiments against game services, checks SLO abort
//! conditions while faults are live, and always puts the system back.
//!
//! Commands: `validate`, `schema`, `plan`, `run`, `recover`, `doctor`, `proxy`. Fault
//! backends: `faults::local` (this machine) and `faults::kube` (a Kubernetes cluster).

pub mod cli;
pub mod doctor;
pub mod engine;
pub mod events;
pub mod exit;
pub mod faults;
pub mod helper;
pub mod interrupt;
pub mod journal;
pub mod load;
pub mod output;
pub mod plan;
pub mod recover;
pub mod report;
pub mod setup;
pub mod spec;
pub mod stress;
pub mod sys;
pub mod watch;
