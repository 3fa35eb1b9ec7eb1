//! faultline's reference nodes as target kinds (`primary-backup`, `raft`, `paxos`): each runs as
//! `faultline node <kind> --config <file>`, speaks the native protocol, and checks its settings
//! with its own crate's parser.

use std::path::PathBuf;
use std::sync::Arc;

use super::kind::{NodeStart, System, TargetInput, TargetKind};
use super::launch::ClusterError;

/// Settings check of a reference node's crate.
type SettingsCheck = fn(&serde_json::Map<String, serde_json::Value>) -> Result<(), String>;

pub static PRIMARY_BACKUP: TargetKind = TargetKind {
    name: "primary-backup",
    summary: "faultline's primary-backup node: heartbeat takeover, views, sync or async copies",
    known_bugs: faultline_primary_backup::KNOWN_BUGS,
    node_main: Some(|cfg| faultline_primary_backup::run(cfg).map_err(|e| e.to_string())),
    peer_links_proxied: true,
    load: |input| {
        load(
            input,
            "primary-backup",
            faultline_primary_backup::validate_settings,
        )
    },
};

pub static RAFT: TargetKind = TargetKind {
    name: "raft",
    summary: "faultline's Raft node: PreVote, CheckQuorum, ReadIndex or lease reads, snapshots",
    known_bugs: faultline_raft::KNOWN_BUGS,
    node_main: Some(|cfg| faultline_raft::run(cfg).map_err(|e| e.to_string())),
    peer_links_proxied: true,
    load: |input| load(input, "raft", faultline_raft::validate_settings),
};

pub static PAXOS: TargetKind = TargetKind {
    name: "paxos",
    summary: "faultline's Multi-Paxos node: a stable leader, leader leases",
    known_bugs: faultline_paxos::KNOWN_BUGS,
    node_main: Some(|cfg| faultline_paxos::run(cfg).map_err(|e| e.to_string())),
    peer_links_proxied: true,
    load: |input| load(input, "paxos", faultline_paxos::validate_settings),
};

fn load(
    input: &TargetInput<'_>,
    kind: &'static str,
    check: SettingsCheck,
) -> Result<Arc<dyn System>, String> {
    input.neither_binary_nor_command(kind)?;
    check(input.settings).map_err(|e| format!("target.settings: for {kind}, {e}"))?;
    Ok(Arc::new(ReferenceNode { kind }))
}

/// A reference node: the settings stay a map, written into each node's config file.
#[derive(Debug)]
struct ReferenceNode {
    kind: &'static str,
}

impl System for ReferenceNode {
    fn command_line(&self, start: &NodeStart<'_>) -> Result<(PathBuf, Vec<String>), ClusterError> {
        Ok((
            start.spec.exe.clone(),
            vec![
                "node".into(),
                self.kind.into(),
                "--config".into(),
                start.node.config_path.display().to_string(),
            ],
        ))
    }
}
