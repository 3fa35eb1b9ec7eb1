//! Integration tests that run no cluster: the checker on whole histories and at scale, report
//! snapshots, and bad input on the command line. One test binary, so the harness is linked once
//! for all of them (`ARCHITECTURE.md`, section 7).

#[path = "../common/mod.rs"]
mod common;
#[path = "../../benches/gen/mod.rs"]
mod gen;

mod bad_input;
mod check_histories;
mod check_scale;
mod hostile;
mod layering;
mod report_snapshot;
