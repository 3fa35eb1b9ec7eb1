//! Three real Raft nodes on loopback, each on its own thread and runtime, talking
//! through real sockets and fsyncing into temporary directories: the consensus contract of
//! `faultline_replica::testkit::consensus`.

use faultline_replica::testkit::consensus;
use faultline_replica::testkit::ServeFn;

const SERVE: ServeFn<faultline_raft::Error> = |c, stop| Box::pin(faultline_raft::serve(c, stop));

#[test]
fn three_nodes_replicate_fail_over_and_recover() {
    consensus::replicate_fail_over_and_recover(SERVE);
}

#[test]
fn followers_forward_and_lease_reads_work() {
    consensus::forward_lease_reads_and_restart(SERVE);
}

/// Prints closed-loop write throughput: run it with
/// `cargo test -p faultline-raft --release --test cluster -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_report() {
    consensus::throughput_report(SERVE, "RAFT_CLIENTS");
}
