//! The strategies that need no precomputed table: round-robin, random, least-outstanding,
//! power-of-two-choices, and leader-aware (which wraps another strategy as its fallback).
//! Each picks from [`Pick::candidates`] with at most a couple of atomic operations of its own.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::mix::RandomStream;
use super::nodes::NodeSet;
use super::{Balancer, Pick, Reply};

/// Random draws over all nodes (per choice) before falling back to the candidate set.
const DRAWS: usize = 4;

/// Each operation to the next candidate in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Balancer for RoundRobin {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn pick(&self, p: &Pick<'_>) -> Option<usize> {
        let c = p.candidates();
        c.nth(self.next.fetch_add(1, Ordering::Relaxed) % c.len().max(1))
    }
}

/// A candidate chosen uniformly at random.
#[derive(Debug)]
pub struct Random {
    rng: RandomStream,
}

impl Random {
    pub fn new(seed: u64) -> Self {
        Random {
            rng: RandomStream::new(seed),
        }
    }
}

impl Balancer for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    /// Draws over all nodes until a fresh one comes up (uniform over the fresh nodes), then,
    /// if none has after a few draws, draws from the candidate set.
    fn pick(&self, p: &Pick<'_>) -> Option<usize> {
        for _ in 0..DRAWS {
            let i = self.rng.below(p.nodes() as u64) as usize;
            if p.fresh(i) {
                return Some(i);
            }
        }
        let c = p.candidates();
        c.nth(self.rng.below(c.len() as u64) as usize)
    }
}

/// The candidate with the fewest operations in flight; ties go to the first one after a
/// rotating start, so that an idle cluster is still spread evenly.
#[derive(Debug, Default)]
pub struct LeastOutstanding {
    next: AtomicUsize,
}

impl Balancer for LeastOutstanding {
    fn name(&self) -> &'static str {
        "least-outstanding"
    }

    fn pick(&self, p: &Pick<'_>) -> Option<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed) % p.nodes().max(1);
        p.load.least_loaded(p.candidates(), start)
    }
}

/// The least loaded of `choices` distinct candidates drawn at random (Envoy's least request;
/// Mitzenmacher's power of two choices when `choices` is 2). Ties go to the first drawn.
#[derive(Debug)]
pub struct PowerOfChoices {
    choices: usize,
    rng: RandomStream,
}

impl PowerOfChoices {
    pub fn new(choices: usize, seed: u64) -> Self {
        PowerOfChoices {
            choices: choices.max(1),
            rng: RandomStream::new(seed),
        }
    }
}

impl Balancer for PowerOfChoices {
    fn name(&self) -> &'static str {
        "p2c"
    }

    /// Draws distinct fresh nodes by rejection over all nodes (a uniform sample of the fresh
    /// ones); if that does not gather `choices` of them in a few draws, samples the candidate
    /// set instead.
    fn pick(&self, p: &Pick<'_>) -> Option<usize> {
        let mut drawn = NodeSet::EMPTY;
        let mut best: Option<(usize, u64)> = None;
        for _ in 0..DRAWS * self.choices {
            let i = self.rng.below(p.nodes() as u64) as usize;
            if drawn.contains(i) || !p.fresh(i) {
                continue;
            }
            drawn = drawn.with(i);
            let load = p.load.outstanding(i);
            if best.is_none_or(|(_, b)| load < b) {
                best = Some((i, load));
            }
            if drawn.len() == self.choices {
                return best.map(|(i, _)| i);
            }
        }
        let mut left = p.candidates();
        best = None;
        for _ in 0..self.choices.min(left.len()) {
            let i = left.nth(self.rng.below(left.len() as u64) as usize)?;
            left = left.without(i);
            let load = p.load.outstanding(i);
            if best.is_none_or(|(_, b)| load < b) {
                best = Some((i, load));
            }
        }
        best.map(|(i, _)| i)
    }
}

const NONE: usize = usize::MAX;

/// Follows the leader: the last leader learned from a `not_leader` hint or a served write, else
/// the leader the observer sees; the fallback strategy when neither is a candidate this
/// operation has not tried yet.
pub struct LeaderAware {
    learned: AtomicUsize,
    fallback: Box<dyn Balancer>,
}

impl LeaderAware {
    pub fn new(fallback: Box<dyn Balancer>) -> Self {
        LeaderAware {
            learned: AtomicUsize::new(NONE),
            fallback,
        }
    }
}

impl Balancer for LeaderAware {
    fn name(&self) -> &'static str {
        "leader-aware"
    }

    fn pick(&self, p: &Pick<'_>) -> Option<usize> {
        let learned = self.learned.load(Ordering::Relaxed);
        if learned != NONE && p.fresh(learned) {
            return Some(learned);
        }
        if let Some(l) = p.view.leader_hint().filter(|&l| p.fresh(l)) {
            return Some(l);
        }
        self.fallback.pick(p)
    }

    fn learn_leader(&self, leader: usize) {
        self.learned.store(leader, Ordering::Relaxed);
    }

    fn started(&self, node: usize) {
        self.fallback.started(node);
    }

    /// Forget a learned leader that is down, unreachable or no longer leads.
    fn finished(&self, node: usize, reply: Reply) {
        if matches!(reply, Reply::Refused | Reply::Indefinite | Reply::NotLeader) {
            let _ = self
                .learned
                .compare_exchange(node, NONE, Ordering::Relaxed, Ordering::Relaxed);
        }
        self.fallback.finished(node, reply);
    }
}
