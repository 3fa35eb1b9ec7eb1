//! Client requests: writes through the log and the three read paths (§8, thesis §6.4).
//! Routing, forwarding to the leader and answering are `faultline_replica::forward`'s; this
//! file gives it what Raft knows ([`ForwardingCore`]).

use std::collections::VecDeque;

use faultline_protocol::Status;
use faultline_replica::forward::{ForwardState, ForwardingCore, Waiter};
use faultline_replica::{Millis, Outbox};

use super::replication::quorum_round;
use super::{PendingRead, PendingWrite, RaftCore, State};
use crate::msg::{EntryOp, FwdOp, Msg, OpResult, Persist};
use crate::settings::ReadMode;

impl ForwardingCore for RaftCore {
    fn forwarding(&mut self) -> &mut ForwardState {
        &mut self.forwarding
    }

    fn status(&self) -> Status {
        let (role, leader) = (self.role(), self.leader.clone());
        self.cluster
            .status(role, self.hard.term, leader, self.commit, self.applied)
    }

    fn read_local(&self, key: &str) -> Option<i64> {
        self.kv.read(key)
    }

    /// Writes go through the log; reads take the configured read path.
    fn lead_op(&mut self, now: Millis, waiter: Waiter, op: FwdOp, out: &mut Outbox<Msg, Persist>) {
        match op {
            FwdOp::Cmd(cmd) => {
                let index = self.append(EntryOp::Cmd(cmd), out);
                if let State::Leader(l) = &mut self.state {
                    l.pending.insert(index, PendingWrite { waiter, at: now });
                }
            }
            FwdOp::Read { key } => self.read(now, waiter, key, out),
        }
    }
}

impl RaftCore {
    fn read(&mut self, now: Millis, waiter: Waiter, key: String, out: &mut Outbox<Msg, Persist>) {
        let committed_in_term = self.term_at(self.commit) == Some(self.hard.term);
        match self.settings.read {
            ReadMode::Log => {
                let index = self.append(EntryOp::Read { key }, out);
                if let State::Leader(l) = &mut self.state {
                    l.pending.insert(index, PendingWrite { waiter, at: now });
                }
                return;
            }
            ReadMode::Lease => {
                let lease_ok = matches!(&self.state, State::Leader(l) if now < l.lease_until);
                if lease_ok && committed_in_term {
                    let v = self.kv.read(&key);
                    self.answer(waiter, OpResult::Value(v), out);
                    return;
                }
            }
            ReadMode::ReadIndex => {}
        }
        let commit = self.commit;
        let single = self.cluster.quorum <= 1;
        if let State::Leader(l) = &mut self.state {
            l.reads.push_back(PendingRead {
                waiter,
                key,
                round: l.round + 1,
                index: committed_in_term.then_some(commit),
                at: now,
            });
            if !single {
                l.need_round = true;
            }
        }
        if single {
            if let State::Leader(l) = &mut self.state {
                l.round += 1;
            }
            self.serve_reads(out);
        }
    }

    /// Answer ReadIndex reads whose round a quorum acknowledged and whose index is applied.
    pub(crate) fn serve_reads(&mut self, out: &mut Outbox<Msg, Persist>) {
        let (commit, applied, term) = (self.commit, self.applied, self.hard.term);
        let committed_in_term = self.term_at(commit) == Some(term);
        let quorum = self.cluster.quorum;
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let acked = quorum_round(l, quorum);
        let mut ready = Vec::new();
        let mut keep = VecDeque::new();
        for mut r in std::mem::take(&mut l.reads) {
            if r.index.is_none() && committed_in_term {
                // §8: the leader's commit index is current once it committed in its term.
                r.index = Some(commit);
            }
            match r.index {
                Some(i) if r.round <= acked && i <= applied => ready.push(r),
                _ => keep.push_back(r),
            }
        }
        l.reads = keep;
        for r in ready {
            let v = self.kv.read(&r.key);
            self.answer(r.waiter, OpResult::Value(v), out);
        }
    }
}
