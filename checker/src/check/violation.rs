//! What a consistency checker reports: violations with the operations that show them, and
//! counterexamples of the linearizability search.

use faultline_protocol::{OpKind, Value};
use serde::Serialize;

use crate::history::{OpRecord, Outcome};

/// The kinds of consistency violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    /// No order of the key's operations respects both real time and the model.
    Nonlinearizable,
    /// An acknowledged write that a later read shows gone, and no read after that sees again.
    LostWrite,
    /// A read that returned a value older than a write that completed before the read began.
    StaleRead,
    /// A read that returned a value no write or cas on its key (ok or info) ever wrote.
    NeverWritten,
}

impl ViolationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::Nonlinearizable => "nonlinearizable",
            ViolationKind::LostWrite => "lost-write",
            ViolationKind::StaleRead => "stale-read",
            ViolationKind::NeverWritten => "never-written",
        }
    }
}

/// An operation as shown in a violation: enough to find it in `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpSummary {
    pub id: u64,
    pub client: u32,
    pub f: OpKind,
    /// Write: value written; cas: new value; read: value read (`null` = nil).
    pub value: Option<Value>,
    /// Cas only: the expected value (`null` = nil).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Option<Value>>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub invoke_ns: u64,
    /// `null` when the completion was never recorded.
    pub complete_ns: Option<u64>,
    /// Foreign string-valued histories (kv-append) only: the operation as text, e.g.
    /// `append "x 9 0 y"` or `get -> "x 9 0 y"`. `f` is then the nearest native kind (get:
    /// read; put and append: write) and `value`/`from` are absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Foreign histories only: the line of the invocation in the source file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl From<&OpRecord> for OpSummary {
    fn from(r: &OpRecord) -> Self {
        OpSummary {
            id: r.id,
            client: r.client,
            f: r.f,
            value: r.value,
            from: (r.f == OpKind::Cas).then_some(r.from),
            outcome: r.outcome,
            node: r.node.clone(),
            invoke_ns: r.invoke_ns,
            complete_ns: r.complete_ns,
            text: None,
            line: None,
        }
    }
}

/// Where the linearizability search got stuck on a key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counterexample {
    /// Length of the longest linearizable prefix the search found.
    pub prefix_len: usize,
    /// The last operations of that prefix, in linearization order (at most
    /// [`Counterexample::PREFIX_SHOWN`]; `prefix_len` says how many there were in all).
    pub prefix: Vec<OpSummary>,
    /// The model's state after the prefix.
    pub state: String,
    /// The operation that could not be linearized after the prefix, before it completed.
    pub offender: OpSummary,
    /// The offender and the operations concurrent with it (their intervals overlap it; at most
    /// [`Counterexample::WINDOW`], the nearest in invocation time), in invocation order.
    pub concurrent: Vec<OpSummary>,
}

impl Counterexample {
    /// How many prefix operations a counterexample shows.
    pub const PREFIX_SHOWN: usize = 20;
    /// How many operations concurrent with the offender a counterexample shows.
    pub const WINDOW: usize = 16;
}

/// One consistency violation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub key: String,
    /// One readable sentence.
    pub message: String,
    /// The operations involved: for a lost write the write, the read and the writer(s) of the
    /// value read; for a stale read the read, the newer write and the writer(s) of the value
    /// read; for a never-written value the read (and any failed write of that value); for a
    /// non-linearizable key the offender and its concurrent operations, in invocation order.
    pub ops: Vec<OpSummary>,
    /// Lost write: the write that was lost; stale read: the newer write the read missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<u64>,
    /// Lost write, stale read, never written: the read that shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<u64>,
    /// Lost write: the value lost. Stale read and never written: the value read (absent when
    /// the read returned nil).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Non-linearizable keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Counterexample>,
}

/// "read 17 (client 3) -> 4", "write 12 (client 1) of 5", "cas 9 (client 2) 4 -> 5".
pub(crate) fn describe_op(r: &OpRecord) -> String {
    let v = |v: Option<Value>| v.map_or_else(|| "nil".to_string(), |v| v.to_string());
    let what = match r.f {
        OpKind::Read if r.outcome == Outcome::Ok => {
            format!("read {} returning {}", r.id, v(r.value))
        }
        OpKind::Read => format!("read {}", r.id),
        OpKind::Write => format!("write {} of {}", r.id, v(r.value)),
        OpKind::Cas => format!("cas {} from {} to {}", r.id, v(r.from), v(r.value)),
        OpKind::Status => format!("status {}", r.id),
    };
    let outcome = match r.outcome {
        Outcome::Ok => "",
        Outcome::Fail => ", failed",
        Outcome::Info => ", indeterminate",
    };
    format!("{what} (client {}{outcome})", r.client)
}

/// Nanoseconds as seconds with millisecond precision, for messages.
pub(crate) fn secs(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}
