//! Client operations as a replicated node's core handles them: what a follower forwards to
//! its leader, how an operation ended (in a form that survives bincode between nodes, which
//! the wire `Response` does not: it skips fields), and the wire response for it.

use faultline_protocol::{ErrorCode, Response};
use serde::{Deserialize, Serialize};

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
