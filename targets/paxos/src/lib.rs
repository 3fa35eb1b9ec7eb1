//! faultline's reference Multi-Paxos key-value node: a distinguished leader with ballots
//! (round, node), phase 1 over every unchosen slot on takeover (adopting the highest-ballot
//! accepted values, filling gaps with no-ops), batched phase 2 per slot, chosen slots announced
//! to learners, in-order execution, durable acceptor state, snapshots, and reads through the
//! log or a leader lease. The protocol, its settings, planted bugs and verdict matrix are in
//! README.md.
//!
//! The harness runs a node with `faultline node paxos --config FILE`, which calls [`run`];
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
use faultline_replica::{drive, DriverIo, PeerNet};
use tokio::sync::mpsc;

pub use crate::core::{
    Inspect, PaxosCore, BUG_ACCEPT_LOWER_BALLOT, BUG_ACK_BEFORE_PERSIST, BUG_SKIP_PHASE1_RECOVERY,
    BUG_STALE_LOCAL_READS,
};
pub use crate::settings::{ReadMode, Settings};
pub use crate::storage::Recovered;

/// Planted bugs this node implements (`bugs:` in an experiment); README.md documents each with
/// the rule of Paxos it breaks and the faults that expose it.
pub const KNOWN_BUGS: &[&str] = &[
    BUG_SKIP_PHASE1_RECOVERY,
    BUG_STALE_LOCAL_READS,
    BUG_ACK_BEFORE_PERSIST,
    BUG_ACCEPT_LOWER_BALLOT,
];

/// Why a node could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Settings(String),
    #[error("unknown bug {bug:?} for paxos (known: {known})")]
    UnknownBug { bug: String, known: String },
    #[error("node id {0:?} is not among the cluster members")]
    NotAMember(String),
    #[error("cannot listen on {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("storage: {0}")]
    Storage(#[from] faultline_replica::StorageError),
    #[error(transparent)]
    Driver(#[from] faultline_replica::DriverError),
}

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
    if let Some(bug) = config
        .bugs
        .iter()
        .find(|b| !KNOWN_BUGS.contains(&b.as_str()))
    {
        return Err(Error::UnknownBug {
            bug: bug.clone(),
            known: KNOWN_BUGS.join(", "),
        });
    }
    let nodes = config.members();
    if !nodes.contains(&config.id) {
        return Err(Error::NotAMember(config.id.clone()));
    }
    let lazy = config.bugs.iter().any(|b| b == BUG_ACK_BEFORE_PERSIST);
    let data_dir = config.data_dir.clone();
    let (storage, recovered) =
        tokio::task::spawn_blocking(move || storage::FileStorage::open(&data_dir, lazy))
            .await
            .map_err(|e| faultline_replica::DriverError::Join(e.to_string()))??;
    tracing::info!(
        node = %config.id,
        promised = %recovered.meta.promised,
        acceptor = recovered.meta.acceptor,
        snapshot = recovered.snap_slot,
        chosen = recovered.chosen.len(),
        accepted = recovered.accepted.len(),
        bugs = ?config.bugs,
        "recovered state"
    );
    // Timeouts fire on a tick, so they run late by up to one tick: keep it at 2 ms or less so
    // the takeover timeout range is what the settings say (the same tick as the Raft node).
    let tick = (settings.heartbeat / 25).clamp(Duration::from_millis(1), Duration::from_millis(2));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32);
    let core = PaxosCore::new(&config.id, nodes, settings, &config.bugs, recovered, seed);

    let client_listener = faultline_replica::server::bind(config.client_addr)
        .await
        .map_err(|source| Error::Bind {
            what: "client",
            addr: config.client_addr,
            source,
        })?;
    let (inbound_tx, inbound) = mpsc::channel(8192);
    let net = PeerNet::start(&config.id, config.peer_addr, &config.peers, inbound_tx)
        .await
        .map_err(|source| Error::Bind {
            what: "peer",
            addr: config.peer_addr,
            source,
        })?;
    let (clients_tx, clients) = mpsc::channel(8192);
    let server = tokio::spawn(faultline_replica::server::serve_clients(
        client_listener,
        clients_tx,
    ));
    tracing::info!(node = %config.id, client = %config.client_addr, peer = %config.peer_addr, "serving");
    let result = drive(
        core,
        storage,
        DriverIo {
            net,
            inbound,
            clients,
            tick,
        },
        shutdown,
    )
    .await;
    server.abort();
    if let Err(e) = &result {
        tracing::error!(error = %e, "node stopped on a fatal error");
    }
    Ok(result?)
}
