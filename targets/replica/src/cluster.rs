//! Who a node is among whom: its id, the static cluster it belongs to, the majority that
//! decides, and what it says of itself in a status reply.

use faultline_protocol::{Role, Status};

/// One node's view of its static cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// This node's id.
    pub id: String,
    /// Every node of the cluster, this one included, in the same order on every node.
    pub nodes: Vec<String>,
    /// How many nodes make a majority.
    pub quorum: usize,
}

impl Cluster {
    /// Node `id` of the cluster `nodes` (`id` included).
    pub fn new(id: &str, nodes: Vec<String>) -> Self {
        let quorum = nodes.len() / 2 + 1;
        Cluster {
            id: id.to_owned(),
            nodes,
            quorum,
        }
    }

    /// Every node but this one, in order.
    pub fn peers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| **n != self.id)
            .cloned()
            .collect()
    }

    /// `node` is another member of the cluster (a message from anyone else is dropped).
    pub fn is_peer(&self, node: &str) -> bool {
        node != self.id && self.nodes.iter().any(|n| n == node)
    }

    /// What this node says of itself: its `role` in `term` (view, ballot), the `leader` it
    /// follows, its commit point and how far it `applied`. The driver fills in `role_us`,
    /// since it sees role changes as they happen.
    pub fn status(
        &self,
        role: Role,
        term: u64,
        leader: Option<String>,
        commit: u64,
        applied: u64,
    ) -> Status {
        Status {
            node: self.id.clone(),
            role,
            term,
            leader,
            commit,
            applied: Some(applied),
            role_us: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_quorum_and_membership() {
        let nodes: Vec<String> = ["n1", "n2", "n3", "n4"].map(String::from).to_vec();
        let cluster = Cluster::new("n2", nodes);
        assert_eq!(cluster.quorum, 3);
        assert_eq!(cluster.peers(), ["n1", "n3", "n4"]);
        assert!(cluster.is_peer("n1"));
        assert!(!cluster.is_peer("n2"), "not a peer of itself");
        assert!(!cluster.is_peer("n9"), "not a member");
    }
}
