//! Typed `settings:` of the primary-backup node, their defaults and their validation.

use std::time::Duration;

use faultline_replica::settings::{longer, nonzero, shorter};
use faultline_replica::NodeSettings;
use serde::{Deserialize, Serialize};

/// How a primary acknowledges writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replication {
    /// Reply after every backup of the view has the entry durably.
    Sync,
    /// Reply after the primary's own fsync; backups catch up in the background.
    Async,
}

/// The node's settings, parsed from `NodeConfig::settings`. Durations are humantime strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Interval of the primary's heartbeats to every node.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// A backup starts a takeover after this long without a heartbeat from the primary; a
    /// primary removes a backup that has not acknowledged anything for this long.
    #[serde(with = "humantime_serde")]
    pub takeover_timeout: Duration,
    pub replication: Replication,
    /// Serve reads and accept writes only while holding a lease renewed by backup acks.
    pub lease: bool,
    /// Lease length; must be shorter than `takeover_timeout`. Default: half of it.
    #[serde(with = "humantime_serde::option")]
    pub lease_duration: Option<Duration>,
    /// Safety margin subtracted from every lease for clock rate differences.
    #[serde(with = "humantime_serde")]
    pub clock_drift: Duration,
    /// A write not committed after this long is answered `timeout` (indefinite).
    #[serde(with = "humantime_serde")]
    pub replication_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            heartbeat: Duration::from_millis(50),
            takeover_timeout: Duration::from_millis(200),
            replication: Replication::Sync,
            lease: false,
            lease_duration: None,
            clock_drift: Duration::from_millis(10),
            replication_timeout: Duration::from_secs(1),
        }
    }
}

impl Settings {
    /// The effective lease length.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration.unwrap_or(self.takeover_timeout / 2)
    }
}

impl NodeSettings for Settings {
    const KIND: &'static str = "primary-backup";

    fn tick(&self) -> Duration {
        (self.heartbeat / 5).clamp(Duration::from_millis(1), Duration::from_millis(10))
    }

    fn validate(&self) -> Result<(), String> {
        let takeover = ("settings.takeover_timeout", self.takeover_timeout);
        nonzero("heartbeat", self.heartbeat)?;
        longer(takeover, ("settings.heartbeat", self.heartbeat))?;
        nonzero("replication_timeout", self.replication_timeout)?;
        let lease = ("settings.lease_duration", self.lease_duration());
        shorter(lease, takeover)?;
        if self.lease {
            shorter(("settings.clock_drift", self.clock_drift), lease)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let d = Settings::from_json("{}").unwrap();
        assert_eq!(d, Settings::default());
        assert_eq!(d.lease_duration(), Duration::from_millis(100));
        let s = Settings::from_json(r#"{"heartbeat":"20ms","takeover_timeout":"1s","replication":"async","lease":true,"lease_duration":"300ms"}"#).unwrap();
        assert_eq!(s.heartbeat, Duration::from_millis(20));
        assert_eq!(s.replication, Replication::Async);
        assert_eq!(s.lease_duration(), Duration::from_millis(300));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"heartbeet":"20ms"}"#, "heartbeet"),
            (r#"{"heartbeat":"fast"}"#, "heartbeat"),
            (r#"{"replication":"semi"}"#, "semi"),
            (r#"{"heartbeat":"300ms"}"#, "settings.takeover_timeout"),
            (r#"{"lease_duration":"200ms"}"#, "settings.lease_duration"),
            (
                r#"{"lease":true,"clock_drift":"150ms"}"#,
                "settings.clock_drift",
            ),
            (
                r#"{"replication_timeout":"0s"}"#,
                "settings.replication_timeout",
            ),
        ];
        faultline_replica::testkit::settings::assert_errors_name_the_field::<Settings>(&cases);
    }
}
