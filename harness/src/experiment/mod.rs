//! The experiment file: its schema, loading with `file:line:col` errors, `--set` overrides,
//! and suites (a directory of experiments run in order).

mod balancer;
mod faults;
mod load;
mod network;
mod schema;
mod target;
mod workload;

pub use balancer::*;
pub use faults::*;
pub use load::{load_experiment, load_suite, parse_experiment, ExperimentError, Loaded, Override};
pub use network::*;
pub use schema::*;
pub use target::*;
pub use workload::*;
