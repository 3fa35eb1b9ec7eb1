//! The simulator's shared safety checks: reads against acknowledged writes ([`Reads`]), one
//! value per position ([`Committed`]), and the same state after the same position
//! ([`SameStates`]).

use std::collections::{BTreeMap, HashMap};

use faultline_protocol::{Op, Response};

use crate::driver::{ClientToken, Millis};
use crate::kv::{Command, KvState};

/// What a client asked, for the read check.
#[derive(Debug, Clone)]
enum Asked {
    Write { key: String, value: i64 },
    Read { key: String, floor: u64 },
    Other,
}

/// The read check: a successful read never returns a value older than a write acknowledged
/// before the read began. Values written are unique; the protocol tells where each landed.
#[derive(Debug, Default)]
pub struct Reads {
    /// What a position is called; `None`: reads are not checked.
    position: Option<&'static str>,
    asked: BTreeMap<ClientToken, Asked>,
    /// Written value -> position (first seen).
    value_at: HashMap<i64, u64>,
    /// key -> highest position of an acknowledged write.
    floor: HashMap<String, u64>,
    pub(super) pending: Vec<(String, i64)>,
    pub acked_writes: usize,
    pub ok_reads: usize,
}

impl Reads {
    /// A read check that calls a position `position` (`None`: reads are not checked).
    pub(super) fn new(position: Option<&'static str>) -> Self {
        Reads {
            position,
            ..Reads::default()
        }
    }

    /// The command `cmd` was committed at `position`.
    pub fn learned(&mut self, cmd: &Command, position: u64) {
        let (Command::Write { value, .. } | Command::Cas { to: value, .. }) = cmd;
        self.value_at.entry(*value).or_insert(position);
    }

    pub(super) fn ask(&mut self, token: ClientToken, op: &Op) {
        if self.position.is_none() {
            return;
        }
        let asked = match op {
            Op::Write { key, value } => Asked::Write {
                key: key.clone(),
                value: *value,
            },
            Op::Read { key } => Asked::Read {
                key: key.clone(),
                floor: self.floor.get(key).copied().unwrap_or(0),
            },
            _ => Asked::Other,
        };
        self.asked.insert(token, asked);
    }

    pub(super) fn on_reply(
        &mut self,
        token: ClientToken,
        id: &str,
        resp: &Response,
        now: Millis,
    ) -> Result<(), String> {
        let (true, Some(position)) = (resp.ok, self.position) else {
            return Ok(());
        };
        match self.asked.get(&token).cloned() {
            Some(Asked::Write { key, value }) => {
                self.acked_writes += 1;
                self.pending.push((key, value));
                self.settle();
            }
            Some(Asked::Read { key, floor }) => {
                self.ok_reads += 1;
                let got = resp.value.flatten();
                let index = got.map_or(Some(0), |v| self.value_at.get(&v).copied());
                if let Some(index) = index.filter(|i| *i < floor) {
                    return Err(format!(
                        "stale read: {id} answered {key}={got:?} ({position} {index}) at {now}ms, \
                         but a write at {position} {floor} was acknowledged before the read began"
                    ));
                }
            }
            Some(Asked::Other) | None => {}
        }
        Ok(())
    }

    /// Raise the per-key floor for acknowledged writes whose position is known.
    pub(super) fn settle(&mut self) {
        let mut keep = Vec::new();
        for (key, value) in std::mem::take(&mut self.pending) {
            match self.value_at.get(&value) {
                Some(&i) => {
                    let f = self.floor.entry(key).or_insert(0);
                    *f = (*f).max(i);
                }
                None => keep.push((key, value)),
            }
        }
        self.pending = keep;
    }
}

/// The sequence of values every node commits (log entries, chosen slot values): a position
/// never holds two different values, by any node's knowledge.
#[derive(Debug)]
pub struct Committed<V>(BTreeMap<u64, V>);

impl<V> Default for Committed<V> {
    fn default() -> Self {
        Committed(BTreeMap::new())
    }
}

/// A committed value that may carry a client command (a log entry, a slot's value).
pub trait Carries {
    fn command(&self) -> Option<&Command>;
}

impl<V: Clone + PartialEq + Carries> Committed<V> {
    /// A node committed each `(position, value)` of `values`: `Err((position, value, known))`
    /// at the first that differs from the value `known` committed there before. New commands'
    /// positions go to `reads`.
    pub fn commit_all<'v>(
        &mut self,
        values: impl IntoIterator<Item = (u64, &'v V)>,
        reads: &mut Reads,
    ) -> Result<(), (u64, &'v V, &V)>
    where
        V: 'v,
    {
        for (pos, v) in values {
            match self.0.get(&pos) {
                Some(known) if known != v => return Err((pos, v, &self.0[&pos])),
                Some(_) => {}
                None => {
                    self.0.insert(pos, v.clone());
                    if let Some(cmd) = v.command() {
                        reads.learned(cmd, pos);
                    }
                }
            }
        }
        Ok(())
    }

    /// The committed values from position `from` on.
    pub fn from(&self, from: u64) -> impl Iterator<Item = (&u64, &V)> {
        self.0.range(from..)
    }
}

/// "Every node executes the same sequence": the state machine after executing through a
/// position is the same on every node.
#[derive(Debug, Default)]
pub struct SameStates(HashMap<u64, KvState>);

impl SameStates {
    /// `kv` is `id`'s state after executing through `applied`: an error naming `property` if
    /// another node had a different one there (the first one seen is remembered).
    pub fn check(
        &mut self,
        property: &str,
        id: &str,
        applied: u64,
        kv: &KvState,
        now: Millis,
    ) -> Result<(), String> {
        match self.0.get(&applied) {
            Some(s) if s != kv => Err(format!(
                "{property}: {id}'s state after executing through {applied} differs from another node's ({now}ms)"
            )),
            Some(_) => Ok(()),
            None => {
                self.0.insert(applied, kv.clone());
                Ok(())
            }
        }
    }
}
