//! Client operations in a leader-based core (Raft, Multi-Paxos): a follower forwards them to
//! the leader it knows (`forward: true`), the leader runs each forwarded operation once, and
//! whoever waits for the outcome (a local client, or the follower that forwarded it) gets it.
//!
//! A core implements [`ForwardingCore`] (what it knows of leadership, and how its leader runs
//! an operation); the trait's provided methods are the whole client and forwarding path.

use faultline_protocol::{Op, Request, Response, Status};
use serde::{Deserialize, Serialize};

use crate::driver::{ClientToken, Millis, Outbox};
use crate::kv::{Applied, Command};
use crate::outcome::{to_response, FailKind, Forwarded, ForwardsSeen, FwdOp, OpResult};

/// Follower to leader: run this client operation for me. The wire names stay `inc`/`fid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The sending process's incarnation (random per start).
    #[serde(rename = "inc")]
    pub incarnation: u64,
    /// The request's sequence number within that incarnation.
    #[serde(rename = "fid")]
    pub forward_id: u64,
    pub op: FwdOp,
}

/// Leader to follower: the outcome of forward `forward_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardReply {
    #[serde(rename = "fid")]
    pub forward_id: u64,
    pub result: OpResult,
}

/// Implements `From<Forward>` and `From<ForwardReply>` for a core's message enum `$msg`,
/// whose variants `Forward` and `ForwardReply` carry them (what [`ForwardingCore::Msg`] needs).
#[macro_export]
macro_rules! forward_messages {
    ($msg:ty) => {
        impl From<$crate::forward::Forward> for $msg {
            fn from(forward: $crate::forward::Forward) -> Self {
                Self::Forward(forward)
            }
        }

        impl From<$crate::forward::ForwardReply> for $msg {
            fn from(reply: $crate::forward::ForwardReply) -> Self {
                Self::ForwardReply(reply)
            }
        }
    };
}

/// Who waits for the outcome of a client operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiter {
    /// A client of this node: request `id` on connection `token`.
    Local { token: ClientToken, id: u64 },
    /// The follower `from`, which forwarded it as `forward_id`.
    Remote { from: String, forward_id: u64 },
}

/// A failed operation's outcome, with no leader hint.
pub fn failure(kind: FailKind, message: impl Into<String>) -> OpResult {
    OpResult::Fail {
        kind,
        leader: None,
        message: message.into(),
    }
}

/// The outcome of a write or cas applied to the state.
pub fn applied_result(applied: Applied) -> OpResult {
    match applied {
        Applied::Done => OpResult::Done,
        Applied::CasMismatch { current } => failure(
            FailKind::CasMismatch,
            format!("current value is {}", value_text(current)),
        ),
    }
}

/// A KV value as error messages show it (`null` for none).
pub fn value_text(value: Option<i64>) -> String {
    value.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

/// A client operation as the core runs it, or `None` for a status request (answered at once).
pub fn client_op(op: Op) -> Option<FwdOp> {
    match op {
        Op::Status => None,
        Op::Read { key } => Some(FwdOp::Read { key }),
        Op::Write { key, value } => Some(FwdOp::Cmd(Command::Write { key, value })),
        Op::Cas { key, from, to } => Some(FwdOp::Cmd(Command::Cas { key, from, to })),
    }
}

/// A leader-based core's side of client operations: what differs between protocols. The
/// provided methods route, forward, deduplicate, expire and answer.
pub trait ForwardingCore {
    type Msg: From<Forward> + From<ForwardReply>;
    type Persist;

    /// This node's id.
    fn node_id(&self) -> &str;
    /// The leader this node follows (possibly itself), if known.
    fn known_leader(&self) -> Option<&String>;
    /// This node leads now.
    fn leads(&self) -> bool;
    /// Followers forward client operations to the leader (setting `forward`).
    fn forwards_to_leader(&self) -> bool;
    /// Reads are answered from this node's own state (planted bug `stale-local-reads`).
    fn reads_locally(&self) -> bool;
    /// Why there is no leader yet, for the `unavailable` message ("election in progress").
    fn no_leader_reason(&self) -> &'static str;
    fn status(&self) -> Status;
    fn request_timeout(&self) -> Millis;
    /// The value of `key` in this node's state.
    fn read_local(&self, key: &str) -> Option<i64>;
    /// This node's forwards waiting for the leader.
    fn forwarded(&mut self) -> &mut Forwarded;
    /// The leader's record of the forwards it ran (`None` when not leading).
    fn forwards_seen(&mut self) -> Option<&mut ForwardsSeen>;
    /// Run `op` as the leader (this node leads when it is called).
    fn lead_op(
        &mut self,
        now: Millis,
        waiter: Waiter,
        op: FwdOp,
        out: &mut Outbox<Self::Msg, Self::Persist>,
    );

    /// A client request: status at once; otherwise forwarded to the known leader (when this
    /// node does not lead and forwarding is on) or handled here.
    fn on_client(
        &mut self,
        now: Millis,
        token: ClientToken,
        request: Request,
        out: &mut Outbox<Self::Msg, Self::Persist>,
    ) {
        let Some(op) = client_op(request.op) else {
            out.reply(token, Response::status(request.id, self.status()));
            return;
        };
        let local_read = self.reads_locally() && matches!(op, FwdOp::Read { .. });
        if !self.leads() && !local_read && self.forwards_to_leader() {
            let leader = self
                .known_leader()
                .filter(|l| *l != self.node_id())
                .cloned();
            if let Some(leader) = leader {
                let (incarnation, forward_id) = self.forwarded().add(token, request.id, now);
                let forward = Forward {
                    incarnation,
                    forward_id,
                    op,
                };
                out.send(leader, forward.into());
                return;
            }
        }
        let waiter = Waiter::Local {
            token,
            id: request.id,
        };
        self.handle_op(now, waiter, op, out);
    }

    /// A follower's forwarded operation: run it unless it ran before.
    fn on_forward(
        &mut self,
        now: Millis,
        from: String,
        forward: Forward,
        out: &mut Outbox<Self::Msg, Self::Persist>,
    ) {
        if let Some(seen) = self.forwards_seen() {
            if !seen.first_time(&from, forward.incarnation, forward.forward_id) {
                return;
            }
        }
        let waiter = Waiter::Remote {
            from,
            forward_id: forward.forward_id,
        };
        self.handle_op(now, waiter, forward.op, out);
    }

    /// The leader answered a forward: tell the client (unless it expired meanwhile).
    fn on_forward_reply(
        &mut self,
        reply: ForwardReply,
        out: &mut Outbox<Self::Msg, Self::Persist>,
    ) {
        if let Some((token, id)) = self.forwarded().answered(reply.forward_id) {
            self.answer(Waiter::Local { token, id }, reply.result, out);
        }
    }

    /// Time out forwards the leader did not answer within the request timeout.
    fn expire_forwards(&mut self, now: Millis, out: &mut Outbox<Self::Msg, Self::Persist>) {
        let timeout = self.request_timeout();
        for (token, id) in self.forwarded().expire(now, timeout) {
            self.answer(
                Waiter::Local { token, id },
                OpResult::forward_timeout(),
                out,
            );
        }
    }

    /// An operation to run here: a stale local read (bug), a redirect when not leading, or
    /// the leader's own path.
    fn handle_op(
        &mut self,
        now: Millis,
        waiter: Waiter,
        op: FwdOp,
        out: &mut Outbox<Self::Msg, Self::Persist>,
    ) {
        if let (true, FwdOp::Read { key }) = (self.reads_locally(), &op) {
            let value = self.read_local(key);
            self.answer(waiter, OpResult::Value(value), out);
            return;
        }
        if !self.leads() {
            let result =
                OpResult::not_leader(self.known_leader(), self.node_id(), self.no_leader_reason());
            self.answer(waiter, result, out);
            return;
        }
        self.lead_op(now, waiter, op, out);
    }

    /// Deliver an outcome to a local client or back to the follower that forwarded it.
    fn answer(&self, waiter: Waiter, result: OpResult, out: &mut Outbox<Self::Msg, Self::Persist>) {
        match waiter {
            Waiter::Remote { from, forward_id } => {
                out.send(from, ForwardReply { forward_id, result }.into())
            }
            Waiter::Local { token, id } => out.reply(token, to_response(id, result)),
        }
    }
}

#[cfg(test)]
mod tests {
    use faultline_protocol::{ErrorCode, Role};

    use super::*;

    #[derive(Debug, PartialEq)]
    enum TestMsg {
        Forward(Forward),
        ForwardReply(ForwardReply),
    }

    crate::forward_messages!(TestMsg);

    /// A node that knows `leader` and, when it leads, records the operations it runs.
    struct TestCore {
        id: String,
        leader: Option<String>,
        forwarded: Forwarded,
        seen: ForwardsSeen,
        ran: Vec<(Waiter, FwdOp)>,
    }

    impl TestCore {
        fn new(id: &str, leader: &str) -> Self {
            TestCore {
                id: id.into(),
                leader: Some(leader.into()),
                forwarded: Forwarded::new(7),
                seen: ForwardsSeen::default(),
                ran: Vec::new(),
            }
        }
    }

    impl ForwardingCore for TestCore {
        type Msg = TestMsg;
        type Persist = ();

        fn node_id(&self) -> &str {
            &self.id
        }
        fn known_leader(&self) -> Option<&String> {
            self.leader.as_ref()
        }
        fn leads(&self) -> bool {
            self.leader.as_deref() == Some(self.id.as_str())
        }
        fn forwards_to_leader(&self) -> bool {
            true
        }
        fn reads_locally(&self) -> bool {
            false
        }
        fn no_leader_reason(&self) -> &'static str {
            "testing"
        }
        fn status(&self) -> Status {
            Status {
                node: self.id.clone(),
                role: Role::Follower,
                term: 1,
                leader: self.leader.clone(),
                commit: 0,
                applied: None,
                role_us: None,
            }
        }
        fn request_timeout(&self) -> Millis {
            100
        }
        fn read_local(&self, _key: &str) -> Option<i64> {
            None
        }
        fn forwarded(&mut self) -> &mut Forwarded {
            &mut self.forwarded
        }
        fn forwards_seen(&mut self) -> Option<&mut ForwardsSeen> {
            let leads = self.leads();
            leads.then_some(&mut self.seen)
        }
        fn lead_op(
            &mut self,
            _now: Millis,
            waiter: Waiter,
            op: FwdOp,
            _out: &mut Outbox<TestMsg, ()>,
        ) {
            self.ran.push((waiter, op));
        }
    }

    fn write(id: u64) -> Request {
        Request {
            id,
            op: Op::Write {
                key: "k".into(),
                value: 1,
            },
        }
    }

    #[test]
    fn a_follower_forwards_and_the_leader_runs_each_forward_once() {
        let mut follower = TestCore::new("n2", "n1");
        let mut leader = TestCore::new("n1", "n1");
        let mut out = Outbox::default();
        follower.on_client(0, ClientToken(3), write(10), &mut out);
        let [(to, TestMsg::Forward(forward))] = out.messages.as_slice() else {
            panic!("one forward expected: {:?}", out.messages);
        };
        assert_eq!(to, "n1");
        let mut at_leader = Outbox::default();
        leader.on_forward(1, "n2".into(), forward.clone(), &mut at_leader);
        leader.on_forward(2, "n2".into(), forward.clone(), &mut at_leader);
        assert_eq!(leader.ran.len(), 1, "a duplicate forward ran again");
        let (waiter, _) = leader.ran.pop().unwrap();
        leader.answer(waiter, OpResult::Done, &mut at_leader);
        let Some((to, TestMsg::ForwardReply(reply))) = at_leader.messages.pop() else {
            panic!("no reply to the follower");
        };
        assert_eq!(to, "n2");
        let mut back = Outbox::default();
        follower.on_forward_reply(reply.clone(), &mut back);
        assert_eq!(back.replies, vec![(ClientToken(3), Response::done(10))]);
        follower.on_forward_reply(reply, &mut back);
        assert_eq!(back.replies.len(), 1, "answered twice");
    }

    #[test]
    fn unanswered_forwards_time_out_and_a_leaderless_node_is_unavailable() {
        let mut follower = TestCore::new("n2", "n1");
        let mut out = Outbox::default();
        follower.on_client(0, ClientToken(3), write(10), &mut out);
        follower.expire_forwards(99, &mut out);
        assert!(out.replies.is_empty());
        follower.expire_forwards(100, &mut out);
        let [(ClientToken(3), timeout)] = out.replies.as_slice() else {
            panic!("one timeout expected: {:?}", out.replies);
        };
        assert_eq!(timeout.error.as_ref().unwrap().code, ErrorCode::Timeout);
        follower.leader = None;
        let mut out = Outbox::default();
        follower.on_client(200, ClientToken(4), write(11), &mut out);
        assert!(out.messages.is_empty());
        let error = out.replies[0].1.error.clone().unwrap();
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert!(
            error
                .message
                .as_deref()
                .is_some_and(|m| m.contains("testing")),
            "{error:?}"
        );
    }
}
