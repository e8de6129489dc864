//! Faults on this machine.

pub mod cpu_hog;
pub mod db_fault;
pub mod dbproto;
pub mod proc;
pub mod proxy;
pub mod proxy_fault;
