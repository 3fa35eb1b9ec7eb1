//! `target:` of an experiment: the kind of system, its node count, settings and planted bugs,
//! and `network:` (how the harness reaches the nodes).

use std::fmt;
use std::sync::Arc;

use serde::{de, Deserialize, Deserializer, Serialize};

use crate::cluster::kind::{self, System, TargetInput, TargetKind};

/// The system under test.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawTarget")]
pub struct Target {
    /// The kind, as the target registry ([`crate::cluster::kind`]) knows it.
    pub kind: &'static TargetKind,
    pub nodes: u32,
    /// `settings:` as written (reference nodes get it in their config file).
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub bugs: Vec<String>,
    /// The typed settings, parsed and checked once, when the experiment is loaded.
    pub system: Arc<dyn System>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(deserialize_with = "kind_by_name")]
    kind: &'static TargetKind,
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

/// A kind the registry knows, looked up inside the scalar's own visitor (so the error carries
/// its location).
fn kind_by_name<'de, D: Deserializer<'de>>(d: D) -> Result<&'static TargetKind, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = &'static TargetKind;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a target kind")
        }
        fn visit_str<E: de::Error>(self, name: &str) -> Result<&'static TargetKind, E> {
            kind::find(name).ok_or_else(|| {
                let known: Vec<String> = kind::KINDS
                    .iter()
                    .map(|k| format!("`{}`", k.name))
                    .collect();
                E::custom(format!(
                    "unknown variant `{name}`, expected one of {}",
                    known.join(", ")
                ))
            })
        }
    }
    d.deserialize_str(V)
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
        let system = (raw.kind.load)(&TargetInput {
            nodes: raw.nodes,
            settings: &raw.settings,
            binary: raw.binary.as_deref(),
            command: raw.command.as_deref(),
        })?;
        let known_bugs = raw.kind.known_bugs;
        for bug in &raw.bugs {
            if !known_bugs.contains(&bug.as_str()) {
                let known = if known_bugs.is_empty() {
                    "none".to_string()
                } else {
                    known_bugs.join(", ")
                };
                return Err(format!(
                    "target.bugs: unknown bug `{bug}` for {} (known: {known})",
                    raw.kind.name
                ));
            }
        }
        Ok(Target {
            kind: raw.kind,
            nodes: raw.nodes,
            settings: raw.settings,
            bugs: raw.bugs,
            system,
        })
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
