//! Consistent hashing on the operation's key: a ring of `vnodes` points per node; a key goes
//! to the first candidate clockwise from its hash. With a bounded-load factor `c` (Mirrokni,
//! Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018) a node already
//! holding `ceil(c × (in flight + 1) / candidates)` operations is passed over for the next
//! one clockwise, so no node carries more than `c` times the mean.
//!
//! The bound holds at the moment of each pick; picks made at the same instant by different
//! tasks read the same counts, so under concurrency a node can go over by the number of
//! simultaneous picks.

use super::mix::{hash64, point_hash};
use super::nodes::NodeSet;
use super::{Balancer, Pick, MAX_NODES};

#[derive(Debug)]
pub struct HashRing {
    /// Point hashes, sorted; `owners[j]` is the node of `points[j]`.
    points: Box<[u64]>,
    owners: Box<[u8]>,
    /// `index[b]` is the first point at or after `b << shift`: a lookup reads one entry and
    /// then a few points, instead of a binary search over the whole ring.
    index: Box<[u32]>,
    shift: u32,
    bound: Option<f64>,
}

impl HashRing {
    /// A ring over `ids` (the first [`MAX_NODES`] of them), `vnodes` points each.
    pub fn new(ids: &[String], vnodes: u32, bound: Option<f64>) -> Self {
        let mut ring: Vec<(u64, u8)> = ids
            .iter()
            .take(MAX_NODES)
            .enumerate()
            .flat_map(|(i, id)| (0..vnodes).map(move |v| (point_hash(id, v), i as u8)))
            .collect();
        ring.sort_unstable();
        let points: Box<[u64]> = ring.iter().map(|&(h, _)| h).collect();
        // About four points per bucket.
        let bits = (points.len().next_power_of_two().trailing_zeros()).clamp(3, 24) - 2;
        let shift = 64 - bits;
        let index = (0..1u64 << bits)
            .map(|b| points.partition_point(|&x| x < b << shift) as u32)
            .collect();
        HashRing {
            owners: ring.iter().map(|&(_, o)| o).collect(),
            points,
            index,
            shift,
            bound: bound.filter(|c| c.is_finite()).map(|c| c.max(1.0)),
        }
    }

    /// The first point at or after `h` (`points.len()` when past the last).
    fn locate(&self, h: u64) -> usize {
        let mut j = self.index[(h >> self.shift) as usize] as usize;
        while j < self.points.len() && self.points[j] < h {
            j += 1;
        }
        j
    }

    /// The first node clockwise from `start` that `take` accepts; `take` sees each node once.
    fn walk(&self, start: usize, mut take: impl FnMut(usize) -> Walk) -> Option<usize> {
        let n = self.points.len();
        let mut seen = NodeSet::EMPTY;
        for k in 0..n {
            let j = if start + k >= n {
                start + k - n
            } else {
                start + k
            };
            let node = usize::from(self.owners[j]);
            if seen.contains(node) {
                continue;
            }
            seen = seen.with(node);
            match take(node) {
                Walk::Take => return Some(node),
                Walk::Pass => {}
                Walk::Stop => return None,
            }
        }
        None
    }
}

enum Walk {
    Take,
    Pass,
    Stop,
}

impl Balancer for HashRing {
    fn name(&self) -> &'static str {
        "hash"
    }

    fn pick(&self, p: &Pick<'_>) -> Option<usize> {
        if self.points.is_empty() {
            return p.candidates().nth(0);
        }
        let start = self.locate(hash64(p.key.as_bytes()));
        let Some(factor) = self.bound else {
            // Plain: the first fresh node; when every usable node was tried, the first
            // candidate.
            return self
                .walk(start, |i| if p.fresh(i) { Walk::Take } else { Walk::Pass })
                .or_else(|| {
                    let c = p.candidates();
                    self.walk(start, |i| {
                        if c.contains(i) {
                            Walk::Take
                        } else {
                            Walk::Pass
                        }
                    })
                });
        };
        let c = p.candidates();
        let in_flight = p.load.total(c);
        let cap = (factor * (in_flight + 1) as f64 / c.len() as f64).ceil() as u64;
        let mut full = NodeSet::EMPTY;
        self.walk(start, |i| {
            if !c.contains(i) {
                Walk::Pass
            } else if p.load.outstanding(i) < cap {
                Walk::Take
            } else {
                full = full.with(i);
                if full == c {
                    Walk::Stop
                } else {
                    Walk::Pass
                }
            }
        })
        // Every candidate at the cap (possible only when counts moved during the walk): the
        // least loaded.
        .or_else(|| p.load.least_loaded(c, 0))
    }
}
