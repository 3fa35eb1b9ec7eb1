//! Operation records, the append-only history recorder, and loading histories back from disk.
//!
//! A run's `history.jsonl` holds one JSON object per line: an `invoke` line when a client
//! sends an operation and a completion line (`ok`, `fail` or `info`) when it learns the outcome.
//! [`History::load`] pairs them into [`OpRecord`]s; an invocation without a completion (the
//! harness died, or the run ended first) becomes `info`.

mod events;
mod recorder;

pub use events::{load_events, Event, EventKind};
pub use recorder::{Recorder, RecorderHandle};

use std::collections::HashMap;
use std::path::Path;

use faultline_protocol::{OpKind, Value};
use serde::{Deserialize, Serialize};

/// The run's clock: monotonic nanoseconds since the run started, shared by the history and
/// the event journal.
#[derive(Debug, Clone, Copy)]
pub struct RunClock(pub std::time::Instant);

impl RunClock {
    pub fn start() -> Self {
        RunClock(std::time::Instant::now())
    }

    pub fn ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }

    /// The run-clock reading of an instant (0 if it precedes the start).
    pub fn at(&self, t: std::time::Instant) -> u64 {
        t.saturating_duration_since(self.0).as_nanos() as u64
    }
}

/// Outcome of an operation, as Jepsen and Maelstrom name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect, with the recorded result.
    Ok,
    /// It certainly did not take effect (a definite error).
    Fail,
    /// Indeterminate: it may or may not have taken effect (timeout, dropped connection).
    Info,
}

/// What one history line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryLine {
    #[serde(rename = "type")]
    pub ty: LineType,
    /// Operation id, unique within the run; pairs an invocation with its completion.
    pub id: u64,
    /// Client (logical process) number.
    pub client: u32,
    pub f: OpKind,
    pub key: String,
    /// Write: the value written. Read completion: the value read (`null` = never written).
    /// Cas: the new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Cas only: the expected value (`null` = never written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    /// Read completion only: true when the read saw no value (`value` absent then).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nil: bool,
    /// Node the operation was sent to (last try).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Nanoseconds since the run started (monotonic clock).
    pub t: u64,
    /// Error code or reason, on fail and info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One operation: its invocation paired with its completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpRecord {
    pub id: u64,
    pub client: u32,
    pub f: OpKind,
    pub key: String,
    /// Write: value written; cas: new value; read: value read if `ok` (None = nil or unknown).
    pub value: Option<Value>,
    /// Cas only: expected value.
    pub from: Option<Value>,
    pub node: Option<String>,
    pub outcome: Outcome,
    /// Invocation time, ns since run start.
    pub invoke_ns: u64,
    /// Completion time, ns since run start. `None` when the completion was never recorded.
    pub complete_ns: Option<u64>,
    pub error: Option<String>,
}

impl OpRecord {
    /// The value a successful read returned (`None` = the key had never been written).
    pub fn read_value(&self) -> Option<Value> {
        debug_assert_eq!(self.f, OpKind::Read);
        self.value
    }

    /// Latency in ns, when the op completed.
    pub fn latency_ns(&self) -> Option<u64> {
        self.complete_ns.map(|c| c.saturating_sub(self.invoke_ns))
    }
}

/// A whole run's operations, ordered by invocation time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<OpRecord>,
}

/// A history file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
}

impl History {
    /// Pair the lines of a history into operations. Completions without an invocation are an
    /// error; invocations without a completion become `info` with no completion time.
    pub fn from_lines(
        lines: impl IntoIterator<Item = (usize, HistoryLine)>,
        path: &str,
    ) -> Result<Self, HistoryError> {
        let mut open: HashMap<u64, usize> = HashMap::new();
        let mut ops: Vec<OpRecord> = Vec::new();
        for (lineno, l) in lines {
            match l.ty {
                LineType::Invoke => {
                    if open.insert(l.id, ops.len()).is_some() {
                        return Err(HistoryError::Parse {
                            path: path.into(),
                            line: lineno,
                            message: format!("operation {} invoked twice", l.id),
                        });
                    }
                    ops.push(OpRecord {
                        id: l.id,
                        client: l.client,
                        f: l.f,
                        key: l.key,
                        value: if l.f == OpKind::Read { None } else { l.value },
                        from: l.from,
                        node: l.node,
                        outcome: Outcome::Info,
                        invoke_ns: l.t,
                        complete_ns: None,
                        error: None,
                    });
                }
                ty => {
                    let Some(idx) = open.remove(&l.id) else {
                        return Err(HistoryError::Parse {
                            path: path.into(),
                            line: lineno,
                            message: format!(
                                "completion of operation {} that was never invoked",
                                l.id
                            ),
                        });
                    };
                    let op = &mut ops[idx];
                    op.outcome = match ty {
                        LineType::Ok => Outcome::Ok,
                        LineType::Fail => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                    op.complete_ns = Some(l.t);
                    if op.f == OpKind::Read && ty == LineType::Ok {
                        op.value = if l.nil { None } else { l.value };
                    }
                    if l.node.is_some() {
                        op.node = l.node;
                    }
                    op.error = l.error;
                }
            }
        }
        ops.sort_by_key(|o| (o.invoke_ns, o.id));
        Ok(History { ops })
    }

    /// Load a `history.jsonl`. A torn last line (the harness was killed mid-write) is ignored;
    /// a malformed line elsewhere is an error naming its line number.
    pub fn load(path: &Path) -> Result<Self, HistoryError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| HistoryError::Io {
            path: p.clone(),
            source,
        })?;
        let all: Vec<&str> = text.lines().collect();
        let ends_clean = text.ends_with('\n');
        let mut lines = Vec::with_capacity(all.len());
        for (i, raw) in all.iter().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<HistoryLine>(raw) {
                Ok(l) => lines.push((i + 1, l)),
                Err(_) if i + 1 == all.len() && !ends_clean => break,
                Err(e) => {
                    return Err(HistoryError::Parse {
                        path: p,
                        line: i + 1,
                        message: e.to_string(),
                    })
                }
            }
        }
        History::from_lines(lines, &p)
    }

    /// The operations on one key, in invocation order.
    pub fn by_key(&self) -> std::collections::BTreeMap<&str, Vec<&OpRecord>> {
        let mut m: std::collections::BTreeMap<&str, Vec<&OpRecord>> = Default::default();
        for op in &self.ops {
            m.entry(op.key.as_str()).or_default().push(op);
        }
        m
    }
}
