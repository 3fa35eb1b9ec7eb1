//! `workload:` of an experiment: the operations (kind, keys, mix), open or closed loop, the
//! in-flight bound and the per-operation timeout.

use std::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::Dur;

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
