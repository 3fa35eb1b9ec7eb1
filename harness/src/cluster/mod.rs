//! Launching a cluster (reference nodes, etcd, Redis with Sentinel, or any command) as real
//! processes, controlling them (kill, pause, restart, wipe), and watching them: the clients of
//! each kind, the observer that polls every node's status into a [`ClusterView`], and active
//! health checks.

mod client;
pub mod command;
pub mod etcd;
pub mod kind;
mod launch;
pub mod network;
mod observer;
pub mod redis;
mod reference;
mod view;

pub use client::{CallError, Driver, NativeClient, NodeClient};
pub use kind::{System, TargetKind};
pub use launch::{find_program, tail, Cluster, ClusterError, ClusterSpec, NodeHandle, Sidecar};
pub use network::{End, Flow, Mesh};
pub use observer::{spawn_health_checks, spawn_observer, EventSink, HealthChecks};
pub use view::{ClusterView, NodeView, SharedView};

/// How nodes reach each other. `proxy` (the default) puts a TCP relay of the harness on every
/// directed link, node to node and client to node, so partitions and degraded links can be
/// injected without root; `netns` (root) puts every node in a network namespace of its own on a
/// bridge, and cuts, drops and shapes packets there with nftables and tc (no delay: this kernel
/// has no netem, so delays need `proxy`); `direct` lets nodes dial each other's loopback ports
/// (no network faults possible, one hop less).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    Direct,
    #[default]
    Proxy,
    Netns,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Direct => "direct",
            NetworkMode::Proxy => "proxy",
            NetworkMode::Netns => "netns",
        }
    }
}
