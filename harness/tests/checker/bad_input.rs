//! Bad experiment files and bad command lines exit 254 with a message that names the file,
//! line and column of the problem (README.md, "Commands", for the exit codes).

use crate::common;

use std::process::Command;

const GOOD: &str = "\
name: bad-input
duration: 1s
target:
  kind: primary-backup
  nodes: 3
workload:
  kind: register
  rate: 100/s
";

#[test]
fn each_bad_input_exits_254_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str, &str)] = &[
        // (what, replace, with, expected in message)
        ("malformed yaml", "nodes: 3", "nodes: [3", "bad.yaml:"),
        (
            "unknown field",
            "nodes: 3",
            "nodes: 3\n  colour: red",
            "bad.yaml:6:3: target: unknown field `colour`",
        ),
        (
            "bad duration",
            "duration: 1s",
            "duration: 1 fortnight",
            "bad.yaml:2:11: duration: invalid duration `1 fortnight`",
        ),
        (
            "zero nodes",
            "nodes: 3",
            "nodes: 0",
            "bad.yaml:5:10: target.nodes: nodes must be between 1 and 15",
        ),
        (
            "unknown target kind",
            "kind: primary-backup",
            "kind: mongodb",
            "bad.yaml:4:9: target.kind: unknown variant `mongodb`",
        ),
        // A name becomes a directory under the results root: it must not leave it.
        (
            "name that climbs out of the results root",
            "name: bad-input",
            "name: ../../etc/x", // not-a-path: hostile input
            "bad.yaml:1:7: name: `../../etc/x` cannot name the run's directory", // not-a-path
        ),
        (
            "name with a slash",
            "name: bad-input",
            "name: a/b",
            "bad.yaml:1:7: name: `a/b` cannot name",
        ),
        (
            "hidden name",
            "name: bad-input",
            "name: .x",
            "bad.yaml:1:7: name: `.x` cannot name",
        ),
        // Checks across a block's fields point at the field, not at 1:1.
        (
            "mix that does not add up",
            "rate: 100/s",
            "rate: 100/s\n  mix: { read: 0.5, write: 0.6 }",
            "bad.yaml:9:3: workload.mix: must add up to 1",
        ),
        (
            "Raft timing that contradicts itself",
            "kind: primary-backup",
            "kind: raft\n  settings: { heartbeat: 500ms, election_timeout: [150ms, 300ms] }",
            "bad.yaml:5:3: target.settings: for raft, settings.election_timeout",
        ),
        (
            "unknown bug",
            "nodes: 3",
            "nodes: 3\n  bugs: [no-such-bug]",
            "bad.yaml:6:3: target.bugs: unknown bug `no-such-bug`",
        ),
        (
            "balancer parameter of another strategy",
            "rate: 100/s",
            "rate: 100/s\nbalancer:\n  kind: round-robin\n  choice_count: 3",
            "bad.yaml:11:3: balancer: `choice_count` applies to kind `p2c`, not `round-robin`",
        ),
        (
            "outlier setting out of range",
            "rate: 100/s",
            "rate: 100/s\nbalancer:\n  kind: leader-aware\n  outlier: { consecutive_failures: 0 }",
            "bad.yaml:11:14: balancer: outlier.consecutive_failures must be at least 1",
        ),
        (
            "availability objective above 1",
            "rate: 100/s",
            "rate: 100/s\nslo:\n  availability: 1.5",
            "bad.yaml:10:3: slo: availability must be between 0 and 1",
        ),
        // Faults that could never fire or never find their node.
        (
            "fault after the end of the run",
            "rate: 100/s",
            "rate: 100/s\nfaults:\n  - { at: 100ms, kill: leader }\n  - { at: 5s, kill: leader }",
            "bad.yaml:11:5: faults[1]: `at: 5s` is not before the end of the run (duration: 1s)",
        ),
        (
            "repeated fault starting after the end",
            "rate: 100/s",
            "rate: 100/s\nfaults:\n  - { every: 1s, from: 1s, pause: leader, duration: 100ms }",
            "bad.yaml:10:5: faults[0]: `from: 1s` is not before the end of the run",
        ),
        (
            "fault on a node the cluster does not have",
            "rate: 100/s",
            "rate: 100/s\nfaults:\n  - { at: 100ms, kill: n7 }",
            "bad.yaml:10:5: faults[0]: no node `n7` in this cluster of 3 (n1..n3)",
        ),
        (
            "partition group naming a node the cluster does not have",
            "rate: 100/s",
            "rate: 100/s\nfaults:\n  - { at: 100ms, partition: { groups: [[n1], [n2, n9]] }, duration: 100ms }",
            "bad.yaml:10:5: faults[0]: no node `n9`",
        ),
        (
            "link naming a node the cluster does not have",
            "rate: 100/s",
            "rate: 100/s\nfaults:\n  - { at: 100ms, link: { from: [n4], to: n1, delay: 5ms }, duration: 100ms }",
            "bad.yaml:10:5: faults[0]: no node `n4`",
        ),
    ];
    for (what, from, to, needle) in cases {
        let file = common::write_experiment(dir.path(), "bad", &GOOD.replacen(from, to, 1));
        let out = common::run(dir.path(), &file, &[]);
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(254), "{what}: {err}");
        assert!(err.contains(needle), "{what}: `{err}` lacks `{needle}`");
        // Nothing was started, nothing written.
        assert!(
            !dir.path().join("results").exists(),
            "{what}: a results dir was created"
        );
    }
}

#[test]
fn missing_file_and_bad_flags_exit_254() {
    let out = Command::new(common::exe())
        .args(["run", "/nonexistent/experiment.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    assert!(common::stderr(&out).contains("/nonexistent/experiment.yaml"));
    let out = Command::new(common::exe())
        .args(["run", "x.yaml", "--set", "nodes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254), "{}", common::stderr(&out));
    let out = Command::new(common::exe())
        .args(["frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
}

#[test]
fn bad_override_names_the_set_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_experiment(dir.path(), "ok", GOOD);
    let out = common::run(dir.path(), &file, &["--set", "target.nodes=0"]);
    assert_eq!(out.status.code(), Some(254));
    let err = common::stderr(&out);
    assert!(
        err.contains("--set target.nodes=0") && err.contains("between 1 and 15"),
        "{err}"
    );
    // A name from the command line is held to the same rule as one in the file.
    let out = common::run(dir.path(), &file, &["--set", "name=../../x"]); // not-a-path
    assert_eq!(out.status.code(), Some(254), "{}", common::stderr(&out));
    let err = common::stderr(&out);
    assert!(
        // not-a-path: the hostile name again
        err.contains("--set name=../../x") && err.contains("cannot name the run's directory"),
        "{err}"
    );
    assert!(!dir.path().join("results").exists());
}

#[test]
fn bad_target_settings_are_rejected_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD.replacen("nodes: 3", "nodes: 3\n  settings: { heartbeat: soon }", 1);
    let file = common::write_experiment(dir.path(), "bad", &text);
    let out = common::run(dir.path(), &file, &[]);
    assert_eq!(out.status.code(), Some(254), "{}", common::stderr(&out));
    let err = common::stderr(&out);
    assert!(
        err.contains("bad.yaml:") && err.contains("heartbeat"),
        "{err}"
    );
}
