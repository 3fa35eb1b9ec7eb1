//! What every node's `settings:` parsing shares: errors that name the offending field, the
//! [`NodeSettings`] trait (parse, validate, tick), the checks and tick the consensus nodes
//! share ([`consensus_settings!`](crate::consensus_settings)), and the `[min, max]` duration
//! pair of timeout ranges.

use std::time::Duration;

use serde::de::DeserializeOwned;

/// Parse a node's `settings:` map into `T` (its defaults fill what is missing). On an error,
/// the message names the field: each field is re-parsed alone to find the one that fails.
/// `kind` names the node kind when no single field is to blame.
pub fn parse_settings<T: DeserializeOwned>(
    map: &serde_json::Map<String, serde_json::Value>,
    kind: &str,
) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::Object(map.clone())).map_err(|e| {
        let field = map.iter().find(|(k, v)| {
            let mut one = serde_json::Map::new();
            one.insert((*k).clone(), (*v).clone());
            serde_json::from_value::<T>(serde_json::Value::Object(one)).is_err()
        });
        match field {
            Some((k, _)) => format!("settings.{k}: {e}"),
            None => format!("invalid {kind} settings: {e}"),
        }
    })
}

/// A reference node's `settings:`: parsed with the defaults filling what is missing, then
/// checked across fields.
pub trait NodeSettings: DeserializeOwned {
    /// The node kind, named in an error no single field is to blame for.
    const KIND: &'static str;

    /// Checks across fields; the error names the offending field.
    fn validate(&self) -> Result<(), String>;

    /// Interval of the core's ticks: its timeouts fire late by up to one.
    fn tick(&self) -> Duration;

    /// Parse and validate; the error names the offending field.
    fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let settings: Self = parse_settings(map, Self::KIND)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Parse and validate a JSON object (as `from_map`).
    fn from_json(json: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let map = v.as_object().ok_or("settings must be a JSON object")?;
        Self::from_map(map)
    }
}

/// Defines the settings struct of a consensus node (Raft, Multi-Paxos): the fields of
/// [`ConsensusSettings`] (their defaults in [`ConsensusSettings::DEFAULT`]) and the protocol's
/// own `$field: $ty = $default`, among them `read` (`$lease`: its lease mode); they parse with
/// [`NodeSettings`] (durations as humantime strings, unknown fields refused), validate as
/// [`ConsensusSettings::validate`] does, and tick every [`consensus_tick`]. The invoking crate
/// depends on `serde` and `humantime_serde`.
#[macro_export]
macro_rules! consensus_settings {
    (
        kind = $kind:literal;
        lease = $lease:path;
        $(#[$meta:meta])*
        pub struct $settings:ident {
            $($(#[$fmeta:meta])* pub $field:ident: $ty:ty = $default:expr,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $settings {
            /// Interval of the leader's heartbeats (replication messages, empty when there is
            /// nothing to replicate).
            #[serde(with = "humantime_serde")]
            pub heartbeat: std::time::Duration,
            /// `[min, max]`: a node that hears no leader for a random time in this range tries
            /// to become leader (a Raft election, a Paxos takeover with a higher ballot). YAML:
            /// a two-element list of humantime strings.
            #[serde(with = "faultline_replica::duration_pair")]
            pub election_timeout: [std::time::Duration; 2],
            /// Most entries (values) in one replication message.
            pub max_batch: usize,
            /// Applied entries (executed slots) kept before they are folded into a snapshot.
            pub snapshot_threshold: u64,
            /// Margin subtracted from the leader lease for clock rate differences (`read:
            /// lease`).
            #[serde(with = "humantime_serde")]
            pub clock_drift: std::time::Duration,
            /// Followers forward client requests to the leader instead of answering
            /// `not_leader`.
            pub forward: bool,
            /// A write not committed (or a forwarded request not answered) after this long is
            /// answered `timeout` (indefinite).
            #[serde(with = "humantime_serde")]
            pub request_timeout: std::time::Duration,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $crate::settings::NodeSettings for $settings {
            const KIND: &'static str = $kind;

            fn validate(&self) -> Result<(), String> {
                $crate::settings::AsConsensus::consensus(self).validate()
            }

            fn tick(&self) -> std::time::Duration {
                $crate::settings::consensus_tick(self.heartbeat)
            }
        }

        impl $crate::settings::AsConsensus for $settings {
            fn consensus(&self) -> $crate::settings::ConsensusSettings {
                $crate::settings::ConsensusSettings {
                    heartbeat: self.heartbeat,
                    election_timeout: self.election_timeout,
                    max_batch: self.max_batch,
                    snapshot_threshold: self.snapshot_threshold,
                    request_timeout: self.request_timeout,
                    lease: self.read == $lease,
                    clock_drift: self.clock_drift,
                    forward: self.forward,
                }
            }
        }

        impl Default for $settings {
            fn default() -> Self {
                let d = $crate::settings::ConsensusSettings::DEFAULT;
                $settings {
                    heartbeat: d.heartbeat,
                    election_timeout: d.election_timeout,
                    max_batch: d.max_batch,
                    snapshot_threshold: d.snapshot_threshold,
                    request_timeout: d.request_timeout,
                    clock_drift: d.clock_drift,
                    forward: d.forward,
                    $($field: $default,)*
                }
            }
        }
    };
}

/// Settings that hold the fields of [`ConsensusSettings`].
pub trait AsConsensus {
    fn consensus(&self) -> ConsensusSettings;
}

/// The tick of a consensus node: timeouts fire on a tick, so they run late by up to one; keep
/// it at 2 ms or less so the election timeout range is what the settings say.
pub fn consensus_tick(heartbeat: Duration) -> Duration {
    (heartbeat / 25).clamp(Duration::from_millis(1), Duration::from_millis(2))
}

/// The settings a consensus node (Raft, Multi-Paxos) shares, as its `validate` sees them.
#[derive(Debug, Clone, Copy)]
pub struct ConsensusSettings {
    pub heartbeat: Duration,
    pub election_timeout: [Duration; 2],
    pub max_batch: usize,
    pub snapshot_threshold: u64,
    pub request_timeout: Duration,
    /// `read: lease` is set (then `clock_drift` must fit in the minimum timeout).
    pub lease: bool,
    pub clock_drift: Duration,
    /// Followers forward client requests to the leader.
    pub forward: bool,
}

impl ConsensusSettings {
    /// The defaults of a consensus node (`lease`: its read mode's, `false` here).
    pub const DEFAULT: ConsensusSettings = ConsensusSettings {
        heartbeat: Duration::from_millis(50),
        election_timeout: [Duration::from_millis(150), Duration::from_millis(300)],
        max_batch: 512,
        snapshot_threshold: 10_000,
        request_timeout: Duration::from_secs(1),
        lease: false,
        clock_drift: Duration::from_millis(10),
        forward: false,
    };

    /// Check what the node kinds share; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let [min, max] = self.election_timeout;
        nonzero("heartbeat", self.heartbeat)?;
        let min_name = "settings.election_timeout: the minimum";
        longer((min_name, min), ("settings.heartbeat", self.heartbeat))?;
        if max < min {
            return Err(format!(
                "settings.election_timeout: the maximum ({}) must not be below the minimum ({})",
                show(max),
                show(min)
            ));
        }
        if self.max_batch == 0 {
            return Err("settings.max_batch must be at least 1".into());
        }
        if self.snapshot_threshold == 0 {
            return Err("settings.snapshot_threshold must be at least 1".into());
        }
        nonzero("request_timeout", self.request_timeout)?;
        if self.lease && self.clock_drift >= min {
            return Err(format!(
                "settings.clock_drift ({}) must be shorter than the minimum settings.election_timeout ({}) with read: lease",
                show(self.clock_drift),
                show(min)
            ));
        }
        Ok(())
    }
}

/// A duration as settings write it (`150ms`).
fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The duration setting `field` must be greater than 0.
pub fn nonzero(field: &str, d: Duration) -> Result<(), String> {
    match d.is_zero() {
        true => Err(format!("settings.{field} must be greater than 0")),
        false => Ok(()),
    }
}

/// `(name, duration)`: the first must be longer than the second.
pub fn longer(long: (&str, Duration), short: (&str, Duration)) -> Result<(), String> {
    match long.1 > short.1 {
        true => Ok(()),
        false => Err(format!(
            "{} ({}) must be longer than {} ({})",
            long.0,
            show(long.1),
            short.0,
            show(short.1)
        )),
    }
}

/// `(name, duration)`: the first must be shorter than the second.
pub fn shorter(short: (&str, Duration), long: (&str, Duration)) -> Result<(), String> {
    match short.1 < long.1 {
        true => Ok(()),
        false => Err(format!(
            "{} ({}) must be shorter than {} ({})",
            short.0,
            show(short.1),
            long.0,
            show(long.1)
        )),
    }
}

/// `#[serde(with = "duration_pair")]` for `[Duration; 2]`: YAML/JSON a two-element list of
/// humantime strings (`[150ms, 300ms]`).
pub mod duration_pair {
    use std::time::Duration;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[Duration; 2], s: S) -> Result<S::Ok, S::Error> {
        let texts: Vec<String> = v
            .iter()
            .map(|d| humantime::format_duration(*d).to_string())
            .collect();
        texts.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[Duration; 2], D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        if texts.len() != 2 {
            return Err(D::Error::custom(format!(
                "expected a list of two durations [min, max], got {} element(s)",
                texts.len()
            )));
        }
        let parse = |t: &str| {
            humantime::parse_duration(t).map_err(|e| D::Error::custom(format!("{t:?}: {e}")))
        };
        Ok([parse(&texts[0])?, parse(&texts[1])?])
    }
}
