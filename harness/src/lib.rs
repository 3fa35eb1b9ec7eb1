//! faultline: a chaos and high-availability benchmarking harness.
pub mod check;
pub mod history;
pub mod metrics;
