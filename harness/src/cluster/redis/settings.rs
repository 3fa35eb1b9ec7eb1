//! `target.settings` of `kind: redis-sentinel`, checked when the experiment is loaded, and the
//! configuration files a server and its Sentinel start from.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

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

pub fn validate_settings(map: &serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
    RedisSettings::from_map(map).map(|_| ())
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
