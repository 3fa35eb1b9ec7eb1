//! Three real Multi-Paxos nodes on loopback, each on its own thread and runtime, talking
//! through real sockets and fsyncing into temporary directories: the consensus contract of
//! `faultline_replica::testkit::consensus` (the ignored `throughput_report` prints
//! closed-loop write throughput with `--release -- --ignored --nocapture`).

faultline_replica::consensus_tests!(faultline_paxos, "PAXOS_CLIENTS");
