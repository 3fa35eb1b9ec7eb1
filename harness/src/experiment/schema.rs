//! The experiment's top level (README.md, "Experiments"; ARCHITECTURE.md, section 2): name,
//! seed, duration, checks, SLOs and the expected verdict, and durations (`Dur`). Each section has
//! its own file: `target.rs`, `workload.rs`, `balancer.rs`, `faults.rs`, `network.rs`. Unknown
//! fields are errors everywhere, and every value is checked while it is parsed, so an error
//! carries the location of the offending node.

use std::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::{Backend, BalancerCfg, FaultSpec, NetworkCfg, Target, Workload};

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

/// A check a run's history goes through (`checks:`).
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
