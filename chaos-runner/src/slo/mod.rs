//! What the runner writes from an SLO file for the rest of the game's operations:
//! Prometheus recording and alert rules (`rules`), with the calendar's peak hours and
//! maintenance in the PromQL itself, and `promtool` unit tests of them (`rule_tests`).

pub mod rule_tests;
pub mod rules;
