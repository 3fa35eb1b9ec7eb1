//! Peer messages and durable writes of the Raft protocol.
//!
//! Everything here crosses a process boundary (postcard over the peer transport, or records in
//! the data directory), so the types are plain data without `skip_serializing_if` tricks.

use faultline_replica::{Command, KvState};
use serde::{Deserialize, Serialize};

pub use faultline_replica::forward::{Forward, ForwardReply};
pub use faultline_replica::{FailKind, FwdOp, OpResult};

/// What a log entry does when it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryOp {
    /// Appended by every new leader (Raft §8): committing it commits everything before it and
    /// tells the leader its commit index is current.
    Noop,
    /// A client write or cas.
    Cmd(Command),
    /// A client read through the log (`read: log`); no effect on the state.
    Read { key: String },
}

/// One log entry (its index is implied by its position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub op: EntryOp,
}

/// Messages between nodes. Every message but the forwarding ones carries the sender's term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    Vote(Vote),
    VoteReply(VoteReply),
    Append(Append),
    AppendReply(AppendReply),
    Snapshot(InstallSnapshot),
    Forward(Forward),
    ForwardReply(ForwardReply),
    /// A node that has never been a voter asks what its peers hold (bootstrap guard).
    Probe,
    ProbeReply(ProbeReply),
}

/// RequestVote (§5.2), or a PreVote (thesis §9.6) when `pre`: then `term` is the term the
/// sender would campaign in, and nobody changes state on receiving it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub term: u64,
    pub pre: bool,
    pub last_index: u64,
    pub last_term: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteReply {
    pub term: u64,
    pub pre: bool,
    pub granted: bool,
}

/// AppendEntries (§5.3). `last`: the leader's last index when it sent this (a restarted node
/// with an empty data directory becomes a voter once it holds that much). `round`: the
/// leader's heartbeat round, echoed in the reply (ReadIndex and leases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Append {
    pub term: u64,
    pub prev_index: u64,
    pub prev_term: u64,
    pub entries: Vec<Entry>,
    pub commit: u64,
    pub last: u64,
    pub round: u64,
}

/// `success`: the follower's log matches the leader's through `index`. Otherwise `index` is
/// the rejected `prev_index` and `hint_index`/`hint_term` drive fast backtracking: the
/// follower's first index of its conflicting term (`hint_term`), or its last index + 1 when
/// its log is too short (`hint_term: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReply {
    pub term: u64,
    pub success: bool,
    pub index: u64,
    pub hint_index: u64,
    pub hint_term: Option<u64>,
    pub round: u64,
}

/// InstallSnapshot (§7): the whole state machine after entry `index` (of term `snap_term`);
/// `last` and `round` as in [`Append`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallSnapshot {
    pub term: u64,
    pub index: u64,
    pub snap_term: u64,
    pub state: KvState,
    pub last: u64,
    pub round: u64,
}

/// The answer to [`Msg::Probe`]: the peer's term and last log index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReply {
    pub term: u64,
    pub last: u64,
}

/// Term, vote, and whether this data directory may vote (see `README.md`, "Amnesia guard").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<String>,
    pub voter: bool,
}

/// A durable write requested by the core. The driver performs every write of an iteration,
/// fsynced, before any message or reply of that iteration leaves the node.
#[derive(Debug, Clone, PartialEq)]
pub enum Persist {
    /// Replace term, vote and voter flag.
    Hard(HardState),
    /// Write the entry at `index`, replacing it and everything after it if present.
    Append { index: u64, entry: Entry },
    /// Replace the snapshot with the state after entry `index` (of term `term`), and the log
    /// with `tail` (the entries from `index + 1` on).
    Snapshot {
        index: u64,
        term: u64,
        state: KvState,
        tail: Vec<Entry>,
    },
}

faultline_replica::forward_messages!(Msg);
