//! The acceptor and learner side: phase 1b (promise), phase 2b (accept), learning chosen
//! values from a leader's announcements, catch-up and snapshots, and the amnesia guard.

use faultline_replica::{Millis, Outbox};

use super::{PaxosCore, State};
use crate::msg::{
    Accept, Accepted, Ballot, CatchUpSnapshot, Learn, Msg, Nack, Persist, Prepare, ProbeReply,
    Promise,
};

impl PaxosCore {
    /// Phase 1b: promise `ballot` unless a higher one was promised (then say so), and report
    /// every slot from `from` on.
    pub(super) fn on_prepare(
        &mut self,
        now: Millis,
        from: String,
        prepare: Prepare,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let Prepare { ballot, from_slot } = prepare;
        if !self.meta.acceptor {
            // Amnesia guard: this disk may have forgotten promises and acceptances.
            return;
        }
        if ballot < self.meta.promised {
            out.send(from, self.nack(ballot));
            return;
        }
        let from_leader = self.leader.as_deref() == Some(from.as_str());
        let challenger = ballot > self.meta.promised && !from_leader;
        if challenger && (now < self.promise_blocked_until || self.is_leader()) {
            // A leader was heard within the minimum timeout (its lease may hold on that), this
            // process just started, or it leads itself (it steps down once no quorum answers
            // for election_timeout[1]): no promise to a challenger yet. It will retry.
            return;
        }
        self.see_ballot(ballot, out);
        if ballot > self.meta.promised {
            self.meta.promised = ballot;
            self.persist_meta(out);
            // The old leader's ballot is superseded; who leads is known once the new one
            // sends its first accept.
            self.leader = None;
            self.reset_takeover_timer(now);
        }
        let (reported, snapshot) = self.report(from_slot);
        let promise = Promise {
            ballot,
            from_slot,
            reported,
            snapshot,
        };
        out.send(from, Msg::Promise(promise));
    }

    /// The refusal of a prepare or accept in `ballot`, below this node's promise.
    fn nack(&self, ballot: Ballot) -> Msg {
        Msg::Nack(Nack {
            ballot,
            promised: self.meta.promised,
        })
    }

    /// Phase 2b, and learning from the chosen prefix the leader announces.
    pub(super) fn on_accept(
        &mut self,
        now: Millis,
        from: String,
        accept: Accept,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let Accept {
            ballot,
            first,
            values,
            chosen,
            last,
            round,
        } = accept;
        let lower = ballot < self.meta.promised;
        if lower && !self.bugs.accept_lower_ballot {
            out.send(from, self.nack(ballot));
            return;
        }
        if !lower {
            self.see_ballot(ballot, out);
            if ballot > self.meta.promised {
                self.meta.promised = ballot;
                if self.meta.acceptor {
                    self.persist_meta(out);
                }
            }
            if self.is_leader() {
                // Its own ballot echoed back (cannot happen: leaders do not send to
                // themselves), or a higher one that `see_ballot` already stepped down for.
                return;
            }
            if matches!(self.state, State::Preparing(_)) {
                self.step_down(out);
            }
            self.leader = Some(from.clone());
            self.leader_ballot = ballot;
            self.promise_blocked_until = now + self.timing.election_timeout_min;
            self.reset_takeover_timer(now);
        }
        self.leader_chosen = self.leader_chosen.max(chosen);
        let count = if self.meta.acceptor {
            for (i, value) in values.iter().enumerate() {
                let slot = first + i as u64;
                if slot <= self.commit || self.chosen.contains_key(&slot) {
                    // Known chosen: the value proposed again is the chosen one.
                    continue;
                }
                out.persist(Persist::Accept {
                    slot,
                    ballot,
                    value: value.clone(),
                });
                self.accepted.insert(slot, (ballot, value.clone()));
            }
            values.len() as u64
        } else {
            // Catch up through what the highest ballot heard had proposed (a deposed leader
            // heard first may know less than the one that replaced it).
            if !lower {
                self.catch_up_target = match self.catch_up_target {
                    Some((b, t)) if b >= ballot => Some((b, t)),
                    Some((_, t)) => Some((ballot, t.max(last))),
                    None => Some((ballot, last)),
                };
            }
            0
        };
        let gap = self.learn_through(ballot, chosen, out);
        self.execute(out);
        self.maybe_become_acceptor(out);
        let accepted = Accepted {
            ballot,
            first,
            count,
            chosen: self.commit,
            gap: gap && self.may_ask_gap(now),
            round,
        };
        out.send(from, Msg::Accepted(accepted));
    }

    /// Ask for missing chosen values at most once per heartbeat (the answer may be in flight).
    fn may_ask_gap(&mut self, now: Millis) -> bool {
        if self
            .gap_asked
            .is_some_and(|t| now < t + self.timing.heartbeat)
        {
            return false;
        }
        self.gap_asked = Some(now);
        true
    }

    /// Chosen values from the leader (catch-up after a gap).
    pub(super) fn on_learn(
        &mut self,
        now: Millis,
        from: String,
        learn: Learn,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let Learn {
            ballot,
            first,
            values,
        } = learn;
        for (i, value) in values.into_iter().enumerate() {
            let slot = first + i as u64;
            if self.mark_chosen(slot, value.clone()) {
                out.persist(Persist::Learn { slot, value });
            }
        }
        self.advance_commit();
        self.caught_up_some(now, from, ballot, out);
    }

    pub(super) fn on_snapshot(
        &mut self,
        now: Millis,
        from: String,
        snapshot: CatchUpSnapshot,
        out: &mut Outbox<Msg, Persist>,
    ) {
        self.install_snapshot(snapshot.slot, snapshot.state, out);
        self.caught_up_some(now, from, snapshot.ballot, out);
    }

    /// After catch-up values or a snapshot: fill what follows from acceptances in the
    /// announcing ballot, execute, and tell the leader how far this node got (asking for the
    /// next part if a gap remains).
    fn caught_up_some(
        &mut self,
        now: Millis,
        from: String,
        ballot: Ballot,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let gap = self.learn_through(self.leader_ballot, self.leader_chosen, out);
        self.execute(out);
        self.maybe_become_acceptor(out);
        self.gap_asked = None;
        let accepted = Accepted {
            ballot,
            first: 0,
            count: 0,
            chosen: self.commit,
            gap: gap && self.may_ask_gap(now),
            round: 0,
        };
        out.send(from, Msg::Accepted(accepted));
    }

    // ---- amnesia guard --------------------------------------------------------------------

    /// A data directory that has never been an acceptor asks its peers whether the cluster
    /// is fresh (every one of them empty).
    pub(super) fn probe(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        if self.commit == 0 && self.accepted.is_empty() && self.chosen.is_empty() {
            self.empty_probe
                .send(now, self.timing.heartbeat, &self.cluster, Msg::Probe, out);
        }
    }

    pub(super) fn on_probe_reply(
        &mut self,
        from: String,
        reply: ProbeReply,
        out: &mut Outbox<Msg, Persist>,
    ) {
        if self.meta.acceptor || self.commit != 0 || !self.accepted.is_empty() {
            return;
        }
        let Some(max) = self
            .empty_probe
            .answer(from, reply.empty, reply.promised, &self.cluster)
        else {
            return;
        };
        self.meta.promised = self.meta.promised.max(max);
        self.max_round = self.max_round.max(max.round);
        self.meta.acceptor = true;
        tracing::info!(node = %self.cluster.id, "every peer holds nothing; accepting from now on");
        self.persist_meta(out);
    }

    /// Amnesia guard, catch-up path: once this node knows every slot chosen through what the
    /// leader had proposed when it was first heard, it holds everything it could have accepted
    /// before it lost its disk, and acts as an acceptor again (promised to that leader).
    fn maybe_become_acceptor(&mut self, out: &mut Outbox<Msg, Persist>) {
        let Some((ballot, target)) = self.catch_up_target else {
            return;
        };
        if self.meta.acceptor || self.commit < target {
            return;
        }
        self.meta.acceptor = true;
        self.meta.promised = self.meta.promised.max(ballot);
        self.catch_up_target = None;
        tracing::info!(node = %self.cluster.id, ballot = %ballot, chosen = self.commit, "caught up with the leader; accepting from now on");
        self.persist_meta(out);
    }
}
