//! `faults:` of an experiment: selectors, process faults and their timing (`at`, `every`), and
//! the seeded mix (`one-of`); the network verbs are in `network.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::{CutMode, Dur, LinkSpec, NetFault, Topology};

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

pub(super) fn is_node_id(s: &str) -> bool {
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
