//! What every reference node's start-up shares: its errors, the checks of `bugs:` and
//! membership, opening storage off the runtime, and serving a core over real sockets (client
//! server, peer transport, driver) until shutdown.

use std::future::Future;
use std::time::Duration;

use faultline_protocol::NodeConfig;
use tokio::sync::mpsc;

use crate::driver::{drive, Core, DriverError, DriverIo, Storage};
use crate::log::StorageError;
use crate::peer::PeerNet;

/// Why a node could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Settings(String),
    #[error("unknown bug {bug:?} for {kind} (known: {known})")]
    UnknownBug {
        kind: &'static str,
        bug: String,
        known: String,
    },
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
    Storage(#[from] StorageError),
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// Check that every planted bug is one this node `kind` knows and that the node is a member;
/// returns the members (sorted, this node included).
pub fn check_node(
    config: &NodeConfig,
    kind: &'static str,
    known: &[&str],
) -> Result<Vec<String>, NodeError> {
    if let Some(bug) = config.bugs.iter().find(|b| !known.contains(&b.as_str())) {
        return Err(NodeError::UnknownBug {
            kind,
            bug: bug.clone(),
            known: known.join(", "),
        });
    }
    let nodes = config.members();
    if !nodes.contains(&config.id) {
        return Err(NodeError::NotAMember(config.id.clone()));
    }
    Ok(nodes)
}

/// Open a node's storage on a blocking thread.
pub async fn open_storage<T: Send + 'static>(
    open: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, NodeError> {
    Ok(tokio::task::spawn_blocking(open)
        .await
        .map_err(|e| DriverError::Join(e.to_string()))??)
}

/// Serve `core` on the node's client and peer addresses until `shutdown` completes (`Ok`) or
/// storage fails (the error, logged).
pub async fn serve_core<C, S>(
    config: &NodeConfig,
    core: C,
    storage: S,
    tick: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError>
where
    C: Core,
    S: Storage<Persist = C::Persist>,
{
    let client_listener = crate::server::bind(config.client_addr)
        .await
        .map_err(|source| NodeError::Bind {
            what: "client",
            addr: config.client_addr,
            source,
        })?;
    let (inbound_tx, inbound) = mpsc::channel(8192);
    let net = PeerNet::start(&config.id, config.peer_addr, &config.peers, inbound_tx)
        .await
        .map_err(|source| NodeError::Bind {
            what: "peer",
            addr: config.peer_addr,
            source,
        })?;
    let (clients_tx, clients) = mpsc::channel(8192);
    let server = tokio::spawn(crate::server::serve_clients(client_listener, clients_tx));
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
