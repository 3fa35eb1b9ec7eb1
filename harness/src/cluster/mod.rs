//! Launching a cluster (reference nodes, etcd, Redis with Sentinel, or any command) as real
//! processes, controlling them (kill, pause, restart, wipe), and watching them: the clients of
//! each kind, the observer that polls every node's status into a [`ClusterView`], and active
//! health checks.

mod client;
pub mod command;
pub mod etcd;
mod launch;
pub mod network;
mod observer;
pub mod redis;
mod view;

pub use client::{CallError, Driver, NativeClient, NodeClient};
pub use launch::{find_program, tail, Cluster, ClusterError, ClusterSpec, Flavor, NodeHandle};
pub use network::{End, Flow, Mesh};
pub use observer::{spawn_health_checks, spawn_observer, EventSink};
pub use view::{ClusterView, NodeView, SharedView};
