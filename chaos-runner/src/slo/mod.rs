//! What the runner writes from an SLO file for the rest of the game's operations:
//! Prometheus recording and alert rules (`rules`), with the calendar's peak hours and
//! maintenance in the PromQL itself, `promtool` unit tests of them (`rule_tests`), and a
//! Grafana dashboard of their series (`dashboard`); `write` puts each in a file or on stdout.

pub mod dashboard;
pub mod rule_tests;
pub mod rules;
pub mod write;
