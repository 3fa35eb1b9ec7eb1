//! The pure Multi-Paxos state machine: one node as acceptor, learner and (when it leads)
//! proposer. No IO and no clock: the driver feeds inputs with the current time and performs
//! the [`Persist`] writes, messages and replies the core emits (persist first: everything
//! written in one iteration is durable before anything of that iteration leaves the node).
//! "Paxos Made Simple" (Lamport, 2001) and "Paxos Made Live" (Chandra et al., 2007) are the
//! references; README.md maps each rule to its place here.
//!
//! This file holds the state, learning and in-order execution, snapshots, roles and timers;
//! `acceptor` phase 1b/2b and the amnesia guard, `leader` takeover (phase 1a and recovery),
//! phase 2 with batching, heartbeats, catch-up and the lease, `client` client requests,
//! forwarding and reads.

use std::collections::{BTreeMap, VecDeque};

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

use crate::msg::{Ballot, FailKind, Meta, Msg, OpResult, Persist, ProbeReply, Reported, Value};
use crate::settings::Settings;

mod acceptor;
mod client;
mod leader;

/// Planted bug: a new leader runs phase 1 but ignores what the acceptors report: it proposes
/// fresh values from its own chosen prefix on, over slots where a value may already be chosen
/// ("Paxos Made Simple" §2.2: a proposer must propose the value of the highest-numbered
/// proposal among the replies).
pub const BUG_SKIP_PHASE1_RECOVERY: &str = "skip-phase1-recovery";
/// Planted bug: every node answers reads from its own executed state (a follower lags; a
/// deposed leader does not know it is deposed): linearizable reads must go through the log or
/// a valid lease.
pub const BUG_STALE_LOCAL_READS: &str = "stale-local-reads";
/// Planted bug: acceptances are buffered in user space and never fsynced, so acceptors
/// acknowledge values that a crash loses ("Paxos Made Simple" §2.3: an acceptor must remember
/// what it accepted even if it fails and restarts).
pub const BUG_ACK_BEFORE_PERSIST: &str = "ack-before-persist";
/// Planted bug: an acceptor accepts a proposal whose ballot is below the one it promised
/// (phase 2b: accept only if it has not promised a higher-numbered prepare).
pub const BUG_ACCEPT_LOWER_BALLOT: &str = "accept-lower-ballot";

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bugs {
    pub skip_phase1_recovery: bool,
    pub accept_lower_ballot: bool,
}

#[derive(Debug)]
pub(crate) struct Pending {
    pub waiter: Waiter,
    /// The proposal's tag: the slot must execute this value for the waiter to get its result.
    pub tag: u64,
    pub read: bool,
    pub at: Millis,
}

/// A value this leader proposed in its ballot and has not yet seen chosen.
#[derive(Debug)]
pub(crate) struct Proposal {
    pub value: Value,
    /// Bit `i` set: member `i` (0-based) accepted it in this ballot.
    pub acks: u64,
    pub sent_at: Millis,
}

/// What the leader knows of one other node.
#[derive(Debug, Default)]
pub(crate) struct Peer {
    pub last_ack: Millis,
    pub acked_round: u64,
    /// The node's chosen prefix, as it last reported.
    pub chosen: u64,
    /// When catch-up (Learn or Snapshot) was last sent, and the node's prefix then.
    pub catch_up: Option<(Millis, u64)>,
}

#[derive(Debug)]
pub(crate) struct Leader {
    pub ballot: Ballot,
    /// Next free slot.
    pub next_slot: u64,
    /// Proposals of this ballot not yet sent to the followers (from here to `next_slot`).
    pub unsent: u64,
    pub proposals: BTreeMap<u64, Proposal>,
    pub pending: BTreeMap<u64, Pending>,
    /// The last slot phase 1 recovered: once executed through it, this leader's state holds
    /// everything chosen before its ballot (lease reads need that).
    pub recovery_end: u64,
    pub peers: BTreeMap<String, Peer>,
    pub round: u64,
    pub round_starts: VecDeque<(u64, Millis)>,
    pub last_heartbeat: Millis,
    pub since: Millis,
    pub lease_until: Millis,
}

/// Phase 1 in progress.
#[derive(Debug)]
pub(crate) struct Preparing {
    pub ballot: Ballot,
    pub from: u64,
    /// Nodes that promised (this one included).
    pub promised: Vec<String>,
    /// Per slot: the value known chosen (`None` ballot) or accepted in the highest ballot.
    pub merged: BTreeMap<u64, (Option<Ballot>, Value)>,
    /// The most advanced snapshot reported by a promise.
    pub snapshot: Option<(u64, KvState)>,
    pub sent: Millis,
}

#[derive(Debug)]
pub(crate) enum State {
    Follower,
    Preparing(Box<Preparing>),
    Leader(Box<Leader>),
}

/// A snapshot of a core's state, for tests and simulations.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspect {
    pub role: Role,
    pub ballot: Ballot,
    pub promised: Ballot,
    pub acceptor: bool,
    pub commit: u64,
    pub applied: u64,
    pub snap_slot: u64,
    /// Known chosen values after `snap_slot`.
    pub chosen: BTreeMap<u64, Value>,
    pub accepted: BTreeMap<u64, (Ballot, Value)>,
    pub kv: KvState,
}

/// One Multi-Paxos node's protocol state.
#[derive(Debug)]
pub struct PaxosCore {
    pub(crate) cluster: Cluster,
    /// This node's number in ballots (its 1-based position in `nodes`).
    pub(crate) ballot_node: u32,
    pub(crate) settings: Settings,
    pub(crate) timing: Timing,
    pub(crate) bugs: Bugs,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) meta: Meta,
    pub(crate) snap_slot: u64,
    pub(crate) kv: KvState,
    pub(crate) applied: u64,
    /// Highest slot with it and every slot before it known chosen.
    pub(crate) commit: u64,
    pub(crate) accepted: BTreeMap<u64, (Ballot, Value)>,
    pub(crate) chosen: BTreeMap<u64, Value>,
    pub(crate) state: State,
    /// The node leading the highest ballot this node follows, and that ballot.
    pub(crate) leader: Option<String>,
    pub(crate) leader_ballot: Ballot,
    /// Highest chosen prefix a leader announced (a gap below it needs catch-up).
    pub(crate) leader_chosen: u64,
    /// Highest round seen in any ballot: a takeover goes above it.
    pub(crate) max_round: u64,
    pub(crate) booted: bool,
    pub(crate) takeover_deadline: Millis,
    /// Promises to a node other than the current leader are refused until then: the leader
    /// was heard recently (its lease), or this process just started and may have acknowledged
    /// a lease before it crashed.
    pub(crate) promise_blocked_until: Millis,
    /// Amnesia guard: the leader's last proposed slot when this non-acceptor first heard it.
    pub(crate) catch_up_target: Option<(Ballot, u64)>,
    /// Amnesia guard, bootstrap path: the peers that answered a [`Msg::Probe`] empty, and
    /// their promises.
    pub(crate) empty_probe: EmptyProbe<Ballot>,
    /// When this node last asked the leader for chosen values it lacks.
    pub(crate) gap_asked: Option<Millis>,
    /// Forwarded requests waiting for the leader, and those this leader ran.
    pub(crate) forwarding: ForwardState,
    pub(crate) next_tag: u64,
}

impl PaxosCore {
    /// A core for node `id` of the static cluster `nodes` (`id` included, the same order on
    /// every node), starting from what was recovered from disk. `seed` drives its randomized
    /// timeouts. Unknown `bugs` are ignored (validated earlier).
    pub fn new(start: Start<Self>) -> Self {
        let bugs = Bugs {
            skip_phase1_recovery: start.has_bug(BUG_SKIP_PHASE1_RECOVERY),
            accept_lower_ballot: start.has_bug(BUG_ACCEPT_LOWER_BALLOT),
        };
        let stale_local_reads = start.has_bug(BUG_STALE_LOCAL_READS);
        let cluster = start.cluster();
        let ballot_node = start.rank() as u32 + 1;
        let (settings, recovered) = (start.settings, start.recovered);
        let mut rng = ChaCha8Rng::seed_from_u64(start.seed);
        let (timing, forwarding) = ForwardState::consensus(
            &settings.consensus(),
            stale_local_reads,
            "takeover in progress",
            rng.gen::<u64>(),
        );
        let next_tag = (rng.gen::<u64>() >> 20) << 20;
        let commit = recovered.chosen_prefix();
        PaxosCore {
            cluster,
            ballot_node,
            settings,
            timing,
            bugs,
            rng,
            max_round: recovered.meta.promised.round,
            meta: recovered.meta,
            snap_slot: recovered.snap_slot,
            kv: recovered.state,
            applied: recovered.snap_slot,
            commit,
            accepted: recovered.accepted,
            chosen: recovered.chosen,
            state: State::Follower,
            leader: None,
            leader_ballot: Ballot::ZERO,
            leader_chosen: 0,
            booted: false,
            takeover_deadline: 0,
            promise_blocked_until: 0,
            catch_up_target: None,
            empty_probe: EmptyProbe::default(),
            gap_asked: None,
            forwarding,
            next_tag,
        }
    }

    // ---- roles ---------------------------------------------------------------------------

    pub fn role(&self) -> Role {
        match self.state {
            State::Follower => Role::Follower,
            State::Preparing(_) => Role::Candidate,
            State::Leader(_) => Role::Leader,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.state, State::Leader(_))
    }

    /// The ballot this node leads or prepares, else the one it follows.
    pub fn ballot(&self) -> Ballot {
        match &self.state {
            State::Leader(l) => l.ballot,
            State::Preparing(p) => p.ballot,
            State::Follower => self.leader_ballot.max(self.meta.promised),
        }
    }

    pub fn commit(&self) -> u64 {
        self.commit
    }

    pub fn inspect(&self) -> Inspect {
        Inspect {
            role: self.role(),
            ballot: self.ballot(),
            promised: self.meta.promised,
            acceptor: self.meta.acceptor,
            commit: self.commit,
            applied: self.applied,
            snap_slot: self.snap_slot,
            chosen: self.chosen.clone(),
            accepted: self.accepted.clone(),
            kv: self.kv.clone(),
        }
    }

    /// This node's bit in a proposal's acknowledgements.
    pub(crate) fn own_ack_bit(&self) -> u64 {
        1u64 << ((self.ballot_node as usize).saturating_sub(1) % 64)
    }

    /// `node`'s bit in a proposal's acknowledgements (its position in the member list).
    pub(crate) fn ack_bit(&self, node: &str) -> u64 {
        self.cluster
            .nodes
            .iter()
            .position(|n| n == node)
            .map_or(0, |i| 1u64 << (i % 64))
    }

    pub(crate) fn persist_meta(&self, out: &mut Outbox<Msg, Persist>) {
        out.persist(Persist::Meta(self.meta));
    }

    pub(crate) fn reset_takeover_timer(&mut self, now: Millis) {
        let span = self.timing.election_span();
        self.takeover_deadline =
            now + self.timing.election_timeout_min + self.rng.gen_range(0..=span);
    }

    /// Leave the leader or preparing role. Writes waiting to be chosen may still be chosen
    /// (indefinite `timeout`); reads had no effect (definite `not_leader`).
    pub(crate) fn step_down(&mut self, out: &mut Outbox<Msg, Persist>) {
        let old = std::mem::replace(&mut self.state, State::Follower);
        if let State::Leader(l) = old {
            tracing::info!(node = %self.cluster.id, ballot = %l.ballot, pending = l.pending.len(), "stepping down as leader");
            for (_, p) in l.pending {
                let result = if p.read {
                    failure(FailKind::NotLeader, "leader stepped down")
                } else {
                    failure(
                        FailKind::Timeout,
                        "leader stepped down before the write was chosen",
                    )
                };
                self.answer(p.waiter, result, out);
            }
        }
        if self.leader.as_deref() == Some(self.cluster.id.as_str()) {
            self.leader = None;
        }
    }

    /// A message showed a ballot above this node's: stop leading or preparing below it.
    pub(crate) fn see_ballot(&mut self, ballot: Ballot, out: &mut Outbox<Msg, Persist>) {
        self.max_round = self.max_round.max(ballot.round);
        let mine = match &self.state {
            State::Leader(l) => Some(l.ballot),
            State::Preparing(p) => Some(p.ballot),
            State::Follower => None,
        };
        if mine.is_some_and(|b| ballot > b) {
            self.step_down(out);
        }
    }

    // ---- learning and execution -----------------------------------------------------------

    /// Record `value` as chosen at `slot` (from any source). Returns whether it was new.
    pub(crate) fn mark_chosen(&mut self, slot: u64, value: Value) -> bool {
        if slot <= self.commit || self.chosen.contains_key(&slot) {
            return false;
        }
        self.accepted.remove(&slot);
        self.chosen.insert(slot, value);
        true
    }

    /// A leader of `ballot` announced every slot through `upto` chosen: fill the prefix from
    /// values accepted in that ballot (the only value its leader proposed there). Returns
    /// whether a slot below `upto` is still unknown (a gap to ask for).
    pub(crate) fn learn_through(
        &mut self,
        ballot: Ballot,
        upto: u64,
        out: &mut Outbox<Msg, Persist>,
    ) -> bool {
        let before = self.commit;
        let mut gap = false;
        while self.commit < upto {
            let s = self.commit + 1;
            if self.chosen.contains_key(&s) {
                self.commit = s;
                continue;
            }
            match self.accepted.get(&s) {
                Some((b, _)) if *b == ballot => {
                    let (_, v) = self.accepted.remove(&s).expect("just seen");
                    self.chosen.insert(s, v);
                    self.commit = s;
                }
                _ => {
                    gap = true;
                    break;
                }
            }
        }
        if self.commit > before {
            out.persist(Persist::Chosen {
                through: self.commit,
            });
        }
        gap
    }

    /// Advance the chosen prefix over slots learned out of order.
    pub(crate) fn advance_commit(&mut self) {
        while self.chosen.contains_key(&(self.commit + 1)) {
            self.commit += 1;
        }
    }

    /// Execute chosen slots in order, answering the clients that wait for them (leader).
    pub(crate) fn execute(&mut self, out: &mut Outbox<Msg, Persist>) {
        while self.applied < self.commit {
            let slot = self.applied + 1;
            let Some(value) = self.chosen.get(&slot) else {
                break;
            };
            let (result, tag) = match value {
                Value::Noop => (None, None),
                Value::Cmd { cmd, tag } => (Some(applied_result(self.kv.apply(cmd))), Some(*tag)),
                Value::Read { key, tag } => (Some(OpResult::Value(self.kv.read(key))), Some(*tag)),
            };
            self.applied = slot;
            let pending = match &mut self.state {
                State::Leader(l) => l.pending.remove(&slot),
                _ => None,
            };
            if let Some(p) = pending {
                let r = match (result, tag) {
                    (Some(r), Some(t)) if t == p.tag => r,
                    // Another value took the slot: this proposal had no effect here, but the
                    // client cannot be told it never will (indefinite).
                    _ => failure(
                        FailKind::Timeout,
                        "another value was chosen in the proposal's slot",
                    ),
                };
                self.answer(p.waiter, r, out);
            }
        }
        self.maybe_compact(out);
    }

    /// Fold executed slots into a snapshot once there are `snapshot_threshold` of them.
    fn maybe_compact(&mut self, out: &mut Outbox<Msg, Persist>) {
        if self.applied < self.snap_slot + self.settings.snapshot_threshold {
            return;
        }
        self.snap_slot = self.applied;
        let keep = self.snap_slot + 1;
        self.chosen = self.chosen.split_off(&keep);
        self.accepted = self.accepted.split_off(&keep);
        out.persist(Persist::Snapshot {
            slot: self.snap_slot,
            state: self.kv.clone(),
            tail: self.tail(),
        });
    }

    /// What the log keeps after a snapshot: the known chosen and accepted slots after it.
    pub(crate) fn tail(&self) -> Vec<Persist> {
        let learned = self.chosen.iter().map(|(s, v)| Persist::Learn {
            slot: *s,
            value: v.clone(),
        });
        let accepted = self.accepted.iter().map(|(s, (b, v))| Persist::Accept {
            slot: *s,
            ballot: *b,
            value: v.clone(),
        });
        learned.chain(accepted).collect()
    }

    /// Replace everything through `slot` with `state` (a snapshot from a peer).
    pub(crate) fn install_snapshot(
        &mut self,
        slot: u64,
        state: KvState,
        out: &mut Outbox<Msg, Persist>,
    ) {
        if slot <= self.commit {
            return;
        }
        self.kv = state;
        self.snap_slot = slot;
        self.applied = slot;
        self.commit = slot;
        let keep = slot + 1;
        self.chosen = self.chosen.split_off(&keep);
        self.accepted = self.accepted.split_off(&keep);
        out.persist(Persist::Snapshot {
            slot,
            state: self.kv.clone(),
            tail: self.tail(),
        });
        self.advance_commit();
        self.execute(out);
    }

    /// What this acceptor reports for slots from `from` on, and its snapshot when `from` is
    /// already folded into it.
    pub(crate) fn report(&self, from: u64) -> (Vec<Reported>, Option<(u64, KvState)>) {
        let (start, snapshot) = if from <= self.snap_slot {
            (self.applied + 1, Some((self.applied, self.kv.clone())))
        } else {
            (from, None)
        };
        let mut reported: Vec<Reported> = self
            .chosen
            .range(start..)
            .map(|(s, v)| Reported {
                slot: *s,
                ballot: None,
                value: v.clone(),
            })
            .collect();
        reported.extend(self.accepted.range(start..).map(|(s, (b, v))| Reported {
            slot: *s,
            ballot: Some(*b),
            value: v.clone(),
        }));
        (reported, snapshot)
    }

    // ---- timers --------------------------------------------------------------------------
}

impl Core for PaxosCore {
    type Msg = Msg;
    type Persist = Persist;

    fn role_term(&self) -> Option<(Role, u64)> {
        Some((self.role(), self.ballot().as_term()))
    }

    fn step(&mut self, now: Millis, input: Input<Msg>, out: &mut Outbox<Msg, Persist>) {
        self.dispatch(now, input, out);
    }

    fn flush(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        if self.is_leader() {
            self.send_new_proposals(now, out);
        }
    }
}

impl Handlers for PaxosCore {
    fn on_peer(&mut self, now: Millis, from: String, msg: Msg, out: &mut Outbox<Msg, Persist>) {
        match msg {
            Msg::Prepare(prepare) => self.on_prepare(now, from, prepare, out),
            Msg::Promise(promise) => self.on_promise(now, from, promise, out),
            Msg::Nack(nack) => self.on_nack(now, nack, out),
            Msg::Accept(accept) => self.on_accept(now, from, accept, out),
            Msg::Accepted(accepted) => self.on_accepted(now, from, accepted, out),
            Msg::Learn(learn) => self.on_learn(now, from, learn, out),
            Msg::Snapshot(snapshot) => self.on_snapshot(now, from, snapshot, out),
            Msg::Forward(forward) => self.on_forward(now, from, forward, out),
            Msg::ForwardReply(reply) => self.on_forward_reply(reply, out),
            Msg::Probe => {
                let empty = self.commit == 0
                    && self.accepted.is_empty()
                    && self.chosen.is_empty()
                    && self.snap_slot == 0;
                let reply = ProbeReply {
                    promised: self.meta.promised,
                    empty,
                };
                out.send(from, Msg::ProbeReply(reply));
            }
            Msg::ProbeReply(reply) => self.on_probe_reply(from, reply, out),
        }
    }

    fn on_tick(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        if self.is_leader() {
            self.tick_leader(now, out);
        } else if !self.meta.acceptor {
            self.probe(now, out);
        } else if now >= self.takeover_deadline {
            self.start_takeover(now, out);
        } else {
            self.resend_prepares(now, out);
        }
        self.expire_forwards(now, out);
    }

    fn start(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        // After a restart this node may have acknowledged a leader's lease just before it
        // died: refuse promises to others for one minimum timeout, as if it had just heard it.
        self.promise_blocked_until = now + self.timing.election_timeout_min;
        self.reset_takeover_timer(now);
        if !self.meta.acceptor && self.cluster.nodes.len() == 1 {
            self.meta.acceptor = true;
            self.persist_meta(out);
        }
        self.execute(out);
    }

    fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn started(&mut self) -> Option<&mut bool> {
        Some(&mut self.booted)
    }
}
