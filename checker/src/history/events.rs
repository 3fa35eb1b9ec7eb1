//! The run's event journal (`events.jsonl`): faults applied and healed, role and term changes
//! seen by the observer, node starts and exits, the run's phases, and what the client's
//! balancer did (ejections, re-admissions, its counters once a second).

use faultline_protocol::Role;
use serde::{Deserialize, Serialize};

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Nanoseconds since the run started (same clock as the history).
    pub t: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The phases of a run, in order; journaled as `phase` events by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    /// Nodes start and the cluster becomes ready.
    Launch,
    /// The workload runs and faults fire; metrics count only this window.
    Load,
    /// Every fault still in force is undone.
    Heal,
    /// A write, then the final read of every key (lost writes show here).
    Recover,
    /// The cluster is stopped.
    Stop,
}

impl RunPhase {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunPhase::Launch => "launch",
            RunPhase::Load => "load",
            RunPhase::Heal => "heal",
            RunPhase::Recover => "recover",
            RunPhase::Stop => "stop",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The load starts; `t` is the run clock's origin plus the launch time.
    RunStart {
        experiment: String,
        seed: u64,
        /// Wall-clock time of the run clock's origin (`t` = 0), in milliseconds since the Unix
        /// epoch: lines up the run with node logs and with the moment a harness was killed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unix_ms: Option<u64>,
    },
    /// A fault is about to be applied (journaled *before* it is applied). `id` pairs it with
    /// its `fault_end`.
    FaultStart {
        id: u64,
        /// Fault verb: kill, terminate, pause, restart, crash-loop, amnesia, ...
        fault: String,
        /// The selector as written (`leader`, `random`, `node: n2`).
        selector: String,
        /// The nodes it resolved to when it fired (for a partition: the side cut off).
        nodes: Vec<String>,
        /// Network faults: the directed flows cut or degraded (`n1->n2`, `clients->n3`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        links: Vec<String>,
    },
    /// The fault journaled as `id` has taken effect (the kill was reaped, the SIGSTOP sent,
    /// the proxies set). Failover times count from here. `late_us`: how long after its
    /// scheduled time it took effect (absent for faults fired by hand).
    FaultApplied {
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        late_us: Option<u64>,
    },
    /// A scheduled fault found no node to act on (no known leader, every node down, ...).
    FaultSkipped {
        fault: String,
        selector: String,
        reason: String,
    },
    /// A fault was healed (restarted, resumed, ...).
    FaultEnd {
        id: u64,
        fault: String,
        nodes: Vec<String>,
    },
    /// The observer saw a node report a new role, term or leader.
    Role {
        node: String,
        role: Role,
        term: u64,
        leader: Option<String>,
    },
    /// The observer could not reach a node's status endpoint (first failure after success).
    Unreachable { node: String },
    /// A node process started: at launch, and on every restart by a fault or by the healing.
    NodeStart { node: String, pid: u32 },
    /// A node process exited. `expected` is false when no fault or shutdown caused it.
    NodeExit {
        node: String,
        status: String,
        expected: bool,
    },
    /// The balancer's outlier detection took `node` out of every pick for `duration_ms`; this
    /// is its `count`th ejection.
    Ejected {
        node: String,
        duration_ms: f64,
        count: u32,
    },
    /// An ejected node's time was up: the balancer picks it again.
    Readmitted { node: String },
    /// The balancer's counters since the load started, per node in view order: journaled when
    /// the load starts, once a second during it, and when it ends (`last: true`).
    BalancerStats {
        nodes: Vec<NodeStats>,
        /// Operations started (first tries).
        ops: u64,
        /// Tries after the first.
        retries: u64,
        /// Retries the retry budget refused.
        retries_denied: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        last: bool,
    },
    /// A phase of the run begins: `launch`, `load`, `heal`, `recover` (a write, then the final
    /// reads of every key), `stop`.
    Phase { name: String },
    /// The run ended; `aborted` when it was interrupted.
    RunEnd {
        aborted: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// Load an `events.jsonl`, ignoring a torn last line.
pub fn load_events(path: &std::path::Path) -> Result<Vec<Event>, super::HistoryError> {
    let mut events: Vec<Event> = super::read_jsonl::<Event>(path)?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    // Role changes are journaled when the observer sees them but dated when the node says
    // they happened, so the file is not quite in time order; a stable sort restores it.
    events.sort_by_key(|e| e.t);
    Ok(events)
}

impl EventKind {
    /// The journal entry that opens `phase`.
    pub fn phase(phase: RunPhase) -> Self {
        EventKind::Phase {
            name: phase.as_str().into(),
        }
    }

    /// True for the entry that opens `phase`.
    pub fn is_phase(&self, phase: RunPhase) -> bool {
        matches!(self, EventKind::Phase { name } if name == phase.as_str())
    }
}

/// Tries by how they ended, for one node or summed over the nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TryCounts {
    /// Tries sent.
    pub sent: u64,
    /// Answered with success.
    pub served: u64,
    /// Definite failures about the operation itself (cas mismatch, bad request).
    pub rejected: u64,
    /// Definite failures because the node is not the leader.
    pub not_leader: u64,
    /// Definite failures because the node could not serve (no quorum, recovering).
    pub unavailable: u64,
    /// No connection could be made: the node is down.
    pub refused: u64,
    /// Timeouts, lost connections and indefinite errors.
    pub indefinite: u64,
    /// Dropped before any reply (the client task was cancelled).
    pub abandoned: u64,
    /// Tries spent on a dead or non-leader node: `not_leader + refused`.
    pub wasted: u64,
}

impl std::ops::AddAssign for TryCounts {
    fn add_assign(&mut self, o: TryCounts) {
        self.sent += o.sent;
        self.served += o.served;
        self.rejected += o.rejected;
        self.not_leader += o.not_leader;
        self.unavailable += o.unavailable;
        self.refused += o.refused;
        self.indefinite += o.indefinite;
        self.abandoned += o.abandoned;
        self.wasted += o.wasted;
    }
}

/// What one node got from the balancer, at the moment of a snapshot (journaled as
/// `balancer_stats`, reported in `report.json`'s `balancer`). Every count is of
/// tries (a retried operation counts once per node it went to).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStats {
    pub node: String,
    #[serde(flatten)]
    pub tries: TryCounts,
    /// In flight at the snapshot.
    pub outstanding: u64,
    /// Mean latency of the served tries.
    pub mean_served_ms: f64,
    /// Times outlier detection ejected the node.
    pub ejections: u32,
    /// Ejected at the snapshot.
    pub ejected: bool,
}
