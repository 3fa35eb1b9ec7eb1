//! The experiment schema (DESIGN.md section 4). Unknown fields are errors everywhere, and every
//! value is checked while it is parsed, so an error carries the location of the offending node.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::network::{CutMode, LinkSpec, NetFault, Topology};

/// One experiment, with one seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
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
        let (validate, known_bugs) = raw.kind.node_checks();
        validate(&raw.settings).map_err(|e| format!("settings for {}: {e}", raw.kind.as_str()))?;
        for bug in &raw.bugs {
            if !known_bugs.contains(&bug.as_str()) {
                return Err(format!(
                    "unknown bug `{bug}` for {} (known: {})",
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

/// Target kinds that this build can run. More (paxos, etcd, redis-sentinel, command) arrive
/// with their issues; naming one of them is an error until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    PrimaryBackup,
    Raft,
}

/// Checks a node kind's `settings:` map; the error names the field.
pub type SettingsCheck = fn(&serde_json::Map<String, serde_json::Value>) -> Result<(), String>;

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::PrimaryBackup => "primary-backup",
            TargetKind::Raft => "raft",
        }
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
/// injected without root; `direct` lets nodes dial each other's loopback ports (no network
/// faults possible, one hop less).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    Direct,
    #[default]
    Proxy,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Direct => "direct",
            NetworkMode::Proxy => "proxy",
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
            (Some(r), None) => Load::Open { rate: r },
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
                return Err(format!("mix.{name} must be between 0 and 1, got {v}"));
            }
        }
        let total = mix.read + mix.write + mix.cas;
        if (total - 1.0).abs() > 1e-6 {
            return Err(format!(
                "mix must add up to 1 (read + write + cas = {total})"
            ));
        }
        if raw.kind == WorkloadKind::Register && mix.cas > 0.0 {
            return Err("mix.cas needs `kind: cas-register`".into());
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

/// Open loop at a fixed arrival rate, or closed loop with N clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    Open { rate: Rate },
    Closed { concurrency: u32 },
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

/// How clients choose a node for each operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancerCfg {
    #[serde(default)]
    pub kind: BalancerKind,
    #[serde(default)]
    pub health: HealthCfg,
    /// Tries per operation (first try included); retries happen only after definite failures.
    #[serde(default = "default_tries")]
    pub max_tries: u32,
    /// Connections kept open to each node, shared by all clients.
    #[serde(default = "default_pool")]
    pub connections_per_node: u32,
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
            health: HealthCfg::default(),
            max_tries: default_tries(),
            connections_per_node: default_pool(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BalancerKind {
    RoundRobin,
    /// Sends to the node believed to lead (from status and `not_leader` hints), round-robin
    /// among healthy nodes when no leader is known.
    #[default]
    LeaderAware,
}

impl BalancerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BalancerKind::RoundRobin => "round-robin",
            BalancerKind::LeaderAware => "leader-aware",
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
    /// pause: how long the process stays stopped. crash-loop: how long the loop lasts.
    pub duration: Option<Dur>,
    /// kill, terminate, amnesia: restart the node this long after (absent: it stays down until
    /// the end of the load).
    pub restart_after: Option<Dur>,
    /// crash-loop: time between the restart and the next kill.
    pub period: Option<Dur>,
    /// A `one-of` entry's alternatives (the fields above are the first one's); each firing
    /// applies one, chosen from the run's seed when the schedule is expanded. Empty otherwise.
    pub choices: Vec<FaultSpec>,
}

impl FaultSpec {
    /// Whether this entry, or any of its alternatives, acts on the network.
    pub fn touches_network(&self) -> bool {
        self.net.is_some() || self.choices.iter().any(|c| c.net.is_some())
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
    partition: Option<Topology>,
    link: Option<LinkSpec>,
    /// partition: `blackhole` (hold bytes, the default) or `reset` (close with RST).
    cut: Option<CutMode>,
    duration: Option<Dur>,
    #[serde(alias = "restart_after")]
    restart_after: Option<Dur>,
    period: Option<Dur>,
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
                            amnesia, partition, link"
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
        match action {
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
            choices: Vec::new(),
        })
    }
}

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
        ("partition", r.partition.is_some()),
        ("link", r.link.is_some()),
        ("cut", r.cut.is_some()),
        ("duration", r.duration.is_some()),
        ("restart-after", r.restart_after.is_some()),
        ("period", r.period.is_some()),
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
    #[serde(default)]
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
