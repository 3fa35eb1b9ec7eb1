//! Client requests: writes and log reads take slots, lease reads are answered from the
//! leader's state, followers forward to the leader (`forward: true`), and outcomes become
//! responses.

use faultline_protocol::{Op, Request, Response};
use faultline_replica::{to_response, Command};

use super::*;
use crate::msg::FwdOp;
use crate::settings::ReadMode;

impl PaxosCore {
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
                if leader != self.id {
                    let (inc, fid) = self.forwarded.add(token, req.id, now);
                    out.send(leader, Msg::Forward { inc, fid, op });
                    return;
                }
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
        for (token, id) in self.forwarded.expire(now, self.timing.request) {
            self.answer(
                Waiter::Local { token, id },
                OpResult::forward_timeout(),
                out,
            );
        }
    }

    fn not_leader(&self) -> OpResult {
        OpResult::not_leader(self.leader.as_ref(), &self.id, "takeover in progress")
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
        if let FwdOp::Read { key } = &op {
            if self.settings.read == ReadMode::Lease && self.lease_holds(now) {
                let v = self.kv.read(key);
                self.answer(waiter, OpResult::Value(v), out);
                return;
            }
        }
        self.next_tag += 1;
        let tag = self.next_tag;
        let (value, read) = match op {
            FwdOp::Cmd(cmd) => (Value::Cmd { cmd, tag }, false),
            FwdOp::Read { key } => (Value::Read { key, tag }, true),
        };
        let slot = self.propose(value, now, out);
        if let State::Leader(l) = &mut self.state {
            l.pending.insert(
                slot,
                Pending {
                    waiter,
                    tag,
                    read,
                    at: now,
                },
            );
        }
    }

    /// The lease holds and this leader has executed every slot its takeover recovered (so
    /// its state holds everything chosen before its ballot) and everything chosen since.
    fn lease_holds(&self, now: Millis) -> bool {
        match &self.state {
            State::Leader(l) => {
                now < l.lease_until && self.applied >= l.recovery_end && self.applied == self.commit
            }
            _ => false,
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
