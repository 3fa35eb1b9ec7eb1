//! The network-fault part of the experiment schema: partition topologies, link faults and
//! their endpoints, as written in YAML (`partition: isolate-leader`, `link: {from: leader, to:
//! followers, delay: 50ms}`), checked while they are parsed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::{Dur, Selector};

/// A network fault: which links, and what happens to them.
#[derive(Debug, Clone, PartialEq)]
pub enum NetFault {
    Partition { topology: Topology, cut: CutMode },
    Link(LinkSpec),
}

impl NetFault {
    /// Every node id this fault names explicitly (selectors like `leader` name none).
    pub fn node_ids(&self) -> Vec<&str> {
        fn selector(s: &Selector) -> Option<&str> {
            match s {
                Selector::Node(id) => Some(id),
                _ => None,
            }
        }
        fn endpoint(e: &Endpoint) -> Vec<&str> {
            match e {
                Endpoint::Nodes(s) => selector(s).into_iter().collect(),
                Endpoint::List(ids) => ids.iter().map(String::as_str).collect(),
                Endpoint::Followers | Endpoint::Others | Endpoint::Clients => Vec::new(),
            }
        }
        match self {
            NetFault::Partition { topology, .. } => match topology {
                Topology::Isolate { who, .. } => selector(who).into_iter().collect(),
                Topology::Groups(groups) => groups.iter().flatten().map(String::as_str).collect(),
                Topology::Grudge(g) => g
                    .iter()
                    .flat_map(|(k, v)| std::iter::once(k).chain(v))
                    .map(String::as_str)
                    .collect(),
                Topology::Halves
                | Topology::RandomHalves
                | Topology::LeaderMinority
                | Topology::Bridge
                | Topology::MajoritiesRing => Vec::new(),
            },
            NetFault::Link(l) => {
                let mut ids = endpoint(&l.from);
                ids.extend(endpoint(&l.to));
                ids
            }
        }
    }

    pub fn action(&self) -> super::FaultAction {
        match self {
            NetFault::Partition { .. } => super::FaultAction::Partition,
            NetFault::Link(_) => super::FaultAction::Link,
        }
    }

    /// A delay or a TCP-level fault (slicer, limit-data, reset-after, slow-close): what only a
    /// link proxy can do. In `netns` mode, such a fault puts proxies on the links.
    pub fn needs_link_proxy(&self) -> bool {
        matches!(self, NetFault::Link(l) if l.delay.is_some()
            || l.slice.is_some()
            || l.limit_data.is_some()
            || l.reset_after.is_some()
            || l.slow_close.is_some())
    }

    /// Whether this fault, in `mode`, needs link proxies between two nodes (not only between
    /// the clients and the nodes): a partition or node-to-node link fault in `proxy` mode, a
    /// delay or TCP-level fault on node links in `netns` mode.
    pub fn node_links_need_proxy(&self, mode: super::NetworkMode) -> bool {
        let node_link = |l: &LinkSpec| l.from != Endpoint::Clients && l.to != Endpoint::Clients;
        match (self, mode) {
            (NetFault::Partition { .. }, super::NetworkMode::Proxy) => true,
            (NetFault::Link(l), super::NetworkMode::Proxy) => node_link(l),
            (NetFault::Link(l), super::NetworkMode::Netns) => {
                node_link(l) && self.needs_link_proxy()
            }
            _ => false,
        }
    }

    /// The part of this fault that `mode` cannot do, with the reason, if any.
    pub fn unsupported_in(&self, mode: super::NetworkMode) -> Option<String> {
        match (self, mode) {
            (NetFault::Link(l), super::NetworkMode::Proxy) if l.loss.is_some() => Some(
                "`loss` drops packets, which only `network: {mode: netns}` can do (the link \
                 proxy relays a TCP byte stream)"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

/// How a cut link behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CutMode {
    /// Bytes are held, as by a network that drops every packet: nothing arrives, connections
    /// stay open, and TCP delivers what was held once the link heals.
    #[default]
    Blackhole,
    /// Every connection on the link is closed with a TCP RST, and new ones are reset at once.
    Reset,
}

/// Which way traffic is cut when a node is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// The node hears nothing from the others (it can still send).
    In,
    /// Nothing the node sends arrives (it still hears the others).
    Out,
    #[default]
    Both,
}

/// A partition topology (Jepsen's nemesis partitions), resolved when the fault fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Topology {
    /// Cut one or more nodes (a selector) off from the rest, in one or both directions.
    Isolate { who: Selector, direction: Direction },
    /// Nodes in id order split in two: the first floor(n/2) against the rest.
    Halves,
    /// Like `halves`, with the nodes shuffled first.
    RandomHalves,
    /// The leader and floor((n-1)/2) - 1 random others (a minority holding the leader) against
    /// the majority: what exposes leases without margin and reads without quorum.
    LeaderMinority,
    /// Two halves joined by one node that sees both sides (shuffled): n nodes, n odd.
    Bridge,
    /// Every node sees a majority (itself and its floor(n/2) nearest neighbours on a shuffled
    /// ring), and no two nodes see the same majority.
    MajoritiesRing,
    /// Explicit groups: nodes in different groups cannot talk; nodes in no group talk to all.
    Groups(Vec<Vec<String>>),
    /// Jepsen's grudge: each key stops hearing from every node in its list (one-way; list both
    /// ways for a symmetric cut).
    Grudge(BTreeMap<String, Vec<String>>),
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topology::Isolate {
                who,
                direction: Direction::Both,
            } => write!(f, "isolate {who}"),
            Topology::Isolate { who, direction } => {
                let d = match direction {
                    Direction::In => "inbound",
                    _ => "outbound",
                };
                write!(f, "isolate {who} ({d})")
            }
            Topology::Halves => f.write_str("halves"),
            Topology::RandomHalves => f.write_str("random-halves"),
            Topology::LeaderMinority => f.write_str("leader-minority"),
            Topology::Bridge => f.write_str("bridge"),
            Topology::MajoritiesRing => f.write_str("majorities-ring"),
            Topology::Groups(g) => {
                let parts: Vec<String> = g.iter().map(|g| g.join(",")).collect();
                write!(f, "groups {}", parts.join(" | "))
            }
            Topology::Grudge(g) => {
                let parts: Vec<String> = g
                    .iter()
                    .map(|(k, v)| format!("{k} ignores {}", v.join(",")))
                    .collect();
                write!(f, "grudge {}", parts.join("; "))
            }
        }
    }
}

const TOPOLOGIES: &str = "isolate-leader (isolate-primary), isolate-follower (isolate-backup), \
     isolate-random, halves, random-halves, leader-minority, bridge, majorities-ring, \
     {isolate: <selector>, direction: in|out|both}, {groups: [[n1], [n2, n3]]}, \
     {grudge: {n1: [n2, n3]}}";

fn check_id<E: de::Error>(id: &str) -> Result<(), E> {
    if super::faults::is_node_id(id) {
        Ok(())
    } else {
        Err(E::custom(format!("`{id}` is not a node id (n1, n2, ...)")))
    }
}

impl<'de> Deserialize<'de> for Topology {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Topology;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a partition topology: {TOPOLOGIES}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Topology, E> {
                let iso = |who| Topology::Isolate {
                    who,
                    direction: Direction::Both,
                };
                Ok(match v {
                    "isolate-leader" | "isolate-primary" => iso(Selector::Leader),
                    "isolate-follower" | "isolate-backup" => iso(Selector::Follower),
                    "isolate-random" => iso(Selector::Random),
                    "halves" => Topology::Halves,
                    "random-halves" => Topology::RandomHalves,
                    "leader-minority" | "primary-minority" => Topology::LeaderMinority,
                    "bridge" => Topology::Bridge,
                    "majorities-ring" => Topology::MajoritiesRing,
                    other => {
                        return Err(E::custom(format!(
                            "unknown partition `{other}`: expected {TOPOLOGIES}"
                        )))
                    }
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Topology, A::Error> {
                let mut isolate: Option<Selector> = None;
                let mut direction: Option<Direction> = None;
                let mut groups: Option<Vec<Vec<String>>> = None;
                let mut grudge: Option<BTreeMap<String, Vec<String>>> = None;
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "isolate" => isolate = Some(map.next_value()?),
                        "direction" => direction = Some(map.next_value()?),
                        "groups" => {
                            let g: Vec<Vec<String>> = map.next_value()?;
                            for id in g.iter().flatten() {
                                check_id(id)?;
                            }
                            groups = Some(g);
                        }
                        "grudge" => {
                            let g: BTreeMap<String, Vec<String>> = map.next_value()?;
                            for (k, v) in &g {
                                check_id(k)?;
                                for id in v {
                                    check_id(id)?;
                                }
                            }
                            grudge = Some(g);
                        }
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["isolate", "direction", "groups", "grudge"],
                            ))
                        }
                    }
                }
                match (isolate, groups, grudge) {
                    (Some(who), None, None) => Ok(Topology::Isolate {
                        who,
                        direction: direction.unwrap_or_default(),
                    }),
                    (None, Some(g), None) if direction.is_none() => {
                        if g.iter().filter(|g| !g.is_empty()).count() < 2 {
                            return Err(de::Error::custom("`groups` needs two non-empty groups"));
                        }
                        Ok(Topology::Groups(g))
                    }
                    (None, None, Some(g)) if direction.is_none() => {
                        if g.values().all(|v| v.is_empty()) {
                            return Err(de::Error::custom("`grudge` names no node to ignore"));
                        }
                        Ok(Topology::Grudge(g))
                    }
                    (None, None, None) => Err(de::Error::custom(format!(
                        "a partition map needs one of isolate, groups, grudge: {TOPOLOGIES}"
                    ))),
                    _ if direction.is_some() => Err(de::Error::custom(
                        "`direction` goes with `isolate` only (a grudge is one-way already)",
                    )),
                    _ => Err(de::Error::custom(
                        "a partition map has one of isolate, groups, grudge",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Topology {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One end of a link fault, resolved when the fault fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// Nodes picked by a selector (`leader`, `random`, `n2`, `minority`, ...).
    Nodes(Selector),
    /// Every node but the leader.
    Followers,
    /// Every node but the one on the other end of each flow (`to: others`).
    Others,
    /// Explicit node ids.
    List(Vec<String>),
    /// The harness's clients (load, health checks and the observer).
    Clients,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Nodes(s) => write!(f, "{s}"),
            Endpoint::Followers => f.write_str("followers"),
            Endpoint::Others => f.write_str("others"),
            Endpoint::List(l) => f.write_str(&l.join(",")),
            Endpoint::Clients => f.write_str("clients"),
        }
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Endpoint;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a link end: leader (primary), followers (backups), others, clients, a \
                     node selector (follower, random, minority, majority, all, n2), or a list \
                     of node ids",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Endpoint, E> {
                Ok(match v {
                    "followers" | "backups" => Endpoint::Followers,
                    "others" => Endpoint::Others,
                    "clients" | "client" => Endpoint::Clients,
                    _ => Endpoint::Nodes(Selector::deserialize(
                        de::value::StrDeserializer::<E>::new(v),
                    )?),
                })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Endpoint, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element::<String>()? {
                    check_id(&id)?;
                    ids.push(id);
                }
                if ids.is_empty() {
                    return Err(de::Error::custom("an empty list of nodes"));
                }
                Ok(Endpoint::List(ids))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A bandwidth in bytes per second (`1mbit/s`, `500kb/s`, `125000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth(pub u64);

impl<'de> Deserialize<'de> for Bandwidth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Bandwidth;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a bandwidth: bytes per second, or `1mbit/s`, `512kbit/s`, `2mb/s`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bandwidth, E> {
                if v == 0 {
                    return Err(E::custom("a bandwidth of 0 is a cut: use `cut: blackhole`"));
                }
                Ok(Bandwidth(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bandwidth, E> {
                if v <= 0 {
                    return Err(E::custom(format!("bandwidth must be positive, got {v}")));
                }
                self.visit_u64(v as u64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bandwidth, E> {
                parse_bandwidth(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parse `1mbit/s`, `512kbit/s`, `2mb/s`, `100b/s` (SI prefixes; `bit` means bits, `b`
/// bytes) into bytes per second.
pub fn parse_bandwidth(v: &str) -> Result<Bandwidth, String> {
    let t = v.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{v}` is not a bandwidth (try `1mbit/s` or `500kb/s`)"))?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("/s")
        .or(unit.strip_suffix("ps"))
        .unwrap_or(unit);
    let (prefix, per) = if let Some(p) = unit.strip_suffix("bit") {
        (p, 1.0 / 8.0)
    } else if let Some(p) = unit.strip_suffix('b') {
        (p, 1.0)
    } else if unit.is_empty() {
        ("", 1.0)
    } else {
        return Err(format!(
            "`{v}`: unknown bandwidth unit (bit/s, kbit/s, mbit/s, gbit/s, b/s, kb/s, mb/s, gb/s)"
        ));
    };
    let mult = match prefix {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        other => return Err(format!("`{v}`: unknown prefix `{other}` (k, m, g)")),
    };
    let bytes = (n * mult * per).round();
    if bytes < 1.0 {
        return Err(format!("`{v}` is below one byte per second"));
    }
    Ok(Bandwidth(bytes as u64))
}

impl Serialize for Bandwidth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// Toxiproxy's slicer: chunks split into pieces of about `avg_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceSpec {
    pub avg_size: usize,
    #[serde(default)]
    pub size_variation: usize,
    /// Pause between pieces.
    #[serde(default = "zero")]
    pub delay: Dur,
}

fn zero() -> Dur {
    Dur(Duration::ZERO)
}

/// A link fault: links from `from` to `to` (bytes flowing that way), and what they suffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawLink")]
pub struct LinkSpec {
    pub from: Endpoint,
    pub to: Endpoint,
    /// The same fault on the way back too.
    pub both: bool,
    pub cut: Option<CutMode>,
    pub delay: Option<Dur>,
    pub jitter: Option<Dur>,
    pub bandwidth: Option<Bandwidth>,
    pub slice: Option<SliceSpec>,
    pub limit_data: Option<u64>,
    pub reset_after: Option<Dur>,
    pub slow_close: Option<Dur>,
    /// Percent of packets dropped at random (`network: {mode: netns}` only).
    pub loss: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLink {
    from: Endpoint,
    to: Endpoint,
    #[serde(default)]
    both: bool,
    cut: Option<CutMode>,
    delay: Option<Dur>,
    jitter: Option<Dur>,
    bandwidth: Option<Bandwidth>,
    slice: Option<SliceSpec>,
    #[serde(alias = "limit_data")]
    limit_data: Option<u64>,
    #[serde(alias = "reset_after")]
    reset_after: Option<Dur>,
    #[serde(alias = "slow_close")]
    slow_close: Option<Dur>,
    loss: Option<Percent>,
}

/// A percentage: `10%`, or a bare number meaning percent.
#[derive(Debug, Clone, Copy)]
struct Percent(f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        let v = match Raw::deserialize(d)? {
            Raw::N(n) => n,
            Raw::S(s) => s
                .trim()
                .trim_end_matches('%')
                .trim()
                .parse::<f64>()
                .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a percentage")))?,
        };
        if !(v > 0.0 && v <= 100.0) {
            return Err(serde::de::Error::custom(format!(
                "loss {v}% is outside (0, 100]"
            )));
        }
        Ok(Percent(v))
    }
}

impl TryFrom<RawLink> for LinkSpec {
    type Error = String;
    fn try_from(r: RawLink) -> Result<Self, String> {
        if r.from == Endpoint::Others {
            return Err("`others` is for `to` (the nodes not on the `from` end)".into());
        }
        if r.from == Endpoint::Clients && r.to == Endpoint::Clients {
            return Err("a link joins clients to nodes, not clients to clients".into());
        }
        if r.jitter.is_some() && r.delay.is_none() {
            return Err("`jitter` needs `delay`".into());
        }
        if r.slice.is_some_and(|s| s.avg_size == 0) {
            return Err("`slice.avg_size` must be at least 1".into());
        }
        if r.limit_data == Some(0) {
            return Err("`limit-data: 0` closes at once: use `cut: reset`".into());
        }
        let l = LinkSpec {
            from: r.from,
            to: r.to,
            both: r.both,
            cut: r.cut,
            delay: r.delay,
            jitter: r.jitter,
            bandwidth: r.bandwidth,
            slice: r.slice,
            limit_data: r.limit_data,
            reset_after: r.reset_after,
            slow_close: r.slow_close,
            loss: r.loss.map(|p| p.0),
        };
        if l.cut.is_none()
            && l.delay.is_none()
            && l.bandwidth.is_none()
            && l.slice.is_none()
            && l.limit_data.is_none()
            && l.reset_after.is_none()
            && l.slow_close.is_none()
            && l.loss.is_none()
        {
            return Err(
                "a link fault needs one of cut, delay, bandwidth, slice, limit-data, \
                        reset-after, slow-close, loss"
                    .into(),
            );
        }
        Ok(l)
    }
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = if self.both { "<->" } else { "->" };
        write!(f, "{} {arrow} {}:", self.from, self.to)?;
        if let Some(c) = self.cut {
            write!(
                f,
                " cut {}",
                if c == CutMode::Reset {
                    "reset"
                } else {
                    "blackhole"
                }
            )?;
        }
        if let Some(d) = self.delay {
            write!(f, " delay {d}")?;
        }
        if let Some(j) = self.jitter {
            write!(f, " ±{j}")?;
        }
        if let Some(b) = self.bandwidth {
            write!(f, " bandwidth {} B/s", b.0)?;
        }
        if let Some(s) = self.slice {
            write!(f, " slice {}B", s.avg_size)?;
        }
        if let Some(n) = self.limit_data {
            write!(f, " limit {n}B")?;
        }
        if let Some(d) = self.reset_after {
            write!(f, " reset after {d}")?;
        }
        if let Some(d) = self.slow_close {
            write!(f, " slow close {d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_units() {
        assert_eq!(parse_bandwidth("1mbit/s").unwrap().0, 125_000);
        assert_eq!(parse_bandwidth("8kbit/s").unwrap().0, 1_000);
        assert_eq!(parse_bandwidth("2mb/s").unwrap().0, 2_000_000);
        assert_eq!(parse_bandwidth("100").unwrap().0, 100);
        assert!(parse_bandwidth("1 parsec").is_err());
        assert!(parse_bandwidth("fast").is_err());
        assert!(parse_bandwidth("1bit/s").is_err());
    }

    #[test]
    fn topologies_parse_from_strings_and_maps() {
        let t: Topology = serde_yaml::from_str("isolate-primary").unwrap();
        assert_eq!(
            t,
            Topology::Isolate {
                who: Selector::Leader,
                direction: Direction::Both
            }
        );
        let t: Topology = serde_yaml::from_str("{isolate: n2, direction: in}").unwrap();
        assert_eq!(
            t,
            Topology::Isolate {
                who: Selector::Node("n2".into()),
                direction: Direction::In
            }
        );
        let t: Topology = serde_yaml::from_str("{grudge: {n1: [n2, n3]}}").unwrap();
        assert!(matches!(t, Topology::Grudge(g) if g["n1"] == ["n2", "n3"]));
        assert!(serde_yaml::from_str::<Topology>("{grudge: {n1: [x]}}").is_err());
        assert!(serde_yaml::from_str::<Topology>("{groups: [[n1]]}").is_err());
        assert!(serde_yaml::from_str::<Topology>("{grudge: {n1: [n2]}, direction: in}").is_err());
        assert!(serde_yaml::from_str::<Topology>("triangles").is_err());
    }

    #[test]
    fn link_specs_need_an_effect_and_valid_ends() {
        let l: LinkSpec =
            serde_yaml::from_str("{from: leader, to: followers, delay: 50ms, jitter: 5ms}")
                .unwrap();
        assert_eq!(l.from, Endpoint::Nodes(Selector::Leader));
        assert_eq!(l.to, Endpoint::Followers);
        assert!(serde_yaml::from_str::<LinkSpec>("{from: leader, to: followers}").is_err());
        assert!(serde_yaml::from_str::<LinkSpec>("{from: others, to: n1, delay: 1ms}").is_err());
        assert!(
            serde_yaml::from_str::<LinkSpec>("{from: n1, to: n2, jitter: 1ms}").is_err(),
            "jitter without delay"
        );
        let l: LinkSpec =
            serde_yaml::from_str("{from: clients, to: [n1, n2], bandwidth: 1mbit/s}").unwrap();
        assert_eq!(l.bandwidth, Some(Bandwidth(125_000)));
    }
}
