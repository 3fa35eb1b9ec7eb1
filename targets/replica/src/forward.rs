//! Client operations in a leader-based core (Raft, Multi-Paxos): a follower forwards them to
//! the leader it knows (`forward: true`), the leader runs each forwarded operation once, and
//! whoever waits for the outcome (a local client, or the follower that forwarded it) gets it.
//!
//! A core implements [`ForwardingCore`] (its [`ForwardState`], and how its leader runs an
//! operation); the trait's provided methods are the whole client and forwarding path.

use faultline_protocol::{Op, Request, Response, Role, Status};
use serde::{Deserialize, Serialize};

use crate::dispatch::{ClientHandler, Handlers};
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

/// What the forwarding path keeps for one core: its settings, the forwards it waits for
/// and, while it leads, the forwards it ran.
#[derive(Debug)]
pub struct ForwardState {
    /// Followers forward client operations to the leader (setting `forward`).
    pub to_leader: bool,
    /// Reads are answered from this node's own state (planted bug `stale-local-reads`).
    pub reads_locally: bool,
    /// Why there is no leader yet, for the `unavailable` message ("election in progress").
    pub no_leader_reason: &'static str,
    /// How long a forward may wait for the leader's answer.
    pub request_timeout: Millis,
    /// This node's forwards waiting for the leader.
    pub forwarded: Forwarded,
    /// The forwards this node ran in its current leadership.
    pub seen: ForwardsSeen,
}

impl ForwardState {
    /// The state of a core that has not led yet; `incarnation` numbers its forwards.
    pub fn new(
        to_leader: bool,
        reads_locally: bool,
        no_leader_reason: &'static str,
        request_timeout: Millis,
        incarnation: u64,
    ) -> Self {
        ForwardState {
            to_leader,
            reads_locally,
            no_leader_reason,
            request_timeout,
            forwarded: Forwarded::new(incarnation),
            seen: ForwardsSeen::default(),
        }
    }

    /// A consensus node's (Raft's, Multi-Paxos's) timers and forwarding state, from its
    /// settings: reads are served locally when `reads_locally` (a planted bug), and a request
    /// that finds no leader fails with `no_leader_reason`.
    pub fn consensus(
        settings: &crate::settings::ConsensusSettings,
        reads_locally: bool,
        no_leader_reason: &'static str,
        incarnation: u64,
    ) -> (crate::timing::Timing, ForwardState) {
        let timing = crate::timing::Timing::new(
            settings.heartbeat,
            settings.election_timeout,
            settings.clock_drift,
            settings.request_timeout,
        );
        let forwarding = ForwardState::new(
            settings.forward,
            reads_locally,
            no_leader_reason,
            timing.request_timeout,
            incarnation,
        );
        (timing, forwarding)
    }

    /// The core became leader: it has run no forward in this leadership yet.
    pub fn lead(&mut self) {
        self.seen = ForwardsSeen::default();
    }
}

/// A leader-based core's side of client operations: what differs between protocols. The
/// provided methods route, forward, deduplicate, expire and answer; the core's status says
/// who leads ([`Status::leader`], and its role).
pub trait ForwardingCore: Handlers<Msg: From<Forward> + From<ForwardReply>> {
    /// The forwarding path's state.
    fn forwarding(&mut self) -> &mut ForwardState;
    /// The node's status (also says who leads).
    fn status(&self) -> Status;
    /// The value of `key` in this node's state.
    fn read_local(&self, key: &str) -> Option<i64>;
    /// Run `op` as the leader (this node leads when it is called).
    fn lead_op(
        &mut self,
        now: Millis,
        waiter: Waiter,
        op: FwdOp,
        out: &mut Outbox<Self::Msg, Self::Persist>,
    );

    /// The leader this node follows (possibly itself), if known.
    fn known_leader(&self) -> Option<String> {
        self.status().leader
    }

    /// This node leads now.
    fn leads(&self) -> bool {
        self.status().role == Role::Leader
    }

    /// A client request: status at once; otherwise forwarded to the known leader (when this
    /// node does not lead and forwarding is on) or handled here.
    fn route_client(
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
        let forwarding = self.forwarding();
        let local_read = forwarding.reads_locally && matches!(op, FwdOp::Read { .. });
        let to_leader = forwarding.to_leader;
        if !self.leads() && !local_read && to_leader {
            let leader = self
                .known_leader()
                .filter(|l| l != self.cluster().id.as_str());
            if let Some(leader) = leader {
                let forwarded = &mut self.forwarding().forwarded;
                let (incarnation, forward_id) = forwarded.add(token, request.id, now);
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
        if self.leads() {
            let seen = &mut self.forwarding().seen;
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
        if let Some((token, id)) = self.forwarding().forwarded.answered(reply.forward_id) {
            self.answer(Waiter::Local { token, id }, reply.result, out);
        }
    }

    /// Time out forwards the leader did not answer within the request timeout.
    fn expire_forwards(&mut self, now: Millis, out: &mut Outbox<Self::Msg, Self::Persist>) {
        let forwarding = self.forwarding();
        let timeout = forwarding.request_timeout;
        for (token, id) in forwarding.forwarded.expire(now, timeout) {
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
        if let (true, FwdOp::Read { key }) = (self.forwarding().reads_locally, &op) {
            let value = self.read_local(key);
            self.answer(waiter, OpResult::Value(value), out);
            return;
        }
        if !self.leads() {
            let reason = self.forwarding().no_leader_reason;
            let leader = self.known_leader();
            let result = OpResult::not_leader(leader.as_ref(), self.cluster().id.as_str(), reason);
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

/// A forwarding core's client requests take its forwarding path.
impl<C: ForwardingCore> ClientHandler for C {
    fn on_client(
        &mut self,
        now: Millis,
        token: ClientToken,
        request: Request,
        out: &mut Outbox<Self::Msg, Self::Persist>,
    ) {
        self.route_client(now, token, request, out);
    }
}

#[cfg(test)]
mod tests {
    use faultline_protocol::ErrorCode;

    use super::*;
    use crate::cluster::Cluster;
    use crate::driver::{Core, Input};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum TestMsg {
        Forward(Forward),
        ForwardReply(ForwardReply),
    }

    crate::forward_messages!(TestMsg);

    /// A node that knows `leader` and, when it leads, records the operations it runs.
    struct TestCore {
        cluster: Cluster,
        leader: Option<String>,
        forwarding: ForwardState,
        ran: Vec<(Waiter, FwdOp)>,
    }

    impl TestCore {
        fn new(id: &str, leader: &str) -> Self {
            TestCore {
                cluster: Cluster::new(id, vec!["n1".into(), "n2".into()]),
                leader: Some(leader.into()),
                forwarding: ForwardState::new(true, false, "testing", 100, 7),
                ran: Vec::new(),
            }
        }
    }

    impl Core for TestCore {
        type Msg = TestMsg;
        type Persist = ();

        fn step(&mut self, now: Millis, input: Input<TestMsg>, out: &mut Outbox<TestMsg, ()>) {
            self.dispatch(now, input, out);
        }
    }

    impl Handlers for TestCore {
        fn cluster(&self) -> &Cluster {
            &self.cluster
        }
        fn on_peer(
            &mut self,
            now: Millis,
            from: String,
            msg: TestMsg,
            out: &mut Outbox<TestMsg, ()>,
        ) {
            match msg {
                TestMsg::Forward(forward) => self.on_forward(now, from, forward, out),
                TestMsg::ForwardReply(reply) => self.on_forward_reply(reply, out),
            }
        }
        fn on_tick(&mut self, now: Millis, out: &mut Outbox<TestMsg, ()>) {
            self.expire_forwards(now, out);
        }
    }

    impl ForwardingCore for TestCore {
        fn forwarding(&mut self) -> &mut ForwardState {
            &mut self.forwarding
        }
        fn status(&self) -> Status {
            let leads = self.leader.as_ref() == Some(&self.cluster.id);
            let role = if leads { Role::Leader } else { Role::Follower };
            self.cluster.status(role, 1, self.leader.clone(), 0, 0)
        }
        fn read_local(&self, _key: &str) -> Option<i64> {
            None
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
        follower.route_client(0, ClientToken(3), write(10), &mut out);
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
        follower.route_client(0, ClientToken(3), write(10), &mut out);
        follower.expire_forwards(99, &mut out);
        assert!(out.replies.is_empty());
        follower.expire_forwards(100, &mut out);
        let [(ClientToken(3), timeout)] = out.replies.as_slice() else {
            panic!("one timeout expected: {:?}", out.replies);
        };
        assert_eq!(timeout.error.as_ref().unwrap().code, ErrorCode::Timeout);
        follower.leader = None;
        let mut out = Outbox::default();
        follower.route_client(200, ClientToken(4), write(11), &mut out);
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
