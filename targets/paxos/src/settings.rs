//! Typed `settings:` of the Multi-Paxos node, their defaults and their validation.

use serde::{Deserialize, Serialize};

faultline_replica::consensus_settings! {
    kind = "paxos";
    lease = ReadMode::Lease;
    /// The node's settings, parsed from `NodeConfig::settings`. Durations are humantime strings.
    pub struct Settings {
        /// How reads are served.
        pub read: ReadMode = ReadMode::Log,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_replica::testkit::settings::*;
    use faultline_replica::NodeSettings;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(
            assert_consensus_overrides::<Settings>("").read,
            ReadMode::Lease
        );
        let log = Settings::from_json(r#"{"read":"log"}"#).unwrap();
        assert_eq!(log.read, ReadMode::Log);
    }

    /// Paxos has no ReadIndex mode and no PreVote.
    #[test]
    fn errors_name_the_field() {
        assert_errors_name_the_field::<Settings>(CONSENSUS_ERRORS);
        let own = [
            (r#"{"read":"read-index"}"#, "settings.read"),
            (r#"{"pre_vote":false}"#, "pre_vote"),
        ];
        assert_errors_name_the_field::<Settings>(&own);
    }
}
