//! Launching a cluster of reference nodes as real processes, controlling them (kill, pause,
//! restart, wipe), and watching them: the client connection pool, the observer that polls
//! every node's status into a [`ClusterView`], and active health checks.

mod client;
mod launch;
pub mod network;
mod observer;
mod view;

pub use client::{CallError, NodeClient};
pub use launch::{Cluster, ClusterError, ClusterSpec, NodeHandle};
pub use network::{End, Flow, Mesh};
pub use observer::{spawn_health_checks, spawn_observer, EventSink};
pub use view::{ClusterView, NodeView, SharedView};
