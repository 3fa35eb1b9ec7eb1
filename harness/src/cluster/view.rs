//! The harness's picture of the cluster: each node's last reported role, term and leader, and
//! whether it is reachable and healthy. Written by the observer and health checks, read by
//! balancers and the nemesis.

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
    pub nodes: Vec<NodeView>,
}

impl ClusterView {
    pub fn new(ids: &[String]) -> Self {
        ClusterView {
            nodes: ids
                .iter()
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
        }
    }

    pub fn index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The reachable node claiming leadership in the highest term, if any.
    pub fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.reachable && !n.down && n.role == Role::Leader)
            .max_by_key(|(_, n)| n.term)
            .map(|(i, _)| i)
    }

    /// The leader named by the most recent term any reachable node reports.
    pub fn leader_hint(&self) -> Option<usize> {
        if let Some(l) = self.leader() {
            return Some(l);
        }
        self.nodes
            .iter()
            .filter(|n| n.reachable && !n.down)
            .max_by_key(|n| n.term)
            .and_then(|n| n.leader.as_deref())
            .and_then(|id| self.index(id))
    }
}

/// The view shared between the observer, health checks, balancers and the nemesis.
pub type SharedView = Arc<RwLock<ClusterView>>;
