//! faultline: a chaos and high-availability benchmarking harness. The binary's commands are
//! thin wrappers over these modules; see `ARCHITECTURE.md` at the repository root for the map.

/// Histories and their checkers live in the `faultline-check` crate (`checker/`).
pub use faultline_check::{check, history};

pub mod balancer;
pub mod cluster;
pub mod experiment;
pub mod metrics;
pub mod nemesis;
pub mod report;
pub mod run;
pub mod rundir;
pub mod workload;
