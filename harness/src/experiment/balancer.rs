//! `balancer:` of an experiment: the strategy and its parameters, health checks, outlier
//! ejection, retries and their budget.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Dur;

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

impl From<&HealthCfg> for crate::cluster::HealthChecks {
    fn from(h: &HealthCfg) -> Self {
        crate::cluster::HealthChecks {
            interval: h.interval.0,
            timeout: h.timeout.0,
            unhealthy_after: h.unhealthy_after,
            healthy_after: h.healthy_after,
        }
    }
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
