//! Balancing strategies: which node gets each operation, from the [`ClusterView`] and what
//! earlier responses taught (leader hints). More strategies arrive with the balancer issue.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cluster::ClusterView;
use crate::experiment::BalancerKind;

/// Chooses a node for each operation. Shared by every client task, so implementations use
/// interior mutability.
pub trait Balancer: Send + Sync {
    fn name(&self) -> &'static str;

    /// The node (index into the view) for an operation on `key`. `tried` lists nodes this
    /// operation already tried and got a definite failure from; a strategy avoids them when it
    /// has another choice. `None` when no node can be chosen.
    fn pick(&self, key: &str, view: &ClusterView, tried: &[usize]) -> Option<usize>;

    /// A node answered `not_leader` naming `leader`, or served a write: remember it.
    fn learn_leader(&self, _leader: usize) {}

    /// A node failed (connection refused, lost, timed out).
    fn node_failed(&self, _node: usize) {}
}

/// Build the strategy named in the experiment.
pub fn build(kind: BalancerKind) -> Box<dyn Balancer> {
    match kind {
        BalancerKind::RoundRobin => Box::new(RoundRobin::default()),
        BalancerKind::LeaderAware => Box::new(LeaderAware::default()),
    }
}

/// Nodes a balancer may send to: not taken down by the harness, and healthy; all of them when
/// none qualifies (a balancer must still pick something for the client to fail against).
fn candidates(view: &ClusterView, tried: &[usize]) -> Vec<usize> {
    let usable: Vec<usize> = (0..view.nodes.len())
        .filter(|&i| view.nodes[i].healthy && !view.nodes[i].down)
        .collect();
    let fresh: Vec<usize> = usable
        .iter()
        .copied()
        .filter(|i| !tried.contains(i))
        .collect();
    if !fresh.is_empty() {
        fresh
    } else if !usable.is_empty() {
        usable
    } else {
        (0..view.nodes.len()).collect()
    }
}

/// Each operation to the next node in turn, skipping nodes marked down.
#[derive(Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Balancer for RoundRobin {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn pick(&self, _key: &str, view: &ClusterView, tried: &[usize]) -> Option<usize> {
        let c = candidates(view, tried);
        if c.is_empty() {
            return None;
        }
        Some(c[self.next.fetch_add(1, Ordering::Relaxed) % c.len()])
    }
}

/// Follows the leader: the last leader learned from a `not_leader` hint or a served write, else
/// the leader the observer sees; round-robin when neither is known or usable.
pub struct LeaderAware {
    learned: AtomicUsize,
    fallback: RoundRobin,
}

const NONE: usize = usize::MAX;

impl Default for LeaderAware {
    fn default() -> Self {
        LeaderAware {
            learned: AtomicUsize::new(NONE),
            fallback: RoundRobin::default(),
        }
    }
}

impl Balancer for LeaderAware {
    fn name(&self) -> &'static str {
        "leader-aware"
    }

    fn pick(&self, key: &str, view: &ClusterView, tried: &[usize]) -> Option<usize> {
        let usable = |i: usize| {
            i < view.nodes.len()
                && !tried.contains(&i)
                && !view.nodes[i].down
                && view.nodes[i].healthy
        };
        let learned = self.learned.load(Ordering::Relaxed);
        if learned != NONE && usable(learned) {
            return Some(learned);
        }
        if let Some(l) = view.leader_hint().filter(|&l| usable(l)) {
            return Some(l);
        }
        self.fallback.pick(key, view, tried)
    }

    fn learn_leader(&self, leader: usize) {
        self.learned.store(leader, Ordering::Relaxed);
    }

    fn node_failed(&self, node: usize) {
        let _ = self
            .learned
            .compare_exchange(node, NONE, Ordering::Relaxed, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_protocol::Role;

    fn view(n: usize) -> ClusterView {
        let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let mut v = ClusterView::new(&ids);
        for node in &mut v.nodes {
            node.reachable = true;
            node.role = Role::Follower;
        }
        v
    }

    #[test]
    fn round_robin_cycles_exactly_and_skips_down_nodes() {
        let rr = RoundRobin::default();
        let mut v = view(3);
        let picks: Vec<usize> = (0..6).map(|_| rr.pick("k", &v, &[]).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        v.nodes[1].down = true;
        let picks: Vec<usize> = (0..4).map(|_| rr.pick("k", &v, &[]).unwrap()).collect();
        assert!(picks.iter().all(|&p| p != 1), "{picks:?}");
        assert_eq!(rr.pick("k", &v, &[0]), Some(2));
    }

    #[test]
    fn leader_aware_follows_hints_then_view_then_falls_back() {
        let la = LeaderAware::default();
        let mut v = view(3);
        v.nodes[2].role = Role::Leader;
        v.nodes[2].term = 4;
        assert_eq!(la.pick("k", &v, &[]), Some(2));
        la.learn_leader(1);
        assert_eq!(la.pick("k", &v, &[]), Some(1));
        la.node_failed(1);
        assert_eq!(la.pick("k", &v, &[]), Some(2));
        // The leader already failed this op: try someone else.
        let other = la.pick("k", &v, &[2]).unwrap();
        assert_ne!(other, 2);
        v.nodes[2].healthy = false;
        assert_ne!(la.pick("k", &v, &[]), Some(2));
    }
}
