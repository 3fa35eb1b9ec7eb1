//! `target:` of an experiment: the kind of system, its node count, settings and planted bugs,
//! and `network:` (how the harness reaches the nodes).

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize};

/// The system under test.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawTarget")]
pub struct Target {
    pub kind: TargetKind,
    pub nodes: u32,
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub bugs: Vec<String>,
    /// `etcd` and `redis-sentinel`: the server binary (`etcd`, `redis-server`), when not the
    /// one on `PATH`.
    pub binary: Option<std::path::PathBuf>,
    /// `command`: the argv template that starts a node.
    pub command: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    kind: TargetKind,
    #[serde(deserialize_with = "node_count")]
    nodes: u32,
    #[serde(default)]
    settings: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    bugs: Vec<String>,
    #[serde(default)]
    binary: Option<std::path::PathBuf>,
    #[serde(default)]
    command: Option<Vec<String>>,
}

/// Parsed inside the scalar's own visitor, so the error carries the scalar's location.
fn node_count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = u32;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number of nodes between 1 and 15")
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u32, E> {
            if (1..=15).contains(&n) {
                Ok(n as u32)
            } else {
                Err(E::custom(format!(
                    "nodes must be between 1 and 15, got {n}"
                )))
            }
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u32, E> {
            Err(E::custom(format!(
                "nodes must be between 1 and 15, got {n}"
            )))
        }
    }
    d.deserialize_u64(V)
}

impl TryFrom<RawTarget> for Target {
    type Error = String;
    fn try_from(raw: RawTarget) -> Result<Self, String> {
        match (raw.kind, &raw.command, &raw.binary) {
            (TargetKind::Command, None, _) => {
                return Err(
                    "target.command: kind: command needs `command:`, the argv that starts a \
                     node, as in [my-node, --id, \"{id}\", --port, \"{client_port}\"]"
                        .into(),
                )
            }
            (TargetKind::Command, Some(argv), binary) => {
                crate::cluster::command::check(argv).map_err(|e| format!("target.command: {e}"))?;
                if binary.is_some() {
                    return Err(
                        "target.binary: not used by kind: command (the program is command[0])"
                            .into(),
                    );
                }
            }
            (kind, Some(_), _) => {
                return Err(format!(
                    "target.command: only kind: command takes a command (this target is {})",
                    kind.as_str()
                ))
            }
            (TargetKind::Etcd | TargetKind::RedisSentinel, None, _) => {}
            (kind, None, Some(_)) => {
                return Err(format!(
                    "target.binary: {} nodes are faultline itself; `binary` is for etcd and \
                 redis-sentinel",
                    kind.as_str()
                ))
            }
            (_, None, None) => {}
        }
        let (validate, known_bugs) = raw.kind.node_checks();
        validate(&raw.settings)
            .map_err(|e| format!("target.settings: for {}, {e}", raw.kind.as_str()))?;
        if raw.kind == TargetKind::RedisSentinel {
            let s = crate::cluster::redis::RedisSettings::from_map(&raw.settings)
                .map_err(|e| format!("target.settings: {e}"))?;
            if let Some(q) = s.quorum.filter(|&q| q > raw.nodes) {
                return Err(format!(
                    "target.settings: settings.quorum ({q}) is more than the {} \
                     Sentinels (one per node): no failover could ever be agreed",
                    raw.nodes
                ));
            }
        }
        for bug in &raw.bugs {
            if !known_bugs.contains(&bug.as_str()) {
                return Err(format!(
                    "target.bugs: unknown bug `{bug}` for {} (known: {})",
                    raw.kind.as_str(),
                    known_list(known_bugs)
                ));
            }
        }
        Ok(Target {
            kind: raw.kind,
            nodes: raw.nodes,
            settings: raw.settings,
            bugs: raw.bugs,
            binary: raw.binary,
            command: raw.command.unwrap_or_default(),
        })
    }
}

fn known_list(known: &[&str]) -> String {
    if known.is_empty() {
        "none".into()
    } else {
        known.join(", ")
    }
}

/// Target kinds: the three reference nodes, two real systems, and any command that speaks the
/// native protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    PrimaryBackup,
    Raft,
    Paxos,
    Etcd,
    RedisSentinel,
    Command,
}

/// Checks a node kind's `settings:` map; the error names the field.
pub type SettingsCheck = fn(&serde_json::Map<String, serde_json::Value>) -> Result<(), String>;

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::PrimaryBackup => "primary-backup",
            TargetKind::Raft => "raft",
            TargetKind::Paxos => "paxos",
            TargetKind::Etcd => "etcd",
            TargetKind::RedisSentinel => "redis-sentinel",
            TargetKind::Command => "command",
        }
    }

    /// Whether the harness can put its link proxies between two nodes of this kind: it can
    /// when it hands each node its peers' addresses. etcd members and Redis servers find
    /// each other by addresses they announce themselves, so between them only `netns` cuts.
    pub fn peer_links_proxied(self) -> bool {
        !matches!(self, TargetKind::Etcd | TargetKind::RedisSentinel)
    }

    /// The reference node's settings check and its planted bugs.
    pub fn node_checks(self) -> (SettingsCheck, &'static [&'static str]) {
        match self {
            TargetKind::PrimaryBackup => (
                faultline_primary_backup::validate_settings,
                faultline_primary_backup::KNOWN_BUGS,
            ),
            TargetKind::Raft => (
                faultline_raft::validate_settings,
                faultline_raft::KNOWN_BUGS,
            ),
            TargetKind::Paxos => (
                faultline_paxos::validate_settings,
                faultline_paxos::KNOWN_BUGS,
            ),
            TargetKind::Etcd => (crate::cluster::etcd::validate_settings, &[]),
            TargetKind::RedisSentinel => (crate::cluster::redis::validate_settings, &[]),
            // Passed through to the node's `{config}` file, unchecked.
            TargetKind::Command => (|_| Ok(()), &[]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Nodes are child processes of the harness.
    #[default]
    Process,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCfg {
    #[serde(default)]
    pub mode: NetworkMode,
}

// `network.mode`: the type lives with the cluster that acts on it.
pub use crate::cluster::NetworkMode;
