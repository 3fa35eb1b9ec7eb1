//! Ballots, log values, peer messages and durable writes of the Multi-Paxos protocol.
//!
//! Everything here crosses a process boundary (postcard over the peer transport, or records in
//! the data directory), so the types are plain data without `skip_serializing_if` tricks.

use faultline_replica::{Command, KvState};
use serde::{Deserialize, Serialize};

pub use faultline_replica::forward::{Forward, ForwardReply};
pub use faultline_replica::{FailKind, FwdOp, OpResult};

/// A ballot: `(round, node)`, ordered by round, then by the proposing node's position in the
/// member list (1-based; 0 only in [`Ballot::ZERO`]). Each node owns the ballots with its own
/// `node`, so no two nodes ever propose in the same ballot.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    pub round: u64,
    pub node: u32,
}

impl Ballot {
    /// Below every real ballot: nothing promised, nothing accepted.
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };

    /// The ballot as one number that orders like the ballot, for `status.term` and the
    /// harness's one-leader-per-term check: `round * 1000 + node` (so ballot (7, n2) is 7002).
    pub fn as_term(self) -> u64 {
        self.round * 1000 + u64::from(self.node)
    }
}

impl std::fmt::Display for Ballot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.round, self.node)
    }
}

/// What a slot holds once chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// Fills a gap found in phase 1 (nothing accepted there by a quorum it heard).
    Noop,
    /// A client write or cas. `tag` is unique per proposal (the proposer's ballot and a
    /// counter), so a leader can tell its own proposal from another value in the same slot.
    Cmd { cmd: Command, tag: u64 },
    /// A client read through the log (`read: log`); no effect on the state.
    Read { key: String, tag: u64 },
}

/// What an acceptor reports for one slot in its promise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    pub slot: u64,
    /// The ballot the value was accepted in; `None`: this node knows the value is chosen.
    pub ballot: Option<Ballot>,
    pub value: Value,
}

/// Messages between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    Prepare(Prepare),
    Promise(Promise),
    Nack(Nack),
    Accept(Accept),
    Accepted(Accepted),
    Learn(Learn),
    Snapshot(CatchUpSnapshot),
    Forward(Forward),
    ForwardReply(ForwardReply),
    /// A node that has never been an acceptor asks what its peers hold (amnesia guard).
    Probe,
    ProbeReply(ProbeReply),
}

/// Phase 1a: promise `ballot` and report what you accepted from slot `from_slot` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepare {
    pub ballot: Ballot,
    #[serde(rename = "from")]
    pub from_slot: u64,
}

/// Phase 1b. `snapshot`: the acceptor's state folded through a slot at or past `from_slot`
/// (those slots' values are gone, but they are chosen and executed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promise {
    pub ballot: Ballot,
    #[serde(rename = "from")]
    pub from_slot: u64,
    pub reported: Vec<Reported>,
    pub snapshot: Option<(u64, KvState)>,
}

/// The receiver promised (or accepted in) a higher ballot: the sender is not leading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nack {
    pub ballot: Ballot,
    pub promised: Ballot,
}

/// Phase 2a for slots `first..first + values.len()`; with no values, a heartbeat. `chosen`:
/// the leader's chosen prefix (every slot through it is chosen and the leader knows its
/// value); `last`: the highest slot the leader has proposed; `round`: its heartbeat round,
/// echoed in the reply (leases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accept {
    pub ballot: Ballot,
    pub first: u64,
    pub values: Vec<Value>,
    pub chosen: u64,
    pub last: u64,
    pub round: u64,
}

/// Phase 2b: slots `first..first + count` accepted in `ballot` (count 0: a heartbeat answer).
/// `chosen`: the acceptor's own chosen prefix; `gap`: it saw slots chosen that it cannot fill
/// from what it accepted, and asks for their values ([`Msg::Learn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub ballot: Ballot,
    pub first: u64,
    pub count: u64,
    pub chosen: u64,
    pub gap: bool,
    pub round: u64,
}

/// Chosen values for slots `first..`, sent to a node that reported a gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learn {
    pub ballot: Ballot,
    pub first: u64,
    pub values: Vec<Value>,
}

/// The leader's state folded through `slot`, for a node behind its snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatchUpSnapshot {
    pub ballot: Ballot,
    pub slot: u64,
    pub state: KvState,
}

/// The answer to [`Msg::Probe`]: the peer's promise, and whether it holds nothing at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReply {
    pub promised: Ballot,
    pub empty: bool,
}

faultline_replica::forward_messages!(Msg);

/// The acceptor's promise and whether this data directory may act as an acceptor (see
/// README.md, "Amnesia guard").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub promised: Ballot,
    pub acceptor: bool,
}

/// A durable write requested by the core. The driver performs every write of an iteration,
/// fsynced, before any message or reply of that iteration leaves the node.
#[derive(Debug, Clone, PartialEq)]
pub enum Persist {
    /// Replace the promise and acceptor flag.
    Meta(Meta),
    /// `value` accepted in `ballot` at `slot` (replacing an earlier acceptance there).
    Accept {
        slot: u64,
        ballot: Ballot,
        value: Value,
    },
    /// `value` is chosen at `slot` (learned from the leader, not from an acceptance).
    Learn { slot: u64, value: Value },
    /// Every slot through `through` is chosen; those without a `Learn` record hold the value
    /// last accepted there (the leader of the accepting ballot announced them).
    Chosen { through: u64 },
    /// Replace the snapshot with the state after executing every slot through `slot`, and the
    /// log with `tail` (what is kept of slots after it).
    Snapshot {
        slot: u64,
        state: KvState,
        tail: Vec<Persist>,
    },
}
