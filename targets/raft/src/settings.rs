//! Typed `settings:` of the Raft node, their defaults and their validation.

use serde::{Deserialize, Serialize};

faultline_replica::consensus_settings! {
    kind = "raft";
    lease = ReadMode::Lease;
    /// The node's settings, parsed from `NodeConfig::settings`. Durations are humantime strings.
    pub struct Settings {
        /// How reads are served.
        pub read: ReadMode = ReadMode::ReadIndex,
        /// PreVote (thesis §9.6): campaign only after a quorum says it would vote.
        pub pre_vote: bool = true,
        /// CheckQuorum (thesis §6.2): a leader steps down when it has not heard from a quorum
        /// for `election_timeout[1]`.
        pub check_quorum: bool = true,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_replica::testkit::settings::*;
    use faultline_replica::NodeSettings;

    #[test]
    fn defaults_and_overrides() {
        let s: Settings = assert_consensus_overrides(r#","pre_vote":false,"check_quorum":false"#);
        assert!(!s.pre_vote && !s.check_quorum);
        for (mode, read) in [("read-index", ReadMode::ReadIndex), ("log", ReadMode::Log)] {
            let json = format!(r#"{{"read":"{mode}"}}"#);
            assert_eq!(Settings::from_json(&json).unwrap().read, read);
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_errors_name_the_field::<Settings>(CONSENSUS_ERRORS);
        assert_errors_name_the_field::<Settings>(&[(r#"{"read":"quorum"}"#, "settings.read")]);
    }
}
