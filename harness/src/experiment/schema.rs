//! The experiment schema (README.md, "Experiments"; ARCHITECTURE.md, section 2). Unknown fields
//! are errors everywhere, and every value is checked while it is parsed, so an error carries the
//! location of the offending node.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::network::{CutMode, LinkSpec, NetFault, Topology};

/// One experiment, with one seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// A directory name under the results root (`<out>/<name>/`): letters, digits, `.`, `_`,
    /// `-`, starting with a letter or digit, at most 100 characters.
    #[serde(deserialize_with = "experiment_name")]
    pub name: String,
    /// Drives every random choice; chosen at random and recorded when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// How long the load runs (faults fire within it).
    pub duration: Dur,
    pub target: Target,
    #[serde(default)]
    pub backend: Backend,
    #[serde(default)]
    pub network: NetworkCfg,
    pub workload: Workload,
    #[serde(default)]
    pub balancer: BalancerCfg,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    #[serde(default = "default_checks")]
    pub checks: Vec<CheckKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    /// The verdict this run should reach; makes the experiment a calibration case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// Observer poll interval (status of every node).
    #[serde(default = "default_observe")]
    pub observe_every: Dur,
    /// After the load: how long to wait for the cluster to serve writes again before the
    /// final reads.
    #[serde(default = "default_recover")]
    pub recover_timeout: Dur,
}

fn default_checks() -> Vec<CheckKind> {
    vec![
        CheckKind::Linearizable,
        CheckKind::LostWrites,
        CheckKind::StaleReads,
        CheckKind::ElectionSafety,
    ]
}
fn default_observe() -> Dur {
    Dur(Duration::from_millis(20))
}
fn default_recover() -> Dur {
    Dur(Duration::from_secs(10))
}

/// A humantime duration (`250ms`, `5s`, `1m 30s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn ms(self) -> u64 {
        self.0.as_millis() as u64
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `250ms` or `5s`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                humantime::parse_duration(v.trim())
                    .map(Dur)
                    .map_err(|e| E::custom(format!("invalid duration `{v}`: {e}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                if v == 0 {
                    Ok(Dur(Duration::ZERO))
                } else {
                    Err(E::custom(format!(
                        "invalid duration `{v}`: give a unit, as in `{v}ms` or `{v}s`"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "invalid duration `{v}`: give a positive number with a unit, as in `250ms`"
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "invalid duration `{v}`: give a unit, as in `{v}s`"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

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

/// A share between 0 and 1, parsed inside the scalar's own visitor so the error is placed.
fn share<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = f64::deserialize(d)?;
    if (0.0..=1.0).contains(&v) {
        Ok(Some(v))
    } else {
        Err(de::Error::custom(format!(
            "availability must be between 0 and 1 (a share of operations), got {v}"
        )))
    }
}

/// Why `name` cannot be an experiment's name (it becomes a directory under the results root,
/// so it must be one plain path component), or `None` when it can.
pub fn name_problem(name: &str) -> Option<String> {
    const MAX: usize = 100;
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX {
        return Some(format!(
            "{} characters, at most {MAX} (it names a directory)",
            name.len()
        ));
    }
    let plain = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    (!plain).then(|| {
        format!(
            "`{name}` cannot name the run's directory: use letters, digits, `.`, `_` and `-`, \
             starting with a letter or digit (no `/`, no `..`)"
        )
    })
}

/// Parsed inside the scalar's own visitor, so the error carries the scalar's location.
fn experiment_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an experiment name")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            match name_problem(v) {
                Some(why) => Err(E::custom(why)),
                None => Ok(v.to_owned()),
            }
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

/// How nodes reach each other. `proxy` (the default) puts a TCP relay of the harness on every
/// directed link, node to node and client to node, so partitions and degraded links can be
/// injected without root; `netns` (root) puts every node in a network namespace of its own on a
/// bridge, and cuts, drops and shapes packets there with nftables and tc (no delay: this kernel
/// has no netem, so delays need `proxy`); `direct` lets nodes dial each other's loopback ports
/// (no network faults possible, one hop less).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    Direct,
    #[default]
    Proxy,
    Netns,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Direct => "direct",
            NetworkMode::Proxy => "proxy",
            NetworkMode::Netns => "netns",
        }
    }
}

/// The client workload.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawWorkload")]
pub struct Workload {
    pub kind: WorkloadKind,
    pub keys: u32,
    pub mix: Mix,
    pub load: Load,
    /// Per operation; a timed-out operation is indeterminate (`info`).
    pub timeout: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    #[serde(default)]
    kind: WorkloadKind,
    #[serde(default = "default_keys")]
    keys: u32,
    #[serde(default)]
    mix: Option<Mix>,
    #[serde(default)]
    rate: Option<Rate>,
    #[serde(default)]
    concurrency: Option<u32>,
    /// Open loop: at most this many operations in flight; one due past it is not sent.
    #[serde(default, alias = "max-in-flight")]
    max_in_flight: Option<u32>,
    #[serde(default = "default_op_timeout")]
    timeout: Dur,
}

fn default_keys() -> u32 {
    8
}
fn default_op_timeout() -> Dur {
    Dur(Duration::from_millis(500))
}

impl TryFrom<RawWorkload> for Workload {
    type Error = String;
    fn try_from(raw: RawWorkload) -> Result<Self, String> {
        if raw.keys == 0 {
            return Err("keys must be at least 1".into());
        }
        if raw.timeout.0.is_zero() {
            return Err("timeout must be more than 0".into());
        }
        let load = match (raw.rate, raw.concurrency) {
            (Some(_), Some(_)) => {
                return Err(
                    "give either `rate` (open loop) or `concurrency` (closed loop), not both"
                        .into(),
                )
            }
            (Some(r), None) => Load::Open {
                rate: r,
                max_in_flight: match raw.max_in_flight {
                    Some(0) => return Err("workload.max_in_flight: must be at least 1".into()),
                    Some(m) => m,
                    None => default_max_in_flight(r.per_second, raw.timeout.0),
                },
            },
            (None, Some(_)) if raw.max_in_flight.is_some() => {
                return Err(
                    "workload.max_in_flight: bounds an open loop (`rate`); a closed loop has \
                     `concurrency` operations in flight"
                        .into(),
                )
            }
            (None, Some(0)) => return Err("concurrency must be at least 1".into()),
            (None, Some(c)) => Load::Closed { concurrency: c },
            (None, None) => Load::Closed { concurrency: 8 },
        };
        let mix = raw.mix.unwrap_or(match raw.kind {
            WorkloadKind::Register => Mix {
                read: 0.5,
                write: 0.5,
                cas: 0.0,
            },
            WorkloadKind::CasRegister => Mix {
                read: 0.5,
                write: 0.3,
                cas: 0.2,
            },
        });
        for (name, v) in [("read", mix.read), ("write", mix.write), ("cas", mix.cas)] {
            if !(0.0..=1.0).contains(&v) || !v.is_finite() {
                return Err(format!(
                    "workload.mix: mix.{name} must be between 0 and 1, got {v}"
                ));
            }
        }
        let total = mix.read + mix.write + mix.cas;
        if (total - 1.0).abs() > 1e-6 {
            return Err(format!(
                "workload.mix: must add up to 1 (read + write + cas = {total})"
            ));
        }
        if raw.kind == WorkloadKind::Register && mix.cas > 0.0 {
            return Err("workload.mix: mix.cas needs `kind: cas-register`".into());
        }
        Ok(Workload {
            kind: raw.kind,
            keys: raw.keys,
            mix,
            load,
            timeout: raw.timeout,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Reads and writes of integer registers.
    #[default]
    Register,
    /// Reads, writes and compare-and-set.
    CasRegister,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default)]
    pub read: f64,
    #[serde(default)]
    pub write: f64,
    #[serde(default)]
    pub cas: f64,
}

/// The open loop's default bound on operations in flight: twice what the rate keeps in flight
/// when every operation takes its whole timeout, and at least 1,000. A cluster that answers
/// never reaches it; one that has stopped answering holds `rate x timeout` operations.
pub fn default_max_in_flight(rate: f64, timeout: Duration) -> u32 {
    let busy = (2.0 * rate * timeout.as_secs_f64()).ceil();
    busy.clamp(1000.0, u32::MAX as f64) as u32
}

/// Open loop at a fixed arrival rate, or closed loop with N clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// `max_in_flight` bounds the operations in flight, and with them the harness's memory
    /// during the load: an operation due while that many are in flight is not sent, and the
    /// report counts it (`load.not_started`, `load.at_limit`), like k6's dropped iterations.
    Open {
        rate: Rate,
        max_in_flight: u32,
    },
    Closed {
        concurrency: u32,
    },
}

/// Operations per second: `2000/s`, `500/100ms`, or a bare number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}/s", self.per_second))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rate such as `2000/s`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
                if v.is_finite() && v > 0.0 && v <= 1_000_000.0 {
                    Ok(Rate { per_second: v })
                } else {
                    Err(E::custom(format!(
                        "invalid rate `{v}`: must be more than 0 and at most 1000000/s"
                    )))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                let bad = |why: &str| E::custom(format!("invalid rate `{v}`: {why}"));
                let (count, per) = v.split_once('/').unwrap_or((v, "1s"));
                let count: f64 = count
                    .trim()
                    .parse()
                    .map_err(|_| bad("expected a number of operations, as in `2000/s`"))?;
                let per = per.trim();
                let per = if per.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    per.to_string()
                } else {
                    format!("1{per}")
                };
                let per = humantime::parse_duration(&per)
                    .map_err(|e| bad(&format!("bad period: {e}")))?;
                if per.is_zero() {
                    return Err(bad("the period is zero"));
                }
                self.visit_f64(count / per.as_secs_f64())
            }
        }
        d.deserialize_any(V)
    }
}

/// How clients choose a node for each operation: the strategy (`kind`, with its parameters
/// next to it), active health checks, passive outlier ejection, and retries with their budget.
///
/// ```yaml
/// balancer:
///   kind: hash                  # round-robin | random | weighted | least-outstanding | p2c
///   vnodes: 160                 #   | hash | leader-aware
///   bounded_load: 1.25
///   outlier: { consecutive_failures: 5, base_ejection: 1s, max_ejection_percent: 50 }
///   retry_budget: { ratio: 0.2, min_per_sec: 10 }
/// ```
///
/// A parameter of another strategy than `kind` (or than `fallback`, for leader-aware) is an
/// error, like any unknown key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RawBalancerCfg", into = "RawBalancerCfg")]
pub struct BalancerCfg {
    pub kind: BalancerKind,
    /// The parameters of `kind` (and of `params.fallback` for leader-aware); the others keep
    /// their defaults.
    pub params: StrategyParams,
    pub health: HealthCfg,
    /// Tries per operation (first try included); retries happen only after definite failures.
    pub max_tries: u32,
    /// Connections kept open to each node, shared by all clients.
    pub connections_per_node: u32,
    /// Passive outlier ejection; off when absent.
    pub outlier: Option<OutlierCfg>,
    /// A cap on retries as a share of operations; unlimited (up to `max_tries`) when absent.
    pub retry_budget: Option<RetryBudgetCfg>,
    /// Time for one try of a read, within the operation's `timeout`: a read whose try runs out
    /// is retried on another node (a read changes nothing). A write or cas is never retried
    /// after a try that may have taken effect, so its one try keeps the whole `timeout`.
    pub try_timeout: Option<Dur>,
}

fn default_tries() -> u32 {
    3
}
fn default_pool() -> u32 {
    2
}

impl Default for BalancerCfg {
    fn default() -> Self {
        BalancerCfg {
            kind: BalancerKind::default(),
            params: StrategyParams::default(),
            health: HealthCfg::default(),
            max_tries: default_tries(),
            connections_per_node: default_pool(),
            outlier: None,
            retry_budget: None,
            try_timeout: None,
        }
    }
}

/// A balancing strategy (README.md, "Balancers"). Kebab-case in YAML; `p2c` and `hash` also
/// answer to `power-of-two-choices` and `consistent-hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BalancerKind {
    /// Each operation to the next usable node in turn.
    RoundRobin,
    /// A usable node chosen uniformly at random (seeded).
    Random,
    /// nginx's smooth weighted round-robin over `weights`.
    Weighted,
    /// The usable node with the fewest operations in flight.
    LeastOutstanding,
    /// The least loaded of `choice_count` usable nodes drawn at random (Envoy's least request).
    #[serde(rename = "p2c", alias = "power-of-two-choices")]
    PowerOfTwoChoices,
    /// A ring of `vnodes` points per node over the operation's key, optionally with bounded
    /// loads (`bounded_load`).
    #[serde(rename = "hash", alias = "consistent-hash")]
    ConsistentHash,
    /// Sends to the node believed to lead (from status and `not_leader` hints), to the
    /// `fallback` strategy when no leader is known or usable.
    #[default]
    LeaderAware,
}

impl BalancerKind {
    /// Every strategy, in the order `faultline list` shows them.
    pub const ALL: [BalancerKind; 7] = [
        BalancerKind::RoundRobin,
        BalancerKind::Random,
        BalancerKind::Weighted,
        BalancerKind::LeastOutstanding,
        BalancerKind::PowerOfTwoChoices,
        BalancerKind::ConsistentHash,
        BalancerKind::LeaderAware,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BalancerKind::RoundRobin => "round-robin",
            BalancerKind::Random => "random",
            BalancerKind::Weighted => "weighted",
            BalancerKind::LeastOutstanding => "least-outstanding",
            BalancerKind::PowerOfTwoChoices => "p2c",
            BalancerKind::ConsistentHash => "hash",
            BalancerKind::LeaderAware => "leader-aware",
        }
    }
}

/// The strategies' parameters. Each applies to one kind; see [`BalancerCfg`].
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyParams {
    /// weighted: weight per node id (at most [`MAX_WEIGHT`]); nodes not named weigh 1, a node
    /// of weight 0 gets operations only when no weighted node is usable.
    pub weights: BTreeMap<String, u32>,
    /// p2c: how many usable nodes to draw and compare (at least 2).
    pub choice_count: u32,
    /// hash: points per node on the ring (1 to [`MAX_VNODES`]).
    pub vnodes: u32,
    /// hash: no node takes more than `bounded_load` times the mean number of operations in
    /// flight (rounded up); plain consistent hashing when absent. At least 1.
    pub bounded_load: Option<f64>,
    /// leader-aware: the strategy for operations when no leader is known or usable.
    pub fallback: BalancerKind,
}

/// The largest weight `weights` accepts.
pub const MAX_WEIGHT: u32 = 1000;
/// The most ring points per node `vnodes` accepts.
pub const MAX_VNODES: u32 = 4096;

impl Default for StrategyParams {
    fn default() -> Self {
        StrategyParams {
            weights: BTreeMap::new(),
            choice_count: 2,
            // ketama's figure: shares within a few percent for a handful of nodes.
            vnodes: 160,
            bounded_load: None,
            fallback: BalancerKind::RoundRobin,
        }
    }
}

/// Passive outlier ejection, after Envoy's: a node that gives `consecutive_failures` definite
/// failures or timeouts in a row (a `not_leader` answer is neither) is skipped by every
/// strategy for `base_ejection` times the number of times it has been ejected (at most
/// `max_ejection`), while at most `max_ejection_percent` of the nodes (rounded down) are out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierCfg {
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    #[serde(default = "default_base_ejection")]
    pub base_ejection: Dur,
    #[serde(default = "default_max_ejection")]
    pub max_ejection: Dur,
    #[serde(default = "default_max_ejection_percent")]
    pub max_ejection_percent: u32,
}

fn default_consecutive_failures() -> u32 {
    5
}
fn default_base_ejection() -> Dur {
    Dur(Duration::from_secs(1))
}
fn default_max_ejection() -> Dur {
    Dur(Duration::from_secs(30))
}
fn default_max_ejection_percent() -> u32 {
    50
}

impl Default for OutlierCfg {
    fn default() -> Self {
        OutlierCfg {
            consecutive_failures: default_consecutive_failures(),
            base_ejection: default_base_ejection(),
            max_ejection: default_max_ejection(),
            max_ejection_percent: default_max_ejection_percent(),
        }
    }
}

/// A retry budget, after Finagle's: over the last `ttl`, retries may number at most `ratio`
/// times the operations plus `min_per_sec` per second of `ttl`. A retry over budget is not
/// made; the operation ends with its last definite failure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetCfg {
    #[serde(default = "default_retry_ratio")]
    pub ratio: f64,
    #[serde(default = "default_retry_min")]
    pub min_per_sec: u32,
    #[serde(default = "default_retry_ttl")]
    pub ttl: Dur,
}

fn default_retry_ratio() -> f64 {
    0.2
}
fn default_retry_min() -> u32 {
    10
}
fn default_retry_ttl() -> Dur {
    Dur(Duration::from_secs(10))
}

impl Default for RetryBudgetCfg {
    fn default() -> Self {
        RetryBudgetCfg {
            ratio: default_retry_ratio(),
            min_per_sec: default_retry_min(),
            ttl: default_retry_ttl(),
        }
    }
}

/// `balancer:` as written: every strategy's parameters optional, checked against `kind` by
/// [`BalancerCfg::try_from`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBalancerCfg {
    #[serde(default)]
    kind: BalancerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weights: Option<BTreeMap<String, u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    choice_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vnodes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bounded_load: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fallback: Option<BalancerKind>,
    #[serde(default)]
    health: HealthCfg,
    #[serde(default = "default_tries")]
    max_tries: u32,
    #[serde(default = "default_pool")]
    connections_per_node: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outlier: Option<OutlierCfg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_budget: Option<RetryBudgetCfg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    try_timeout: Option<Dur>,
}

impl TryFrom<RawBalancerCfg> for BalancerCfg {
    type Error = String;
    /// Errors start with `balancer:` and name the field first, so the loader can place them.
    fn try_from(raw: RawBalancerCfg) -> Result<Self, String> {
        BalancerCfg::checked(raw).map_err(|e| format!("balancer: {e}"))
    }
}

impl BalancerCfg {
    fn checked(raw: RawBalancerCfg) -> Result<Self, String> {
        let fallback = raw.fallback.unwrap_or(BalancerKind::RoundRobin);
        if raw.fallback.is_some() && raw.kind != BalancerKind::LeaderAware {
            return Err(format!(
                "`fallback` applies to kind `leader-aware`, not `{}`",
                raw.kind.as_str()
            ));
        }
        if fallback == BalancerKind::LeaderAware {
            return Err("`fallback` must name another strategy than `leader-aware`".into());
        }
        // The kinds whose parameters may appear: `kind`, and the fallback of leader-aware.
        let applies = |k: BalancerKind| {
            raw.kind == k || (raw.kind == BalancerKind::LeaderAware && fallback == k)
        };
        let owner = |param: &str, k: BalancerKind| {
            if applies(k) {
                Ok(())
            } else {
                Err(format!(
                    "`{param}` applies to kind `{}`, not `{}`",
                    k.as_str(),
                    raw.kind.as_str()
                ))
            }
        };
        let mut params = StrategyParams {
            fallback,
            ..StrategyParams::default()
        };
        if let Some(weights) = raw.weights {
            owner("weights", BalancerKind::Weighted)?;
            if let Some((node, w)) = weights.iter().find(|(_, &w)| w > MAX_WEIGHT) {
                return Err(format!(
                    "weights: the weight of `{node}` must be at most {MAX_WEIGHT}, got {w}"
                ));
            }
            params.weights = weights;
        }
        if let Some(n) = raw.choice_count {
            owner("choice_count", BalancerKind::PowerOfTwoChoices)?;
            if n < 2 {
                return Err(format!("choice_count must be at least 2, got {n}"));
            }
            params.choice_count = n;
        }
        if let Some(n) = raw.vnodes {
            owner("vnodes", BalancerKind::ConsistentHash)?;
            if !(1..=MAX_VNODES).contains(&n) {
                return Err(format!(
                    "vnodes must be between 1 and {MAX_VNODES}, got {n}"
                ));
            }
            params.vnodes = n;
        }
        if let Some(c) = raw.bounded_load {
            owner("bounded_load", BalancerKind::ConsistentHash)?;
            if !(c.is_finite() && c >= 1.0) {
                return Err(format!(
                    "bounded_load must be a number of at least 1, got {c}"
                ));
            }
            params.bounded_load = Some(c);
        }
        if let Some(o) = &raw.outlier {
            if o.consecutive_failures == 0 {
                return Err("outlier.consecutive_failures must be at least 1".into());
            }
            if o.base_ejection.0.is_zero() {
                return Err("outlier.base_ejection must be longer than 0".into());
            }
            if o.max_ejection < o.base_ejection {
                return Err(format!(
                    "outlier.max_ejection ({}) must be at least base_ejection ({})",
                    o.max_ejection, o.base_ejection
                ));
            }
            if o.max_ejection_percent > 100 {
                return Err(format!(
                    "outlier.max_ejection_percent must be at most 100, got {}",
                    o.max_ejection_percent
                ));
            }
        }
        if raw.try_timeout.is_some_and(|t| t.0.is_zero()) {
            return Err("`try_timeout` must be more than 0".into());
        }
        if let Some(b) = &raw.retry_budget {
            if !(b.ratio.is_finite() && b.ratio >= 0.0) {
                return Err(format!(
                    "retry_budget.ratio must be a number of at least 0, got {}",
                    b.ratio
                ));
            }
            if b.ttl.0 < Duration::from_millis(10) {
                return Err(format!(
                    "retry_budget.ttl must be at least 10ms, got {}",
                    b.ttl
                ));
            }
        }
        Ok(BalancerCfg {
            kind: raw.kind,
            params,
            health: raw.health,
            max_tries: raw.max_tries,
            connections_per_node: raw.connections_per_node,
            outlier: raw.outlier,
            retry_budget: raw.retry_budget,
            try_timeout: raw.try_timeout,
        })
    }
}

impl From<BalancerCfg> for RawBalancerCfg {
    fn from(cfg: BalancerCfg) -> Self {
        let p = cfg.params;
        let applies = |k: BalancerKind| {
            cfg.kind == k || (cfg.kind == BalancerKind::LeaderAware && p.fallback == k)
        };
        let hash = applies(BalancerKind::ConsistentHash);
        RawBalancerCfg {
            kind: cfg.kind,
            weights: applies(BalancerKind::Weighted).then_some(p.weights),
            choice_count: applies(BalancerKind::PowerOfTwoChoices).then_some(p.choice_count),
            vnodes: hash.then_some(p.vnodes),
            bounded_load: if hash { p.bounded_load } else { None },
            fallback: (cfg.kind == BalancerKind::LeaderAware).then_some(p.fallback),
            health: cfg.health,
            max_tries: cfg.max_tries,
            connections_per_node: cfg.connections_per_node,
            outlier: cfg.outlier,
            retry_budget: cfg.retry_budget,
            try_timeout: cfg.try_timeout,
        }
    }
}

/// Active health checking, over the status call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCfg {
    #[serde(default = "default_health_interval")]
    pub interval: Dur,
    #[serde(default = "default_health_timeout")]
    pub timeout: Dur,
    /// Consecutive failed checks before a node is marked down.
    #[serde(default = "default_unhealthy_after")]
    pub unhealthy_after: u32,
    /// Consecutive good checks before a down node is marked up again.
    #[serde(default = "default_healthy_after")]
    pub healthy_after: u32,
}

fn default_health_interval() -> Dur {
    Dur(Duration::from_millis(100))
}
fn default_health_timeout() -> Dur {
    Dur(Duration::from_millis(50))
}
fn default_unhealthy_after() -> u32 {
    2
}
fn default_healthy_after() -> u32 {
    1
}

impl Default for HealthCfg {
    fn default() -> Self {
        HealthCfg {
            interval: default_health_interval(),
            timeout: default_health_timeout(),
            unhealthy_after: default_unhealthy_after(),
            healthy_after: default_healthy_after(),
        }
    }
}

/// Which nodes a fault hits, resolved when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Leader,
    Follower,
    Random,
    Minority,
    Majority,
    All,
    Node(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Leader => f.write_str("leader"),
            Selector::Follower => f.write_str("follower"),
            Selector::Random => f.write_str("random"),
            Selector::Minority => f.write_str("minority"),
            Selector::Majority => f.write_str("majority"),
            Selector::All => f.write_str("all"),
            Selector::Node(n) => write!(f, "node: {n}"),
        }
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Selector::Node(n) => {
                let mut m = BTreeMap::new();
                m.insert("node", n);
                m.serialize(s)
            }
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Selector;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a node selector: leader (primary), follower (backup), random, minority, \
                     majority, all, a node id such as n2, or {node: n2}",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Selector, E> {
                Ok(match v {
                    "leader" | "primary" => Selector::Leader,
                    "follower" | "backup" => Selector::Follower,
                    "random" => Selector::Random,
                    "minority" => Selector::Minority,
                    "majority" => Selector::Majority,
                    "all" => Selector::All,
                    id if is_node_id(id) => Selector::Node(id.to_string()),
                    other => {
                        return Err(E::custom(format!(
                            "unknown selector `{other}`: expected leader, primary, follower, \
                             backup, random, minority, majority, all, or a node id such as n2"
                        )))
                    }
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Selector, A::Error> {
                let mut node: Option<String> = None;
                while let Some(k) = map.next_key::<String>()? {
                    if k != "node" {
                        return Err(de::Error::unknown_field(&k, &["node"]));
                    }
                    let id: String = map.next_value()?;
                    if !is_node_id(&id) {
                        return Err(de::Error::custom(format!(
                            "`{id}` is not a node id (n1, n2, ...)"
                        )));
                    }
                    node = Some(id);
                }
                node.map(Selector::Node)
                    .ok_or_else(|| de::Error::missing_field("node"))
            }
        }
        d.deserialize_any(V)
    }
}

pub(crate) fn is_node_id(s: &str) -> bool {
    s.len() > 1 && s.starts_with('n') && s[1..].chars().all(|c| c.is_ascii_digit())
}

/// One entry of the fault schedule: when (`at`, or `every` with `from`/`until`), what (exactly
/// one verb with its selector), and for how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawFault")]
pub struct FaultSpec {
    pub when: When,
    pub action: FaultAction,
    /// Whom a process fault hits. For `partition` and `link` it is `all` and unused: their
    /// targets are in `net`.
    pub selector: Selector,
    /// What a `partition` or `link` fault does to the network.
    pub net: Option<NetFault>,
    /// pause: how long the process stays stopped. crash-loop, slow: how long the loop lasts.
    pub duration: Option<Dur>,
    /// kill, terminate, amnesia: restart the node this long after (absent: it stays down until
    /// the end of the load).
    pub restart_after: Option<Dur>,
    /// crash-loop: time between the restart and the next kill. slow: time from the start of
    /// one stop to the start of the next.
    pub period: Option<Dur>,
    /// slow: how long each stop lasts (SIGSTOP, then SIGCONT), once every `period`.
    pub burst: Option<Dur>,
    /// A `one-of` entry's alternatives (the fields above are the first one's); each firing
    /// applies one, chosen from the run's seed when the schedule is expanded. Empty otherwise.
    pub choices: Vec<FaultSpec>,
}

impl FaultSpec {
    /// Every node id this entry, or any of its alternatives, names explicitly.
    pub fn node_ids(&self) -> Vec<&str> {
        std::iter::once(self)
            .chain(&self.choices)
            .flat_map(|f| {
                let mut ids = match &f.selector {
                    Selector::Node(id) => vec![id.as_str()],
                    _ => Vec::new(),
                };
                ids.extend(f.net.iter().flat_map(NetFault::node_ids));
                ids
            })
            .collect()
    }

    /// Whether this entry, or any of its alternatives, acts on the network.
    pub fn touches_network(&self) -> bool {
        self.net.is_some() || self.choices.iter().any(|c| c.net.is_some())
    }

    /// This entry (or one of its `one-of` alternatives) asks for something only the link proxy
    /// does: a delay, or a TCP-level fault.
    pub fn needs_link_proxy(&self) -> bool {
        std::iter::once(self)
            .chain(&self.choices)
            .filter_map(|c| c.net.as_ref())
            .any(|n| n.needs_link_proxy())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// SIGKILL.
    Kill,
    /// SIGTERM (SIGKILL after a grace period).
    Terminate,
    /// SIGSTOP for `duration`, then SIGCONT.
    Pause,
    /// SIGTERM and start again at once.
    Restart,
    /// Kill, restart after `period`, kill again, ... for `duration`.
    CrashLoop,
    /// SIGKILL, wipe the data directory, restart after `restart_after` (default at once).
    Amnesia,
    /// Cut links between nodes along a topology for `duration`.
    Partition,
    /// Degrade (or cut) chosen links for `duration`: delay, jitter, bandwidth, ...
    Link,
    /// Make a node slow without making it dead, for `duration`: SIGSTOP for `burst`, SIGCONT,
    /// once every `period`.
    Slow,
}

impl FaultAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultAction::Kill => "kill",
            FaultAction::Terminate => "terminate",
            FaultAction::Pause => "pause",
            FaultAction::Restart => "restart",
            FaultAction::CrashLoop => "crash-loop",
            FaultAction::Amnesia => "amnesia",
            FaultAction::Partition => "partition",
            FaultAction::Link => "link",
            FaultAction::Slow => "slow",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    At(Dur),
    Every {
        every: Dur,
        from: Dur,
        until: Option<Dur>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFault {
    at: Option<Dur>,
    every: Option<Dur>,
    from: Option<Dur>,
    until: Option<Dur>,
    kill: Option<Selector>,
    terminate: Option<Selector>,
    pause: Option<Selector>,
    restart: Option<Selector>,
    crash_loop: Option<Selector>,
    amnesia: Option<Selector>,
    slow: Option<Selector>,
    partition: Option<Topology>,
    link: Option<LinkSpec>,
    /// partition: `blackhole` (hold bytes, the default) or `reset` (close with RST).
    cut: Option<CutMode>,
    duration: Option<Dur>,
    #[serde(alias = "restart_after")]
    restart_after: Option<Dur>,
    period: Option<Dur>,
    /// slow: how long each stop lasts.
    burst: Option<Dur>,
    /// A seeded mix (Jepsen's combined nemesis): each firing applies one of these, chosen
    /// from the run's seed. They carry their verb and its fields; the timing is this entry's.
    #[serde(alias = "one_of")]
    one_of: Option<Vec<RawFault>>,
}

impl TryFrom<RawFault> for FaultSpec {
    type Error = String;
    fn try_from(mut r: RawFault) -> Result<Self, String> {
        if let Some(alternatives) = r.one_of.take() {
            return one_of(r, alternatives);
        }
        let when = when_of(&r)?;
        let verbs = [
            (FaultAction::Kill, r.kill),
            (FaultAction::Terminate, r.terminate),
            (FaultAction::Pause, r.pause),
            (FaultAction::Restart, r.restart),
            (FaultAction::CrashLoop, r.crash_loop),
            (FaultAction::Amnesia, r.amnesia),
            (FaultAction::Slow, r.slow),
        ];
        let net = match (r.partition, r.link) {
            (Some(_), Some(_)) => {
                return Err(
                    "a fault has one verb, found both `partition` and `link` (use two entries)"
                        .into(),
                )
            }
            (Some(topology), None) => Some(NetFault::Partition {
                topology,
                cut: r.cut.unwrap_or_default(),
            }),
            (None, Some(link)) => {
                if r.cut.is_some() {
                    return Err("`cut` goes inside `link: {...}` for a link fault".into());
                }
                Some(NetFault::Link(link))
            }
            (None, None) => {
                if r.cut.is_some() {
                    return Err("`cut` applies to `partition` only".into());
                }
                None
            }
        };
        let mut chosen = verbs.into_iter().filter_map(|(a, s)| s.map(|s| (a, s)));
        let (action, selector) = match (chosen.next(), &net) {
            (Some(first), None) => first,
            (Some((a, _)), Some(n)) => {
                return Err(format!(
                    "a fault has one verb, found both `{}` and `{}` (use two entries)",
                    a.as_str(),
                    n.action().as_str()
                ))
            }
            (None, Some(n)) => (n.action(), Selector::All),
            (None, None) => {
                return Err(
                    "a fault needs one of kill, terminate, pause, restart, crash-loop, \
                            amnesia, slow, partition, link"
                        .into(),
                )
            }
        };
        if let Some((other, _)) = chosen.next() {
            return Err(format!(
                "a fault has one verb, found both `{}` and `{}` (use two entries)",
                action.as_str(),
                other.as_str()
            ));
        }
        let needs = |field: &str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(format!("`{}` needs `{field}`", action.as_str()))
            }
        };
        let refuse = |field: &str, present: bool| {
            if present {
                Err(format!("`{field}` does not apply to `{}`", action.as_str()))
            } else {
                Ok(())
            }
        };
        if action != FaultAction::Slow {
            refuse("burst", r.burst.is_some())?;
        }
        match action {
            FaultAction::Slow => {
                needs("duration", r.duration.is_some())?;
                needs("burst", r.burst.is_some())?;
                refuse("restart_after", r.restart_after.is_some())?;
                let period = r.period.map_or(DEFAULT_SLOW_PERIOD, |p| p.0);
                let burst = r.burst.map_or(Duration::ZERO, |b| b.0);
                if burst.is_zero() {
                    return Err("`slow` needs a `burst` longer than 0".into());
                }
                if burst >= period {
                    return Err(format!(
                        "`slow`: `burst` ({}) must be shorter than `period` ({}), or the node \
                         is paused, not slow",
                        Dur(burst),
                        Dur(period)
                    ));
                }
            }
            FaultAction::Pause => {
                needs("duration", r.duration.is_some())?;
                refuse("restart_after", r.restart_after.is_some())?;
                refuse("period", r.period.is_some())?;
            }
            FaultAction::CrashLoop => {
                needs("duration", r.duration.is_some())?;
                refuse("restart_after", r.restart_after.is_some())?;
            }
            FaultAction::Kill | FaultAction::Terminate | FaultAction::Amnesia => {
                refuse("duration", r.duration.is_some())?;
                refuse("period", r.period.is_some())?;
            }
            FaultAction::Restart => {
                refuse("duration", r.duration.is_some())?;
                refuse("restart_after", r.restart_after.is_some())?;
                refuse("period", r.period.is_some())?;
            }
            FaultAction::Partition | FaultAction::Link => {
                needs("duration", r.duration.is_some())?;
                refuse("restart_after", r.restart_after.is_some())?;
                refuse("period", r.period.is_some())?;
            }
        }
        Ok(FaultSpec {
            when,
            action,
            selector,
            net,
            duration: r.duration,
            restart_after: r.restart_after,
            period: r.period,
            burst: r.burst,
            choices: Vec::new(),
        })
    }
}

/// `slow` without `period`: one stop every 100 ms.
pub const DEFAULT_SLOW_PERIOD: Duration = Duration::from_millis(100);

/// When a schedule entry fires: `at`, or `every` with `from`/`until`.
fn when_of(r: &RawFault) -> Result<When, String> {
    Ok(match (r.at, r.every) {
        (Some(_), Some(_)) => return Err("a fault has `at` or `every`, not both".into()),
        (None, None) => return Err("a fault needs `at` or `every`".into()),
        (Some(at), None) => {
            if r.from.is_some() || r.until.is_some() {
                return Err("`from` and `until` go with `every`, not `at`".into());
            }
            When::At(at)
        }
        (None, Some(every)) => {
            if every.0 < Duration::from_millis(10) {
                return Err(format!("`every: {every}` is too short (10ms at least)"));
            }
            let from = r.from.unwrap_or(every);
            if let Some(u) = r.until {
                if u < from {
                    return Err(format!("`until: {u}` comes before `from: {from}`"));
                }
            }
            When::Every {
                every,
                from,
                until: r.until,
            }
        }
    })
}

/// A `one-of` entry: the timing is the entry's, each alternative is a whole fault without one.
fn one_of(r: RawFault, alternatives: Vec<RawFault>) -> Result<FaultSpec, String> {
    let when = when_of(&r)?;
    let own = [
        ("kill", r.kill.is_some()),
        ("terminate", r.terminate.is_some()),
        ("pause", r.pause.is_some()),
        ("restart", r.restart.is_some()),
        ("crash-loop", r.crash_loop.is_some()),
        ("amnesia", r.amnesia.is_some()),
        ("slow", r.slow.is_some()),
        ("partition", r.partition.is_some()),
        ("link", r.link.is_some()),
        ("cut", r.cut.is_some()),
        ("duration", r.duration.is_some()),
        ("restart-after", r.restart_after.is_some()),
        ("period", r.period.is_some()),
        ("burst", r.burst.is_some()),
    ];
    if let Some((field, _)) = own.iter().find(|(_, set)| *set) {
        return Err(format!(
            "`{field}` goes inside an alternative of `one-of`, not beside it"
        ));
    }
    if alternatives.is_empty() {
        return Err("`one-of` needs at least one alternative".into());
    }
    let mut choices = Vec::new();
    for (i, mut alt) in alternatives.into_iter().enumerate() {
        if alt.at.is_some() || alt.every.is_some() || alt.from.is_some() || alt.until.is_some() {
            return Err(format!(
                "one-of[{i}]: the timing (`at`, `every`, `from`, `until`) goes on the `one-of` \
                 entry"
            ));
        }
        if alt.one_of.is_some() {
            return Err(format!("one-of[{i}]: `one-of` does not nest"));
        }
        alt.at = Some(Dur(Duration::ZERO));
        let mut spec = FaultSpec::try_from(alt).map_err(|e| format!("one-of[{i}]: {e}"))?;
        spec.when = when;
        choices.push(spec);
    }
    let mut spec = choices[0].clone();
    spec.choices = choices;
    Ok(spec)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    Linearizable,
    LostWrites,
    StaleReads,
    /// At most one node reports itself leader (primary) per term (view), as the observer
    /// sees their status.
    ElectionSafety,
}

/// Service-level objectives; a run that misses one fails (exit 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Minimum overall availability (share of ok operations), 0..=1.
    #[serde(default, deserialize_with = "share")]
    pub availability: Option<f64>,
    /// Maximum p99 of recovery_ms over the run's faults.
    #[serde(default)]
    pub recovery_p99: Option<Dur>,
    /// Maximum number of consistency violations.
    #[serde(default)]
    pub violations: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Valid,
    Invalid,
}

#[cfg(test)]
mod balancer_cfg_tests {
    use super::*;

    fn parse(yaml: &str) -> Result<BalancerCfg, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    /// The forms written before strategies had parameters still parse, to the same defaults.
    #[test]
    fn old_forms_still_parse() {
        for (yaml, kind) in [
            ("{kind: round-robin}", BalancerKind::RoundRobin),
            ("kind: leader-aware", BalancerKind::LeaderAware),
            ("{}", BalancerKind::LeaderAware),
            (
                "{kind: leader-aware, health: {interval: 50ms}, max_tries: 2}",
                BalancerKind::LeaderAware,
            ),
        ] {
            let cfg = parse(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(cfg.kind, kind, "{yaml}");
            assert_eq!(cfg.params, StrategyParams::default(), "{yaml}");
            assert!(cfg.outlier.is_none() && cfg.retry_budget.is_none());
        }
        let d = BalancerCfg::default();
        assert_eq!(
            (d.kind, d.max_tries, d.connections_per_node),
            (BalancerKind::LeaderAware, 3, 2)
        );
    }

    #[test]
    fn every_strategy_parses_with_its_parameters() {
        let cfg = parse("{kind: weighted, weights: {n1: 5, n2: 1}}").unwrap();
        assert_eq!(cfg.params.weights.get("n1"), Some(&5));
        let cfg = parse("{kind: p2c, choice_count: 3}").unwrap();
        assert_eq!(
            (cfg.kind, cfg.params.choice_count),
            (BalancerKind::PowerOfTwoChoices, 3)
        );
        let cfg = parse("{kind: power-of-two-choices}").unwrap();
        assert_eq!(cfg.kind, BalancerKind::PowerOfTwoChoices);
        let cfg = parse("{kind: consistent-hash, vnodes: 40, bounded_load: 1.25}").unwrap();
        assert_eq!(
            (cfg.kind, cfg.params.vnodes, cfg.params.bounded_load),
            (BalancerKind::ConsistentHash, 40, Some(1.25))
        );
        let cfg = parse("{kind: leader-aware, fallback: hash, vnodes: 10}").unwrap();
        assert_eq!(
            (cfg.params.fallback, cfg.params.vnodes),
            (BalancerKind::ConsistentHash, 10)
        );
        for kind in BalancerKind::ALL {
            let cfg = parse(&format!("kind: {}", kind.as_str())).unwrap();
            assert_eq!(cfg.kind, kind);
        }
        let cfg = parse(
            "kind: random\noutlier: {consecutive_failures: 3, base_ejection: 2s, \
             max_ejection_percent: 34}\nretry_budget: {ratio: 0.1}",
        )
        .unwrap();
        let o = cfg.outlier.unwrap();
        assert_eq!(
            (
                o.consecutive_failures,
                o.base_ejection.0.as_secs(),
                o.max_ejection_percent
            ),
            (3, 2, 34)
        );
        assert_eq!(o.max_ejection, OutlierCfg::default().max_ejection);
        let b = cfg.retry_budget.unwrap();
        assert_eq!((b.ratio, b.min_per_sec, b.ttl.0.as_secs()), (0.1, 10, 10));
        assert_eq!(
            parse("outlier: {}").unwrap().outlier,
            Some(OutlierCfg::default())
        );
    }

    /// Unknown keys, parameters of another strategy and out-of-range values are errors that
    /// say what is wrong.
    #[test]
    fn try_timeout_parses_and_round_trips() {
        let cfg: BalancerCfg = serde_yaml::from_str("{try_timeout: 50ms}").unwrap();
        assert_eq!(
            cfg.try_timeout.map(|d| d.0),
            Some(Duration::from_millis(50))
        );
        let back: BalancerCfg =
            serde_yaml::from_str(&serde_yaml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back.try_timeout, cfg.try_timeout);
        let none: BalancerCfg = serde_yaml::from_str("{kind: round-robin}").unwrap();
        assert!(none.try_timeout.is_none());
    }

    #[test]
    fn bad_parameters_are_errors() {
        let cases = [
            ("{kind: round-robin, colour: red}", "unknown field `colour`"),
            (
                "{kind: round-robin, vnodes: 10}",
                "`vnodes` applies to kind `hash`, not `round-robin`",
            ),
            (
                "{kind: hash, weights: {n1: 2}}",
                "`weights` applies to kind `weighted`",
            ),
            (
                "{kind: leader-aware, choice_count: 3}",
                "`choice_count` applies to kind `p2c`",
            ),
            (
                "{kind: random, fallback: hash}",
                "`fallback` applies to kind `leader-aware`",
            ),
            (
                "{kind: leader-aware, fallback: leader-aware}",
                "another strategy",
            ),
            (
                "{kind: p2c, choice_count: 1}",
                "choice_count must be at least 2",
            ),
            (
                "{kind: hash, vnodes: 0}",
                "vnodes must be between 1 and 4096",
            ),
            ("{try_timeout: 0ms}", "`try_timeout` must be more than 0"),
            (
                "{kind: hash, bounded_load: 0.5}",
                "bounded_load must be a number of at least 1",
            ),
            ("{kind: weighted, weights: {n1: 5000}}", "at most 1000"),
            ("{kind: hash-ring}", "unknown variant `hash-ring`"),
            (
                "{outlier: {consecutive_failures: 0}}",
                "consecutive_failures must be at least 1",
            ),
            ("{outlier: {max_ejection_percent: 101}}", "at most 100"),
            (
                "{outlier: {base_ejection: 5s, max_ejection: 1s}}",
                "must be at least base_ejection",
            ),
            ("{outlier: {threshold: 3}}", "unknown field `threshold`"),
            (
                "{retry_budget: {ratio: -1}}",
                "ratio must be a number of at least 0",
            ),
            (
                "{retry_budget: {ratio: 0.2, burst: 3}}",
                "unknown field `burst`",
            ),
        ];
        for (yaml, needle) in cases {
            let err = parse(yaml).expect_err(yaml);
            assert!(err.contains(needle), "{yaml}: `{err}` lacks `{needle}`");
        }
    }

    /// Serialising writes the strategy's own parameters only, and reads back the same.
    #[test]
    fn round_trips_through_yaml() {
        for yaml in [
            "{kind: weighted, weights: {n1: 5, n2: 1}}",
            "{kind: hash, bounded_load: 1.5, outlier: {}, retry_budget: {}}",
            "{kind: leader-aware, fallback: p2c, choice_count: 3}",
            "{kind: least-outstanding}",
        ] {
            let cfg = parse(yaml).unwrap();
            let text = serde_yaml::to_string(&cfg).unwrap();
            let back = parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(serde_yaml::to_string(&back).unwrap(), text);
            assert_eq!((back.kind, &back.params), (cfg.kind, &cfg.params));
        }
        let text = serde_yaml::to_string(&parse("{kind: round-robin}").unwrap()).unwrap();
        assert!(
            !text.contains("vnodes") && !text.contains("fallback"),
            "{text}"
        );
    }
}
