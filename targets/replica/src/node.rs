//! What every reference node's start-up shares: its errors, the checks of `bugs:` and
//! membership, opening storage off the runtime, and serving a core over real sockets (client
//! server, peer transport, driver) until shutdown. A node crate implements [`NodeCore`] (and
//! [`NodeSettings`] for its settings, [`OpenStorage`] for its storage) and gets its public
//! `validate_settings`, `run` and `serve` from [`node_api!`](crate::node_api).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

pub use faultline_protocol::NodeConfig;
use tokio::sync::mpsc;

use crate::driver::{drive, Core, DriverError, DriverIo, Storage};
use crate::log::{StorageError, BUG_ACK_BEFORE_PERSIST};
use crate::peer::PeerNet;
pub use crate::settings::NodeSettings;

/// A node's `settings:` as the harness passes them.
pub type SettingsMap = serde_json::Map<String, serde_json::Value>;

/// A node's file storage: opened from its data directory.
pub trait OpenStorage: Storage + Sized {
    /// What a node recovers from its data directory (logged at start-up as it displays).
    type Recovered: std::fmt::Display + Send + 'static;

    /// Open (creating) the data directory `dir` and recover what it holds. `lazy`: the
    /// planted bug [`BUG_ACK_BEFORE_PERSIST`] (storages that implement it).
    fn open(dir: &Path, lazy: bool) -> Result<(Self, Self::Recovered), StorageError>;
}

/// What a core starts from.
pub struct Start<C: NodeCore> {
    pub id: String,
    /// Every member, sorted, this node included.
    pub nodes: Vec<String>,
    pub settings: C::Settings,
    pub bugs: Vec<String>,
    pub recovered: <C::Storage as OpenStorage>::Recovered,
    /// For the core's randomized timeouts.
    pub seed: u64,
}

impl<C: NodeCore> Start<C> {
    /// Whether the planted bug `name` is on (unknown bugs were refused when the experiment
    /// was loaded).
    pub fn has_bug(&self, name: &str) -> bool {
        self.bugs.iter().any(|b| b == name)
    }

    /// This node among its members.
    pub fn cluster(&self) -> crate::cluster::Cluster {
        crate::cluster::Cluster::new(&self.id, self.nodes.clone())
    }

    /// This node's place among the members (0 for the first).
    pub fn rank(&self) -> usize {
        self.nodes.iter().position(|n| *n == self.id).unwrap_or(0)
    }
}

/// A protocol's core as a reference node runs it (implemented by [`node_api!`](crate::node_api)).
pub trait NodeCore: Core + Sized {
    type Settings: NodeSettings;
    type Storage: OpenStorage<Persist = Self::Persist>;
    /// Whether the core takes [`Start::seed`] (the simulator draws one only then).
    const SEEDED: bool;

    fn start(s: Start<Self>) -> Self;
}

/// A seed no two node processes share.
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32)
}

/// Serve a node of `kind` (with the planted bugs it `known`s) inside the current tokio
/// runtime until `shutdown` completes.
pub async fn serve_node<C: NodeCore>(
    config: NodeConfig,
    kind: &'static str,
    known: &[&str],
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let settings = C::Settings::from_map(&config.settings).map_err(NodeError::Settings)?;
    let nodes = check_node(&config, kind, known)?;
    let dir = config.data_dir.clone();
    let lazy = config.bugs.iter().any(|b| b == BUG_ACK_BEFORE_PERSIST);
    let (storage, recovered) = open_storage(move || C::Storage::open(&dir, lazy)).await?;
    tracing::info!(node = %config.id, %recovered, bugs = ?config.bugs, "recovered state");
    let tick = settings.tick();
    let core = C::start(Start {
        id: config.id.clone(),
        nodes,
        settings,
        bugs: config.bugs.clone(),
        recovered,
        seed: seed(),
    });
    serve_core(&config, core, storage, tick, shutdown).await
}

/// Run a node until SIGTERM or SIGINT (then `Ok`) or a fatal error. Blocking: builds its own
/// runtime. Sets up logging to stderr.
pub fn run_node<C: NodeCore>(
    config: NodeConfig,
    kind: &'static str,
    known: &[&str],
) -> Result<(), NodeError> {
    let id = config.id.clone();
    crate::run_until_signal(&id, |shutdown| {
        serve_node::<C>(config, kind, known, shutdown)
    })
    .map_err(NodeError::Runtime)?
}

/// A node crate's start-up: [`NodeCore`] for its core `$core` (of kind `$kind`, with
/// `$settings` and `$storage`, started by `$core::new(start)`; after `unseeded` the core takes
/// no seed, so the simulator draws none for it), and its public `Error`,
/// `validate_settings`, `run` and `serve` (with its `KNOWN_BUGS`).
#[macro_export]
macro_rules! node_api {
    ($core:ty: $kind:literal, $settings:ty, $storage:ty) => {
        impl $crate::node::NodeCore for $core {
            type Settings = $settings;
            type Storage = $storage;
            const SEEDED: bool = true;

            fn start(s: $crate::node::Start<Self>) -> Self {
                <$core>::new(s)
            }
        }
        $crate::node_api!(@fns $core, $kind);
    };
    ($core:ty: $kind:literal, $settings:ty, $storage:ty, unseeded) => {
        impl $crate::node::NodeCore for $core {
            type Settings = $settings;
            type Storage = $storage;
            const SEEDED: bool = false;

            fn start(s: $crate::node::Start<Self>) -> Self {
                <$core>::new(s)
            }
        }
        $crate::node_api!(@fns $core, $kind);
    };
    (@fns $core:ty, $kind:literal) => {
        /// Why a node could not start or had to stop.
        pub use $crate::NodeError as Error;

        /// Check `settings:` of an experiment; the message names the offending field.
        pub fn validate_settings(settings: &$crate::node::SettingsMap) -> Result<(), String> {
            use $crate::node::{NodeCore, NodeSettings};
            <$core as NodeCore>::Settings::from_map(settings).map(|_| ())
        }

        /// Run a node until SIGTERM or SIGINT (then `Ok`) or a fatal error. Blocking: builds
        /// its own runtime. Sets up logging to stderr.
        pub fn run(config: $crate::node::NodeConfig) -> Result<(), Error> {
            $crate::node::run_node::<$core>(config, $kind, KNOWN_BUGS)
        }

        /// Run a node inside the current tokio runtime until `shutdown` completes.
        pub async fn serve(
            config: $crate::node::NodeConfig,
            shutdown: impl std::future::Future<Output = ()>,
        ) -> Result<(), Error> {
            $crate::node::serve_node::<$core>(config, $kind, KNOWN_BUGS, shutdown).await
        }
    };
}

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
