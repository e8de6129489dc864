//! Faults on this machine.

pub mod cpu_hog;
pub mod netcmd;
pub mod nftables;
pub mod proc;
pub mod proxy;
pub mod proxy_fault;
pub mod tc;
