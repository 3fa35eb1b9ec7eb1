//! String-valued key-value histories (Porcupine's get/put/append, plus cas): the records the
//! importers produce and the kv-append model in `check` consumes, and a faultline history seen
//! as one.

use faultline_protocol::OpKind;

use super::{History, Outcome};

/// What a key-value operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvKind {
    Get,
    Put,
    Append,
    /// Compare-and-set: replace the value when it equals `from`.
    Cas,
}

impl KvKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KvKind::Get => "get",
            KvKind::Put => "put",
            KvKind::Append => "append",
            KvKind::Cas => "cas",
        }
    }
}

/// One string-valued operation (an invocation paired with its completion), as imported from a
/// foreign history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvRecord {
    /// Unique within the history (importers use the invocation's event position).
    pub id: u64,
    pub client: u32,
    pub f: KvKind,
    pub key: String,
    /// Get: the value returned (`None` when unknown: an indeterminate get). Put and append:
    /// the argument. Cas: the new value.
    pub value: Option<String>,
    /// Cas only: the expected value.
    pub from: Option<String>,
    pub outcome: Outcome,
    pub invoke_ns: u64,
    pub complete_ns: Option<u64>,
    /// Source line of the invocation (0 when not read from a file).
    pub line: usize,
    /// Source line of the completion, when there was one.
    pub complete_line: Option<usize>,
}

impl KvRecord {
    /// The operation as text: `append "x 9 0 y"`, `get -> "x 9 0 y"`, `cas "a" -> "b"`.
    pub fn text(&self) -> String {
        let v = |v: &Option<String>| v.as_ref().map_or_else(|| "?".into(), |s| format!("{s:?}"));
        match self.f {
            KvKind::Get if self.outcome == Outcome::Ok => format!("get -> {}", v(&self.value)),
            KvKind::Get => "get".into(),
            KvKind::Put => format!("put {}", v(&self.value)),
            KvKind::Append => format!("append {}", v(&self.value)),
            KvKind::Cas => format!("cas {} -> {}", v(&self.from), v(&self.value)),
        }
    }
}

/// A foreign key-value history: its operations in invocation order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvHistory {
    pub ops: Vec<KvRecord>,
}

impl KvHistory {
    /// A faultline history seen as a key-value store: reads are gets (nil reads return
    /// `""`), writes are puts and cas stays cas, values as decimal strings.
    pub fn from_native(h: &History) -> Self {
        let ops = h
            .ops
            .iter()
            .filter(|o| o.f != OpKind::Status)
            .map(|o| {
                let f = match o.f {
                    OpKind::Read => KvKind::Get,
                    OpKind::Cas => KvKind::Cas,
                    _ => KvKind::Put,
                };
                let text = |v: Option<i64>| v.map_or_else(String::new, |v| v.to_string());
                let value = match (f, o.outcome) {
                    (KvKind::Get, Outcome::Ok) => Some(text(o.value)),
                    (KvKind::Get, _) => None,
                    _ => o.value.map(|v| v.to_string()),
                };
                KvRecord {
                    id: o.id,
                    client: o.client,
                    f,
                    key: o.key.clone(),
                    value,
                    from: (f == KvKind::Cas).then(|| text(o.from)),
                    outcome: o.outcome,
                    invoke_ns: o.invoke_ns,
                    complete_ns: o.complete_ns,
                    line: 0,
                    complete_line: None,
                }
            })
            .collect();
        KvHistory { ops }
    }
}
