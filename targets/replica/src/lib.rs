//! What every faultline reference node shares: the KV state machine, a durable checksummed log
//! with group commit, atomic snapshots, the client server, the peer transport, and the driver
//! that runs a protocol's pure core against them.
//!
//! A protocol crate implements [`driver::Core`] (pure: inputs in, persist/send/reply out),
//! [`datadir::Layout`] for its persist actions (how they are written to the [`DataDir`] and
//! recovered) and [`NodeSettings`] for its settings; [`node_api!`] then gives it its node
//! start-up (server, peer transport and driver, [`node`]). Feature `sim`: the deterministic
//! simulator its tests run the core in ([`sim`]); feature `testkit`: in-process clusters.

pub mod cluster;
pub mod codec;
pub mod datadir;
pub mod dispatch;
pub mod driver;
pub mod forward;
pub mod kv;
pub mod log;
mod logging;
pub mod node;
pub mod outcome;
pub mod peer;
pub mod probe;
pub mod process;
pub mod server;
pub mod settings;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod timing;

pub use codec::{CodecError, FORMAT_VERSION};
pub use datadir::DataDir;
pub use driver::{drive, ClientToken, Core, DriverError, DriverIo, Input, Millis, Outbox, Storage};
pub use kv::{Applied, Command, KvState};
pub use log::{
    decode_log_record, decode_record, encode_record, LazyLog, Log, Snapshot, StorageError,
};
pub use logging::init_node_logging;
pub use node::{check_node, open_storage, serve_core, NodeCore, NodeError, OpenStorage, Start};
pub use outcome::{to_response, FailKind, Forwarded, ForwardsSeen, FwdOp, OpResult};
pub use peer::PeerNet;
pub use process::{run_until_signal, Shutdown};
pub use server::{ClientRequest, Reply};
pub use settings::{duration_pair, parse_settings, NodeSettings};
