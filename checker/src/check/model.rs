//! Sequential specifications (models) that the linearizability search checks histories
//! against, kept apart from the search: a new model is one small type implementing [`Model`].

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

use faultline_protocol::{OpKind, Value};

use super::record::CheckRecord;
use crate::history::{OpRecord, Outcome};

/// A recorded operation the model cannot interpret. The key it belongs to is then checked
/// as `unknown`, never guessed at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("model {model} does not support {kind} operations (op {id})")]
    Unsupported {
        model: &'static str,
        kind: &'static str,
        id: u64,
    },
    #[error("{kind} op {id} has no value")]
    MissingValue { kind: &'static str, id: u64 },
}

/// A sequential specification of one key's object.
///
/// The search calls [`Model::op`] once per recorded operation (never for `fail` ones, which
/// certainly had no effect), then explores orders of those ops with [`Model::step`].
/// Operations recorded `info` are optional: the search may apply them at any point after
/// their invocation, or never.
pub trait Model: Sync {
    /// The object's state; hashed into the search's memo, so keep it small.
    type State: Clone + Eq + Hash + Debug + Send;
    /// One operation together with its observed result (the result is ignored for `info`).
    type Op: Clone + Debug + Send + Sync;
    /// The recorded operations this model interprets: faultline's [`OpRecord`] for the
    /// registers, [`KvRecord`](super::KvRecord) for kv-append.
    type Record: CheckRecord;

    /// The model's name as it appears in reports and errors.
    fn name(&self) -> &'static str;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Translate a recorded `ok` or `info` operation. `Ok(None)` leaves it out of the search:
    /// right for an `info` operation that cannot change the state (an indeterminate read
    /// constrains nothing).
    fn op(&self, rec: &Self::Record) -> Result<Option<Self::Op>, ModelError>;

    /// Apply `op` to `state`: the next state, or `None` when the op's observed result is
    /// impossible in that state. For an optional (`info`) op, `step` must not insist on an
    /// observed result: it answers whether the op *can* take effect in `state`.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// True when `op` never changes the state, in any state where it is legal (a read). The
    /// search then never tries alternatives to linearizing it as soon as it can: a pure
    /// speed-up. The default (false) is always safe.
    fn is_read_only(&self, op: &Self::Op) -> bool {
        let _ = op;
        false
    }

    /// Rewrite one key's ops into equivalent ones that are cheaper to search, before
    /// [`Model::droppable`] and the search: a pure speed-up. The default changes nothing.
    fn simplify(&self, ops: &mut [Self::Op]) {
        let _ = ops;
    }

    /// Optional ops (`required == false`) that can be left out without changing whether the
    /// key is linearizable: a pure speed-up for the search. Returns one flag per op (`true` =
    /// drop it); flags on required ops are ignored. The default drops nothing.
    fn droppable(&self, ops: &[(Self::Op, bool)]) -> Vec<bool> {
        vec![false; ops.len()]
    }

    /// A pure speed-up: false when no order of any of the `pending` ops, applied to `state`,
    /// can make `next` legal. `next` is the required op that completed first among those not
    /// yet linearized, so it must be linearized before any op outside `pending` (the ops
    /// invoked before it completed). The default (true) is always safe.
    fn reachable(
        &self,
        state: &Self::State,
        pending: &mut dyn Iterator<Item = &Self::Op>,
        next: &Self::Op,
    ) -> bool {
        let _ = (state, pending, next);
        true
    }

    /// Bytes `state` occupies: its inline size plus the heap it owns. The search charges
    /// every memo entry for its state with this, against the memory budget, so it must not
    /// underestimate by much. The default, `size_of::<State>()`, is right for states that own
    /// no heap (the registers).
    fn state_bytes(&self, state: &Self::State) -> usize {
        let _ = state;
        std::mem::size_of::<Self::State>()
    }

    /// A short human description of a state, for counterexamples.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// What the allocator takes for a request of `n` bytes, roughly (glibc's malloc: an 8-byte
/// header, 16-byte granules, 32 bytes at least), for [`Model::state_bytes`] and the memo's
/// accounting.
pub(crate) fn allocation_bytes(n: usize) -> usize {
    (n + 8).next_multiple_of(16).max(32)
}

/// An operation on a register, with its observed result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// A read that returned this value (`None` = nil, never written).
    Read(Option<Value>),
    /// A write of this value.
    Write(Value),
    /// A successful compare-and-set (an `ok` cas succeeded; a failed cas is recorded `fail`).
    Cas { from: Option<Value>, to: Value },
}

/// A register that starts out nil: read/write, or with `cas`, read/write/compare-and-set.
/// Without `cas`, cas operations are unsupported (their keys are checked `unknown`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Register {
    pub cas: bool,
}

impl Register {
    /// Read/write.
    pub const PLAIN: Register = Register { cas: false };
    /// Read/write/compare-and-set.
    pub const CAS: Register = Register { cas: true };
}

fn register_op(
    model: &'static str,
    allow_cas: bool,
    rec: &OpRecord,
) -> Result<Option<RegisterOp>, ModelError> {
    if rec.outcome == Outcome::Fail {
        return Ok(None);
    }
    let value = |kind| {
        rec.value
            .ok_or(ModelError::MissingValue { kind, id: rec.id })
    };
    match rec.f {
        OpKind::Read if rec.outcome == Outcome::Ok => Ok(Some(RegisterOp::Read(rec.value))),
        OpKind::Read | OpKind::Status => Ok(None),
        OpKind::Write => Ok(Some(RegisterOp::Write(value("write")?))),
        OpKind::Cas if allow_cas => Ok(Some(RegisterOp::Cas {
            from: rec.from,
            to: value("cas")?,
        })),
        OpKind::Cas => Err(ModelError::Unsupported {
            model,
            kind: "cas",
            id: rec.id,
        }),
    }
}

fn register_step(state: &Option<Value>, op: &RegisterOp) -> Option<Option<Value>> {
    match *op {
        RegisterOp::Read(v) => (v == *state).then_some(*state),
        RegisterOp::Write(v) => Some(Some(v)),
        RegisterOp::Cas { from, to } => (from == *state).then_some(Some(to)),
    }
}

/// An optional write or cas whose new value no read ever returned and no cas ever expected
/// can be dropped: in any linearization that applies it, the next op that looks at the state
/// would have to see its value, so only blind writes follow it before it is overwritten, and
/// removing it changes nothing anyone observed.
fn register_droppable(ops: &[(RegisterOp, bool)]) -> Vec<bool> {
    let mut observed: HashSet<Option<Value>> = HashSet::new();
    for (op, _) in ops {
        match *op {
            RegisterOp::Read(v) => {
                observed.insert(v);
            }
            RegisterOp::Cas { from, .. } => {
                observed.insert(from);
            }
            RegisterOp::Write(_) => {}
        }
    }
    ops.iter()
        .map(|(op, required)| {
            !required
                && match *op {
                    RegisterOp::Write(v) | RegisterOp::Cas { to: v, .. } => {
                        !observed.contains(&Some(v))
                    }
                    RegisterOp::Read(_) => true,
                }
        })
        .collect()
}

/// The value standing for every written value that no read returns and no cas expects (see
/// [`register_simplify`]).
const UNOBSERVED: Value = Value::MIN;

fn describe_register(state: &Option<Value>) -> String {
    match state {
        Some(UNOBSERVED) => "a value no read returns".to_string(),
        Some(v) => v.to_string(),
        None => "nil".to_string(),
    }
}

/// Writes (and cas) of values that no read returns and no cas expects all write
/// [`UNOBSERVED`]: from any such value every read and cas fails until the next write, so they
/// are one state to the search, and the orders of unobserved writes are explored once.
/// Skipped when a history really uses [`UNOBSERVED`].
fn register_simplify(ops: &mut [RegisterOp]) {
    let mut observed: HashSet<Option<Value>> = HashSet::new();
    for op in ops.iter() {
        match *op {
            RegisterOp::Read(v) | RegisterOp::Cas { from: v, .. } => {
                observed.insert(v);
            }
            RegisterOp::Write(_) => {}
        }
    }
    let uses_sentinel = ops.iter().any(|op| match *op {
        RegisterOp::Read(v) => v == Some(UNOBSERVED),
        RegisterOp::Write(v) => v == UNOBSERVED,
        RegisterOp::Cas { from, to } => from == Some(UNOBSERVED) || to == UNOBSERVED,
    });
    if uses_sentinel {
        return;
    }
    for op in ops.iter_mut() {
        match op {
            RegisterOp::Write(v) | RegisterOp::Cas { to: v, .. }
                if !observed.contains(&Some(*v)) =>
            {
                *v = UNOBSERVED;
            }
            _ => {}
        }
    }
}

/// A read of `v` (or a cas expecting `v`) can only become legal if the register holds `v`
/// or a pending write or cas writes it.
fn register_reachable(
    state: &Option<Value>,
    pending: &mut dyn Iterator<Item = &RegisterOp>,
    next: &RegisterOp,
) -> bool {
    let want = match *next {
        RegisterOp::Read(v) | RegisterOp::Cas { from: v, .. } => v,
        RegisterOp::Write(_) => return true,
    };
    if *state == want {
        return true;
    }
    let Some(want) = want else { return false };
    for op in pending {
        if let RegisterOp::Write(v) | RegisterOp::Cas { to: v, .. } = *op {
            if v == want {
                return true;
            }
        }
    }
    false
}

impl Model for Register {
    type State = Option<Value>;
    type Op = RegisterOp;
    type Record = OpRecord;

    fn name(&self) -> &'static str {
        if self.cas {
            "cas-register"
        } else {
            "register"
        }
    }
    fn init(&self) -> Self::State {
        None
    }
    fn op(&self, rec: &OpRecord) -> Result<Option<RegisterOp>, ModelError> {
        register_op(self.name(), self.cas, rec)
    }
    fn step(&self, state: &Self::State, op: &RegisterOp) -> Option<Self::State> {
        register_step(state, op)
    }
    fn is_read_only(&self, op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::Read(_))
    }
    fn droppable(&self, ops: &[(RegisterOp, bool)]) -> Vec<bool> {
        register_droppable(ops)
    }
    fn simplify(&self, ops: &mut [RegisterOp]) {
        register_simplify(ops);
    }
    fn reachable(
        &self,
        state: &Self::State,
        pending: &mut dyn Iterator<Item = &RegisterOp>,
        next: &RegisterOp,
    ) -> bool {
        register_reachable(state, pending, next)
    }
    fn describe_state(&self, state: &Self::State) -> String {
        describe_register(state)
    }
}
