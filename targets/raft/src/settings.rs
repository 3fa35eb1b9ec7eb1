//! Typed `settings:` of the Raft node, their defaults and their validation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How reads are served (README.md, "Reads").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    /// A read is a log entry: answered when it is applied.
    Log,
    /// ReadIndex (thesis §6.4): the leader notes its commit index, confirms it still leads
    /// with one heartbeat round acknowledged by a quorum, and answers once applied that far.
    ReadIndex,
    /// Leader lease (thesis §6.4.1): answered locally while the lease holds, else as ReadIndex.
    Lease,
}

/// The node's settings, parsed from `NodeConfig::settings`. Durations are humantime strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Interval of the leader's heartbeats (empty AppendEntries).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// `[min, max]`: a follower that hears no leader for a random time in this range starts an
    /// election. YAML: a two-element list of humantime strings.
    #[serde(with = "faultline_replica::duration_pair")]
    pub election_timeout: [Duration; 2],
    /// Most entries in one AppendEntries message.
    pub max_batch: usize,
    /// Applied entries kept in the log before they are folded into a snapshot.
    pub snapshot_threshold: u64,
    /// PreVote (thesis §9.6): campaign only after a quorum says it would vote.
    pub pre_vote: bool,
    /// CheckQuorum (thesis §6.2): a leader steps down when it has not heard from a quorum for
    /// `election_timeout[1]`.
    pub check_quorum: bool,
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
            pre_vote: true,
            check_quorum: true,
            read: ReadMode::ReadIndex,
            clock_drift: Duration::from_millis(10),
            forward: false,
            request_timeout: Duration::from_secs(1),
        }
    }
}

faultline_replica::consensus_settings!(Settings, "raft", ReadMode::Lease);

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
            r#"{"heartbeat":"20ms","election_timeout":["100ms","1s"],"read":"lease","pre_vote":false,
                "check_quorum":false,"forward":true,"max_batch":64,"snapshot_threshold":100,"clock_drift":"5ms"}"#,
        )
        .unwrap();
        assert_eq!(s.heartbeat, Duration::from_millis(20));
        assert_eq!(
            s.election_timeout,
            [Duration::from_millis(100), Duration::from_secs(1)]
        );
        assert_eq!(s.read, ReadMode::Lease);
        assert!(!s.pre_vote && !s.check_quorum && s.forward);
        assert_eq!((s.max_batch, s.snapshot_threshold), (64, 100));
        // Round trip through the serialized form (what the harness writes).
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(parse(&back.to_string()).unwrap(), s);
        assert_eq!(
            parse(r#"{"read":"read-index"}"#).unwrap().read,
            ReadMode::ReadIndex
        );
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
            (r#"{"read":"quorum"}"#, "settings.read"),
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
