//! The workspace's end-to-end scenarios in one binary: the real runner binary against the
//! real example game server, PostgreSQL and Prometheus, one module per scenario.

mod support;

mod db_latency;
mod db_partition;
mod process_kill;
mod sigterm_proxy_fault;
mod slo_dashboard;
