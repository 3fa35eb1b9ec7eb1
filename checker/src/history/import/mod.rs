//! Importers of foreign histories: Jepsen's EDN histories and Porcupine's key-value test data,
//! turned into faultline's [`History`] (integer values, for the register models) or a
//! [`KvHistory`] (string values, for kv-append).
//!
//! Both formats are EDN: one op map per line (Jepsen's `history.edn`, Porcupine's `c10-ok.txt`)
//! or a single vector of maps (Knossos' test data), each map
//! `{:process 3, :type :invoke|:ok|:fail|:info, :f :read|:write|:cas|:get|:put|:append,
//! :key "k", :value v}`. Invocations and completions are paired per process as Jepsen does:
//! a process's completion closes its pending invocation. An `:info` completion, or an
//! invocation that never completes, is indeterminate. Ops whose `:process` is not an integer
//! (`:nemesis`) are skipped.
//!
//! Times are event positions: the n-th map of the file (counting from 0) happens at time n, as
//! in Knossos and Porcupine; `:time` is ignored. An op's id is its invocation's position.

mod edn;

pub use edn::{Edn, EdnError, Form, Reader};

use std::collections::HashMap;
use std::path::Path;

use faultline_protocol::OpKind;

use super::{History, HistoryError, OpRecord, Outcome};
use crate::history::kv::{KvHistory, KvKind, KvRecord};

/// A history file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// faultline's `history.jsonl` (or a run directory holding one).
    Faultline,
    /// Jepsen's EDN: op maps one per line, or one vector of them.
    JepsenEdn,
    /// Porcupine's key-value test data: Jepsen EDN with get/put/append on string values.
    PorcupineKv,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Faultline, Format::JepsenEdn, Format::PorcupineKv];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Faultline => "faultline",
            Format::JepsenEdn => "jepsen-edn",
            Format::PorcupineKv => "porcupine-kv",
        }
    }

    /// Guess a file's format: a directory or `.jsonl`/`.json` is faultline's, `.edn` is
    /// Jepsen's; otherwise the first non-blank character decides (`{"` JSON, `{:`/`[`/`(`
    /// EDN), and EDN mentioning get, put or append is Porcupine's key-value data.
    pub fn infer(path: &Path, text: Option<&str>) -> Format {
        if path.is_dir() {
            return Format::Faultline;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "json") => return Format::Faultline,
            Some("edn") => return Format::JepsenEdn,
            _ => {}
        }
        let Some(text) = text else {
            return Format::Faultline;
        };
        let start = text.trim_start();
        let json = start.starts_with('{') && start[1..].trim_start().starts_with('"');
        if json || !(start.starts_with(['{', '[', '(', ';', '#'])) {
            return Format::Faultline;
        }
        let head = &text[..text.len().min(64 * 1024)];
        if [":f :get", ":f :put", ":f :append"]
            .iter()
            .any(|p| head.contains(p))
        {
            Format::PorcupineKv
        } else {
            Format::JepsenEdn
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown format {s:?} (expected one of: faultline, jepsen-edn, porcupine-kv)"
                )
            })
    }
}

/// A foreign history that cannot be read, parsed or checked with the chosen model: the same
/// errors as faultline's own history (`Parse` lines are 1-based).
pub type ImportError = HistoryError;

/// What an imported op does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForeignF {
    Read,
    Write,
    Cas,
    Get,
    Put,
    Append,
}

impl ForeignF {
    fn parse(k: &str) -> Option<ForeignF> {
        Some(match k {
            "read" => ForeignF::Read,
            "write" => ForeignF::Write,
            "cas" => ForeignF::Cas,
            "get" => ForeignF::Get,
            "put" => ForeignF::Put,
            "append" => ForeignF::Append,
            _ => return None,
        })
    }

    /// True for the key-value store's ops (get, put, append).
    pub fn is_kv(self) -> bool {
        matches!(self, ForeignF::Get | ForeignF::Put | ForeignF::Append)
    }
}

/// One imported op: an invocation and its completion, values still as EDN.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignOp {
    /// Event position of the invocation (its time and id).
    pub index: u64,
    pub process: u32,
    pub f: ForeignF,
    /// `:key`, as text (integers in decimal); `None` when the history has no keys.
    pub key: Option<String>,
    /// The invocation's `:value`.
    pub value: Edn,
    /// The completion's `:value` (`Nil` when there was no completion).
    pub result: Edn,
    pub outcome: Outcome,
    /// Event position of the completion, if any.
    pub complete: Option<u64>,
    pub line: usize,
    pub complete_line: Option<usize>,
}

/// An imported history, not yet interpreted by a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Foreign {
    /// The file, for messages.
    pub path: String,
    /// Ops in invocation order.
    pub ops: Vec<ForeignOp>,
}

/// The key of ops that have no `:key`: the whole history is one register.
pub const DEFAULT_KEY: &str = "default";

/// A parsed event map.
struct Event {
    ty: Outcome,
    invoke: bool,
    process: Option<i64>,
    f: Option<ForeignF>,
    key: Option<String>,
    value: Edn,
    line: usize,
}

impl Foreign {
    /// Read and parse an EDN history file.
    pub fn load(path: &Path) -> Result<Foreign, ImportError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
            path: p.clone(),
            source,
        })?;
        Foreign::parse(&text, &p)
    }

    /// Parse EDN history text; `path` is used in messages only.
    pub fn parse(text: &str, path: &str) -> Result<Foreign, ImportError> {
        let bad = |line: usize, message: String| ImportError::Parse {
            path: path.to_string(),
            line,
            message,
        };
        let mut reader = Reader::new(text);
        let mut events: Vec<Event> = Vec::new();
        while let Some(form) = reader.next_form().map_err(|e| bad(e.line, e.message))? {
            match form.value {
                Edn::Map(m) => events.push(event(m, form.line).map_err(|m| bad(form.line, m))?),
                Edn::Vector(items) | Edn::List(items) => {
                    for item in items {
                        let Edn::Map(m) = item.value else {
                            return Err(bad(
                                item.line,
                                format!("expected an op map, found {}", item.value.describe()),
                            ));
                        };
                        events.push(event(m, item.line).map_err(|m| bad(item.line, m))?);
                    }
                }
                other => {
                    return Err(bad(
                        form.line,
                        format!(
                            "expected an op map or a vector of them, found {}",
                            other.describe()
                        ),
                    ))
                }
            }
        }

        // Pair per process.
        let mut ops: Vec<ForeignOp> = Vec::new();
        let mut pending: HashMap<u32, usize> = HashMap::new();
        for (pos, e) in events.into_iter().enumerate() {
            let Some(process) = e.process else { continue };
            let process = u32::try_from(process)
                .map_err(|_| bad(e.line, format!("process {process} is out of range")))?;
            let pos = pos as u64;
            if e.invoke {
                let f =
                    e.f.ok_or_else(|| bad(e.line, "an invocation needs :f".into()))?;
                if let Some(&open) = pending.get(&process) {
                    return Err(bad(
                        e.line,
                        format!(
                            "process {process} invokes again before its invocation on line {} \
                             completed",
                            ops[open].line
                        ),
                    ));
                }
                pending.insert(process, ops.len());
                ops.push(ForeignOp {
                    index: pos,
                    process,
                    f,
                    key: e.key,
                    value: e.value,
                    result: Edn::Nil,
                    outcome: Outcome::Info,
                    complete: None,
                    line: e.line,
                    complete_line: None,
                });
            } else {
                let Some(i) = pending.remove(&process) else {
                    return Err(bad(
                        e.line,
                        format!(
                            "a completion of process {process}, which has no pending invocation"
                        ),
                    ));
                };
                let op = &mut ops[i];
                if let Some(f) = e.f {
                    if f != op.f {
                        return Err(bad(
                            e.line,
                            format!(
                                "the completion's :f does not match the invocation on line {}",
                                op.line
                            ),
                        ));
                    }
                }
                if e.key.is_some() && e.key != op.key {
                    return Err(bad(
                        e.line,
                        format!(
                            "the completion's :key does not match the invocation on line {}",
                            op.line
                        ),
                    ));
                }
                op.outcome = e.ty;
                op.result = e.value;
                op.complete = Some(pos);
                op.complete_line = Some(e.line);
            }
        }
        Ok(Foreign {
            path: path.to_string(),
            ops,
        })
    }

    /// True when any op is a get, put or append.
    pub fn has_kv_ops(&self) -> bool {
        self.ops.iter().any(|o| o.f.is_kv())
    }

    fn bad(&self, line: usize, message: String) -> ImportError {
        ImportError::Parse {
            path: self.path.clone(),
            line,
            message,
        }
    }

    /// As faultline records, for the register models: read and get are reads, write and put
    /// are writes, cas takes `[from to]`; values must be integers (or nil). An append is an
    /// error naming its line.
    pub fn to_history(&self) -> Result<History, ImportError> {
        let int = |v: &Edn, line: usize, what: &str| -> Result<Option<i64>, ImportError> {
            match v {
                Edn::Nil => Ok(None),
                Edn::Int(i) => Ok(Some(*i)),
                other => Err(self.bad(
                    line,
                    format!(
                        "{what} is {}, but the register models take integers \
                         (use --model kv-append for strings)",
                        other.describe()
                    ),
                )),
            }
        };
        let mut ops = Vec::with_capacity(self.ops.len());
        for o in &self.ops {
            let (f, value, from) = match o.f {
                ForeignF::Read | ForeignF::Get => {
                    let v = if o.outcome == Outcome::Ok {
                        int(
                            &o.result,
                            o.complete_line.unwrap_or(o.line),
                            "the value read",
                        )?
                    } else {
                        None
                    };
                    (OpKind::Read, v, None)
                }
                ForeignF::Write | ForeignF::Put => {
                    let v = int(&o.value, o.line, "the value written")?;
                    if v.is_none() {
                        return Err(self.bad(o.line, "a write needs a :value".into()));
                    }
                    (OpKind::Write, v, None)
                }
                ForeignF::Cas => {
                    let (from, to) = self.cas_pair(o)?;
                    let from = int(&from.value, from.line, "the expected value")?;
                    let to = int(&to.value, to.line, "the new value")?;
                    if to.is_none() {
                        return Err(self.bad(o.line, "a cas needs a new value".into()));
                    }
                    (OpKind::Cas, to, from)
                }
                ForeignF::Append => {
                    return Err(self.bad(
                        o.line,
                        "the register models have no append (use --model kv-append)".into(),
                    ))
                }
            };
            ops.push(OpRecord {
                id: o.index,
                client: o.process,
                f,
                key: o.key.clone().unwrap_or_else(|| DEFAULT_KEY.to_string()),
                value,
                from,
                node: None,
                outcome: o.outcome,
                invoke_ns: o.index,
                due_ns: None,
                complete_ns: o.complete,
                error: None,
            });
        }
        Ok(History { ops })
    }

    /// As string-valued records, for kv-append: read and get are gets (a nil result is `""`,
    /// the value of a key never written), write and put are puts, cas takes `[from to]`;
    /// integers become their decimal text.
    pub fn to_kv(&self) -> Result<KvHistory, ImportError> {
        let text = |v: &Edn, line: usize, what: &str| -> Result<Option<String>, ImportError> {
            match v {
                Edn::Nil => Ok(None),
                Edn::Str(s) => Ok(Some(s.clone())),
                Edn::Int(i) => Ok(Some(i.to_string())),
                other => Err(self.bad(
                    line,
                    format!("{what} is {}, expected a string", other.describe()),
                )),
            }
        };
        let mut ops = Vec::with_capacity(self.ops.len());
        for o in &self.ops {
            let (f, value, from) = match o.f {
                ForeignF::Read | ForeignF::Get => {
                    let v = if o.outcome == Outcome::Ok {
                        let line = o.complete_line.unwrap_or(o.line);
                        Some(text(&o.result, line, "the value read")?.unwrap_or_default())
                    } else {
                        None
                    };
                    (KvKind::Get, v, None)
                }
                ForeignF::Write | ForeignF::Put | ForeignF::Append => {
                    let v = text(&o.value, o.line, "the value written")?;
                    if v.is_none() {
                        return Err(self.bad(o.line, "a put or append needs a :value".into()));
                    }
                    let f = if o.f == ForeignF::Append {
                        KvKind::Append
                    } else {
                        KvKind::Put
                    };
                    (f, v, None)
                }
                ForeignF::Cas => {
                    let (from, to) = self.cas_pair(o)?;
                    let from = text(&from.value, from.line, "the expected value")?;
                    let to = text(&to.value, to.line, "the new value")?;
                    (KvKind::Cas, Some(to.unwrap_or_default()), from)
                }
            };
            ops.push(KvRecord {
                id: o.index,
                client: o.process,
                f,
                key: o.key.clone().unwrap_or_else(|| DEFAULT_KEY.to_string()),
                value,
                from: from.or_else(|| (f == KvKind::Cas).then(String::new)),
                outcome: o.outcome,
                invoke_ns: o.index,
                complete_ns: o.complete,
                line: o.line,
                complete_line: o.complete_line,
            });
        }
        Ok(KvHistory { ops })
    }

    /// A cas op's `[from to]`.
    fn cas_pair<'o>(&self, o: &'o ForeignOp) -> Result<(&'o Form, &'o Form), ImportError> {
        match &o.value {
            Edn::Vector(v) | Edn::List(v) if v.len() == 2 => Ok((&v[0], &v[1])),
            other => Err(self.bad(
                o.line,
                format!("a cas needs :value [from to], found {}", other.describe()),
            )),
        }
    }
}

/// Interpret one op map.
fn event(map: Vec<(Form, Form)>, _line: usize) -> Result<Event, String> {
    let mut ty = None;
    let mut process = None;
    let mut has_process = false;
    let mut f = None;
    let mut f_name = None;
    let mut key = None;
    let mut value = Edn::Nil;
    for (k, v) in map {
        let Edn::Keyword(k) = k.value else { continue };
        match k.as_str() {
            "type" => {
                ty = Some(match &v.value {
                    Edn::Keyword(t) => match t.as_str() {
                        "invoke" => (Outcome::Info, true),
                        "ok" => (Outcome::Ok, false),
                        "fail" => (Outcome::Fail, false),
                        "info" => (Outcome::Info, false),
                        other => {
                            return Err(format!(
                                ":type :{other} is not one of :invoke, :ok, :fail, :info"
                            ))
                        }
                    },
                    other => return Err(format!(":type is {}", other.describe())),
                })
            }
            "process" => {
                has_process = true;
                // `:nemesis` and other non-client processes are skipped.
                if let Edn::Int(p) = v.value {
                    process = Some(p);
                }
            }
            "f" => match &v.value {
                Edn::Keyword(name) | Edn::Symbol(name) => {
                    f = ForeignF::parse(name);
                    f_name = Some(name.clone());
                }
                other => return Err(format!(":f is {}", other.describe())),
            },
            "key" => {
                key = Some(match v.value {
                    Edn::Str(s) => s,
                    Edn::Int(i) => i.to_string(),
                    Edn::Keyword(k) => k,
                    other => return Err(format!(":key is {}", other.describe())),
                })
            }
            "value" => value = v.value,
            _ => {}
        }
    }
    let Some((outcome, invoke)) = ty else {
        return Err("an op map needs :type".into());
    };
    if !has_process {
        return Err("an op map needs :process".into());
    }
    if process.is_some() && f.is_none() {
        return Err(match f_name {
            Some(n) => format!(":f :{n} is not one of :read, :write, :cas, :get, :put, :append"),
            None => "an op map needs :f".into(),
        });
    }
    Ok(Event {
        ty: outcome,
        invoke,
        process,
        f,
        key,
        value,
        line: _line,
    })
}

/// What `faultline check` reads: a native history, or a foreign one still to be interpreted.
#[derive(Debug, Clone)]
pub enum Loaded {
    Native(History),
    Foreign(Foreign),
}

/// Load a history file (or a run directory) in `format`, or in the format
/// [`Format::infer`] guesses.
pub fn load(path: &Path, format: Option<Format>) -> Result<Loaded, ImportError> {
    let format = match format {
        Some(f) => f,
        None if path.is_dir() => Format::Faultline,
        None => {
            let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let f = Format::infer(path, Some(&text));
            if f != Format::Faultline {
                return Ok(Loaded::Foreign(Foreign::parse(
                    &text,
                    &path.display().to_string(),
                )?));
            }
            f
        }
    };
    match format {
        Format::Faultline => {
            let file = if path.is_dir() {
                path.join("history.jsonl")
            } else {
                path.to_owned()
            };
            Ok(Loaded::Native(History::load(&file)?))
        }
        Format::JepsenEdn | Format::PorcupineKv => Ok(Loaded::Foreign(Foreign::load(path)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_per_process_and_open_invocations_are_indeterminate() {
        let text = "{:process 0, :type :invoke, :f :write, :value 1}\n\
                    {:process 1, :type :invoke, :f :read, :value nil}\n\
                    {:process 0, :type :ok, :f :write, :value 1}\n\
                    {:process :nemesis, :type :info, :f :start}\n\
                    {:process 1, :type :ok, :f :read, :value 1}\n\
                    {:process 2, :type :invoke, :f :cas, :value [1 2]}\n\
                    {:process 3, :type :invoke, :f :write, :value 5}\n\
                    {:process 3, :type :info, :f :write, :value 5}\n";
        let f = Foreign::parse(text, "h.edn").unwrap();
        assert_eq!(f.ops.len(), 4);
        let h = f.to_history().unwrap();
        assert_eq!(h.ops[0].complete_ns, Some(2));
        assert_eq!((h.ops[1].value, h.ops[1].outcome), (Some(1), Outcome::Ok));
        assert_eq!(
            (
                h.ops[2].from,
                h.ops[2].value,
                h.ops[2].outcome,
                h.ops[2].complete_ns
            ),
            (Some(1), Some(2), Outcome::Info, None)
        );
        assert_eq!(h.ops[3].outcome, Outcome::Info);
        assert_eq!(h.ops[3].key, DEFAULT_KEY);
        let kv = f.to_kv().unwrap();
        assert_eq!(kv.ops[1].value.as_deref(), Some("1"));
        assert_eq!(kv.ops[2].from.as_deref(), Some("1"));
    }

    #[test]
    fn formats_are_inferred() {
        let p = Path::new("x.txt");
        assert_eq!(
            Format::infer(p, Some("{\"type\":\"invoke\"}")),
            Format::Faultline
        );
        assert_eq!(
            Format::infer(p, Some("{:process 1, :type :invoke, :f :get}")),
            Format::PorcupineKv
        );
        assert_eq!(
            Format::infer(p, Some("[{:process 1, :type :invoke, :f :read}]")),
            Format::JepsenEdn
        );
        assert_eq!(
            Format::infer(Path::new("h.edn"), Some("{\"a\":1}")),
            Format::JepsenEdn
        );
    }

    #[test]
    fn semantic_errors_name_their_line() {
        let cases = [
            (
                "{:process 0, :type :ok, :f :read, :value 1}",
                1,
                "no pending",
            ),
            (
                "{:process 0, :type :invoke, :f :read}\n{:process 0, :type :invoke, :f :read}",
                2,
                "invokes again",
            ),
            ("\n{:process 0, :type :invoke, :f :frob}", 2, ":frob"),
            ("{:process 0, :f :read}", 1, "needs :type"),
            (
                "[{:process 0, :type :invoke, :f :read}\n 42]",
                2,
                "expected an op map",
            ),
        ];
        for (text, line, needle) in cases {
            let e = Foreign::parse(text, "h.edn").unwrap_err().to_string();
            assert!(e.starts_with(&format!("h.edn:{line}: ")), "{text}: {e}");
            assert!(e.contains(needle), "{text}: {e}");
        }
        let f = Foreign::parse(
            "{:process 0, :type :invoke, :f :append, :key \"k\", :value \"x\"}",
            "h.edn",
        )
        .unwrap();
        let e = f.to_history().unwrap_err().to_string();
        assert!(e.starts_with("h.edn:1: ") && e.contains("no append"), "{e}");
        let f = Foreign::parse(
            "{:process 0, :type :invoke, :f :write, :value \"x\"}",
            "h.edn",
        )
        .unwrap();
        let e = f.to_history().unwrap_err().to_string();
        assert!(e.contains("take integers"), "{e}");
    }
}
