//! The target registry: every kind of system faultline can run, in one table ([`KINDS`]). A
//! kind names itself, lists its planted bugs, parses and checks its part of `target:` once (at
//! load time) into a [`System`], and the [`System`] says how its nodes start and how the harness
//! speaks to them. The loader, `faultline node`, `faultline list`, the launcher and the report
//! all read this table; adding a kind is a module with its [`TargetKind`] and one line here.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use faultline_faults::netns::Netns;
use faultline_protocol::NodeConfig;

use super::client::Driver;
use super::launch::{ClusterError, ClusterSpec, NodeHandle, Sidecar};

/// Every kind, in the order `faultline list` shows them.
pub static KINDS: &[&TargetKind] = &[
    &super::reference::PRIMARY_BACKUP,
    &super::reference::RAFT,
    &super::reference::PAXOS,
    &super::etcd::KIND,
    &super::redis::KIND,
    &super::command::KIND,
];

/// The kind called `name`.
pub fn find(name: &str) -> Option<&'static TargetKind> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// One kind of system under test.
pub struct TargetKind {
    /// `target.kind` in an experiment.
    pub name: &'static str,
    /// One line for `faultline list`.
    pub summary: &'static str,
    /// The planted bugs `target.bugs` may name.
    pub known_bugs: &'static [&'static str],
    /// For a reference node: runs one node in this process (`faultline node <name>`), until
    /// SIGTERM or a fatal error.
    pub node_main: Option<fn(NodeConfig) -> Result<(), String>>,
    /// Whether the harness can put its link proxies between two nodes: it can when it hands
    /// each node its peers' addresses. Members that find each other by addresses they announce
    /// themselves (etcd, Redis) can only be cut apart by `netns`.
    pub peer_links_proxied: bool,
    /// Checks `target:` and returns its typed settings; the error names the field, as
    /// `target.settings: ...`.
    pub load: fn(&TargetInput<'_>) -> Result<Arc<dyn System>, String>,
}

impl fmt::Debug for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for TargetKind {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for TargetKind {}

/// `target:` as written, for a kind's [`TargetKind::load`].
pub struct TargetInput<'a> {
    pub nodes: u32,
    pub settings: &'a serde_json::Map<String, serde_json::Value>,
    pub binary: Option<&'a Path>,
    pub command: Option<&'a [String]>,
}

impl TargetInput<'_> {
    /// Refuse `binary:` and `command:` for a kind that takes neither (faultline's own nodes).
    pub fn neither_binary_nor_command(&self, kind: &str) -> Result<(), String> {
        self.no_command(kind)?;
        if self.binary.is_some() {
            return Err(format!(
                "target.binary: {kind} nodes are faultline itself; `binary` is for etcd and \
                 redis-sentinel"
            ));
        }
        Ok(())
    }

    /// Refuse `command:` for a kind other than `command`.
    pub fn no_command(&self, kind: &str) -> Result<(), String> {
        match self.command {
            Some(_) => Err(format!(
                "target.command: only kind: command takes a command (this target is {kind})"
            )),
            None => Ok(()),
        }
    }

    /// The program `binary:` names, or `default`; looked up when the run starts.
    pub fn program(&self, default: &str) -> PathBuf {
        self.binary
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(default))
    }
}

/// Every node's (id, client address, peer address), in node order.
pub type Ends = [(String, SocketAddr, SocketAddr)];

/// What one node start needs to know.
pub struct NodeStart<'a> {
    pub spec: &'a ClusterSpec,
    pub node: &'a NodeHandle,
    /// Where this node dials each peer (a link proxy, or the peer itself).
    pub peers: &'a BTreeMap<String, SocketAddr>,
    pub ends: &'a Ends,
}

/// A target's typed settings, and what its nodes need to start and be spoken to.
pub trait System: fmt::Debug + Send + Sync {
    /// Check that what the nodes run exists on this machine (called before anything starts,
    /// so a missing package is named first).
    fn check_host(&self) -> Result<(), ClusterError> {
        Ok(())
    }

    /// How the harness speaks to these nodes.
    fn driver(&self, _ends: &Ends) -> Driver {
        Driver::Native
    }

    /// The program and arguments that start one node; writes the files it needs.
    fn command_line(&self, start: &NodeStart<'_>) -> Result<(PathBuf, Vec<String>), ClusterError>;

    /// A process that serves beside a node (a Redis Sentinel), if this kind has one.
    fn sidecar(
        &self,
        _node: &NodeHandle,
        _ends: &Ends,
        _netns: Option<&Netns>,
    ) -> Result<Option<Sidecar>, ClusterError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for k in KINDS {
            assert_eq!(find(k.name), Some(*k));
            assert_eq!(KINDS.iter().filter(|o| o.name == k.name).count(), 1);
        }
        assert!(find("mongodb").is_none());
    }

    #[test]
    fn reference_kinds_run_in_process_and_real_systems_do_not() {
        for name in ["primary-backup", "raft", "paxos"] {
            let k = find(name).unwrap();
            assert!(k.node_main.is_some(), "{name}");
            assert!(!k.known_bugs.is_empty(), "{name}");
        }
        for name in ["etcd", "redis-sentinel", "command"] {
            assert!(find(name).unwrap().node_main.is_none(), "{name}");
        }
    }
}
