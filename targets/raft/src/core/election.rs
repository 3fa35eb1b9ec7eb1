//! Leader election (§5.2) with PreVote (thesis §9.6), vote stickiness (thesis §4.2.3), and
//! the amnesia guard: a data directory that never voted must first catch up or prove the
//! cluster empty (README.md, "Amnesia guard").

use std::collections::{BTreeSet, VecDeque};

use faultline_replica::dispatch::Handlers;
use faultline_replica::{Millis, Outbox};

use super::{Leader, Mode, Progress, RaftCore, State};
use crate::msg::{EntryOp, Msg, Persist, ProbeReply, Vote, VoteReply};

impl RaftCore {
    /// Is `(last_term, last_index)` at least as up to date as this node's log (§5.4.1)?
    fn log_ok(&self, last_term: u64, last_index: u64) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Start a (pre-)election after an election timeout.
    pub(super) fn start_election(
        &mut self,
        now: Millis,
        pre: bool,
        out: &mut Outbox<Msg, Persist>,
    ) {
        self.reset_election_timer(now);
        self.leader = None;
        let mut votes = BTreeSet::new();
        votes.insert(self.cluster.id.clone());
        let term = if pre {
            self.step_down(now, out);
            self.state = State::PreCandidate { votes };
            self.hard.term + 1
        } else {
            self.step_down(now, out);
            self.hard.term += 1;
            self.hard.vote = Some(self.cluster.id.clone());
            self.persist_hard(out);
            self.state = State::Candidate { votes };
            self.hard.term
        };
        tracing::debug!(node = %self.cluster.id, term, pre, "starting election");
        let msg = self.vote_request(term, pre);
        for p in self.peers() {
            out.send(p, msg.clone());
        }
        self.votes_sent = now;
        self.check_votes(now, out);
    }

    /// A (pre-)candidate asks again, every heartbeat, the peers whose vote it lacks (§5.1:
    /// RPCs are retried). Safe: a voter grants at most one candidate per term, and a
    /// pre-vote changes nothing.
    pub(super) fn resend_vote_requests(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let (votes, pre, term) = match &self.state {
            State::PreCandidate { votes } => (votes, true, self.hard.term + 1),
            State::Candidate { votes } => (votes, false, self.hard.term),
            _ => return,
        };
        if now < self.votes_sent + self.timing.heartbeat {
            return;
        }
        let msg = self.vote_request(term, pre);
        for p in self.peers() {
            if !votes.contains(&p) {
                out.send(p, msg.clone());
            }
        }
        self.votes_sent = now;
    }

    /// A (pre-)vote request for `term`, carrying this node's log position (§5.4.1).
    fn vote_request(&self, term: u64, pre: bool) -> Msg {
        Msg::Vote(Vote {
            term,
            pre,
            last_index: self.last_index(),
            last_term: self.last_term(),
        })
    }

    fn check_votes(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        match &self.state {
            State::PreCandidate { votes } if votes.len() >= self.cluster.quorum => {
                self.start_election(now, false, out)
            }
            State::Candidate { votes } if votes.len() >= self.cluster.quorum => {
                self.become_leader(now, out)
            }
            _ => {}
        }
    }

    pub(super) fn on_vote(
        &mut self,
        now: Millis,
        from: String,
        vote: Vote,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let Vote {
            term,
            pre,
            last_index,
            last_term,
        } = vote;
        // Stickiness: while a leader was heard within the minimum election timeout (or this
        // leader heard its quorum), ignore campaigns entirely: they come from a node that is
        // partitioned or slow, and granting them would break leader leases.
        let blocked = now < self.vote_blocked_until || self.leader_has_quorum(now);
        if term > self.hard.term && blocked {
            out.send(
                from,
                Msg::VoteReply(VoteReply {
                    term: self.hard.term,
                    pre,
                    granted: false,
                }),
            );
            return;
        }
        if pre {
            let granted =
                self.hard.voter && term > self.hard.term && self.log_ok(last_term, last_index);
            out.send(
                from,
                Msg::VoteReply(VoteReply {
                    term: if granted { term } else { self.hard.term },
                    pre: true,
                    granted,
                }),
            );
            return;
        }
        if term > self.hard.term {
            self.become_follower(now, term, None, out);
        }
        let granted = term == self.hard.term
            && self.hard.voter
            && self.hard.vote.as_ref().is_none_or(|v| *v == from)
            && self.log_ok(last_term, last_index);
        if granted {
            if self.hard.vote.is_none() {
                self.hard.vote = Some(from.clone());
                self.persist_hard(out);
            }
            self.reset_election_timer(now);
        }
        out.send(
            from,
            Msg::VoteReply(VoteReply {
                term: self.hard.term,
                pre: false,
                granted,
            }),
        );
    }

    /// A leader that heard from a quorum within the minimum election timeout.
    fn leader_has_quorum(&self, now: Millis) -> bool {
        let State::Leader(l) = &self.state else {
            return false;
        };
        let mut acks: Vec<Millis> = l.progress.values().map(|p| p.last_ack).collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        self.cluster.quorum <= 1
            || now < acks[self.cluster.quorum - 2] + self.timing.election_timeout_min
    }

    pub(super) fn on_vote_reply(
        &mut self,
        now: Millis,
        from: String,
        reply: VoteReply,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let VoteReply { term, pre, granted } = reply;
        if term > self.hard.term && !(pre && granted) {
            self.become_follower(now, term, None, out);
            return;
        }
        match &mut self.state {
            State::PreCandidate { votes } if pre && granted && term == self.hard.term + 1 => {
                votes.insert(from);
            }
            State::Candidate { votes } if !pre && granted && term == self.hard.term => {
                votes.insert(from);
            }
            _ => return,
        }
        self.check_votes(now, out);
    }

    fn become_leader(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        tracing::info!(node = %self.cluster.id, term = self.hard.term, last = self.last_index(), "became leader");
        let next = self.last_index() + 1;
        let progress = self
            .peers()
            .into_iter()
            .map(|p| {
                (
                    p,
                    Progress {
                        next,
                        matched: 0,
                        mode: Mode::Probe,
                        inflight: VecDeque::new(),
                        probe_sent: None,
                        last_ack: now,
                        acked_round: 0,
                    },
                )
            })
            .collect();
        self.forwarding.lead();
        self.state = State::Leader(Box::new(Leader {
            progress,
            since: now,
            last_heartbeat: now,
            ..Leader::default()
        }));
        self.leader = Some(self.cluster.id.clone());
        // §8: a no-op of its own term lets the leader commit (and learn) what its
        // predecessors left, and enables ReadIndex.
        self.append(EntryOp::Noop, out);
        self.send_appends(now, out, true);
    }

    /// Amnesia guard, bootstrap path: a node that has never voted asks its peers; if every
    /// peer holds an empty log, no entry was ever committed and it may vote, skipping every
    /// term a peer has reached (it may have voted in them before losing its disk).
    pub(super) fn probe(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        if self.last_index() == 0 {
            self.empty_probe
                .send(now, self.timing.heartbeat, &self.cluster, Msg::Probe, out);
        }
    }

    /// Amnesia guard, catch-up path: after accepting a leader's entries up to its last index,
    /// this node holds everything that leader had and may vote.
    pub(super) fn maybe_become_voter(&mut self, leader_last: u64, out: &mut Outbox<Msg, Persist>) {
        if self.hard.voter || self.last_index() < leader_last {
            return;
        }
        self.hard.voter = true;
        if self.hard.vote.is_none() {
            self.hard.vote = self.leader.clone();
        }
        tracing::info!(node = %self.cluster.id, term = self.hard.term, "caught up with the leader; voting from now on");
        self.persist_hard(out);
    }

    /// Amnesia guard, bootstrap path: a peer's answer to the probe. Once every peer answered
    /// with an empty log, vote from now on.
    pub(super) fn on_probe_reply(
        &mut self,
        from: String,
        reply: ProbeReply,
        out: &mut Outbox<Msg, Persist>,
    ) {
        if self.hard.voter || self.last_index() != 0 {
            return;
        }
        let Some(max_term) =
            self.empty_probe
                .answer(from, reply.last == 0, reply.term, &self.cluster)
        else {
            return;
        };
        if max_term > self.hard.term {
            self.hard.term = max_term;
            self.hard.vote = Some(self.cluster.id.clone());
        }
        self.hard.voter = true;
        tracing::info!(node = %self.cluster.id, term = self.hard.term, "every peer holds an empty log; voting from now on");
        self.persist_hard(out);
    }
}
