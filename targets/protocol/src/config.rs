//! The node configuration file the harness writes for each reference node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything a reference node needs to start: who it is, where to listen, how to reach its
/// peers, where to keep its durable state, and its protocol settings and planted bugs.
///
/// Written by the harness as JSON and passed as `faultline node <kind> --config FILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id, `n1`..`nN`.
    pub id: String,
    /// Address to accept client connections on.
    pub client_addr: SocketAddr,
    /// Address to accept peer connections on.
    pub peer_addr: SocketAddr,
    /// Every *other* node, by id, with the address to dial for its peer traffic (a proxy
    /// address when the harness interposes one).
    pub peers: BTreeMap<String, SocketAddr>,
    /// Directory for durable state; created if missing.
    pub data_dir: PathBuf,
    /// Protocol settings; each node kind parses these into its own typed settings and rejects
    /// unknown ones.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Planted bugs to enable (documented per node kind).
    #[serde(default)]
    pub bugs: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read node config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid node config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// All node ids in the cluster, this one included, sorted.
    pub fn members(&self) -> Vec<String> {
        let mut all: Vec<String> = self.peers.keys().cloned().collect();
        all.push(self.id.clone());
        all.sort_by_cached_key(|a| natural_key(a));
        all.dedup();
        all
    }
}

/// Sort `n2` before `n10`.
fn natural_key(id: &str) -> (String, u64) {
    let split = id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (prefix, digits) = id.split_at(split);
    (prefix.to_owned(), digits.parse().unwrap_or(0))
}
