//! Typed `settings:` of the Multi-Paxos node, their defaults and their validation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How reads are served (README.md, "Reads").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    /// A read takes a slot of the log: answered when it is executed in order.
    Log,
    /// Leader lease: answered from the leader's state while a quorum's acknowledgement of a
    /// heartbeat round keeps every acceptor from promising another ballot; through the log
    /// otherwise.
    Lease,
}

/// The node's settings, parsed from `NodeConfig::settings`. Durations are humantime strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Interval of the leader's heartbeats (empty Accept messages carrying the chosen point).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// `[min, max]`: a node that hears no leader for a random time in this range starts phase 1
    /// with a higher ballot (takes over). The same name and meaning as the Raft node's, so one
    /// suite can give both the same timing. YAML: a two-element list of humantime strings.
    #[serde(with = "faultline_replica::duration_pair")]
    pub election_timeout: [Duration; 2],
    /// Most values in one Accept (or catch-up) message.
    pub max_batch: usize,
    /// Executed slots kept before they are folded into a snapshot.
    pub snapshot_threshold: u64,
    pub read: ReadMode,
    /// Margin subtracted from the leader lease for clock rate differences (`read: lease`).
    #[serde(with = "humantime_serde")]
    pub clock_drift: Duration,
    /// Followers forward client requests to the leader instead of answering `not_leader`.
    pub forward: bool,
    /// A write not committed (or a forwarded request not answered) after this long is
    /// answered `timeout` (indefinite).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            heartbeat: Duration::from_millis(50),
            election_timeout: [Duration::from_millis(150), Duration::from_millis(300)],
            max_batch: 512,
            snapshot_threshold: 10_000,
            read: ReadMode::Log,
            clock_drift: Duration::from_millis(10),
            forward: false,
            request_timeout: Duration::from_secs(1),
        }
    }
}

faultline_replica::consensus_settings!(Settings, "paxos", ReadMode::Lease);

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_replica::NodeSettings;

    fn parse(json: &str) -> Result<Settings, String> {
        Settings::from_json(json)
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(parse("{}").unwrap(), Settings::default());
        let s = parse(
            r#"{"heartbeat":"20ms","election_timeout":["100ms","1s"],"read":"lease",
                "forward":true,"max_batch":64,"snapshot_threshold":100,"clock_drift":"5ms"}"#,
        )
        .unwrap();
        assert_eq!(s.heartbeat, Duration::from_millis(20));
        assert_eq!(
            s.election_timeout,
            [Duration::from_millis(100), Duration::from_secs(1)]
        );
        assert_eq!(s.read, ReadMode::Lease);
        assert!(s.forward);
        assert_eq!((s.max_batch, s.snapshot_threshold), (64, 100));
        // Round trip through the serialized form (what the harness writes).
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(parse(&back.to_string()).unwrap(), s);
        assert_eq!(parse(r#"{"read":"lease"}"#).unwrap().read, ReadMode::Lease);
        assert_eq!(parse(r#"{"read":"log"}"#).unwrap().read, ReadMode::Log);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"heartbeet":"20ms"}"#, "heartbeet"),
            (r#"{"heartbeat":"fast"}"#, "settings.heartbeat"),
            (
                r#"{"election_timeout":["150ms"]}"#,
                "settings.election_timeout",
            ),
            (
                r#"{"election_timeout":["150ms","soon"]}"#,
                "settings.election_timeout",
            ),
            (
                r#"{"election_timeout":["300ms","150ms"]}"#,
                "settings.election_timeout",
            ),
            (r#"{"heartbeat":"200ms"}"#, "settings.election_timeout"),
            (r#"{"read":"read-index"}"#, "settings.read"),
            (r#"{"pre_vote":false}"#, "pre_vote"),
            (r#"{"max_batch":0}"#, "settings.max_batch"),
            (r#"{"snapshot_threshold":0}"#, "settings.snapshot_threshold"),
            (
                r#"{"read":"lease","clock_drift":"150ms"}"#,
                "settings.clock_drift",
            ),
            (r#"{"request_timeout":"0s"}"#, "settings.request_timeout"),
        ];
        for (json, field) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.contains(field), "{json}: {err}");
        }
    }
}
