//! The replicated state machine every reference node runs: a map of integer registers.

use std::collections::BTreeMap;

use faultline_protocol::Value;
use serde::{Deserialize, Serialize};

/// A state-changing operation, as it is stored in logs and shipped between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Overwrite `key` with `value`.
    Write { key: String, value: Value },
    /// Set `key` to `to` only if it holds `from` (`None`: the key was never written).
    Cas {
        key: String,
        from: Option<Value>,
        to: Value,
    },
}

/// What applying a [`Command`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// The write or cas took effect.
    Done,
    /// A cas did not match; `current` is what the register held (and still holds).
    CasMismatch { current: Option<Value> },
}

/// Per-key registers. Small by design (workloads touch a handful of keys), so whole-state
/// snapshots are cheap to copy, ship and persist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvState {
    registers: BTreeMap<String, Value>,
}

impl KvState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply one command; deterministic, so every replica applying the same log agrees.
    pub fn apply(&mut self, cmd: &Command) -> Applied {
        match cmd {
            Command::Write { key, value } => {
                self.registers.insert(key.clone(), *value);
                Applied::Done
            }
            Command::Cas { key, from, to } => {
                let current = self.registers.get(key).copied();
                if current == *from {
                    self.registers.insert(key.clone(), *to);
                    Applied::Done
                } else {
                    Applied::CasMismatch { current }
                }
            }
        }
    }

    /// The value of a register; `None` when it was never written.
    pub fn read(&self, key: &str) -> Option<Value> {
        self.registers.get(key).copied()
    }

    /// Number of registers ever written.
    pub fn len(&self) -> usize {
        self.registers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.registers.is_empty()
    }

    /// All registers, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Value)> {
        self.registers.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: &str, value: Value) -> Command {
        Command::Write {
            key: key.into(),
            value,
        }
    }
    fn cas(key: &str, from: Option<Value>, to: Value) -> Command {
        Command::Cas {
            key: key.into(),
            from,
            to,
        }
    }

    #[test]
    fn registers_follow_writes_and_cas() {
        let mut kv = KvState::new();
        assert_eq!(kv.read("a"), None);
        // (command, expected outcome, expected value of "a" afterwards)
        let table = [
            (
                cas("a", Some(1), 2),
                Applied::CasMismatch { current: None },
                None,
            ),
            (cas("a", None, 1), Applied::Done, Some(1)),
            (
                cas("a", None, 5),
                Applied::CasMismatch { current: Some(1) },
                Some(1),
            ),
            (w("a", 7), Applied::Done, Some(7)),
            (cas("a", Some(7), 8), Applied::Done, Some(8)),
            (
                cas("a", Some(7), 9),
                Applied::CasMismatch { current: Some(8) },
                Some(8),
            ),
        ];
        for (cmd, outcome, after) in table {
            assert_eq!(kv.apply(&cmd), outcome, "{cmd:?}");
            assert_eq!(kv.read("a"), after, "{cmd:?}");
        }
        assert_eq!(kv.read("b"), None);
        assert_eq!(kv.len(), 1);
    }

    #[test]
    fn state_survives_encoding() {
        let mut kv = KvState::new();
        kv.apply(&w("x", 1));
        kv.apply(&w("y", -3));
        let bytes = crate::codec::encode(&kv).unwrap();
        let back: KvState = crate::codec::decode(&bytes).unwrap();
        assert_eq!(back, kv);
    }
}
