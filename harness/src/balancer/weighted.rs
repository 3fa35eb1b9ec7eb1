//! nginx's smooth weighted round-robin, without a lock. nginx keeps a running weight per node
//! and updates all of them on every pick; here the same algorithm runs once at build time over
//! one period (the sum of the weights, after dividing by their gcd) and a pick takes the next
//! slot of that schedule with one atomic add.
//!
//! A slot whose node cannot take the operation (down, unhealthy, ejected, already tried) is
//! passed over and the next slot taken, so that over each period the other nodes get exactly
//! their weights' shares of the picks, in nginx's interleaved order. If many slots in a row
//! are passed over, the pick falls back to a weighted draw among the candidates.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::mix::RandomStream;
use super::{Balancer, Pick, MAX_NODES};
use crate::experiment::MAX_WEIGHT;

/// Slots tried before the weighted draw.
const MAX_PROBES: usize = 64;

#[derive(Debug)]
pub struct SmoothWeighted {
    schedule: Box<[u8]>,
    weights: Box<[u32]>,
    next: AtomicUsize,
    rng: RandomStream,
}

impl SmoothWeighted {
    /// `weights[i]` is node `i`'s weight (at most [`MAX_NODES`] nodes; weights above
    /// [`MAX_WEIGHT`] count as that; a weight of 0 is never scheduled).
    pub fn new(weights: &[u32], seed: u64) -> Self {
        let weights: Vec<u32> = weights
            .iter()
            .take(MAX_NODES)
            .map(|&w| w.min(MAX_WEIGHT))
            .collect();
        let gcd = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
        let w: Vec<i64> = weights.iter().map(|&x| i64::from(x / gcd)).collect();
        let total: i64 = w.iter().sum();
        let mut current = vec![0i64; w.len()];
        let mut schedule = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best: Option<usize> = None;
            for (i, &wi) in w.iter().enumerate() {
                if wi == 0 {
                    continue;
                }
                current[i] += wi;
                if best.is_none_or(|b| current[i] > current[b]) {
                    best = Some(i);
                }
            }
            if let Some(b) = best {
                current[b] -= total;
                schedule.push(b as u8);
            }
        }
        SmoothWeighted {
            schedule: schedule.into(),
            weights: weights.into(),
            next: AtomicUsize::new(0),
            rng: RandomStream::new(seed),
        }
    }

    /// One period of the schedule, as node indices.
    pub fn schedule(&self) -> &[u8] {
        &self.schedule
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Balancer for SmoothWeighted {
    fn name(&self) -> &'static str {
        "weighted"
    }

    fn pick(&self, p: &Pick<'_>) -> Option<usize> {
        let period = self.schedule.len();
        if period > 0 {
            for _ in 0..period.min(MAX_PROBES) {
                let slot = self.next.fetch_add(1, Ordering::Relaxed) % period;
                let node = usize::from(self.schedule[slot]);
                if p.fresh(node) {
                    return Some(node);
                }
            }
        }
        // The fresh nodes' weights are rare in the schedule (or all 0), or every usable node
        // was tried: draw by weight among the candidates.
        let c = p.candidates();
        let weight = |i: usize| u64::from(self.weights.get(i).copied().unwrap_or(0));
        let total: u64 = c.iter().map(weight).sum();
        if total == 0 {
            return c.nth(self.rng.below(c.len() as u64) as usize);
        }
        let mut r = self.rng.below(total);
        for i in c.iter() {
            if r < weight(i) {
                return Some(i);
            }
            r -= weight(i);
        }
        c.nth(0)
    }
}
