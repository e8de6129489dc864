//! The runner's integration tests in one binary (every test binary is a full link of the
//! runner and its dependencies): one module per area. `scripts/test` runs them with
//! cargo-nextest, each test in its own process. `kube_signal` is a binary of its own: it
//! sends SIGTERM to its whole process.

mod kube_fake;
mod support;

mod dbproto;
mod docs;
mod gameday;
mod gate;
mod kube_cluster;
mod kube_requests;
mod kube_runs;
mod load;
mod load_scenario;
mod load_websocket;
mod network;
mod process;
mod proxy_cli;
mod recover;
mod resources;
mod run;
mod run_output;
mod setup;
mod slo;
mod slo_import;
mod slo_rules;
mod stress_helpers;
mod validate;
