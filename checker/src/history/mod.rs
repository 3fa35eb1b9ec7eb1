//! Operation records, the append-only history recorder, and loading histories back from disk.
//!
//! A run's `history.jsonl` holds one JSON object per line: an `invoke` line when a client
//! sends an operation and a completion line (`ok`, `fail` or `info`) when it learns the outcome.
//! [`History::load`] pairs them into [`OpRecord`]s; an invocation without a completion (the
//! harness died, or the run ended first) becomes `info`.

mod events;
pub mod import;
pub mod kv;
mod recorder;

pub use events::{load_events, Event, EventKind, NodeStats, RunPhase, TryCounts};
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
    /// Invocation of an open-loop operation only: when the schedule wanted it to start (ns
    /// since the run started). Latency counts from here, so a harness that falls behind its
    /// schedule shows up in the figures instead of hiding (coordinated omission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<u64>,
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
    /// Open loop only: when the schedule wanted the operation to start (at or before
    /// `invoke_ns`); latency counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_ns: Option<u64>,
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

    /// Latency in ns, when the op completed: from the intended start for an open-loop
    /// operation (its due time), from the invocation otherwise.
    pub fn latency_ns(&self) -> Option<u64> {
        let from = self
            .due_ns
            .map_or(self.invoke_ns, |d| d.min(self.invoke_ns));
        self.complete_ns.map(|c| c.saturating_sub(from))
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
                        due_ns: l.due,
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
        let mut failed = None;
        let lines = JsonLines::<HistoryLine>::open(path)?
            .map_while(|r| r.map_err(|e| failed = Some(e)).ok());
        let history = History::from_lines(lines, &path.display().to_string());
        match failed {
            Some(e) => Err(e),
            None => history,
        }
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

/// Read a JSON-lines file written by a [`Recorder`]: each parsed line with its 1-based number.
/// Blank lines are skipped, and so is a torn last line (no trailing newline: the writer was
/// killed mid-line); any other malformed line is an error naming its number.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Vec<(usize, T)>, HistoryError> {
    JsonLines::open(path)?.collect()
}

/// [`read_jsonl`] one line at a time: a file of any size is read with one line in memory, so
/// an hour-long history costs its parsed operations, not its text as well.
pub struct JsonLines<T> {
    reader: std::io::BufReader<std::fs::File>,
    path: String,
    line: usize,
    buf: Vec<u8>,
    done: bool,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: serde::de::DeserializeOwned> JsonLines<T> {
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        let p = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| HistoryError::Io {
            path: p.clone(),
            source,
        })?;
        Ok(JsonLines {
            reader: std::io::BufReader::with_capacity(1 << 16, file),
            path: p,
            line: 0,
            buf: Vec::new(),
            done: false,
            _t: std::marker::PhantomData,
        })
    }
}

impl<T: serde::de::DeserializeOwned> Iterator for JsonLines<T> {
    type Item = Result<(usize, T), HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::BufRead;
        while !self.done {
            self.buf.clear();
            let n = match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(n) => n,
                Err(source) => {
                    self.done = true;
                    return Some(Err(HistoryError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            };
            if n == 0 {
                self.done = true;
                break;
            }
            self.line += 1;
            // Only the last line can lack its newline.
            let last_and_unterminated = !self.buf.ends_with(b"\n");
            let raw = self.buf.trim_ascii();
            if raw.is_empty() {
                continue;
            }
            return match serde_json::from_slice::<T>(raw) {
                Ok(v) => Some(Ok((self.line, v))),
                Err(_) if last_and_unterminated => {
                    self.done = true;
                    None
                }
                Err(e) => {
                    self.done = true;
                    Some(Err(HistoryError::Parse {
                        path: self.path.clone(),
                        line: self.line,
                        message: e.to_string(),
                    }))
                }
            };
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = r#"{"type":"invoke","id":1,"client":0,"f":"write","key":"k0","value":1,"t":10}
{"type":"invoke","id":2,"client":1,"f":"read","key":"k0","t":12}
{"type":"ok","id":1,"client":0,"f":"write","key":"k0","value":1,"node":"n1","t":20}
{"type":"ok","id":2,"client":1,"f":"read","key":"k0","nil":true,"t":25}
{"type":"invoke","id":3,"client":0,"f":"cas","key":"k0","value":2,"from":1,"t":30}
"#;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("history.jsonl");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn pairs_invocations_with_completions_and_open_ones_become_info() {
        let (_d, p) = write(LINES);
        let h = History::load(&p).unwrap();
        assert_eq!(h.ops.len(), 3);
        assert_eq!(h.ops[0].outcome, Outcome::Ok);
        assert_eq!(h.ops[0].node.as_deref(), Some("n1"));
        assert_eq!((h.ops[1].outcome, h.ops[1].value), (Outcome::Ok, None));
        assert_eq!(h.ops[2].outcome, Outcome::Info);
        assert_eq!(h.ops[2].complete_ns, None);
        assert_eq!((h.ops[2].from, h.ops[2].value), (Some(1), Some(2)));
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_a_bad_middle_line_is_an_error() {
        let (_d, p) = write(&format!("{LINES}{{\"type\":\"ok\",\"id\":3,\"cli"));
        assert_eq!(History::load(&p).unwrap().ops.len(), 3);
        let (_d, p) = write(&LINES.replacen("\"client\":1", "\"client\":", 1));
        let err = History::load(&p).unwrap_err().to_string();
        assert!(err.contains("history.jsonl:2:"), "{err}");
        let (_d, p) = write(
            r#"{"type":"ok","id":9,"client":0,"f":"read","key":"k","t":1}
"#,
        );
        let err = History::load(&p).unwrap_err().to_string();
        assert!(err.contains("never invoked"), "{err}");
    }
}
