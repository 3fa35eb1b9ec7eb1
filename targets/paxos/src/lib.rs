//! faultline's reference Multi-Paxos key-value node: a distinguished leader with ballots
//! (round, node), phase 1 over every unchosen slot on takeover (adopting the highest-ballot
//! accepted values, filling gaps with no-ops), batched phase 2 per slot, chosen slots announced
//! to learners, in-order execution, durable acceptor state, snapshots, and reads through the
//! log or a leader lease. The protocol, its settings, planted bugs and verdict matrix are in
//! README.md.
//!
//! The harness runs a node with `faultline node paxos --config FILE`, which calls [`run`];
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
    Inspect, PaxosCore, BUG_ACCEPT_LOWER_BALLOT, BUG_ACK_BEFORE_PERSIST, BUG_SKIP_PHASE1_RECOVERY,
    BUG_STALE_LOCAL_READS,
};

/// Planted bugs this node implements (`bugs:` in an experiment); README.md documents each with
/// the rule of Paxos it breaks and the faults that expose it.
pub const KNOWN_BUGS: &[&str] = &[
    BUG_SKIP_PHASE1_RECOVERY,
    BUG_STALE_LOCAL_READS,
    BUG_ACK_BEFORE_PERSIST,
    BUG_ACCEPT_LOWER_BALLOT,
];

faultline_replica::node_api!(PaxosCore: "paxos", Settings, storage::FileStorage);
