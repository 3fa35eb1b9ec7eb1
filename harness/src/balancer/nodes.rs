//! Per-node state every client task shares: operations in flight and what each node answered
//! (plain atomics, one cache line per node, sized once), and [`NodeSet`], the set of nodes a
//! pick chooses from, kept in one machine word so that a pick never allocates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use crate::history::{NodeStats, TryCounts};

use super::Reply;
use crate::cluster::ClusterView;

/// The most nodes a balancer handles (one bit each in a [`NodeSet`]).
pub const MAX_NODES: usize = 64;

/// A set of node indices below [`MAX_NODES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeSet(u64);

impl NodeSet {
    pub const EMPTY: NodeSet = NodeSet(0);

    /// Nodes `0..n` (all of them when `n >= MAX_NODES`).
    pub fn first(n: usize) -> NodeSet {
        if n >= MAX_NODES {
            NodeSet(u64::MAX)
        } else {
            NodeSet((1u64 << n) - 1)
        }
    }

    pub fn from_bits(bits: u64) -> NodeSet {
        NodeSet(bits)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    #[must_use]
    pub fn with(self, i: usize) -> NodeSet {
        if i < MAX_NODES {
            NodeSet(self.0 | 1 << i)
        } else {
            self
        }
    }

    #[must_use]
    pub fn without(self, i: usize) -> NodeSet {
        if i < MAX_NODES {
            NodeSet(self.0 & !(1 << i))
        } else {
            self
        }
    }

    #[must_use]
    pub fn minus(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 & !other.0)
    }

    pub fn contains(self, i: usize) -> bool {
        i < MAX_NODES && self.0 >> i & 1 == 1
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The `r`th member in increasing order (from 0).
    pub fn nth(self, r: usize) -> Option<usize> {
        if r >= self.len() {
            return None;
        }
        // Halve the word by population down to a byte, then drop the lowest bits.
        let (mut bits, mut r, mut base) = (self.0, r as u32, 0u32);
        for width in [32u32, 16, 8] {
            let low = bits & ((1u64 << width) - 1);
            let count = low.count_ones();
            if r < count {
                bits = low;
            } else {
                r -= count;
                bits >>= width;
                base += width;
            }
        }
        for _ in 0..r {
            bits &= bits - 1;
        }
        Some((base + bits.trailing_zeros()) as usize)
    }

    /// Members in increasing order.
    pub fn iter(self) -> Members {
        Members(self.0)
    }
}

/// The iterator of [`NodeSet::iter`].
pub struct Members(u64);

impl Iterator for Members {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }
}

/// The nodes a pick may choose from, best tier first: usable (not down, healthy, not
/// `excluded` by outlier ejection) and not yet tried by this operation; else usable; else every
/// node, since the client must still fail against something. Only the first `n` nodes of the
/// view count.
pub fn candidates(view: &ClusterView, n: usize, tried: &[usize], excluded: NodeSet) -> NodeSet {
    let usable = NodeSet(view.usable_bits() & NodeSet::first(n).0).minus(excluded);
    let mut fresh = usable;
    for &t in tried {
        fresh = fresh.without(t);
    }
    if !fresh.is_empty() {
        fresh
    } else if !usable.is_empty() {
        usable
    } else {
        NodeSet::first(view.nodes.len().min(n))
    }
}

/// One node's answer counters, on a cache line of its own so that tasks finishing on
/// different nodes do not contend.
#[repr(align(64))]
#[derive(Debug, Default)]
struct Slot {
    sent: AtomicU64,
    served: AtomicU64,
    rejected: AtomicU64,
    not_leader: AtomicU64,
    unavailable: AtomicU64,
    refused: AtomicU64,
    indefinite: AtomicU64,
    abandoned: AtomicU64,
    served_ns: AtomicU64,
}

/// In-flight counts and answer counters for every node, indexed like the view. The in-flight
/// counts sit side by side, since load-aware picks read all of them.
#[derive(Debug)]
pub struct NodeTable {
    outstanding: Box<[AtomicU64]>,
    slots: Box<[Slot]>,
}

impl NodeTable {
    pub fn new(nodes: usize) -> Self {
        NodeTable {
            outstanding: (0..nodes).map(|_| AtomicU64::new(0)).collect(),
            slots: (0..nodes).map(|_| Slot::default()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Operations sent to `node` that have not finished.
    pub fn outstanding(&self, node: usize) -> u64 {
        self.outstanding
            .get(node)
            .map_or(0, |o| o.load(Ordering::Relaxed))
    }

    /// The member of `set` with the fewest operations in flight; ties go to the first one at
    /// or after `start`, wrapping around. One pass, no branch on the comparison.
    pub fn least_loaded(&self, set: NodeSet, start: usize) -> Option<usize> {
        let n = self.outstanding.len();
        let key = |load: u64, position: usize| load.min(1 << 57) << 6 | position as u64;
        if set == NodeSet::first(n) && start < n {
            // Every node: two contiguous runs, from `start` to the end and from 0.
            let (low, high) = self.outstanding.split_at(start);
            let mut best = u64::MAX;
            for (k, o) in high.iter().enumerate() {
                best = best.min(key(o.load(Ordering::Relaxed), k));
            }
            for (k, o) in low.iter().enumerate() {
                best = best.min(key(o.load(Ordering::Relaxed), high.len() + k));
            }
            if best == u64::MAX {
                return None;
            }
            let i = (best & 63) as usize + start;
            return Some(if i >= n { i - n } else { i });
        }
        let start = start % MAX_NODES;
        // Rotated so that `start` is bit 0: the rotated position breaks ties.
        let mut bits = set.0.rotate_right(start as u32);
        let mut best = u64::MAX;
        while bits != 0 {
            let r = u64::from(bits.trailing_zeros());
            bits &= bits - 1;
            let i = (r as usize + start) % MAX_NODES;
            best = best.min(key(self.outstanding(i), r as usize));
        }
        (best != u64::MAX).then(|| ((best & 63) as usize + start) % MAX_NODES)
    }

    /// Operations in flight on the members of `set`.
    pub fn total(&self, set: NodeSet) -> u64 {
        if set == NodeSet::first(self.outstanding.len()) {
            self.outstanding
                .iter()
                .map(|o| o.load(Ordering::Relaxed))
                .sum()
        } else {
            set.iter().map(|i| self.outstanding(i)).sum()
        }
    }

    pub(super) fn started(&self, node: usize) {
        if let (Some(o), Some(s)) = (self.outstanding.get(node), self.slots.get(node)) {
            o.fetch_add(1, Ordering::Relaxed);
            s.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn finished(&self, node: usize, reply: Reply, latency: Duration) {
        let (Some(o), Some(s)) = (self.outstanding.get(node), self.slots.get(node)) else {
            return;
        };
        o.fetch_sub(1, Ordering::Relaxed);
        let counter = match reply {
            Reply::Served => {
                s.served_ns
                    .fetch_add(latency.as_nanos() as u64, Ordering::Relaxed);
                &s.served
            }
            Reply::Rejected => &s.rejected,
            Reply::NotLeader => &s.not_leader,
            Reply::Unavailable => &s.unavailable,
            Reply::Refused => &s.refused,
            Reply::Indefinite => &s.indefinite,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The operation was dropped before its reply (its task was cancelled).
    pub(super) fn abandoned(&self, node: usize) {
        if let (Some(o), Some(s)) = (self.outstanding.get(node), self.slots.get(node)) {
            o.fetch_sub(1, Ordering::Relaxed);
            s.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn snapshot(&self, node: usize, id: &str) -> NodeStats {
        let Some(s) = self.slots.get(node) else {
            return NodeStats {
                node: id.to_string(),
                ..NodeStats::default()
            };
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let served = get(&s.served);
        NodeStats {
            node: id.to_string(),
            tries: TryCounts {
                sent: get(&s.sent),
                served,
                rejected: get(&s.rejected),
                not_leader: get(&s.not_leader),
                unavailable: get(&s.unavailable),
                refused: get(&s.refused),
                indefinite: get(&s.indefinite),
                abandoned: get(&s.abandoned),
                wasted: get(&s.not_leader) + get(&s.refused),
            },
            outstanding: self.outstanding(node),
            mean_served_ms: if served == 0 {
                0.0
            } else {
                get(&s.served_ns) as f64 / served as f64 / 1e6
            },
            ejections: 0,
            ejected: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_set_selects_and_rotates() {
        let s = NodeSet::EMPTY.with(1).with(5).with(9).with(63);
        assert_eq!(s.len(), 4);
        let nth: Vec<_> = (0..5).map(|r| s.nth(r)).collect();
        assert_eq!(nth, [Some(1), Some(5), Some(9), Some(63), None]);
        assert_eq!(s.iter().collect::<Vec<_>>(), [1, 5, 9, 63]);
        assert!(!s.contains(64) && !s.contains(2) && s.contains(63));
        assert_eq!(s.with(99), s);
        assert_eq!(NodeSet::first(3).bits(), 0b111);
        assert_eq!(NodeSet::first(64).len(), 64);
        assert_eq!(NodeSet::first(0), NodeSet::EMPTY);
    }

    #[test]
    fn least_loaded_breaks_ties_from_the_start() {
        let t = NodeTable::new(6);
        for (node, load) in [(0, 2), (1, 1), (2, 3), (3, 1), (4, 5), (5, 1)] {
            for _ in 0..load {
                t.started(node);
            }
        }
        let all = NodeSet::first(6);
        assert_eq!(t.least_loaded(all, 0), Some(1));
        assert_eq!(t.least_loaded(all, 2), Some(3));
        assert_eq!(t.least_loaded(all, 4), Some(5));
        assert_eq!(t.least_loaded(all, 6), Some(1));
        assert_eq!(
            t.least_loaded(all.without(1).without(3).without(5), 3),
            Some(0)
        );
        assert_eq!(t.least_loaded(NodeSet::EMPTY, 0), None);
        assert_eq!(t.total(all), 13);
        assert_eq!(t.total(NodeSet::EMPTY.with(2).with(4)), 8);
    }

    /// `nth` agrees with counting through the members, on seeded random sets.
    #[test]
    fn nth_agrees_with_iteration() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for round in 0..2_000 {
            let bits: u64 = match round % 4 {
                0 => rng.gen(),
                1 => rng.gen::<u64>() & rng.gen::<u64>() & rng.gen::<u64>(),
                2 => u64::MAX,
                _ => 1 << rng.gen_range(0..64),
            };
            let s = NodeSet::from_bits(bits);
            let members: Vec<usize> = s.iter().collect();
            for r in 0..=members.len() {
                assert_eq!(s.nth(r), members.get(r).copied(), "{bits:#x} {r}");
            }
        }
    }
}
