//! An open-loop rate far beyond what the cluster serves: the run still ends on time, never has
//! more operations in flight than `max_in_flight`, counts every operation it did not send,
//! accounts for every one it did, and writes a report that passes the schema.

use crate::common;
use crate::report_schema::validate;

use serde_json::Value;

/// 20,000 ops/s for 3 s at a 3-node Raft cluster whose leader is killed after 1 s: far more
/// than a debug-build harness and cluster serve on two cores, and no one answers for a while.
fn experiment() -> String {
    common::raft_yaml(
        "overload",
        8,
        "3s",
        "  keys: 8\n  rate: 20000/s\n  max_in_flight: 300\n  timeout: 300ms\n",
        "  - { at: 1s, kill: leader, restart_after: 500ms }\n",
    )
}

#[test]
fn an_open_loop_far_past_capacity_ends_on_time_bounded_and_counts_what_it_did_not_send() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_experiment(dir.path(), "overload", &experiment());
    let out = common::run(dir.path(), &file, &[]);
    let run = common::latest(dir.path(), "overload");
    let r = common::report(&run);
    validate(&r).unwrap();
    // No verdict is forced on an overloaded run, but the harness itself did not fail.
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "{}",
        common::stderr(&out)
    );

    let load = &r["load"];
    let count = |v: &Value| v.as_u64().unwrap();
    assert_eq!(load["mode"], "open");
    assert_eq!(count(&load["max_in_flight"]), 300);
    assert!(count(&load["peak_in_flight"]) <= 300, "{load}");
    // Far past capacity: operations were left unsent at the limit, and said so.
    assert!(count(&load["at_limit"]) > 0, "{load}");
    assert!(count(&load["not_started"]) >= count(&load["at_limit"]));
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("were never sent because 300"), "{summary}");

    // Every operation sent is in the history, with an outcome; none unsent is.
    let ops = &r["ops"];
    let invoked = count(&ops["invoked"]);
    assert_eq!(
        invoked,
        count(&ops["ok"]) + count(&ops["fail"]) + count(&ops["info"]),
        "{ops}"
    );
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let invokes = history
        .lines()
        .filter(|l| l.contains("\"type\":\"invoke\""))
        .count() as u64;
    // The history also holds the final reads after the load, which `ops` does not count.
    assert!(
        invokes >= invoked,
        "{invokes} invocations, {invoked} in ops"
    );
    let scheduled = count(&load["scheduled"]);
    assert!(
        invoked + count(&load["not_started"]) <= scheduled,
        "{load} {ops}"
    );

    // On time: the load phase lasts its 3 s plus at most the operation timeout, and a margin
    // for timers that fire late on a saturated two-core machine.
    let events = common::events(&run);
    let phase = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == "phase" && e["name"] == name)
            .and_then(|e| e["t"].as_u64())
            .unwrap_or_else(|| panic!("no {name} phase"))
    };
    let load_ms = (phase("heal") - phase("load")) / 1_000_000;
    assert!(
        load_ms <= 3_000 + 300 + 1_500,
        "the load phase took {load_ms} ms"
    );
}
