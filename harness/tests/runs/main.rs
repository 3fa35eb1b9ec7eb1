//! Integration tests on real clusters of reference nodes: runs end to end, network faults,
//! balancers, compare and gate on real reports, report.json against its schema, report.html in
//! Chromium, and nothing left behind after SIGKILL or Ctrl-C. One test binary, so the harness
//! is linked once for all of them (`ARCHITECTURE.md`, section 7).

#[path = "../common/mod.rs"]
mod common;

mod async_loss;
mod balancers;
mod compare;
mod compare_consensus;
mod gate;
mod hostile_clients;
mod kill_anywhere;
mod network_faults;
mod no_leftovers;
mod overlapping_faults;
mod overload;
mod report_html;
mod report_schema;
mod run_end_to_end;
