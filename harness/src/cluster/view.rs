//! The harness's picture of the cluster: each node's last reported role, term and leader, and
//! whether it is reachable and healthy. Written by the observer and health checks, read by
//! balancers and the nemesis.
//!
//! Balancers read the view for every operation, the observer writes it a few times per poll
//! interval. So what a pick needs from all the nodes (which are usable, who leads) is derived
//! once after each change, by the first reader, and kept beside the nodes: any mutable access
//! to [`ClusterView::nodes`] drops it. Writers hold the [`SharedView`]'s write lock and readers
//! its read lock, so a reader never sees a change half made.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use faultline_protocol::Role;

#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: String,
    pub role: Role,
    pub term: u64,
    pub leader: Option<String>,
    /// The last status poll got an answer.
    pub reachable: bool,
    /// Active health checks consider the node up.
    pub healthy: bool,
    /// The harness has the process down on purpose (killed and not yet restarted).
    pub down: bool,
}

#[derive(Debug, Clone)]
pub struct ClusterView {
    pub nodes: Nodes,
}

impl ClusterView {
    pub fn new(ids: &[String]) -> Self {
        ClusterView {
            nodes: Nodes::new(
                ids.iter()
                    .map(|id| NodeView {
                        id: id.clone(),
                        role: Role::Unknown,
                        term: 0,
                        leader: None,
                        reachable: false,
                        healthy: true,
                        down: false,
                    })
                    .collect(),
            ),
        }
    }

    pub fn index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The reachable node claiming leadership in the highest term, if any.
    pub fn leader(&self) -> Option<usize> {
        self.nodes.derived().leader
    }

    /// The leader named by the most recent term any reachable node reports.
    pub fn leader_hint(&self) -> Option<usize> {
        self.nodes.derived().hint
    }

    /// The nodes among the first 64 that are healthy and not down, one bit each (bit `i` for
    /// node `i`).
    pub fn usable_bits(&self) -> u64 {
        self.nodes.derived().usable
    }
}

/// The nodes of a [`ClusterView`], in a fixed order: a slice of [`NodeView`] to read and
/// write, with the facts derived from all of them cached until the next write.
pub struct Nodes {
    list: Vec<NodeView>,
    cache: Cache,
}

/// What is derived from every node, kept until a node changes.
#[derive(Debug, Default)]
struct Cache {
    valid: AtomicBool,
    usable: AtomicU64,
    leader: AtomicUsize,
    hint: AtomicUsize,
}

/// No node, in [`Cache`].
const NONE: usize = usize::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Derived {
    usable: u64,
    leader: Option<usize>,
    hint: Option<usize>,
}

impl Nodes {
    pub fn new(list: Vec<NodeView>) -> Self {
        Nodes {
            list,
            cache: Cache::default(),
        }
    }

    /// The derived facts: from the cache, or computed now and cached.
    fn derived(&self) -> Derived {
        let c = &self.cache;
        let option = |i: usize| (i != NONE).then_some(i);
        if c.valid.load(Ordering::Acquire) {
            return Derived {
                usable: c.usable.load(Ordering::Relaxed),
                leader: option(c.leader.load(Ordering::Relaxed)),
                hint: option(c.hint.load(Ordering::Relaxed)),
            };
        }
        // Readers racing here compute the same facts: no writer runs beside a reader.
        let d = self.compute();
        c.usable.store(d.usable, Ordering::Relaxed);
        c.leader.store(d.leader.unwrap_or(NONE), Ordering::Relaxed);
        c.hint.store(d.hint.unwrap_or(NONE), Ordering::Relaxed);
        c.valid.store(true, Ordering::Release);
        d
    }

    fn compute(&self) -> Derived {
        let mut usable = 0u64;
        for (i, n) in self.list.iter().take(64).enumerate() {
            usable |= u64::from(n.healthy & !n.down) << i;
        }
        let live = || {
            self.list
                .iter()
                .enumerate()
                .filter(|(_, n)| n.reachable && !n.down)
        };
        let leader = live()
            .filter(|(_, n)| n.role == Role::Leader)
            .max_by_key(|(_, n)| n.term)
            .map(|(i, _)| i);
        let hint = leader.or_else(|| {
            live()
                .max_by_key(|(_, n)| n.term)
                .and_then(|(_, n)| n.leader.as_deref())
                .and_then(|id| self.list.iter().position(|n| n.id == id))
        });
        Derived {
            usable,
            leader,
            hint,
        }
    }

    fn invalidate(&mut self) {
        *self.cache.valid.get_mut() = false;
    }
}

impl Deref for Nodes {
    type Target = [NodeView];
    fn deref(&self) -> &[NodeView] {
        &self.list
    }
}

/// Any mutable access may change a node: the derived facts are dropped.
impl DerefMut for Nodes {
    fn deref_mut(&mut self) -> &mut [NodeView] {
        self.invalidate();
        &mut self.list
    }
}

impl<'a> IntoIterator for &'a Nodes {
    type Item = &'a NodeView;
    type IntoIter = std::slice::Iter<'a, NodeView>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl<'a> IntoIterator for &'a mut Nodes {
    type Item = &'a mut NodeView;
    type IntoIter = std::slice::IterMut<'a, NodeView>;
    fn into_iter(self) -> Self::IntoIter {
        self.invalidate();
        self.list.iter_mut()
    }
}

impl Clone for Nodes {
    fn clone(&self) -> Self {
        Nodes::new(self.list.clone())
    }
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.list).finish()
    }
}

/// The view shared between the observer, health checks, balancers and the nemesis.
pub type SharedView = Arc<RwLock<ClusterView>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_facts_follow_every_write() {
        let ids: Vec<String> = (1..=4).map(|i| format!("n{i}")).collect();
        let mut v = ClusterView::new(&ids);
        assert_eq!(v.usable_bits(), 0b1111);
        assert_eq!((v.leader(), v.leader_hint()), (None, None));
        for n in &mut v.nodes {
            n.reachable = true;
            n.term = 2;
        }
        v.nodes[3].leader = Some("n2".into());
        v.nodes[3].term = 3;
        assert_eq!((v.leader(), v.leader_hint()), (None, Some(1)));
        v.nodes[2].role = Role::Leader;
        assert_eq!((v.leader(), v.leader_hint()), (Some(2), Some(2)));
        v.nodes[2].down = true;
        v.nodes[0].healthy = false;
        assert_eq!(v.usable_bits(), 0b1010);
        assert_eq!((v.leader(), v.leader_hint()), (None, Some(1)));
        let copy = v.clone();
        v.nodes.iter_mut().for_each(|n| n.reachable = false);
        assert_eq!(v.leader_hint(), None);
        assert_eq!(copy.leader_hint(), Some(1));
        assert_eq!(copy.usable_bits(), 0b1010);
    }
}
