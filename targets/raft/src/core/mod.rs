//! The pure Raft state machine: elections, replication, commit, snapshots, reads and client
//! requests. No IO and no clock: the driver feeds inputs with the current time and performs the
//! [`Persist`] writes, messages and replies the core emits (persist first: everything written
//! in one iteration is durable before anything of that iteration leaves the node). Section
//! numbers refer to the Raft paper (Ongaro and Ousterhout, 2014) and, as "thesis", to Ongaro's
//! dissertation (2014).
//!
//! This file holds the state, the log, role changes, applying and timers; `election` the
//! voting, `replication` AppendEntries/InstallSnapshot on both sides and the commit rule,
//! `client` client requests, forwarding and the three read paths.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use faultline_protocol::Role;
use faultline_replica::cluster::Cluster;
use faultline_replica::dispatch::Handlers;
use faultline_replica::forward::{applied_result, failure, ForwardState, ForwardingCore, Waiter};
use faultline_replica::node::Start;
use faultline_replica::probe::EmptyProbe;
use faultline_replica::settings::AsConsensus;
use faultline_replica::timing::Timing;
use faultline_replica::{Core, Input, KvState, Millis, Outbox};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::msg::{Entry, EntryOp, FailKind, HardState, Msg, OpResult, Persist, ProbeReply};
use crate::settings::Settings;

mod client;
mod election;
mod replication;

/// Planted bug: every node answers reads from its own applied state (§8: reads must not
/// return stale data).
pub const BUG_STALE_LOCAL_READS: &str = "stale-local-reads";
/// Planted bug: log writes are buffered in user space and never fsynced, so nodes acknowledge
/// entries that a crash loses (§5.3 / Figure 2: persist before responding to RPCs).
pub const BUG_ACK_BEFORE_PERSIST: &str = "ack-before-persist";
/// Planted bug: the leader commits (applies and acknowledges) entries as soon as they are in
/// its own log, without a majority (§5.3, §5.4.2).
pub const BUG_COMMIT_WITHOUT_QUORUM: &str = "commit-without-quorum";
/// Planted bug: a restarted node forgets whom it voted for in its current term (§5.2,
/// Figure 2: `votedFor` is persistent state).
pub const BUG_FORGET_VOTE_ON_RESTART: &str = "forget-vote-on-restart";
/// Planted bug: the lease counts from when acknowledgements arrive, lasts the maximum
/// election timeout, and subtracts no clock-drift margin (thesis §6.4.1).
pub const BUG_LEASE_WITHOUT_MARGIN: &str = "lease-without-margin";

/// Append messages in flight to one follower at most (pipelining).
pub const MAX_INFLIGHT: usize = 32;
/// Heartbeat rounds remembered for leases.
const ROUNDS_KEPT: usize = 256;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bugs {
    pub commit_without_quorum: bool,
    pub forget_vote_on_restart: bool,
    pub lease_without_margin: bool,
}

#[derive(Debug)]
pub(crate) struct PendingWrite {
    pub waiter: Waiter,
    pub at: Millis,
}

#[derive(Debug)]
pub(crate) struct PendingRead {
    pub waiter: Waiter,
    pub key: String,
    /// The heartbeat round a quorum must acknowledge (started after the read arrived).
    pub round: u64,
    /// The commit index when the read arrived (set once the leader committed in its term).
    pub index: Option<u64>,
    pub at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One message in flight: find where the follower's log matches.
    Probe,
    /// Optimistic: up to [`MAX_INFLIGHT`] batches in flight.
    Replicate,
}

#[derive(Debug)]
pub(crate) struct Progress {
    pub next: u64,
    pub matched: u64,
    pub mode: Mode,
    /// Last index of each Append in flight (Replicate mode).
    pub inflight: VecDeque<u64>,
    /// When the probe or snapshot in flight was sent.
    pub probe_sent: Option<Millis>,
    pub last_ack: Millis,
    pub acked_round: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Leader {
    pub progress: BTreeMap<String, Progress>,
    pub pending: BTreeMap<u64, PendingWrite>,
    pub reads: VecDeque<PendingRead>,
    pub round: u64,
    pub round_starts: VecDeque<(u64, Millis)>,
    /// A read wants a round started after it arrived.
    pub need_round: bool,
    pub last_heartbeat: Millis,
    pub since: Millis,
    pub lease_until: Millis,
}

#[derive(Debug)]
pub(crate) enum State {
    Follower,
    PreCandidate { votes: BTreeSet<String> },
    Candidate { votes: BTreeSet<String> },
    Leader(Box<Leader>),
}

/// A snapshot of a core's state, for tests and simulations.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspect {
    pub role: Role,
    pub term: u64,
    pub vote: Option<String>,
    pub voter: bool,
    pub commit: u64,
    pub applied: u64,
    pub snap_index: u64,
    pub snap_term: u64,
    pub entries: Vec<Entry>,
    pub kv: KvState,
}

/// One Raft node's protocol state.
#[derive(Debug)]
pub struct RaftCore {
    pub(crate) cluster: Cluster,
    pub(crate) settings: Settings,
    pub(crate) bugs: Bugs,
    pub(crate) hard: HardState,
    pub(crate) snap_index: u64,
    pub(crate) snap_term: u64,
    pub(crate) entries: Vec<Entry>,
    pub(crate) commit: u64,
    pub(crate) applied: u64,
    pub(crate) kv: KvState,
    pub(crate) state: State,
    pub(crate) leader: Option<String>,
    /// Set at the first input: the core's notion of "started".
    pub(crate) booted: bool,
    pub(crate) timing: Timing,
    /// Draws the randomized election timeouts (and, at start, the forwards' incarnation).
    pub(crate) rng: ChaCha8Rng,
    pub(crate) election_deadline: Millis,
    /// When this (pre-)candidate last sent its vote requests (resent every heartbeat to
    /// peers that have not answered, §5.1: a request lost to a restarting peer or a
    /// dropped connection must not cost a whole election timeout).
    pub(crate) votes_sent: Millis,
    /// Votes are refused until then: a leader was heard recently (thesis §4.2.3), or this
    /// process just started and may have acknowledged a leader's lease before it crashed.
    pub(crate) vote_blocked_until: Millis,
    /// Amnesia guard, bootstrap path: the peers that answered a [`Msg::Probe`] with an empty
    /// log, and their terms.
    pub(crate) empty_probe: EmptyProbe<u64>,
    /// Forwarded requests waiting for the leader, and those this leader ran.
    pub(crate) forwarding: ForwardState,
}

impl RaftCore {
    /// A core for node `id` of the static cluster `nodes` (`id` included), starting from what
    /// was recovered from disk. `seed` drives its randomized election timeouts. Unknown `bugs`
    /// are ignored (validated earlier).
    pub fn new(start: Start<Self>) -> Self {
        let bugs = Bugs {
            commit_without_quorum: start.has_bug(BUG_COMMIT_WITHOUT_QUORUM),
            forget_vote_on_restart: start.has_bug(BUG_FORGET_VOTE_ON_RESTART),
            lease_without_margin: start.has_bug(BUG_LEASE_WITHOUT_MARGIN),
        };
        let stale_local_reads = start.has_bug(BUG_STALE_LOCAL_READS);
        let cluster = start.cluster();
        let (settings, mut recovered) = (start.settings, start.recovered);
        if bugs.forget_vote_on_restart {
            recovered.hard.vote = None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(start.seed);
        let (timing, forwarding) = ForwardState::consensus(
            &settings.consensus(),
            stale_local_reads,
            "election in progress",
            rng.gen::<u64>(),
        );
        RaftCore {
            cluster,
            settings,
            timing,
            bugs,
            rng,
            hard: recovered.hard,
            snap_index: recovered.snap_index,
            snap_term: recovered.snap_term,
            entries: recovered.entries,
            commit: recovered.snap_index,
            applied: recovered.snap_index,
            kv: recovered.state,
            state: State::Follower,
            leader: None,
            booted: false,
            election_deadline: 0,
            votes_sent: 0,
            vote_blocked_until: 0,
            empty_probe: EmptyProbe::default(),
            forwarding,
        }
    }

    // ---- the log ------------------------------------------------------------------------

    pub fn last_index(&self) -> u64 {
        self.snap_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snap_term, |e| e.term)
    }

    /// The term of entry `index`, if this node still knows it.
    pub(crate) fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.snap_index {
            Some(self.snap_term)
        } else if index < self.snap_index || index > self.last_index() {
            None
        } else {
            Some(self.entries[(index - self.snap_index - 1) as usize].term)
        }
    }

    /// Append an entry as the leader (durable before anything of this iteration leaves).
    pub(crate) fn append(&mut self, op: EntryOp, out: &mut Outbox<Msg, Persist>) -> u64 {
        let entry = Entry {
            term: self.hard.term,
            op,
        };
        let index = self.last_index() + 1;
        out.persist(Persist::Append {
            index,
            entry: entry.clone(),
        });
        self.entries.push(entry);
        index
    }

    // ---- roles ---------------------------------------------------------------------------

    pub fn role(&self) -> Role {
        match self.state {
            State::Follower => Role::Follower,
            State::PreCandidate { .. } | State::Candidate { .. } => Role::Candidate,
            State::Leader(_) => Role::Leader,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.state, State::Leader(_))
    }

    pub fn term(&self) -> u64 {
        self.hard.term
    }

    pub fn inspect(&self) -> Inspect {
        Inspect {
            role: self.role(),
            term: self.hard.term,
            vote: self.hard.vote.clone(),
            voter: self.hard.voter,
            commit: self.commit,
            applied: self.applied,
            snap_index: self.snap_index,
            snap_term: self.snap_term,
            entries: self.entries.clone(),
            kv: self.kv.clone(),
        }
    }

    pub(crate) fn persist_hard(&self, out: &mut Outbox<Msg, Persist>) {
        out.persist(Persist::Hard(self.hard.clone()));
    }

    pub(crate) fn reset_election_timer(&mut self, now: Millis) {
        let span = self.timing.election_span();
        self.election_deadline =
            now + self.timing.election_timeout_min + self.rng.gen_range(0..=span);
    }

    /// Move to `term` (if newer) as a follower of `leader` (if known). Persists the term.
    pub(crate) fn become_follower(
        &mut self,
        now: Millis,
        term: u64,
        leader: Option<String>,
        out: &mut Outbox<Msg, Persist>,
    ) {
        if term > self.hard.term {
            self.hard.term = term;
            self.hard.vote = None;
            self.persist_hard(out);
        }
        if !matches!(self.state, State::Follower) {
            self.step_down(now, out);
            self.reset_election_timer(now);
        }
        self.leader = leader;
    }

    /// Leave any candidate or leader role. Writes waiting for commit may still commit
    /// (indefinite `timeout`); reads had no effect (definite `not_leader`).
    pub(crate) fn step_down(&mut self, _now: Millis, out: &mut Outbox<Msg, Persist>) {
        let old = std::mem::replace(&mut self.state, State::Follower);
        if let State::Leader(l) = old {
            tracing::info!(node = %self.cluster.id, term = self.hard.term, pending = l.pending.len(), "stepping down as leader");
            for (_, p) in l.pending {
                let result = failure(
                    FailKind::Timeout,
                    "leader stepped down before the write committed",
                );
                self.answer(p.waiter, result, out);
            }
            for r in l.reads {
                let result = failure(FailKind::NotLeader, "leader stepped down");
                self.answer(r.waiter, result, out);
            }
        }
        self.leader = None;
    }

    // ---- applying ------------------------------------------------------------------------

    /// Apply committed entries, answering the clients that wait for them (leader).
    pub(crate) fn apply_committed(&mut self, out: &mut Outbox<Msg, Persist>) {
        while self.applied < self.commit {
            let index = self.applied + 1;
            let pos = (index - self.snap_index - 1) as usize;
            let result = match &self.entries[pos].op {
                EntryOp::Noop => None,
                EntryOp::Cmd(cmd) => Some(applied_result(self.kv.apply(cmd))),
                EntryOp::Read { key } => Some(OpResult::Value(self.kv.read(key))),
            };
            self.applied = index;
            let waiter = match &mut self.state {
                State::Leader(l) => l.pending.remove(&index).map(|p| p.waiter),
                _ => None,
            };
            if let (Some(w), Some(r)) = (waiter, result) {
                self.answer(w, r, out);
            }
        }
        self.serve_reads(out);
        self.maybe_compact(out);
    }

    /// Fold applied entries into a snapshot once there are `snapshot_threshold` of them (§7).
    fn maybe_compact(&mut self, out: &mut Outbox<Msg, Persist>) {
        if self.applied < self.snap_index + self.settings.snapshot_threshold {
            return;
        }
        let keep = (self.applied - self.snap_index) as usize;
        let term = self.term_at(self.applied).unwrap_or(self.snap_term);
        self.entries.drain(..keep);
        self.snap_index = self.applied;
        self.snap_term = term;
        out.persist(Persist::Snapshot {
            index: self.snap_index,
            term,
            state: self.kv.clone(),
            tail: self.entries.clone(),
        });
    }

    // ---- timers --------------------------------------------------------------------------
}

impl Core for RaftCore {
    type Msg = Msg;
    type Persist = Persist;

    fn role_term(&self) -> Option<(Role, u64)> {
        Some((self.role(), self.hard.term))
    }

    fn step(&mut self, now: Millis, input: Input<Msg>, out: &mut Outbox<Msg, Persist>) {
        self.dispatch(now, input, out);
    }

    fn flush(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        if self.is_leader() {
            self.advance_commit(out);
            self.send_appends(now, out, false);
        }
    }
}

impl Handlers for RaftCore {
    fn on_peer(&mut self, now: Millis, from: String, msg: Msg, out: &mut Outbox<Msg, Persist>) {
        match msg {
            Msg::Vote(vote) => self.on_vote(now, from, vote, out),
            Msg::VoteReply(reply) => self.on_vote_reply(now, from, reply, out),
            Msg::Append(append) => self.on_append(now, from, append, out),
            Msg::AppendReply(reply) => self.on_append_reply(now, from, reply, out),
            Msg::Snapshot(snapshot) => self.on_snapshot(now, from, snapshot, out),
            Msg::Forward(forward) => self.on_forward(now, from, forward, out),
            Msg::ForwardReply(reply) => self.on_forward_reply(reply, out),
            Msg::Probe => {
                let reply = ProbeReply {
                    term: self.hard.term,
                    last: self.last_index(),
                };
                out.send(from, Msg::ProbeReply(reply));
            }
            Msg::ProbeReply(reply) => self.on_probe_reply(from, reply, out),
        }
    }

    fn on_tick(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        if let State::Leader(_) = self.state {
            self.tick_leader(now, out);
        } else {
            if !self.hard.voter {
                self.probe(now, out);
            } else if now >= self.election_deadline {
                self.start_election(now, self.settings.pre_vote, out);
            } else {
                self.resend_vote_requests(now, out);
            }
        }
        self.expire_forwards(now, out);
    }

    fn start(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        // After a restart this node may have acknowledged a leader's lease just before it
        // died: refuse votes for one minimum election timeout, as if it had just heard one.
        // (The bug `forget-vote-on-restart` forgets that too: it forgets it ever voted.)
        if !self.bugs.forget_vote_on_restart {
            self.vote_blocked_until = now + self.timing.election_timeout_min;
        }
        self.reset_election_timer(now);
        if !self.hard.voter && self.cluster.nodes.len() == 1 {
            self.hard.voter = true;
            self.persist_hard(out);
        }
    }

    fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn started(&mut self) -> Option<&mut bool> {
        Some(&mut self.booted)
    }
}

impl RaftCore {
    /// Leader work on a tick: heartbeats, CheckQuorum, request timeouts.
    fn tick_leader(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let quorum = self.cluster.quorum;
        let (check_quorum, timing) = (self.settings.check_quorum, self.timing);
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let acks = l.progress.values().map(|p| p.last_ack);
        if check_quorum && timing.quorum_lost(now, l.since, quorum, acks) {
            tracing::warn!(node = %self.cluster.id, term = self.hard.term, "no quorum heard within the election timeout; stepping down (CheckQuorum)");
            self.step_down(now, out);
            self.reset_election_timer(now);
            return;
        }
        let mut expired = Vec::new();
        l.pending.retain(|_, p| {
            if now >= p.at + timing.request_timeout {
                expired.push(p.waiter.clone());
                false
            } else {
                true
            }
        });
        while l
            .reads
            .front()
            .is_some_and(|r| now >= r.at + timing.request_timeout)
        {
            if let Some(r) = l.reads.pop_front() {
                expired.push(r.waiter);
            }
        }
        let beat = now >= l.last_heartbeat + timing.heartbeat;
        for waiter in expired {
            let result = failure(FailKind::Timeout, "not committed within request_timeout");
            self.answer(waiter, result, out);
        }
        if beat {
            self.send_appends(now, out, true);
        }
    }
}
