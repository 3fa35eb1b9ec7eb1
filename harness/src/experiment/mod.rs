//! The experiment file: its schema, loading with `file:line:col` errors, `--set` overrides,
//! and suites (a directory of experiments run in order).

mod load;
mod network;
mod schema;

pub use load::{load_experiment, load_suite, parse_experiment, ExperimentError, Loaded, Override};
pub use network::*;
pub use schema::*;
