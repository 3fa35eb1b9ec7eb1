//! Balancers in real runs: outlier ejection of a slow node (pause bursts) on the timeline and
//! in the report, per-node counters that add up to the operations and retries, a report that
//! `faultline report` rebuilds from the run's files alone, the suite summary, bad weights as
//! bad input, and `faultline list`. No assertion depends on wall-clock time.

use crate::common;

use std::process::Command;

use serde_json::Value;

/// A follower is stopped for 400 ms of every 500 ms; operations sent to it time out (150 ms),
/// three in a row eject it for 300 ms, then 600 ms, ... Health checks are too slow (every
/// 10 s) to notice, so only outlier ejection keeps round-robin off the slow node.
const SLOW_FOLLOWER: &str = "\
name: bal-slow-follower
seed: 5
duration: 5s
target:
  kind: raft
  nodes: 3
  settings: { heartbeat: 50ms, election_timeout: [150ms, 300ms], forward: true }
workload:
  kind: register
  keys: 8
  mix: { read: 0.5, write: 0.5 }
  rate: 300/s
  timeout: 150ms
balancer:
  kind: round-robin
  health: { interval: 10s, timeout: 1s, unhealthy_after: 3 }
  outlier: { consecutive_failures: 3, base_ejection: 300ms }
  retry_budget: { ratio: 0.1, min_per_sec: 5 }
faults:
  - { at: 1s, slow: follower, duration: 2500ms, burst: 400ms, period: 500ms }
";

fn events(run: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn a_slow_node_is_ejected_and_readmitted_on_the_timeline_and_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_experiment(dir.path(), "slow", SLOW_FOLLOWER);
    let out = common::run(dir.path(), &file, &[]);
    let err = common::stderr(&out);
    let run = common::latest(dir.path(), "bal-slow-follower");
    let r = common::report(&run);
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "the run did not finish: {err}"
    );

    // The slow fault is journaled like any other, before it is applied.
    let ev = events(&run);
    let start = ev
        .iter()
        .find(|e| e["event"] == "fault_start" && e["fault"] == "slow")
        .unwrap_or_else(|| panic!("no slow fault journaled: {err}"));
    let slow = start["nodes"][0].as_str().unwrap().to_string();
    assert!(ev
        .iter()
        .any(|e| e["event"] == "fault_applied" && e["id"] == start["id"]));
    assert!(ev
        .iter()
        .any(|e| e["event"] == "fault_end" && e["id"] == start["id"]));

    // Ejections and re-admissions of the slow node. (On a loaded machine another node can
    // miss three 150 ms timeouts in a row too and be ejected: allowed, with the same rules.)
    let ejected: Vec<&Value> = ev.iter().filter(|e| e["event"] == "ejected").collect();
    for e in &ejected {
        assert!(e["duration_ms"].as_f64().unwrap() >= 300.0, "{e}");
        assert!(u(&e["count"]) >= 1, "{e}");
    }
    let of_slow: Vec<&&Value> = ejected
        .iter()
        .filter(|e| e["node"] == slow.as_str())
        .collect();
    assert!(
        !of_slow.is_empty(),
        "no ejection of {slow} journaled: {err}"
    );
    assert_eq!(of_slow[0]["count"], 1);
    assert_eq!(of_slow[0]["duration_ms"], 300.0);
    assert!(
        ev.iter()
            .any(|e| e["event"] == "readmitted" && e["node"] == slow.as_str()),
        "no re-admission journaled"
    );

    // The report: strategy and parameters, the same ejections, counters that add up.
    let b = &r["balancer"];
    assert_eq!(b["strategy"], "round-robin");
    assert_eq!(b["config"]["outlier"]["consecutive_failures"], 3);
    assert_eq!(b["config"]["retry_budget"]["ratio"], 0.1);
    assert_eq!(b["recorded"], true);
    let ejections = b["ejections"].as_array().unwrap();
    assert_eq!(ejections.len(), ejected.len());
    let first_of_slow = ejections
        .iter()
        .find(|e| e["node"] == slow.as_str())
        .unwrap();
    assert!(first_of_slow["readmitted_ms"].as_f64().is_some());
    let nodes = b["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let sum = |field: &str| nodes.iter().map(|n| u(&n[field])).sum::<u64>();
    let slow_stats = nodes.iter().find(|n| n["node"] == slow.as_str()).unwrap();
    assert_eq!(u(&slow_stats["ejections"]), of_slow.len() as u64);
    assert!(u(&slow_stats["indefinite"]) >= 3, "{slow_stats}");
    // Every operation of the load went through the balancer once, plus its retries.
    assert_eq!(u(&b["ops"]), u(&r["ops"]["invoked"]));
    assert_eq!(sum("sent"), u(&b["ops"]) + u(&b["retries"]));
    assert_eq!(sum("sent"), u(&b["totals"]["sent"]));
    // Each try ended one way (none is in flight after the load).
    let ended = [
        "served",
        "rejected",
        "not_leader",
        "unavailable",
        "refused",
        "indefinite",
        "abandoned",
    ]
    .iter()
    .map(|f| sum(f))
    .sum::<u64>();
    assert_eq!(ended + sum("outstanding"), sum("sent"));
    assert_eq!(sum("outstanding"), 0);
    // An operation succeeds on exactly one try.
    assert_eq!(sum("served"), u(&r["ops"]["ok"]));
    assert_eq!(sum("wasted"), sum("not_leader") + sum("refused"));
    // Shares per window: the tries of the windows add up to the tries of the load.
    let share = b["share"].as_array().unwrap();
    assert!(share.len() >= 4, "{share:?}");
    let windowed: u64 = share
        .iter()
        .flat_map(|w| w["sent"].as_array().unwrap().iter().map(u))
        .sum();
    assert_eq!(windowed, sum("sent"));
    for w in share {
        let total: f64 = w["share"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .sum();
        assert!(total == 0.0 || (total - 1.0).abs() < 1e-3, "{w}");
    }
    let faults = r["failover"]["events"].as_array().unwrap();
    assert_eq!(faults[0]["fault"], "slow");
    assert!(r["latency_all_us"]["p99"].as_f64().is_some());

    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("## Balancer"), "{summary}");
    assert!(
        summary.contains(&format!("- {slow} at ")),
        "no ejection line: {summary}"
    );

    // Everything above comes from the run's files: `faultline report` rebuilds it.
    let again = Command::new(common::exe())
        .arg("report")
        .arg(&run)
        .output()
        .unwrap();
    assert!(matches!(again.status.code(), Some(0..=2)));
    let rebuilt = common::report(&run);
    assert_eq!(rebuilt["balancer"], r["balancer"]);
    assert_eq!(
        std::fs::read_to_string(run.join("summary.md")).unwrap(),
        summary
    );
}

fn tiny(name: &str, kind: &str) -> String {
    format!(
        "\
name: {name}
seed: 3
duration: 1500ms
target:
  kind: raft
  nodes: 3
  settings: {{ forward: true }}
workload:
  kind: register
  keys: 4
  mix: {{ read: 0.5, write: 0.5 }}
  rate: 100/s
  timeout: 500ms
balancer:
  kind: {kind}
faults:
  - {{ at: 500ms, slow: random, duration: 500ms, burst: 20ms, period: 100ms }}
"
    )
}

#[test]
fn a_suite_ends_with_a_summary_lining_up_its_experiments() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite");
    std::fs::create_dir(&suite).unwrap();
    std::fs::write(suite.join("1-rr.yaml"), tiny("tiny-rr", "round-robin")).unwrap();
    std::fs::write(suite.join("2-p2c.yaml"), tiny("tiny-p2c", "p2c")).unwrap();
    let out = common::run(dir.path(), &suite, &[]);
    let err = common::stderr(&out);
    let path = dir.path().join("results/suite-summary.md");
    let summary =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}\n{err}", path.display()));
    assert!(err.contains(&summary), "the summary is printed too: {err}");
    let header = summary
        .lines()
        .find(|l| l.starts_with("| experiment | target | balancer |"))
        .unwrap_or_else(|| panic!("{summary}"));
    for col in [
        "availability",
        "recovery_ms p50 / p99",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let rr = summary
        .lines()
        .position(|l| l.starts_with("| tiny-rr | raft x3 | round-robin |"));
    let p2c = summary
        .lines()
        .position(|l| l.starts_with("| tiny-p2c | raft x3 | p2c |"));
    assert!(
        matches!((rr, p2c), (Some(a), Some(b)) if a < b),
        "one line per experiment, in order: {summary}"
    );
    assert!(summary.contains("#1 slow at"), "{summary}");
}

#[test]
fn weights_of_nodes_outside_the_cluster_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = tiny("bad-weights", "weighted").replace(
        "  kind: weighted\n",
        "  kind: weighted\n  weights: { n1: 2, n7: 1 }\n",
    );
    let file = common::write_experiment(dir.path(), "bad", &yaml);
    let out = common::run(dir.path(), &file, &[]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(254), "{err}");
    assert!(
        err.contains("bad.yaml:16:21: balancer.weights: no node `n7`"),
        "{err}"
    );
}

#[test]
fn list_names_every_balancer_and_the_slow_fault() {
    let out = Command::new(common::exe()).arg("list").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("balancers:"))
        .unwrap_or_else(|| panic!("{text}"));
    for kind in faultline::experiment::BalancerKind::ALL {
        assert!(line.contains(kind.as_str()), "{line}");
    }
    assert!(text.contains("slow"), "{text}");
}

/// `try_timeout`: a read sent to a stopped follower gives up after 100 ms and is served by
/// another node; a write keeps the whole operation timeout (it is never retried, as it may
/// still take effect), so none ends as a timeout before that timeout.
#[test]
fn a_read_whose_try_runs_out_is_served_elsewhere_and_writes_keep_their_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "\
name: bal-try-timeout
seed: 9
duration: 4s
target:
  kind: raft
  nodes: 3
  settings: { heartbeat: 50ms, election_timeout: [150ms, 300ms], forward: true }
workload:
  kind: register
  keys: 8
  mix: { read: 0.5, write: 0.5 }
  rate: 200/s
  timeout: 1s
balancer:
  kind: round-robin
  health: { interval: 10s, timeout: 1s, unhealthy_after: 3 }
  try_timeout: 100ms
faults:
  - { at: 1s, slow: follower, duration: 2s, burst: 400ms, period: 500ms }
";
    let file = common::write_experiment(dir.path(), "try-timeout", yaml);
    let out = common::run(dir.path(), &file, &[]);
    let run = common::latest(dir.path(), "bal-try-timeout");
    assert!(
        matches!(out.status.code(), Some(0..=1)),
        "{}",
        common::stderr(&out)
    );
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let mut invoked = std::collections::HashMap::new();
    let (mut moved_reads, mut early_timeouts) = (0, 0);
    for l in history.lines() {
        let h: Value = serde_json::from_str(l).unwrap();
        let id = u(&h["id"]);
        match h["type"].as_str().unwrap() {
            "invoke" => {
                invoked.insert(id, (h["node"].clone(), u(&h["t"])));
            }
            "ok" if h["f"] == "read" && invoked.get(&id).is_some_and(|(n, _)| *n != h["node"]) => {
                moved_reads += 1;
            }
            // No operation, read or write, ends as a timeout before its own 1 s timeout: a
            // write's one try keeps it, a read's try that ran out went on to another node.
            "info" if h["error"] == "timeout" => {
                let (_, t0) = invoked[&id];
                if u(&h["t"]) - t0 < 1_000_000_000 {
                    early_timeouts += 1;
                }
            }
            _ => {}
        }
    }
    assert!(moved_reads > 0, "no read was served by another node");
    assert_eq!(
        early_timeouts, 0,
        "an operation timed out before its 1 s timeout"
    );
    // Tries ran out on the stopped node: without `try_timeout` a try waits out the stop and
    // none does.
    let r = common::report(&run);
    let timed_out: u64 = r["balancer"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| u(&n["indefinite"]))
        .sum();
    assert!(timed_out > 0, "{}", r["balancer"]);
}
