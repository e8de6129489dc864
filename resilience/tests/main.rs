//! The crate's integration tests in one binary (every test binary is a full link): one
//! module per area. `alloc` is a binary of its own: its counting global allocator would
//! count the other tests' allocations.

mod circuit_breaker;
mod classify;
mod config;
mod layers;
mod model;
