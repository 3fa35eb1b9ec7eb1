//! Peer messages and durable writes of the primary-backup protocol.

use faultline_replica::{Command, KvState};
use serde::{Deserialize, Serialize};

/// Messages between nodes. Every message carries the sender's view; a receiver that knows a
/// higher view fences the sender (answers [`Msg::Reject`]) and a sender that learns of a higher
/// view steps down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    /// Primary to every node, every `heartbeat`: liveness, membership, commit point.
    Heartbeat {
        view: u64,
        /// The view's members, primary first.
        members: Vec<String>,
        commit: u64,
        last: u64,
        /// Heartbeat round, echoed in the ack (lease bookkeeping).
        round: u64,
    },
    /// Any node to the primary. `in_sync`: the node is a backup of this view with its stream.
    HeartbeatAck {
        view: u64,
        round: u64,
        in_sync: bool,
        last: u64,
    },
    /// Primary to a backup: log entries `from, from+1, ...` and the commit point.
    Append {
        view: u64,
        from: u64,
        entries: Vec<Command>,
        commit: u64,
    },
    /// Backup to primary: it durably holds the log up to `last`. `gap`: entries were refused
    /// because earlier ones are missing (resend from `last + 1`).
    AppendAck {
        view: u64,
        last: u64,
        gap: bool,
        in_sync: bool,
    },
    /// A backup about to take over asks every node what it knows.
    Probe {
        view: u64,
        nonce: u64,
    },
    ProbeReply {
        view: u64,
        nonce: u64,
        /// The responder is the primary of `view`, or heard its heartbeat recently.
        primary_alive: bool,
        /// The responder's confirmed member list of `view`, if it has one.
        members: Option<Vec<String>>,
        /// The responder is itself trying to take over.
        candidate: bool,
    },
    /// A primary starting `view` to the nodes it wants as backups: install this state.
    NewView {
        view: u64,
        /// Members the primary invited (itself first); the final list comes with heartbeats.
        members: Vec<String>,
        index: u64,
        state: KvState,
    },
    NewViewAck {
        view: u64,
    },
    /// "I have seen `view`, which is newer than yours."
    Reject {
        view: u64,
    },
}

impl Msg {
    pub fn view(&self) -> u64 {
        match self {
            Msg::Heartbeat { view, .. }
            | Msg::HeartbeatAck { view, .. }
            | Msg::Append { view, .. }
            | Msg::AppendAck { view, .. }
            | Msg::Probe { view, .. }
            | Msg::ProbeReply { view, .. }
            | Msg::NewView { view, .. }
            | Msg::NewViewAck { view }
            | Msg::Reject { view } => *view,
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
