//! Faults: what the engine injects, reverts and verifies. Each carries its own expiry, so a
//! runner that dies cannot leave it live for ever.
//!
//! - [`Fault`] (`fault.rs`): the trait every fault implements;
//! - [`build()`] (`build.rs`): a validated fault and one of its steps become a [`Fault`];
//! - [`FaultContext`] (`context.rs`): what the faults of one run share;
//! - [`FaultRecord`] (`record.rs`): what the journal keeps to revert a live fault;
//! - [`revert_from_journal`] (`revert.rs`): reverting from that record after a crash;
//! - [`FaultError`] (`error.rs`);
//! - the backends: [`local`] (this machine) and [`kube`] (a Kubernetes cluster).

mod build;
mod context;
mod error;
mod fault;
pub mod kube;
pub mod local;
mod record;
mod revert;

pub use build::build;
pub use context::{supervised_command, supervised_launch, FaultContext};
pub use error::FaultError;
pub use fault::Fault;
pub use record::FaultRecord;
pub use revert::{revert_from_journal, revert_from_journal_with};
