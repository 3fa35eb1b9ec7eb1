//! Client requests: writes through the log, the three read paths (§8, thesis §6.4),
//! forwarding to the leader, and turning outcomes into responses.

use faultline_protocol::{Op, Request, Response};
use faultline_replica::{to_response, Command};

use super::replication::quorum_round;
use super::*;
use crate::msg::FwdOp;
use crate::settings::ReadMode;

impl RaftCore {
    pub(super) fn on_client(
        &mut self,
        now: Millis,
        token: ClientToken,
        req: Request,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let op = match req.op {
            Op::Status => {
                out.reply(token, Response::status(req.id, self.status()));
                return;
            }
            Op::Read { key } => FwdOp::Read { key },
            Op::Write { key, value } => FwdOp::Cmd(Command::Write { key, value }),
            Op::Cas { key, from, to } => FwdOp::Cmd(Command::Cas { key, from, to }),
        };
        let waiter = Waiter::Local { token, id: req.id };
        let local_read = self.bugs.stale_local_reads && matches!(op, FwdOp::Read { .. });
        if !self.is_leader() && !local_read {
            if let (true, Some(leader)) = (self.settings.forward, self.leader.clone()) {
                let (inc, fid) = self.forwarded.add(token, req.id, now);
                out.send(leader, Msg::Forward { inc, fid, op });
                return;
            }
        }
        self.handle_op(now, waiter, op, out);
    }

    pub(super) fn on_forward(
        &mut self,
        now: Millis,
        from: String,
        inc: u64,
        fid: u64,
        op: FwdOp,
        out: &mut Outbox<Msg, Persist>,
    ) {
        if let State::Leader(l) = &mut self.state {
            if !l.forwards_seen.first_time(&from, inc, fid) {
                return;
            }
        }
        self.handle_op(now, Waiter::Remote { from, fid }, op, out);
    }

    pub(super) fn on_forward_reply(
        &mut self,
        fid: u64,
        result: OpResult,
        out: &mut Outbox<Msg, Persist>,
    ) {
        if let Some((token, id)) = self.forwarded.answered(fid) {
            self.answer(Waiter::Local { token, id }, result, out);
        }
    }

    pub(super) fn expire_forwards(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        for (token, id) in self.forwarded.expire(now, self.t.request) {
            self.answer(
                Waiter::Local { token, id },
                OpResult::forward_timeout(),
                out,
            );
        }
    }

    fn not_leader(&self) -> OpResult {
        OpResult::not_leader(self.leader.as_ref(), &self.id, "election in progress")
    }

    fn handle_op(
        &mut self,
        now: Millis,
        waiter: Waiter,
        op: FwdOp,
        out: &mut Outbox<Msg, Persist>,
    ) {
        if let (true, FwdOp::Read { key }) = (self.bugs.stale_local_reads, &op) {
            let v = self.kv.read(key);
            self.answer(waiter, OpResult::Value(v), out);
            return;
        }
        if !self.is_leader() {
            let r = self.not_leader();
            self.answer(waiter, r, out);
            return;
        }
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
        let single = self.quorum <= 1;
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
        let q = self.quorum;
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let acked = quorum_round(l, q);
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

    /// Deliver an outcome to a local client or back to the follower that forwarded it.
    pub(crate) fn answer(&self, waiter: Waiter, result: OpResult, out: &mut Outbox<Msg, Persist>) {
        match waiter {
            Waiter::Remote { from, fid } => out.send(from, Msg::ForwardReply { fid, result }),
            Waiter::Local { token, id } => out.reply(token, to_response(id, result)),
        }
    }
}
