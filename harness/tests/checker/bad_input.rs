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
