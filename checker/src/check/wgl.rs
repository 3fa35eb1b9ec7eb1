//! The Wing-Gong/Lowe linearizability search over one key's operations, with memoization of
//! (linearized set, model state), a deadline and a memory budget for the memo.
//!
//! Operations sit in a doubly linked list of call and return entries ordered by time (at equal
//! times calls come first, so touching intervals count as concurrent). The search walks the
//! list: at a call entry it tries to linearize that op next; at a return entry it has met an
//! op that had to be linearized already, so it backtracks. Optional (`info`) ops have no
//! return entry: they may be linearized any time after their call, or never. The key is
//! linearizable as soon as every required op is linearized.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::Instant;

use super::model::{allocation_bytes, Model};

/// One operation of a key, ready for the search.
#[derive(Debug, Clone)]
pub(crate) struct SearchOp<O> {
    pub op: O,
    pub invoke: u64,
    /// Completion time of a required (`ok`) op; `None` for an optional (`info`) op, whose
    /// completion counts as +infinity.
    pub complete: Option<u64>,
}

/// The deepest point the search reached before it proved the key non-linearizable.
#[derive(Debug, Clone)]
pub(crate) struct Failure<S> {
    /// Indices (into the search's ops) of the longest linearizable prefix found, in order.
    pub prefix: Vec<usize>,
    /// Model state after that prefix.
    pub state: S,
    /// The required op that could not be linearized after that prefix.
    pub offender: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum SearchResult<S> {
    Linearizable,
    NotLinearizable(Failure<S>),
    /// The deadline passed first.
    OutOfTime,
    /// The memo would have outgrown the memory budget.
    OutOfMemory,
}

/// One linearized op on the search stack.
struct Frame<S> {
    /// Its call entry.
    call: usize,
    /// The state before it.
    before: S,
    /// A read-only op: trying the alternatives to linearizing it here is pointless.
    dominant: bool,
}

/// What one key's search may spend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub deadline: Instant,
    /// Bytes this search's memo may take (see [`Memo`]).
    pub memory: usize,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;
/// How many of the first return entries [`Searcher::hopeless`] asks the model about.
const LOOKAHEAD: usize = 8;
/// How many search steps between two looks at the clock.
const CLOCK_EVERY: u32 = 1024;

/// FxHash (rustc's hasher): fast, and good enough for memo keys that are not adversarial.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A memo entry in canonical compact form: the linearized required ops as "every op below
/// word `lo`" plus the words from `lo` to the last non-zero one, then the optional ops' words
/// with trailing zeros trimmed. Required ops are numbered in call order, so the explicit part
/// stays about as long as the window of concurrent ops, not the whole history.
#[derive(PartialEq, Eq, Hash)]
struct MemoKey<S> {
    state: S,
    lo: u32,
    req_len: u32,
    words: Words,
}

/// A memo entry's words: up to two inline (the usual case, no allocation), more on the heap.
/// Canonical (the variant follows from the length), so the derived equality is exact.
#[derive(PartialEq, Eq, Hash)]
enum Words {
    Inline(u8, [u64; 2]),
    Heap(Box<[u64]>),
}

impl Words {
    fn new(a: &[u64], b: &[u64]) -> Words {
        let n = a.len() + b.len();
        if n <= 2 {
            let mut w = [0u64; 2];
            for (slot, &x) in w.iter_mut().zip(a.iter().chain(b)) {
                *slot = x;
            }
            Words::Inline(n as u8, w)
        } else {
            let mut v = Vec::with_capacity(n);
            v.extend_from_slice(a);
            v.extend_from_slice(b);
            Words::Heap(v.into_boxed_slice())
        }
    }

    /// Bytes allocated on the heap for these words.
    fn heap_bytes(&self) -> usize {
        match self {
            Words::Inline(..) => 0,
            Words::Heap(w) => allocation_bytes(std::mem::size_of_val(&**w)),
        }
    }
}

/// The linearized set: required ops and optional ops in two bit arrays.
struct Linearized {
    req: Vec<u64>,
    opt: Vec<u64>,
    n_req: usize,
    /// First required word not yet full.
    lo: usize,
    /// One past the last non-zero required word (at least `lo` is not guaranteed).
    hi: usize,
}

impl Linearized {
    fn new(n_req: usize, n_opt: usize) -> Self {
        Linearized {
            req: vec![0; n_req.div_ceil(64)],
            opt: vec![0; n_opt.div_ceil(64)],
            n_req,
            lo: 0,
            hi: 0,
        }
    }

    fn full_mask(&self, w: usize) -> u64 {
        let rem = self.n_req - w * 64;
        if rem >= 64 {
            u64::MAX
        } else {
            (1u64 << rem) - 1
        }
    }

    fn set_req(&mut self, i: usize) {
        let w = i / 64;
        self.req[w] |= 1 << (i % 64);
        self.hi = self.hi.max(w + 1);
        while self.lo < self.req.len() && self.req[self.lo] == self.full_mask(self.lo) {
            self.lo += 1;
        }
    }

    fn clear_req(&mut self, i: usize) {
        let w = i / 64;
        self.req[w] &= !(1 << (i % 64));
        self.lo = self.lo.min(w);
        while self.hi > 0 && self.req[self.hi - 1] == 0 {
            self.hi -= 1;
        }
    }

    fn set_opt(&mut self, i: usize) {
        self.opt[i / 64] |= 1 << (i % 64);
    }

    fn clear_opt(&mut self, i: usize) {
        self.opt[i / 64] &= !(1 << (i % 64));
    }

    fn key<S>(&self, state: S) -> MemoKey<S> {
        let req = if self.hi > self.lo {
            &self.req[self.lo..self.hi]
        } else {
            &[][..]
        };
        let opt_len = self.opt.iter().rposition(|&w| w != 0).map_or(0, |p| p + 1);
        let words = Words::new(req, &self.opt[..opt_len]);
        MemoKey {
            state,
            lo: self.lo as u32,
            req_len: req.len() as u32,
            words,
        }
    }
}

/// The call/return list with O(1) removal and restoration (dancing links).
struct EntryList {
    prev: Vec<usize>,
    next: Vec<usize>,
    /// Op of each entry (entry 0 is the head and has none).
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// For a call entry, its return entry (or NIL for an optional op).
    matching: Vec<usize>,
}

impl EntryList {
    fn build<O>(ops: &[SearchOp<O>]) -> Self {
        // (time, 0 = call / 1 = return, op)
        let mut items: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, o) in ops.iter().enumerate() {
            items.push((o.invoke, 0, i));
            if let Some(c) = o.complete {
                items.push((c.max(o.invoke), 1, i));
            }
        }
        items.sort_unstable();
        let n = items.len() + 1;
        let mut list = EntryList {
            prev: (0..n).map(|i| i.wrapping_sub(1)).collect(),
            next: (0..n)
                .map(|i| if i + 1 < n { i + 1 } else { NIL })
                .collect(),
            op: vec![NIL; n],
            is_call: vec![false; n],
            matching: vec![NIL; n],
        };
        list.prev[HEAD] = NIL;
        let mut call_of = vec![NIL; ops.len()];
        for (pos, &(_, kind, op)) in items.iter().enumerate() {
            let e = pos + 1;
            list.op[e] = op;
            if kind == 0 {
                list.is_call[e] = true;
                call_of[op] = e;
            } else {
                list.matching[call_of[op]] = e;
            }
        }
        list
    }

    fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        if n != NIL {
            self.prev[n] = x;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let m = self.matching[call];
        if m != NIL {
            self.unlink(m);
        }
    }

    fn unlift(&mut self, call: usize) {
        let m = self.matching[call];
        if m != NIL {
            self.relink(m);
        }
        self.relink(call);
    }
}

/// What [`Memo::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insert {
    Added,
    /// The configuration was explored before.
    Known,
    /// Remembering it would take the memo over its memory budget (nothing was added).
    Full,
}

type FxSet<T> = HashSet<T, BuildHasherDefault<FxHasher>>;

/// The memo of explored configurations that failed, within a memory budget. Its bytes are
/// counted as the hash table's allocation (slots and control bytes, at its current capacity)
/// plus what each entry owns on the heap: a long linearized set, and the model state's heap
/// ([`Model::state_bytes`]). When the table must grow, the old and the new table are both
/// counted, as both are allocated while it moves. An entry that would take the total over
/// the budget is refused; the search then stops with [`SearchResult::OutOfMemory`] rather
/// than forget what it explored.
struct Memo<S> {
    set: FxSet<MemoKey<S>>,
    /// Heap bytes the entries own outside the table.
    owned: usize,
    budget: usize,
}

impl<S: Eq + Hash> Memo<S> {
    fn new(budget: usize) -> Self {
        Memo {
            set: FxSet::default(),
            owned: 0,
            budget,
        }
    }

    /// Bytes of the table std's `HashSet` allocates for `capacity` entries (hashbrown's
    /// layout: 4 or 8 buckets, then a power of two with 7/8 of them usable; one control byte
    /// per bucket plus a group of 16).
    fn table_bytes(capacity: usize) -> usize {
        let buckets = match capacity {
            0 => return 0,
            1..=3 => 4,
            4..=7 => 8,
            _ => (capacity * 8 / 7).next_power_of_two(),
        };
        buckets * (std::mem::size_of::<MemoKey<S>>() + 1) + 16
    }

    /// Bytes the memo holds now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        Self::table_bytes(self.set.capacity()) + self.owned
    }

    /// Remember `key`, which owns `heap` bytes outside the table.
    fn insert(&mut self, key: MemoKey<S>, heap: usize) -> Insert {
        let cap = self.set.capacity();
        let room = self.set.len() < cap;
        if !room && self.set.contains(&key) {
            return Insert::Known;
        }
        let table = Self::table_bytes(cap);
        // Growing allocates the new table before it frees the old one.
        let peak = if room {
            table
        } else {
            table + Self::table_bytes(cap + 1)
        };
        if peak.saturating_add(self.owned).saturating_add(heap) > self.budget {
            // A known configuration needs no room.
            return if room && self.set.contains(&key) {
                Insert::Known
            } else {
                Insert::Full
            };
        }
        if self.set.insert(key) {
            self.owned += heap;
            Insert::Added
        } else {
            Insert::Known
        }
    }
}

/// The search's mutable state.
struct Searcher<'a, M: Model> {
    model: &'a M,
    ops: &'a [SearchOp<M::Op>],
    read_only: Vec<bool>,
    /// Bit position of each op: required ops and optional ops are numbered separately.
    slot: Vec<usize>,
    list: EntryList,
    lin: Linearized,
    memo: Memo<M::State>,
    state: M::State,
    stack: Vec<Frame<M::State>>,
    /// Required ops not yet linearized.
    remaining: usize,
    /// Deepest failure point seen, for the counterexample.
    best: Option<Failure<M::State>>,
    /// `stack[..agree]` holds the same ops as `best.prefix[..agree]`.
    agree: usize,
}

impl<M: Model> Searcher<'_, M> {
    fn mark(&mut self, i: usize, on: bool) {
        match (self.ops[i].complete.is_some(), on) {
            (true, true) => self.lin.set_req(self.slot[i]),
            (true, false) => self.lin.clear_req(self.slot[i]),
            (false, true) => self.lin.set_opt(self.slot[i]),
            (false, false) => self.lin.clear_opt(self.slot[i]),
        }
    }

    /// Linearize the op of call entry `e`, reaching `next`: [`Insert::Added`], or (and nothing
    /// done) [`Insert::Known`] when that configuration was explored before, [`Insert::Full`]
    /// when the memo has no room left for it.
    fn push(&mut self, e: usize, next: M::State) -> Insert {
        let i = self.list.op[e];
        self.mark(i, true);
        let key = self.lin.key(next.clone());
        let heap = key.words.heap_bytes()
            + self
                .model
                .state_bytes(&next)
                .saturating_sub(std::mem::size_of::<M::State>());
        let inserted = self.memo.insert(key, heap);
        if inserted != Insert::Added {
            self.mark(i, false);
            return inserted;
        }
        if let Some(b) = &self.best {
            if self.agree == self.stack.len() && b.prefix.get(self.agree) == Some(&i) {
                self.agree += 1;
            }
        }
        self.stack.push(Frame {
            call: e,
            before: std::mem::replace(&mut self.state, next),
            dominant: self.read_only[i],
        });
        if self.ops[i].complete.is_some() {
            self.remaining -= 1;
        }
        self.list.lift(e);
        Insert::Added
    }

    /// The required op `offender` reached its return unlinearized: remember the point if it
    /// is the deepest so far.
    fn record_failure(&mut self, offender: usize) {
        let deeper = match &self.best {
            Some(b) => self.stack.len() > b.prefix.len(),
            None => true,
        };
        if !deeper {
            return;
        }

        let b = self.best.get_or_insert_with(|| Failure {
            prefix: Vec::new(),
            state: self.state.clone(),
            offender,
        });
        b.prefix.truncate(self.agree);
        let list = &self.list;
        b.prefix
            .extend(self.stack[self.agree..].iter().map(|f| list.op[f.call]));
        b.state = self.state.clone();
        b.offender = offender;
        self.agree = self.stack.len();
    }

    /// Undo linearized ops up to and including the last one that was a real choice; its call
    /// entry, or `None` when nothing is left to undo. Read-only frames are undone without
    /// trying the alternatives after them: such an op, legal where it was, can be moved to
    /// the front of any linearization of the remaining ops (it was invoked, everything that
    /// had to precede it already has, and it changes no state), so every alternative fails
    /// too.
    fn backtrack(&mut self) -> Option<usize> {
        loop {
            let frame = self.stack.pop()?;
            self.agree = self.agree.min(self.stack.len());
            self.state = frame.before;
            let i = self.list.op[frame.call];
            self.mark(i, false);
            if self.ops[i].complete.is_some() {
                self.remaining += 1;
            }
            self.list.unlift(frame.call);
            if !frame.dominant {
                return Some(frame.call);
            }
        }
    }

    /// An enabled read-only op among the pending calls, with the state after it.
    fn enabled_read(&self) -> Option<(usize, M::State)> {
        let mut e = self.list.next[HEAD];
        while e != NIL && self.list.is_call[e] {
            let i = self.list.op[e];
            if self.read_only[i] {
                if let Some(next) = self.model.step(&self.state, &self.ops[i].op) {
                    return Some((e, next));
                }
            }
            e = self.list.next[e];
        }
        None
    }

    /// A required op among the first few return entries that the model says no order of the
    /// calls before its return can make legal from the current state.
    fn hopeless(&self) -> Option<usize> {
        let mut e = self.list.next[HEAD];
        let mut returns = 0;
        while e != NIL && returns < LOOKAHEAD {
            if !self.list.is_call[e] {
                returns += 1;
                let target = self.list.op[e];
                let mut pending = PendingOps {
                    searcher: self,
                    entry: self.list.next[HEAD],
                    stop: e,
                };
                if !self
                    .model
                    .reachable(&self.state, &mut pending, &self.ops[target].op)
                {
                    return Some(target);
                }
            }
            e = self.list.next[e];
        }
        None
    }

    fn failed(&mut self) -> SearchResult<M::State> {
        match self.best.take() {
            Some(f) => SearchResult::NotLinearizable(f),
            // Cannot happen (the first backtrack starts at a return entry), but never claim
            // a verdict without a counterexample.
            None => SearchResult::OutOfTime,
        }
    }
}

/// The ops of the call entries from `entry` up to `stop`.
struct PendingOps<'s, 'a, M: Model> {
    searcher: &'s Searcher<'a, M>,
    entry: usize,
    stop: usize,
}

impl<'s, M: Model> Iterator for PendingOps<'s, '_, M> {
    type Item = &'s M::Op;
    fn next(&mut self) -> Option<Self::Item> {
        let list = &self.searcher.list;
        while self.entry != self.stop && self.entry != NIL {
            let e = self.entry;
            self.entry = list.next[e];
            if list.is_call[e] {
                return Some(&self.searcher.ops[list.op[e]].op);
            }
        }
        None
    }
}

/// Decide whether `ops` (one key's operations) are linearizable with respect to `model`.
///
/// At each configuration, an enabled read-only op (a read that matches the state) is
/// linearized first and alone (see [`Searcher::backtrack`]); otherwise, unless the model
/// says one of the first [`LOOKAHEAD`] ops that must complete can no longer be made legal
/// ([`Model::reachable`]: then this configuration is a dead end), every pending op, in call
/// order, is a candidate.
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[SearchOp<M::Op>],
    budget: Budget,
) -> SearchResult<M::State> {
    // Bit positions: required ops in call order first, optional ops in their own array.
    let mut slot = vec![0usize; ops.len()];
    let (mut n_req, mut n_opt) = (0usize, 0usize);
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (ops[i].invoke, i));
    for &i in &order {
        if ops[i].complete.is_some() {
            slot[i] = n_req;
            n_req += 1;
        } else {
            slot[i] = n_opt;
            n_opt += 1;
        }
    }
    if n_req == 0 {
        return SearchResult::Linearizable;
    }

    let mut s = Searcher {
        model,
        ops,
        read_only: ops.iter().map(|o| model.is_read_only(&o.op)).collect(),
        slot,
        list: EntryList::build(ops),
        lin: Linearized::new(n_req, n_opt),
        memo: Memo::new(budget.memory),
        state: model.init(),
        stack: Vec::new(),
        remaining: n_req,
        best: None,
        agree: 0,
    };

    let mut steps = 0u32;
    // A configuration just reached: look for an enabled read first.
    let mut fresh = true;
    let mut entry = NIL;
    loop {
        if s.remaining == 0 {
            return SearchResult::Linearizable;
        }
        steps += 1;
        if steps >= CLOCK_EVERY {
            steps = 0;
            if Instant::now() >= budget.deadline {
                return SearchResult::OutOfTime;
            }
        }
        if fresh {
            fresh = false;
            match s.enabled_read() {
                Some((e, next)) => match s.push(e, next) {
                    Insert::Added => fresh = true,
                    // Explored before, and failed; so does this configuration.
                    Insert::Known => match s.backtrack() {
                        Some(call) => entry = s.list.next[call],
                        None => return s.failed(),
                    },
                    Insert::Full => return SearchResult::OutOfMemory,
                },
                None => match s.hopeless() {
                    Some(target) => {
                        s.record_failure(target);
                        match s.backtrack() {
                            Some(call) => entry = s.list.next[call],
                            None => return s.failed(),
                        }
                    }
                    None => entry = s.list.next[HEAD],
                },
            }
            continue;
        }
        if entry != NIL && s.list.is_call[entry] {
            let i = s.list.op[entry];
            // No read-only op is enabled in this configuration.
            if !s.read_only[i] {
                if let Some(next) = model.step(&s.state, &ops[i].op) {
                    match s.push(entry, next) {
                        Insert::Added => {
                            fresh = true;
                            continue;
                        }
                        Insert::Known => {}
                        Insert::Full => return SearchResult::OutOfMemory,
                    }
                }
            }
            entry = s.list.next[entry];
            continue;
        }
        // A return entry: the op it closes had to be linearized by now. (The end of the list
        // cannot be reached while required ops remain, since their return entries are still
        // in it; if it were, it is a dead end like a return entry.)
        if entry != NIL {
            s.record_failure(s.list.op[entry]);
        }
        match s.backtrack() {
            // The memo now holds that choice; the calls after it are the alternatives.
            Some(call) => entry = s.list.next[call],
            None => return s.failed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_stays_within_its_budget_and_refuses_beyond_it() {
        for budget in [0, 200, 1_000, 10_000, 1 << 20] {
            let mut memo: Memo<Option<i64>> = Memo::new(budget);
            let lin = Linearized::new(1, 0);
            let mut added = 0;
            let full = loop {
                let heap = if added % 3 == 0 { 48 } else { 0 };
                match memo.insert(lin.key(Some(added)), heap) {
                    Insert::Added => added += 1,
                    Insert::Known => panic!("distinct states"),
                    Insert::Full => break added,
                }
                assert!(memo.bytes() <= budget, "{} > {budget}", memo.bytes());
                // Known entries are still recognized.
                assert_eq!(memo.insert(lin.key(Some(0)), 0), Insert::Known);
            };
            assert_eq!(memo.set.len() as i64, full, "nothing added when full");
            assert_eq!(memo.insert(lin.key(Some(full)), 0), Insert::Full);
            if budget >= 10_000 {
                // Most of the budget is usable: the table is at least half full on refusal
                // to grow, and the budget is not wasted on a table much larger than needed.
                assert!(memo.bytes() * 4 > budget, "{} of {budget}", memo.bytes());
            }
        }
    }
}
