//! The proposer side: takeover (phase 1a, then recovery of every unchosen slot: the
//! highest-ballot accepted value, or a no-op in a gap), phase 2a with batching, choosing,
//! heartbeats, retransmission, catch-up of lagging nodes, the leader lease and stepping down
//! when no quorum answers.

use std::collections::{BTreeMap, VecDeque};

use faultline_replica::dispatch::Handlers;
use faultline_replica::forward::{failure, ForwardingCore};
use faultline_replica::{KvState, Millis, Outbox};

use super::{Leader, PaxosCore, Peer, Preparing, Proposal, State};
use crate::msg::{
    Accept, Accepted, Ballot, CatchUpSnapshot, FailKind, Learn, Msg, Nack, Persist, Prepare,
    Promise, Reported, Value,
};

/// Heartbeat rounds remembered for leases.
const ROUNDS_KEPT: usize = 256;
/// Proposals resent to one follower per heartbeat at most (in messages of `max_batch`).
const RESEND_MAX: usize = 4096;

impl PaxosCore {
    /// No leader heard for a takeover timeout: phase 1 with a ballot above every one seen.
    pub(super) fn start_takeover(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        self.step_down(out);
        let ballot = Ballot {
            round: self.max_round.max(self.meta.promised.round) + 1,
            node: self.ballot_node,
        };
        self.max_round = ballot.round;
        self.meta.promised = ballot;
        self.persist_meta(out);
        self.leader = None;
        self.reset_takeover_timer(now);
        let from = self.commit + 1;
        tracing::info!(node = %self.cluster.id, ballot = %ballot, from, "taking over: phase 1");
        let mut p = Preparing {
            ballot,
            from,
            promised: Vec::new(),
            merged: BTreeMap::new(),
            snapshot: None,
            sent: now,
        };
        let (reported, snapshot) = self.report(from);
        merge(&mut p, self.cluster.id.clone(), reported, snapshot);
        self.state = State::Preparing(Box::new(p));
        let prepare = Prepare {
            ballot,
            from_slot: from,
        };
        for peer in self.peers() {
            out.send(peer, Msg::Prepare(prepare.clone()));
        }
        self.maybe_lead(now, out);
    }

    /// Resend phase 1a every heartbeat to peers that have not promised (a request lost to a
    /// restarting peer must not cost a whole timeout).
    pub(super) fn resend_prepares(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let heartbeat_interval = self.timing.heartbeat;
        let peers = self.peers();
        let State::Preparing(p) = &mut self.state else {
            return;
        };
        if now < p.sent + heartbeat_interval {
            return;
        }
        p.sent = now;
        for peer in peers {
            if !p.promised.contains(&peer) {
                let prepare = Prepare {
                    ballot: p.ballot,
                    from_slot: p.from,
                };
                out.send(peer, Msg::Prepare(prepare));
            }
        }
    }

    pub(super) fn on_promise(
        &mut self,
        now: Millis,
        from: String,
        promise: Promise,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let State::Preparing(p) = &mut self.state else {
            return;
        };
        if p.ballot != promise.ballot || p.promised.contains(&from) {
            return;
        }
        merge(p, from, promise.reported, promise.snapshot);
        self.maybe_lead(now, out);
    }

    pub(super) fn on_nack(&mut self, now: Millis, nack: Nack, out: &mut Outbox<Msg, Persist>) {
        let Nack { ballot, promised } = nack;
        self.max_round = self.max_round.max(promised.round);
        if promised <= ballot || ballot != self.ballot() {
            return;
        }
        tracing::info!(node = %self.cluster.id, ballot = %ballot, higher = %promised, "preempted by a higher ballot");
        let leading = self.is_leader();
        self.see_ballot(promised, out);
        if !matches!(self.state, State::Follower) {
            self.step_down(out);
        }
        if leading {
            // A node that was cut off raised its promise with failed takeovers; this leader
            // still hears a quorum, so it prepares a ballot above it at once (one round trip)
            // instead of leaving the cluster without a leader for a timeout.
            self.start_takeover(now, out);
        } else {
            self.reset_takeover_timer(now);
        }
    }

    /// With a quorum of promises, lead: recover every slot from `from` to the highest one
    /// reported, re-proposing it in this ballot.
    fn maybe_lead(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let ready =
            matches!(&self.state, State::Preparing(p) if p.promised.len() >= self.cluster.quorum);
        if !ready {
            return;
        }
        let State::Preparing(p) = std::mem::replace(&mut self.state, State::Follower) else {
            return;
        };
        let Preparing {
            ballot,
            merged,
            snapshot,
            ..
        } = *p;
        if let Some((slot, state)) = snapshot {
            self.install_snapshot(slot, state, out);
        }
        let mut recover: Vec<(u64, Value)> = Vec::new();
        let start = self.commit + 1;
        let end = if self.bugs.skip_phase1_recovery {
            // The bug: what the acceptors reported is ignored; fresh proposals start right
            // after this node's own chosen prefix.
            self.commit
        } else {
            let end = merged
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0)
                .max(self.commit);
            for slot in start..=end {
                if let Some(v) = self.chosen.get(&slot) {
                    recover.push((slot, v.clone()));
                    continue;
                }
                let v = match merged.get(&slot) {
                    Some((_, v)) => v.clone(),
                    None => Value::Noop,
                };
                recover.push((slot, v));
            }
            end
        };
        tracing::info!(node = %self.cluster.id, ballot = %ballot, recovered = recover.len(), next = end + 1, "leading");
        let peers = self
            .peers()
            .into_iter()
            .map(|n| {
                (
                    n,
                    Peer {
                        last_ack: now,
                        ..Peer::default()
                    },
                )
            })
            .collect();
        self.forwarding.lead();
        self.state = State::Leader(Box::new(Leader {
            ballot,
            next_slot: end + 1,
            unsent: start,
            proposals: BTreeMap::new(),
            pending: BTreeMap::new(),
            recovery_end: end,
            peers,
            round: 0,
            round_starts: VecDeque::new(),
            last_heartbeat: 0,
            since: now,
            lease_until: 0,
        }));
        self.leader = Some(self.cluster.id.clone());
        self.leader_ballot = ballot;
        for (slot, value) in recover {
            self.accept_own(slot, value, now, out);
        }
        self.send_new_proposals(now, out);
        self.heartbeat(now, out);
    }

    /// Propose `value` in this leader's ballot at a new slot; returns the slot.
    pub(super) fn propose(
        &mut self,
        value: Value,
        now: Millis,
        out: &mut Outbox<Msg, Persist>,
    ) -> u64 {
        let State::Leader(l) = &mut self.state else {
            unreachable!("only a leader proposes");
        };
        let slot = l.next_slot;
        l.next_slot += 1;
        self.accept_own(slot, value, now, out);
        slot
    }

    /// The leader accepts its own proposal (durably, before it is sent anywhere).
    fn accept_own(&mut self, slot: u64, value: Value, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let me = self.own_ack_bit();
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let ballot = l.ballot;
        out.persist(Persist::Accept {
            slot,
            ballot,
            value: value.clone(),
        });
        l.proposals.insert(
            slot,
            Proposal {
                value: value.clone(),
                acks: me,
                sent_at: now,
            },
        );
        if !self.chosen.contains_key(&slot) {
            self.accepted.insert(slot, (ballot, value));
        }
    }

    /// Send the proposals made since the last flush, batched, to every follower.
    pub(super) fn send_new_proposals(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        // A single-node cluster chooses on its own acceptance.
        if self.cluster.quorum <= 1 {
            let slots: Vec<u64> = match &self.state {
                State::Leader(l) => l.proposals.keys().copied().collect(),
                _ => Vec::new(),
            };
            self.choose(slots, out);
        }
        let max_batch = self.settings.max_batch;
        let commit = self.commit;
        let peers = self.peers();
        let State::Leader(l) = &mut self.state else {
            return;
        };
        if l.unsent >= l.next_slot {
            return;
        }
        let last = l.next_slot - 1;
        let mut slot = l.unsent;
        while slot < l.next_slot {
            let end = (slot + max_batch as u64).min(l.next_slot);
            let values: Vec<Value> = (slot..end)
                .map(|s| {
                    l.proposals
                        .get_mut(&s)
                        .map(|p| {
                            p.sent_at = now;
                            p.value.clone()
                        })
                        .unwrap_or(Value::Noop)
                })
                .collect();
            let accept = Accept {
                ballot: l.ballot,
                first: slot,
                values,
                chosen: commit,
                last,
                round: l.round,
            };
            for peer in &peers {
                out.send(peer.clone(), Msg::Accept(accept.clone()));
            }
            slot = end;
        }
        l.unsent = l.next_slot;
    }

    pub(super) fn on_accepted(
        &mut self,
        now: Millis,
        from: String,
        accepted: Accepted,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let Accepted {
            ballot,
            first,
            count,
            chosen,
            gap,
            round,
        } = accepted;
        let bit = self.ack_bit(&from);
        let State::Leader(l) = &mut self.state else {
            return;
        };
        if ballot != l.ballot {
            return;
        }
        let Some(peer) = l.peers.get_mut(&from) else {
            return;
        };
        peer.last_ack = now;
        let new_round = round > peer.acked_round;
        peer.acked_round = peer.acked_round.max(round);
        // As reported, even if lower than before: a node that lost its disk starts over.
        peer.chosen = chosen;
        for slot in first..first + count {
            if let Some(p) = l.proposals.get_mut(&slot) {
                p.acks |= bit;
            }
        }
        if new_round {
            // Only a newly acknowledged round can extend the lease.
            self.update_lease();
        }
        self.choose(first..first + count, out);
        if gap {
            self.catch_up(now, &from, out);
        }
    }

    /// Mark chosen those of `slots` that a quorum accepted, advance the prefix, execute.
    pub(super) fn choose(
        &mut self,
        slots: impl IntoIterator<Item = u64>,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let quorum = self.cluster.quorum as u32;
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let mut newly = Vec::new();
        for s in slots {
            if l.proposals
                .get(&s)
                .is_some_and(|p| p.acks.count_ones() >= quorum)
            {
                if let Some(p) = l.proposals.remove(&s) {
                    newly.push((s, p.value));
                }
            }
        }
        if newly.is_empty() {
            return;
        }
        let before = self.commit;
        for (slot, value) in newly {
            if self.bugs.skip_phase1_recovery {
                // A fresh proposal may overwrite a value this node had learned there.
                if slot > self.commit {
                    self.accepted.remove(&slot);
                    self.chosen.insert(slot, value);
                }
            } else {
                self.mark_chosen(slot, value);
            }
        }
        self.advance_commit();
        if self.commit > before {
            out.persist(Persist::Chosen {
                through: self.commit,
            });
        }
        self.execute(out);
    }

    /// Send a lagging node the chosen values it lacks (or the snapshot, when they are folded
    /// into it), at most once per heartbeat unless it made progress.
    fn catch_up(&mut self, now: Millis, to: &str, out: &mut Outbox<Msg, Persist>) {
        let (heartbeat_interval, max_batch) =
            (self.timing.heartbeat, self.settings.max_batch as u64);
        let (commit, snap_slot, applied) = (self.commit, self.snap_slot, self.applied);
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let ballot = l.ballot;
        let Some(peer) = l.peers.get_mut(to) else {
            return;
        };
        if peer.chosen >= commit {
            return;
        }
        if let Some((at, their)) = peer.catch_up {
            if now < at + heartbeat_interval && peer.chosen <= their {
                return;
            }
        }
        peer.catch_up = Some((now, peer.chosen));
        if peer.chosen < snap_slot {
            let snapshot = CatchUpSnapshot {
                ballot,
                slot: applied,
                state: self.kv.clone(),
            };
            out.send(to, Msg::Snapshot(snapshot));
            return;
        }
        let first = peer.chosen + 1;
        let end = commit.min(peer.chosen + max_batch);
        let values: Vec<Value> = (first..=end)
            .map_while(|s| self.chosen.get(&s).cloned())
            .collect();
        let learn = Learn {
            ballot,
            first,
            values,
        };
        out.send(to, Msg::Learn(learn));
    }

    /// The lease runs from the start of the newest round a quorum acknowledged, for the
    /// minimum takeover timeout less the drift margin: every acceptor that acknowledged it
    /// refuses to promise another node for the minimum timeout after it heard the round.
    fn update_lease(&mut self) {
        let (quorum, election_timeout_min, drift) = (
            self.cluster.quorum,
            self.timing.election_timeout_min,
            self.timing.clock_drift,
        );
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let acked = quorum_round(l, quorum);
        if let Some(&(_, start)) = l.round_starts.iter().rev().find(|(r, _)| *r <= acked) {
            l.lease_until = l
                .lease_until
                .max((start + election_timeout_min).saturating_sub(drift));
        }
    }

    /// A new heartbeat round: an empty accept to every follower, carrying the chosen prefix.
    fn heartbeat(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let commit = self.commit;
        let peers = self.peers();
        let State::Leader(l) = &mut self.state else {
            return;
        };
        l.round += 1;
        l.round_starts.push_back((l.round, now));
        if l.round_starts.len() > ROUNDS_KEPT {
            l.round_starts.pop_front();
        }
        l.last_heartbeat = now;
        for peer in peers {
            let heartbeat = Accept {
                ballot: l.ballot,
                first: l.next_slot,
                values: Vec::new(),
                chosen: commit,
                last: l.next_slot - 1,
                round: l.round,
            };
            out.send(peer, Msg::Accept(heartbeat));
        }
    }

    /// Leader work on a tick: step down without a quorum, time out requests, heartbeat and
    /// resend proposals that are not yet chosen.
    pub(super) fn tick_leader(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let (quorum, timing) = (self.cluster.quorum, self.timing);
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let acks = l.peers.values().map(|p| p.last_ack);
        if timing.quorum_lost(now, l.since, quorum, acks) {
            tracing::warn!(node = %self.cluster.id, ballot = %l.ballot, "no quorum heard within the takeover timeout; stepping down");
            self.step_down(out);
            self.reset_takeover_timer(now);
            return;
        }
        // Pending requests are keyed by slot, given out in arrival order: the expired ones
        // come first.
        let mut expired = Vec::new();
        while let Some(entry) = l.pending.first_entry() {
            if now < entry.get().at + timing.request_timeout {
                break;
            }
            let p = entry.remove();
            expired.push((p.waiter, p.read));
        }
        let beat = now >= l.last_heartbeat + timing.heartbeat;
        for (w, read) in expired {
            let message = if read {
                "read not executed within request_timeout"
            } else {
                "not chosen within request_timeout"
            };
            self.answer(w, failure(FailKind::Timeout, message), out);
        }
        if beat {
            self.heartbeat(now, out);
            self.resend(now, out);
        }
    }

    /// Resend proposals older than a heartbeat to the followers that have not accepted them
    /// (runs of consecutive slots, `max_batch` values a message, [`RESEND_MAX`] a follower).
    fn resend(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let (heartbeat_interval, max_batch) =
            (self.timing.heartbeat, self.settings.max_batch as u64);
        let commit = self.commit;
        let peers: Vec<(String, u64)> = self
            .peers()
            .into_iter()
            .map(|p| {
                let b = self.ack_bit(&p);
                (p, b)
            })
            .collect();
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let last = l.next_slot - 1;
        let mut resent = Vec::new();
        for (peer, bit) in peers {
            let mut runs: Vec<(u64, Vec<Value>)> = Vec::new();
            let due = l
                .proposals
                .iter()
                .filter(|(s, p)| {
                    p.acks & bit == 0 && now >= p.sent_at + heartbeat_interval && **s < l.unsent
                })
                .take(RESEND_MAX);
            for (&slot, p) in due {
                resent.push(slot);
                match runs.last_mut() {
                    Some((first, values))
                        if *first + values.len() as u64 == slot
                            && (values.len() as u64) < max_batch =>
                    {
                        values.push(p.value.clone())
                    }
                    _ => runs.push((slot, vec![p.value.clone()])),
                }
            }
            for (first, values) in runs {
                let accept = Accept {
                    ballot: l.ballot,
                    first,
                    values,
                    chosen: commit,
                    last,
                    round: l.round,
                };
                out.send(peer.clone(), Msg::Accept(accept));
            }
        }
        for slot in resent {
            if let Some(p) = l.proposals.get_mut(&slot) {
                p.sent_at = now;
            }
        }
    }
}

/// Fold one promise into phase 1's tally: a value known chosen wins; otherwise the value
/// accepted in the highest ballot.
fn merge(
    p: &mut Preparing,
    from: String,
    reported: Vec<Reported>,
    snapshot: Option<(u64, KvState)>,
) {
    p.promised.push(from);
    if let Some((slot, state)) = snapshot {
        if p.snapshot.as_ref().is_none_or(|(s, _)| slot > *s) {
            p.snapshot = Some((slot, state));
        }
    }
    for r in reported {
        let better = match (p.merged.get(&r.slot), r.ballot) {
            (None, _) => true,
            (Some((None, _)), _) => false,
            (Some((Some(_), _)), None) => true,
            (Some((Some(old), _)), Some(new)) => new > *old,
        };
        if better {
            p.merged.insert(r.slot, (r.ballot, r.value));
        }
    }
}

/// The highest heartbeat round a quorum (the leader included) acknowledged.
pub(crate) fn quorum_round(l: &Leader, quorum: usize) -> u64 {
    let mut rounds: Vec<u64> = l.peers.values().map(|p| p.acked_round).collect();
    rounds.push(l.round);
    rounds.sort_unstable_by(|a, b| b.cmp(a));
    rounds.get(quorum - 1).copied().unwrap_or(0)
}
