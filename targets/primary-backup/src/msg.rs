//! Peer messages and durable writes of the primary-backup protocol.

use faultline_replica::{Command, KvState};
use serde::{Deserialize, Serialize};

/// Messages between nodes. Every message carries the sender's view; a receiver that knows a
/// higher view fences the sender (answers [`Msg::Reject`]) and a sender that learns of a higher
/// view steps down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    Heartbeat(Heartbeat),
    HeartbeatAck(HeartbeatAck),
    Append(Append),
    AppendAck(AppendAck),
    Probe(Probe),
    ProbeReply(ProbeReply),
    NewView(NewView),
    NewViewAck(NewViewAck),
    Reject(Reject),
}

/// Primary to every node, every `heartbeat`: liveness, membership, commit point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub view: u64,
    /// The view's members, primary first.
    pub members: Vec<String>,
    pub commit: u64,
    pub last: u64,
    /// Heartbeat round, echoed in the ack (lease bookkeeping).
    pub round: u64,
}

/// Any node to the primary. `in_sync`: the node is a backup of this view with its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    pub view: u64,
    pub round: u64,
    pub in_sync: bool,
    pub last: u64,
}

/// Primary to a backup: log entries `first, first+1, ...` and the commit point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Append {
    pub view: u64,
    #[serde(rename = "from")]
    pub first: u64,
    pub entries: Vec<Command>,
    pub commit: u64,
}

/// Backup to primary: it durably holds the log up to `last`. `gap`: entries were refused
/// because earlier ones are missing (resend from `last + 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendAck {
    pub view: u64,
    pub last: u64,
    pub gap: bool,
    pub in_sync: bool,
}

/// A backup about to take over asks every node what it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub view: u64,
    pub nonce: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReply {
    pub view: u64,
    pub nonce: u64,
    /// The responder is the primary of `view`, or heard its heartbeat recently.
    pub primary_alive: bool,
    /// The responder's confirmed member list of `view`, if it has one.
    pub members: Option<Vec<String>>,
    /// The responder is itself trying to take over.
    pub candidate: bool,
}

/// A primary starting `view` to the nodes it wants as backups: install this state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewView {
    pub view: u64,
    /// Members the primary invited (itself first); the final list comes with heartbeats.
    pub members: Vec<String>,
    pub index: u64,
    pub state: KvState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewViewAck {
    pub view: u64,
}

/// "I have seen `view`, which is newer than yours."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    pub view: u64,
}

impl Msg {
    pub fn view(&self) -> u64 {
        match self {
            Msg::Heartbeat(Heartbeat { view, .. })
            | Msg::HeartbeatAck(HeartbeatAck { view, .. })
            | Msg::Append(Append { view, .. })
            | Msg::AppendAck(AppendAck { view, .. })
            | Msg::Probe(Probe { view, .. })
            | Msg::ProbeReply(ProbeReply { view, .. })
            | Msg::NewView(NewView { view, .. })
            | Msg::NewViewAck(NewViewAck { view })
            | Msg::Reject(Reject { view }) => *view,
        }
    }
}

/// One log entry on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: u64,
    pub cmd: Command,
}

/// A durable write requested by the core.
#[derive(Debug, Clone, PartialEq)]
pub enum Persist {
    /// The highest view seen.
    View(u64),
    /// Append one entry to the log (consecutive appends share one fsync).
    Append(Entry),
    /// Replace state and log with a snapshot of the state after entry `index`.
    Install { index: u64, state: KvState },
    /// Fold the log up to `index` into a snapshot (`state`), keeping the entries after it
    /// (`tail`). The snapshot file holds the tail too and is written before the log is emptied,
    /// so a crash in between leaves the new snapshot plus the old log, whose entries the
    /// snapshot already holds are skipped on recovery.
    Compact {
        index: u64,
        state: KvState,
        tail: Vec<Entry>,
    },
}
