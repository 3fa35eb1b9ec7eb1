//! faultline's reference Raft key-value node: leader election with randomized timeouts,
//! PreVote and CheckQuorum, pipelined log replication with fast backtracking, majority commit,
//! snapshots, and reads through the log, ReadIndex or a leader lease. The protocol, its
//! settings, planted bugs and verdict matrix are in README.md.
//!
//! The harness runs a node with `faultline node raft --config FILE`, which calls [`run`];
//! tests can run nodes in-process with [`serve`].

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

pub use crate::core::{
    Inspect, RaftCore, BUG_ACK_BEFORE_PERSIST, BUG_COMMIT_WITHOUT_QUORUM,
    BUG_FORGET_VOTE_ON_RESTART, BUG_LEASE_WITHOUT_MARGIN, BUG_STALE_LOCAL_READS,
};
pub use crate::settings::{ReadMode, Settings};
pub use crate::storage::Recovered;

/// Planted bugs this node implements (`bugs:` in an experiment); README.md documents each with
/// the Raft paper section it violates and the faults that expose it.
pub const KNOWN_BUGS: &[&str] = &[
    BUG_STALE_LOCAL_READS,
    BUG_ACK_BEFORE_PERSIST,
    BUG_COMMIT_WITHOUT_QUORUM,
    BUG_FORGET_VOTE_ON_RESTART,
    BUG_LEASE_WITHOUT_MARGIN,
];

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
    let nodes = faultline_replica::check_node(&config, "raft", KNOWN_BUGS)?;
    let lazy = config.bugs.iter().any(|b| b == BUG_ACK_BEFORE_PERSIST);
    let data_dir = config.data_dir.clone();
    let (storage, recovered) =
        faultline_replica::open_storage(move || storage::FileStorage::open(&data_dir, lazy))
            .await?;
    tracing::info!(
        node = %config.id,
        term = recovered.hard.term,
        vote = ?recovered.hard.vote,
        voter = recovered.hard.voter,
        snapshot = recovered.snap_index,
        entries = recovered.entries.len(),
        bugs = ?config.bugs,
        "recovered state"
    );
    // Timeouts fire on a tick, so they run late by up to one tick: keep it at 2 ms or less so
    // the election timeout range is what the settings say.
    let tick = (settings.heartbeat / 25).clamp(Duration::from_millis(1), Duration::from_millis(2));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32);
    let core = RaftCore::new(&config.id, nodes, settings, &config.bugs, recovered, seed);

    faultline_replica::serve_core(&config, core, storage, tick, shutdown).await
}
