//! This machine's processes, below the faults and the setup services that use them:
//! reading `/proc` (`proc`), cgroups v2 (`cgroup`), starting the runner's own helper children (`child`) and
//! supervising long-running commands (`supervisor`).

pub mod cgroup;
pub mod child;
pub mod proc;
pub mod supervisor;
