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

use std::future::Future;
use std::time::Duration;

use faultline_protocol::NodeConfig;

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

/// Why a node could not start or had to stop.
pub use faultline_replica::NodeError as Error;

/// Check `settings:` of an experiment; the message names the offending field.
pub fn validate_settings(
    settings: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    Settings::from_map(settings).map(|_| ())
}

/// Run a node until SIGTERM or SIGINT (then `Ok`) or a fatal error. Blocking: builds its own
/// runtime. Sets up logging to stderr.
pub fn run(config: NodeConfig) -> Result<(), Error> {
    let id = config.id.clone();
    faultline_replica::run_until_signal(&id, |shutdown| serve(config, shutdown))
        .map_err(Error::Runtime)?
}

/// Run a node inside the current tokio runtime until `shutdown` completes.
pub async fn serve(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let settings = Settings::from_map(&config.settings).map_err(Error::Settings)?;
    let nodes = faultline_replica::check_node(&config, "primary-backup", KNOWN_BUGS)?;
    let data_dir = config.data_dir.clone();
    let (storage, recovered) =
        faultline_replica::open_storage(move || storage::FileStorage::open(&data_dir)).await?;
    tracing::info!(
        node = %config.id,
        view = recovered.seen_view,
        base = recovered.base,
        entries = recovered.entries.len(),
        replication = ?settings.replication,
        lease = settings.lease,
        "recovered state"
    );
    let tick = (settings.heartbeat / 5).clamp(Duration::from_millis(1), Duration::from_millis(10));
    let core = PbCore::new(&config.id, nodes, settings, &config.bugs, recovered);

    faultline_replica::serve_core(&config, core, storage, tick, shutdown).await
}
