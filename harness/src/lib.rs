//! faultline: a chaos and high-availability benchmarking harness. The binary's commands are
//! thin wrappers over these modules; see `ARCHITECTURE.md` at the repository root for the map.

pub mod balancer;
pub mod check;
pub mod cluster;
pub mod experiment;
pub mod history;
pub mod metrics;
pub mod nemesis;
pub mod report;
pub mod run;
pub mod rundir;
pub mod workload;
