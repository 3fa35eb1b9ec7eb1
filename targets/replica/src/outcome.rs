//! Client operations as a replicated node's core handles them: what a follower forwards to
//! its leader (and the bookkeeping on both ends), how an operation ended (in a form that
//! survives postcard between nodes, which the wire `Response` does not: it skips fields), and
//! the wire response for it.

use std::collections::BTreeMap;

use faultline_protocol::{ErrorCode, Response};
use serde::{Deserialize, Serialize};

use crate::driver::{ClientToken, Millis};
use crate::kv::Command;

/// A client operation forwarded from a follower to the leader (`forward: true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FwdOp {
    Read { key: String },
    Cmd(Command),
}

/// Why a client operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailKind {
    NotLeader,
    CasMismatch,
    Unavailable,
    Timeout,
}

/// The outcome of a client operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    /// A write or cas took effect.
    Done,
    /// A read's value.
    Value(Option<i64>),
    Fail {
        kind: FailKind,
        leader: Option<String>,
        message: String,
    },
}

impl OpResult {
    /// An op reached a node that cannot serve it: redirect to `leader` when one is known and
    /// it is not `me`; otherwise unavailable, saying `why` (an election in progress, say).
    pub fn not_leader(leader: Option<&String>, me: &str, why: &str) -> OpResult {
        match leader {
            Some(l) if l != me => OpResult::Fail {
                kind: FailKind::NotLeader,
                leader: Some(l.clone()),
                message: "not the leader".into(),
            },
            _ => OpResult::Fail {
                kind: FailKind::Unavailable,
                leader: None,
                message: format!("no leader known ({why})"),
            },
        }
    }

    /// A forwarded op the leader did not answer within the request timeout.
    pub fn forward_timeout() -> OpResult {
        OpResult::Fail {
            kind: FailKind::Timeout,
            leader: None,
            message: "forwarded request not answered in time".into(),
        }
    }
}

/// The wire response for an outcome.
pub fn to_response(id: u64, result: OpResult) -> Response {
    match result {
        OpResult::Done => Response::done(id),
        OpResult::Value(v) => Response::value(id, v),
        OpResult::Fail {
            kind: FailKind::NotLeader,
            leader,
            message,
        } => Response::not_leader(id, leader).with_message(message),
        OpResult::Fail { kind, message, .. } => {
            let code = match kind {
                FailKind::CasMismatch => ErrorCode::CasMismatch,
                FailKind::Unavailable => ErrorCode::Unavailable,
                FailKind::Timeout | FailKind::NotLeader => ErrorCode::Timeout,
            };
            Response::error(id, code).with_message(message)
        }
    }
}

/// A follower's forwarded requests, waiting for the leader's answer. Forward ids grow within
/// one process; `incarnation` (random per start) tells them from an earlier process's.
#[derive(Debug)]
pub struct Forwarded {
    incarnation: u64,
    next: u64,
    /// fid -> (client token, request id, sent at); fids grow with time.
    waiting: BTreeMap<u64, (ClientToken, u64, Millis)>,
}

impl Forwarded {
    pub fn new(incarnation: u64) -> Self {
        Forwarded {
            incarnation,
            next: 0,
            waiting: BTreeMap::new(),
        }
    }

    /// Remember a request sent to the leader now; returns the `(incarnation, fid)` to send.
    pub fn add(&mut self, token: ClientToken, id: u64, now: Millis) -> (u64, u64) {
        self.next += 1;
        self.waiting.insert(self.next, (token, id, now));
        (self.incarnation, self.next)
    }

    /// The leader answered `fid`: whom to tell (none if it expired or was answered before).
    pub fn answered(&mut self, fid: u64) -> Option<(ClientToken, u64)> {
        self.waiting.remove(&fid).map(|(t, id, _)| (t, id))
    }

    /// Requests sent `timeout` or longer ago, removed: whom to tell they timed out.
    pub fn expire(&mut self, now: Millis, timeout: Millis) -> Vec<(ClientToken, u64)> {
        let mut expired = Vec::new();
        while let Some(e) = self.waiting.first_entry() {
            if now < e.get().2 + timeout {
                break;
            }
            let (t, id, _) = e.remove();
            expired.push((t, id));
        }
        expired
    }
}

/// The leader's record of the forwards it has run, per follower process: a duplicate or late
/// copy must not run a write twice.
#[derive(Debug, Default)]
pub struct ForwardsSeen(BTreeMap<String, (u64, u64)>);

impl ForwardsSeen {
    /// Whether forward `(incarnation, fid)` from `from` is new (and record it if so).
    pub fn first_time(&mut self, from: &str, incarnation: u64, fid: u64) -> bool {
        if let Some((i, seen)) = self.0.get(from) {
            if *i == incarnation && fid <= *seen {
                return false;
            }
        }
        self.0.insert(from.to_owned(), (incarnation, fid));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_are_run_once_per_process_and_expire_in_order() {
        let mut f = Forwarded::new(7);
        let (inc, a) = f.add(ClientToken(1), 10, 0);
        let (_, b) = f.add(ClientToken(2), 11, 5);
        assert_eq!(inc, 7);
        let mut seen = ForwardsSeen::default();
        assert!(seen.first_time("n2", inc, a));
        assert!(!seen.first_time("n2", inc, a), "a duplicate ran again");
        assert!(seen.first_time("n2", inc, b));
        // A restarted follower starts its ids over in a new incarnation.
        assert!(seen.first_time("n2", 8, 1));
        assert_eq!(f.expire(104, 100), vec![(ClientToken(1), 10)]);
        assert_eq!(f.answered(a), None);
        assert_eq!(f.answered(b), Some((ClientToken(2), 11)));
        assert!(f.expire(1_000, 100).is_empty());
    }
}
