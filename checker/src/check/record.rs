//! What the checker needs to know about one recorded operation, whatever history it came from:
//! faultline's own [`OpRecord`]s (integer values) or the string-valued [`KvRecord`]s of
//! foreign key-value histories.

use faultline_protocol::OpKind;

use super::kv::{KvKind, KvRecord};
use super::violation::{describe_op, secs, OpSummary};
use crate::history::{OpRecord, Outcome};

/// One operation of a history, as the search and the counterexamples see it. Each
/// [`Model`](super::Model) names the record type it interprets.
pub trait CheckRecord: Sync {
    /// The key (object) the operation is on; keys are checked independently.
    fn key(&self) -> &str;
    /// Unique within the history.
    fn id(&self) -> u64;
    fn outcome(&self) -> Outcome;
    /// Invocation time (ns, or an event position for foreign histories without times).
    fn invoke_ns(&self) -> u64;
    /// Completion time; `None` when the completion was never recorded.
    fn complete_ns(&self) -> Option<u64>;
    /// The operation as shown in violations.
    fn summary(&self) -> OpSummary;
    /// A short description: "read 17 returning 4 (client 3)".
    fn describe(&self) -> String;
    /// When it completed, for messages: "at 1.234 s", "on line 57".
    fn completed_when(&self) -> String;
}

/// The accessors every record type answers from fields of the same names.
macro_rules! record_fields {
    () => {
        fn key(&self) -> &str {
            &self.key
        }
        fn id(&self) -> u64 {
            self.id
        }
        fn outcome(&self) -> Outcome {
            self.outcome
        }
        fn invoke_ns(&self) -> u64 {
            self.invoke_ns
        }
        fn complete_ns(&self) -> Option<u64> {
            self.complete_ns
        }
    };
}

impl CheckRecord for OpRecord {
    record_fields!();
    fn summary(&self) -> OpSummary {
        self.into()
    }
    fn describe(&self) -> String {
        describe_op(self)
    }
    fn completed_when(&self) -> String {
        format!(
            "at {}",
            self.complete_ns.map_or_else(|| "+inf".into(), secs)
        )
    }
}

impl CheckRecord for KvRecord {
    record_fields!();
    fn summary(&self) -> OpSummary {
        OpSummary {
            id: self.id,
            client: self.client,
            f: match self.f {
                KvKind::Get => OpKind::Read,
                KvKind::Put | KvKind::Append => OpKind::Write,
                KvKind::Cas => OpKind::Cas,
            },
            value: None,
            from: None,
            outcome: self.outcome,
            node: None,
            invoke_ns: self.invoke_ns,
            complete_ns: self.complete_ns,
            text: Some(self.text()),
            line: (self.line > 0).then_some(self.line),
        }
    }
    fn describe(&self) -> String {
        let outcome = match self.outcome {
            Outcome::Ok => "",
            Outcome::Fail => ", failed",
            Outcome::Info => ", indeterminate",
        };
        let line = if self.line > 0 {
            format!(", line {}", self.line)
        } else {
            String::new()
        };
        format!("{} (client {}{line}{outcome})", self.text(), self.client)
    }
    fn completed_when(&self) -> String {
        match (self.complete_line, self.complete_ns) {
            (Some(l), _) if l > 0 => format!("on line {l}"),
            (_, Some(c)) => format!("at {}", secs(c)),
            _ => "at +inf".into(),
        }
    }
}
