//! Client requests: writes and log reads take slots, lease reads are answered from the
//! leader's state. Routing, forwarding to the leader (`forward: true`) and answering are
//! `faultline_replica::forward`'s; this file gives it what Multi-Paxos knows
//! ([`ForwardingCore`]).

use faultline_protocol::Status;
use faultline_replica::forward::{ForwardState, ForwardingCore, Waiter};
use faultline_replica::{Millis, Outbox};

use super::{PaxosCore, Pending, State};
use crate::msg::{FwdOp, Msg, OpResult, Persist, Value};
use crate::settings::ReadMode;

impl ForwardingCore for PaxosCore {
    fn forwarding(&mut self) -> &mut ForwardState {
        &mut self.forwarding
    }

    fn status(&self) -> Status {
        let (role, leader) = (self.role(), self.leader.clone());
        self.cluster.status(
            role,
            self.ballot().as_term(),
            leader,
            self.commit,
            self.applied,
        )
    }

    fn read_local(&self, key: &str) -> Option<i64> {
        self.kv.read(key)
    }

    /// Lease reads are answered from this leader's state; writes and other reads take a slot.
    fn lead_op(&mut self, now: Millis, waiter: Waiter, op: FwdOp, out: &mut Outbox<Msg, Persist>) {
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
}

impl PaxosCore {
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
}
