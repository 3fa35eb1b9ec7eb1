//! faultline's reference primary-backup key-value node: one primary, backups, heartbeats,
//! takeover after a heartbeat timeout with view fencing, `sync` or `async` replication, and an
//! optional primary lease. The protocol, its settings and its verdict matrix are in README.md.
//!
//! The harness runs a node with `faultline node primary-backup --config FILE`, which calls
//! [`run`]; tests can run nodes in-process with [`serve`].

pub mod core;
pub mod msg;
pub mod settings;
pub mod storage;

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod sim;

pub use crate::core::{PbCore, Recovered, BUG_ACK_BEFORE_REPLICATE, BUG_STALE_BACKUP_READS};
pub use crate::settings::{Replication, Settings};

/// Planted bugs this node implements (`bugs:` in an experiment):
///
/// - `ack-before-replicate`: with `replication: sync`, the primary answers writes after its own
///   fsync, before the backups have them. Killing the primary under write load loses
///   acknowledged writes.
/// - `stale-backup-reads`: backups answer reads from their own state instead of `not_leader`.
///   Reads routed to a backup can miss acknowledged writes (stale reads), more so with
///   `replication: async`.
pub const KNOWN_BUGS: &[&str] = &[BUG_ACK_BEFORE_REPLICATE, BUG_STALE_BACKUP_READS];

faultline_replica::node_api!(PbCore: "primary-backup", Settings, storage::FileStorage, unseeded);
