//! The kv-append model (Porcupine's key-value store: `get`, `put` and `append` on strings,
//! plus `cas`) and the string-valued records of foreign histories it checks.
//!
//! Each key holds a string, initially `""` (a `get` of a key never written returns `""`);
//! `put` replaces it, `append` concatenates, `cas` replaces it when it equals the expected
//! string, `get` returns it. States carry a polynomial hash that `append` extends in time
//! proportional to the appended text, so the search's memo never rehashes whole strings.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::model::{allocation_bytes, Model, ModelError};
use crate::history::Outcome;

pub use crate::history::kv::{KvHistory, KvKind, KvRecord};

const BASE: u64 = 0x0000_0100_0000_01b3;

/// A key's value with its polynomial hash (`sum s[i] * BASE^(n-1-i)`, wrapping), so that
/// equal states are found in the memo by the hash and confirmed by the text.
///
/// A *spoiled* state stands for every value holding text that no get ever returns and no cas
/// ever expects (an append or put nobody observed): from any such value, every get and cas
/// fails until a put replaces it, so they are all one state to the search, and the orders of
/// unobserved appends are explored once, not once per permutation.
#[derive(Debug, Clone)]
pub struct KvState {
    hash: u64,
    text: Arc<str>,
    spoiled: bool,
}

const SPOILED_HASH: u64 = 0x9e37_79b9_7f4a_7c15;

impl KvState {
    fn new(text: &str) -> Self {
        KvState {
            hash: poly(text),
            text: text.into(),
            spoiled: false,
        }
    }

    fn spoiled() -> Self {
        KvState {
            hash: SPOILED_HASH,
            text: "".into(),
            spoiled: true,
        }
    }

    /// True for the state standing for values holding text nobody ever observed.
    pub fn is_spoiled(&self) -> bool {
        self.spoiled
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `BASE^0 ..= BASE^8`.
const POW: [u64; 9] = {
    let mut p = [1u64; 9];
    let mut i = 1;
    while i < 9 {
        p[i] = p[i - 1].wrapping_mul(BASE);
        i += 1;
    }
    p
};

/// `BASE^n`.
fn pow(n: usize) -> u64 {
    let (mut r, mut b, mut e) = (1u64, BASE, n);
    while e > 0 {
        if e & 1 == 1 {
            r = r.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    r
}

/// The polynomial hash, eight bytes per step of the multiply chain.
fn poly(s: &str) -> u64 {
    let mut chunks = s.as_bytes().chunks_exact(8);
    let mut h = 0u64;
    for c in &mut chunks {
        let mut x = 0u64;
        for (j, &b) in c.iter().enumerate() {
            x = x.wrapping_add(u64::from(b).wrapping_mul(POW[7 - j]));
        }
        h = h.wrapping_mul(POW[8]).wrapping_add(x);
    }
    chunks
        .remainder()
        .iter()
        .fold(h, |h, &b| h.wrapping_mul(BASE).wrapping_add(u64::from(b)))
}

impl PartialEq for KvState {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.spoiled == other.spoiled
            && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for KvState {}

impl Hash for KvState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A key-value operation with its observed result.
#[derive(Debug, Clone)]
pub enum KvOp {
    /// A get that returned this value.
    Get(KvState),
    Put(KvState),
    /// Append `text`; `pow` is `BASE^len(text)` and `hash` the text's own hash.
    Append {
        text: Arc<str>,
        pow: u64,
        hash: u64,
    },
    Cas {
        from: KvState,
        to: KvState,
    },
    /// An append or put of text that no get returns and no cas expects: it spoils the state
    /// (see [`KvState`]). Made by [`Model::simplify`].
    Spoil,
}

/// Below this many ops on a key, [`KvAppend`] does not look for unobserved writes.
const SPOIL_MIN_OPS: usize = 64;
/// Above this much work (observed bytes times writes), [`KvAppend`] does not look for
/// unobserved writes.
const SPOIL_SCAN_LIMIT: usize = 400_000_000;

/// Porcupine's key-value model: get, put and append on strings (and cas), a never-written key
/// reading `""`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvAppend;

impl Model for KvAppend {
    type State = KvState;
    type Op = KvOp;
    type Record = KvRecord;

    fn name(&self) -> &'static str {
        "kv-append"
    }

    fn init(&self) -> KvState {
        KvState::new("")
    }

    fn op(&self, rec: &KvRecord) -> Result<Option<KvOp>, ModelError> {
        if rec.outcome == Outcome::Fail {
            return Ok(None);
        }
        let value = |kind| {
            rec.value
                .as_deref()
                .ok_or(ModelError::MissingValue { kind, id: rec.id })
        };
        Ok(Some(match rec.f {
            // An indeterminate get constrains nothing.
            KvKind::Get if rec.outcome != Outcome::Ok => return Ok(None),
            KvKind::Get => KvOp::Get(KvState::new(value("get")?)),
            KvKind::Put => KvOp::Put(KvState::new(value("put")?)),
            KvKind::Append => {
                let text = value("append")?;
                KvOp::Append {
                    pow: pow(text.len()),
                    hash: poly(text),
                    text: text.into(),
                }
            }
            KvKind::Cas => KvOp::Cas {
                from: KvState::new(rec.from.as_deref().unwrap_or("")),
                to: KvState::new(value("cas")?),
            },
        }))
    }

    fn step(&self, state: &KvState, op: &KvOp) -> Option<KvState> {
        match op {
            KvOp::Get(v) => (v == state).then(|| state.clone()),
            KvOp::Put(v) => Some(v.clone()),
            KvOp::Spoil => Some(KvState::spoiled()),
            KvOp::Append { .. } if state.spoiled => Some(state.clone()),
            KvOp::Append { text, .. } if text.is_empty() => Some(state.clone()),
            KvOp::Append { text, pow, hash } => {
                let mut s = String::with_capacity(state.text.len() + text.len());
                s.push_str(&state.text);
                s.push_str(text);
                Some(KvState {
                    hash: state.hash.wrapping_mul(*pow).wrapping_add(*hash),
                    text: s.into(),
                    spoiled: false,
                })
            }
            KvOp::Cas { from, to } => (from == state).then(|| to.clone()),
        }
    }

    fn is_read_only(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get(_))
    }

    /// Before a get of `v` only appends, puts and cas can happen, so `v` must start with the
    /// current value or with the value a pending put or cas writes.
    fn reachable(
        &self,
        state: &KvState,
        pending: &mut dyn Iterator<Item = &KvOp>,
        next: &KvOp,
    ) -> bool {
        let KvOp::Get(v) = next else { return true };
        if !state.spoiled && v.text.starts_with(&*state.text) {
            return true;
        }
        for o in pending {
            if let KvOp::Put(p) | KvOp::Cas { to: p, .. } = o {
                if v.text.starts_with(&*p.text) {
                    return true;
                }
            }
        }
        false
    }

    /// Appends and puts of text that no get returns and no cas expects become
    /// [`KvOp::Spoil`].
    fn simplify(&self, ops: &mut [KvOp]) {
        let mut observed = String::new();
        let mut writes = 0usize;
        for op in ops.iter() {
            match op {
                KvOp::Get(v) | KvOp::Cas { from: v, .. } => {
                    observed.push_str(&v.text);
                    // A separator that a match across two values could only make
                    // "observed", which is the safe side.
                    observed.push('\u{0}');
                }
                KvOp::Append { .. } | KvOp::Put(_) => writes += 1,
                KvOp::Spoil => {}
            }
        }
        // Small keys are searched faster than they are scanned.
        if ops.len() < SPOIL_MIN_OPS || observed.len().saturating_mul(writes) > SPOIL_SCAN_LIMIT {
            return;
        }
        for op in ops.iter_mut() {
            let text = match op {
                KvOp::Append { text, .. } => text.clone(),
                KvOp::Put(v) => v.text.clone(),
                _ => continue,
            };
            if !text.is_empty() && !observed.contains(&*text) {
                *op = KvOp::Spoil;
            }
        }
    }

    /// Optional spoiling writes can only make later gets and cas fail: drop them.
    fn droppable(&self, ops: &[(KvOp, bool)]) -> Vec<bool> {
        ops.iter()
            .map(|(op, required)| !required && matches!(op, KvOp::Spoil))
            .collect()
    }

    /// The state's own size plus its text's heap allocation (the `Arc`'s two counters and
    /// the bytes). States often share one text (a get keeps the state it read): counting it
    /// for each is an overestimate, on the safe side.
    fn state_bytes(&self, state: &KvState) -> usize {
        std::mem::size_of::<KvState>()
            + allocation_bytes(2 * std::mem::size_of::<usize>() + state.text.len())
    }

    fn describe_state(&self, state: &KvState) -> String {
        if state.spoiled {
            "a value no get returns (it holds an append or put that nobody observed)".into()
        } else {
            format!("{:?}", state.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_extends_the_hash_like_hashing_the_whole_string() {
        let m = KvAppend;
        let rec = |f, v: &str| KvRecord {
            id: 0,
            client: 0,
            f,
            key: "k".into(),
            value: Some(v.into()),
            from: None,
            outcome: Outcome::Ok,
            invoke_ns: 0,
            complete_ns: Some(1),
            line: 0,
            complete_line: None,
        };
        let op = |f, v| m.op(&rec(f, v)).unwrap().unwrap();
        let s = m.step(&m.init(), &op(KvKind::Append, "x 1 0 y")).unwrap();
        let s = m.step(&s, &op(KvKind::Append, "x 2 0 y")).unwrap();
        assert_eq!(s, KvState::new("x 1 0 yx 2 0 y"));
        assert_eq!(s.hash, poly("x 1 0 yx 2 0 y"));
        let slow = |t: &str| {
            t.bytes()
                .fold(0u64, |h, b| h.wrapping_mul(BASE).wrapping_add(u64::from(b)))
        };
        for t in ["", "a", "x 1 0 y", "x 1 0 yx 2 0 yx 3 0 y!"] {
            assert_eq!(poly(t), slow(t), "{t:?}");
            assert_eq!(
                pow(t.len()),
                t.bytes().fold(1u64, |p, _| p.wrapping_mul(BASE))
            );
        }
        assert!(m.step(&s, &op(KvKind::Get, "x 1 0 yx 2 0 y")).is_some());
        assert!(m.step(&s, &op(KvKind::Get, "x 1 0 y")).is_none());
        assert!(m.step(&m.init(), &op(KvKind::Get, "")).is_some());
        let p = m.step(&s, &op(KvKind::Put, "z")).unwrap();
        assert_eq!(p.as_str(), "z");
    }
}
