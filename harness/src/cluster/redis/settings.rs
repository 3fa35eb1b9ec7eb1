//! `kind: redis-sentinel` in the target registry: its settings, checked when the experiment is
//! loaded, and the configuration files and command lines a server and its Sentinel start from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use faultline_faults::netns::Netns;
use faultline_faults::{NetnsChoice, ProcessSpec};
use serde::Deserialize;

use super::RedisShared;
use crate::cluster::client::Driver;
use crate::cluster::kind::{Ends, NodeStart, System, TargetKind};
use crate::cluster::launch::{
    create_dir, find_program, write_file, ClusterError, NodeHandle, Sidecar,
};

/// The name the Sentinels monitor the primary under.
pub const MASTER_NAME: &str = "faultline";

/// `target.settings` of `kind: redis-sentinel`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `sentinel down-after-milliseconds`: how long the primary must be unreachable before a
    /// Sentinel calls it subjectively down.
    #[serde(default = "default_down_after", with = "humantime_serde")]
    pub down_after: Duration,
    /// `sentinel failover-timeout`.
    #[serde(default = "default_failover_timeout", with = "humantime_serde")]
    pub failover_timeout: Duration,
    /// Sentinels that must agree the primary is down; a majority of them by default.
    #[serde(default)]
    pub quorum: Option<u32>,
    /// `min-replicas-to-write` on every server: the primary refuses writes with fewer
    /// connected replicas than this (Redis's mitigation for a partitioned primary; 0 is off,
    /// Redis's default).
    #[serde(default)]
    pub min_replicas_to_write: u32,
    /// `min-replicas-max-lag`, in seconds.
    #[serde(default = "default_max_lag")]
    pub min_replicas_max_lag: u32,
    /// `appendfsync`: `always`, `everysec` (Redis's default) or `no`.
    #[serde(default)]
    pub appendfsync: Fsync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fsync {
    Always,
    #[default]
    Everysec,
    No,
}

fn default_down_after() -> Duration {
    Duration::from_millis(1000)
}
fn default_failover_timeout() -> Duration {
    Duration::from_millis(5000)
}
fn default_max_lag() -> u32 {
    10
}

impl RedisSettings {
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let s: RedisSettings = faultline_replica::parse_settings(map, "redis-sentinel")?;
        if s.down_after.as_millis() == 0 {
            return Err("settings.down_after must be at least 1ms".into());
        }
        if s.failover_timeout.as_millis() == 0 {
            return Err("settings.failover_timeout must be at least 1ms".into());
        }
        if s.quorum == Some(0) {
            return Err("settings.quorum must be at least 1".into());
        }
        Ok(s)
    }
}

/// `kind: redis-sentinel` in the target registry.
pub static KIND: TargetKind = TargetKind {
    name: "redis-sentinel",
    summary: "Redis servers with a Sentinel beside each (Debian's redis-server, redis-sentinel)",
    known_bugs: &[],
    node_main: None,
    peer_links_proxied: false,
    load: |input| {
        input.no_command("redis-sentinel")?;
        let settings = RedisSettings::from_map(input.settings)
            .map_err(|e| format!("target.settings: for redis-sentinel, {e}"))?;
        if let Some(q) = settings.quorum.filter(|&q| q > input.nodes) {
            return Err(format!(
                "target.settings: settings.quorum ({q}) is more than the {} Sentinels (one per \
                 node): no failover could ever be agreed",
                input.nodes
            ));
        }
        Ok(Arc::new(Redis {
            binary: input.program("redis-server"),
            settings,
        }))
    },
};

/// A Redis deployment: `redis-server` (for servers and Sentinels) and the settings.
#[derive(Debug)]
struct Redis {
    binary: PathBuf,
    settings: RedisSettings,
}

const REDIS_HINT: &str =
    "install Debian's redis-server and redis-sentinel packages, or set target.binary";

impl Redis {
    fn program(&self) -> Result<PathBuf, ClusterError> {
        find_program(&self.binary.display().to_string(), REDIS_HINT)
    }
}

impl System for Redis {
    fn check_host(&self) -> Result<(), ClusterError> {
        self.program().map(|_| ())
    }

    fn driver(&self, ends: &Ends) -> Driver {
        Driver::Redis(Arc::new(RedisShared {
            servers: ends.iter().map(|(id, c, _)| (id.clone(), *c)).collect(),
            sentinels: ends.iter().map(|(id, _, p)| (id.clone(), *p)).collect(),
        }))
    }

    /// `n1` starts as the primary, the others as its replicas.
    fn command_line(&self, start: &NodeStart<'_>) -> Result<(PathBuf, Vec<String>), ClusterError> {
        let node = start.node;
        let (first, primary, _) = &start.ends[0];
        let conf = node.dir.join("redis.conf");
        let text = server_config(
            node.client_addr,
            *primary,
            node.id == *first,
            &node.data_dir,
            &self.settings,
        );
        write_file(&conf, text)?;
        Ok((self.program()?, vec![conf.display().to_string()]))
    }

    /// The Sentinel beside a server: its own directory and configuration file, listening on
    /// the node's peer port, in the node's namespace.
    fn sidecar(
        &self,
        node: &NodeHandle,
        ends: &Ends,
        netns: Option<&Netns>,
    ) -> Result<Option<Sidecar>, ClusterError> {
        let dir = node.dir.join("sentinel");
        create_dir(&dir)?;
        let conf = dir.join("sentinel.conf");
        let primary = ends[0].1;
        let text = sentinel_config(
            node.peer_addr,
            primary,
            ends.len() as u32,
            &dir,
            &self.settings,
        );
        write_file(&conf, text)?;
        Ok(Some(Sidecar::new(
            &node.id,
            ProcessSpec {
                program: self.program()?,
                args: vec![conf.display().to_string(), "--sentinel".into()],
                env: vec![],
                stdout: dir.join("stdout.log"),
                stderr: dir.join("stderr.log"),
                netns: netns
                    .and_then(|n| n.node_netns(&node.id))
                    .unwrap_or(NetnsChoice::Inherit),
            },
        )))
    }
}

/// The configuration file of one `redis-server`: `n1` starts as the primary, the others as its
/// replicas. Every server and Sentinel announces the address it listens on (on loopback its
/// connections come from 127.0.0.1, which is not where it listens). The Sentinels rewrite it (`CONFIG REWRITE`) when they change a server's role, so a
/// restarted server comes back in the role it last had.
pub fn server_config(
    addr: SocketAddr,
    primary: SocketAddr,
    is_primary: bool,
    data_dir: &Path,
    s: &RedisSettings,
) -> String {
    let fsync = match s.appendfsync {
        Fsync::Always => "always",
        Fsync::Everysec => "everysec",
        Fsync::No => "no",
    };
    let mut c = format!(
        "bind {ip}\nport {port}\nprotected-mode no\ndaemonize no\nlogfile \"\"\n\
         dir \"{dir}\"\nappendonly yes\nappendfsync {fsync}\nsave \"\"\n\
         min-replicas-to-write {min}\nmin-replicas-max-lag {lag}\nreplica-announce-ip {ip}\nrepl-diskless-sync-delay 0\n",
        ip = addr.ip(),
        port = addr.port(),
        dir = data_dir.display(),
        min = s.min_replicas_to_write,
        lag = s.min_replicas_max_lag,
    );
    if !is_primary {
        c.push_str(&format!("replicaof {} {}\n", primary.ip(), primary.port()));
    }
    c
}

/// The configuration file of one Sentinel (which it rewrites as it learns).
pub fn sentinel_config(
    addr: SocketAddr,
    primary: SocketAddr,
    sentinels: u32,
    dir: &Path,
    s: &RedisSettings,
) -> String {
    let quorum = s.quorum.unwrap_or(sentinels / 2 + 1);
    format!(
        "bind {ip}\nport {port}\nprotected-mode no\ndaemonize no\nlogfile \"\"\ndir \"{dir}\"\n\
         sentinel announce-ip {ip}\nsentinel monitor {name} {pip} {pport} {quorum}\n\
         sentinel down-after-milliseconds {name} {down}\n\
         sentinel failover-timeout {name} {failover}\n\
         sentinel parallel-syncs {name} 1\n",
        ip = addr.ip(),
        port = addr.port(),
        dir = dir.display(),
        name = MASTER_NAME,
        pip = primary.ip(),
        pport = primary.port(),
        down = s.down_after.as_millis(),
        failover = s.failover_timeout.as_millis(),
    )
}
