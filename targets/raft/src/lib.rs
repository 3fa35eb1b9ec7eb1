//! faultline's reference Raft key-value node: leader election with randomized timeouts,
//! PreVote and CheckQuorum, pipelined log replication with fast backtracking, majority commit,
//! snapshots, and reads through the log, ReadIndex or a leader lease. The protocol, its
//! settings, planted bugs and verdict matrix are in README.md.
//!
//! The harness runs a node with `faultline node raft --config FILE`, which calls [`run`];
//! tests can run nodes in-process with [`serve`].

pub mod core;
pub mod msg;
pub mod settings;
pub mod storage;

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod sim;

pub use crate::settings::{ReadMode, Settings};
pub use crate::storage::Recovered;

pub use crate::core::{
    Inspect, RaftCore, BUG_ACK_BEFORE_PERSIST, BUG_COMMIT_WITHOUT_QUORUM,
    BUG_FORGET_VOTE_ON_RESTART, BUG_LEASE_WITHOUT_MARGIN, BUG_STALE_LOCAL_READS,
};

/// Planted bugs this node implements (`bugs:` in an experiment); README.md documents each with
/// the Raft paper section it violates and the faults that expose it.
pub const KNOWN_BUGS: &[&str] = &[
    BUG_STALE_LOCAL_READS,
    BUG_ACK_BEFORE_PERSIST,
    BUG_COMMIT_WITHOUT_QUORUM,
    BUG_FORGET_VOTE_ON_RESTART,
    BUG_LEASE_WITHOUT_MARGIN,
];

faultline_replica::node_api!(RaftCore: "raft", Settings, storage::FileStorage);
