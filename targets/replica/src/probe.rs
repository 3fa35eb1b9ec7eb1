//! The amnesia guard's bootstrap probe: a node whose disk holds nothing (it never voted or
//! accepted, or lost its disk) asks its peers whether they hold nothing too. Once every peer
//! answered empty, nothing was ever decided and it may take part, above the highest position
//! (term, ballot) any of them reported: it may have voted there before losing its disk.

use std::collections::BTreeMap;

use crate::cluster::Cluster;
use crate::driver::{Millis, Outbox};

/// What a node learned from probing its peers: who answered empty, at which position.
#[derive(Debug, Clone)]
pub struct EmptyProbe<P> {
    /// Peers that answered with an empty disk, and the position each reported.
    empty: BTreeMap<String, P>,
    /// When the probes were last sent.
    last_sent: Option<Millis>,
}

impl<P> Default for EmptyProbe<P> {
    fn default() -> Self {
        EmptyProbe {
            empty: BTreeMap::new(),
            last_sent: None,
        }
    }
}

impl<P: Copy + Ord + Default> EmptyProbe<P> {
    /// Send `probe` to every peer in `cluster`, at most once per `interval`.
    pub fn send<M: Clone, Q>(
        &mut self,
        now: Millis,
        interval: Millis,
        cluster: &Cluster,
        probe: M,
        out: &mut Outbox<M, Q>,
    ) {
        if self.last_sent.is_some_and(|t| now < t + interval) {
            return;
        }
        self.last_sent = Some(now);
        for p in cluster.peers() {
            out.send(p, probe.clone());
        }
    }

    /// Peer `from` answered, `empty` or not, at `position`. Once every peer in `cluster`
    /// answered empty: the highest position among them.
    pub fn answer(
        &mut self,
        from: String,
        empty: bool,
        position: P,
        cluster: &Cluster,
    ) -> Option<P> {
        if !empty {
            self.empty.remove(&from);
            return None;
        }
        self.empty.insert(from, position);
        if self.empty.len() + 1 < cluster.nodes.len() {
            return None;
        }
        Some(self.empty.values().copied().max().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_paced_and_every_peer_must_answer_empty() {
        let mut probe = EmptyProbe::<u64>::default();
        let mut out: Outbox<&str, ()> = Outbox::default();
        let nodes = ["n1", "n2", "n3"].map(String::from).to_vec();
        let cluster = Cluster::new("n1", nodes);
        probe.send(0, 10, &cluster, "probe", &mut out);
        probe.send(9, 10, &cluster, "probe", &mut out);
        assert_eq!(out.messages.len(), 2);
        probe.send(10, 10, &cluster, "probe", &mut out);
        assert_eq!(out.messages.len(), 4);
        assert_eq!(probe.answer("n2".into(), true, 4, &cluster), None);
        assert_eq!(probe.answer("n3".into(), false, 9, &cluster), None);
        assert_eq!(probe.answer("n2".into(), false, 9, &cluster), None);
        assert_eq!(probe.answer("n3".into(), true, 7, &cluster), None);
        assert_eq!(probe.answer("n2".into(), true, 5, &cluster), Some(7));
    }
}
