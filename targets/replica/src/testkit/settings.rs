//! Test support for the node crates' settings tests: errors name the offending field, and a
//! consensus node's shared settings parse, default and round-trip alike.

use std::fmt::Debug;
use std::time::Duration;

use serde::Serialize;

use crate::settings::{AsConsensus, NodeSettings};

/// Each `(json, field)`: parsing `json` fails with an error that names `field`.
pub fn assert_errors_name_the_field<S: NodeSettings + Debug>(cases: &[(&str, &str)]) {
    for (json, field) in cases {
        let err = S::from_json(json).unwrap_err();
        assert!(err.contains(field), "{json}: {err}");
    }
}

/// The errors every consensus node's settings give, with the field each names.
pub const CONSENSUS_ERRORS: &[(&str, &str)] = &[
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
    (r#"{"max_batch":0}"#, "settings.max_batch"),
    (r#"{"snapshot_threshold":0}"#, "settings.snapshot_threshold"),
    (
        r#"{"read":"lease","clock_drift":"150ms"}"#,
        "settings.clock_drift",
    ),
    (r#"{"request_timeout":"0s"}"#, "settings.request_timeout"),
];

/// `{}` parses to the defaults; overriding every shared field (and `read: lease`) plus the
/// protocol's own `extra` fields (`,"name":value,...`) parses to those values and round-trips
/// through the serialized form (what the harness writes). Returns the parsed settings for the
/// protocol's own checks.
pub fn assert_consensus_overrides<S>(extra: &str) -> S
where
    S: NodeSettings + AsConsensus + Default + Serialize + PartialEq + Debug,
{
    assert_eq!(S::from_json("{}").unwrap(), S::default());
    let json = format!(
        r#"{{"heartbeat":"20ms","election_timeout":["100ms","1s"],"read":"lease","forward":true,
            "max_batch":64,"snapshot_threshold":100,"clock_drift":"5ms"{extra}}}"#
    );
    let s = S::from_json(&json).unwrap();
    let c = s.consensus();
    assert_eq!(c.heartbeat, Duration::from_millis(20));
    let timeout = [Duration::from_millis(100), Duration::from_secs(1)];
    assert_eq!(c.election_timeout, timeout);
    assert!(c.lease && c.forward);
    assert_eq!((c.max_batch, c.snapshot_threshold), (64, 100));
    assert_eq!(c.clock_drift, Duration::from_millis(5));
    let back = serde_json::to_value(&s).unwrap();
    assert_eq!(S::from_json(&back.to_string()).unwrap(), s);
    s
}
