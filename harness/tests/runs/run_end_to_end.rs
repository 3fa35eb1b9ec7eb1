//! `faultline run` end to end on a real 3-node primary-backup cluster: real processes, real
//! sockets, real SIGKILLs. Sync replication must stay linearizable with no lost write through
//! kill -9 and restart, and the report must carry the failover figures.

use crate::common;

const SYNC_KILLS: &str = "\
name: e2e-sync-kills
seed: 11
duration: 9s
target:
  kind: primary-backup
  nodes: 3
  settings: { heartbeat: 50ms, takeover_timeout: 250ms, replication: sync }
workload:
  kind: cas-register
  keys: 4
  mix: { read: 0.5, write: 0.4, cas: 0.1 }
  rate: 400/s
  timeout: 500ms
faults:
  - { at: 2s, kill: primary, restart_after: 1500ms }
  - { at: 5s, kill: primary, restart_after: 1500ms }
expect: valid
";

#[test]
fn quick_run_is_valid_with_failover_figures_and_all_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_experiment(dir.path(), "e2e", SYNC_KILLS);
    let out = common::run(dir.path(), &file, &[]);
    let err = common::stderr(&out);
    let run = common::latest(dir.path(), "e2e-sync-kills");
    for f in [
        "experiment.yaml",
        "history.jsonl",
        "events.jsonl",
        "report.json",
        "summary.md",
        "run.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing: {err}");
    }
    assert!(run.join("nodes/n1/stderr.log").is_file());
    let r = common::report(&run);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{err}\n{}",
        serde_json::to_string_pretty(&r["consistency"]).unwrap()
    );
    assert_eq!(r["schema"], "faultline.report/v1");
    assert_eq!(r["verdict"], "valid");
    assert_eq!(r["experiment"]["seed"], 11);
    assert_eq!(r["consistency"]["lost_writes"], 0);
    let ops = &r["ops"];
    assert!(ops["ok"].as_u64().unwrap() > 1000, "{ops}");
    let events = r["failover"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    for e in events {
        assert_eq!(e["fault"], "kill");
        // The primary was killed: a new one must have been elected and writes succeeded again.
        assert!(e["election_ms"].as_f64().is_some(), "{e}");
        assert!(e["recovery_ms"].as_f64().unwrap() > 0.0, "{e}");
        assert!(e["gap_ms"].as_f64().is_some(), "{e}");
    }
    let avail = r["availability"]["overall"].as_f64().unwrap();
    assert!(
        avail > 0.5 && avail < 1.0,
        "killing the primary must cost some operations: {avail}"
    );
    // experiment.yaml as run carries the seed, and re-parses.
    let as_run = std::fs::read_to_string(run.join("experiment.yaml")).unwrap();
    assert!(as_run.contains("seed: 11"), "{as_run}");
    // The history was recorded as it happened: every op has an invocation.
    let hist = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let invokes = hist
        .lines()
        .filter(|l| l.contains("\"type\":\"invoke\""))
        .count() as u64;
    assert_eq!(
        invokes,
        r["ops"]["invoked"].as_u64().unwrap() + final_ops(&hist, &r)
    );
    // `faultline report` re-renders the same verdict from the files.
    let again = std::process::Command::new(common::exe())
        .arg("report")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", common::stderr(&again));
    assert_eq!(common::report(&run)["verdict"], "valid");
    assert!(common::wait_gone(run.to_str().unwrap(), std::time::Duration::from_secs(5)).is_empty());
}

/// Operations outside the load window (the recovery write and final reads).
fn final_ops(hist: &str, r: &serde_json::Value) -> u64 {
    let _ = r;
    hist.lines()
        .filter(|l| l.contains("\"type\":\"invoke\""))
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["client"].as_u64().unwrap() >= (u32::MAX - 1000) as u64
        })
        .count() as u64
}

#[test]
fn kill_9_and_restart_loses_no_acknowledged_write_in_sync_mode() {
    // Every node, primary or backup, is killed and restarted, some with an empty data dir.
    let text = SYNC_KILLS
        .replace("name: e2e-sync-kills", "name: e2e-sync-durability")
        .replace(
            "  - { at: 2s, kill: primary, restart_after: 1500ms }\n  - { at: 5s, kill: primary, restart_after: 1500ms }\n",
            "  - { every: 1500ms, from: 1s, until: 7s, kill: random, restart_after: 500ms }\n  - { at: 7500ms, amnesia: follower }\n",
        );
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_experiment(dir.path(), "durability", &text);
    let out = common::run(dir.path(), &file, &[]);
    let run = common::latest(dir.path(), "e2e-sync-durability");
    let r = common::report(&run);
    assert_eq!(
        r["consistency"]["lost_writes"],
        0,
        "{}\n{}",
        common::stderr(&out),
        serde_json::to_string_pretty(&r["consistency"]).unwrap()
    );
    assert_eq!(r["verdict"], "valid", "{}", common::stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    let faults = r["faults"].as_array().unwrap();
    assert!(faults.len() >= 4, "{faults:?}");
    // The cluster came back and the final reads saw every key.
    assert_eq!(r["run"]["recovered"], true);
}

/// Every process fault verb, a closed-loop workload and the round-robin balancer (which sends
/// most operations to backups first, so every write goes through a `not_leader` retry).
#[test]
fn every_process_fault_closed_loop_round_robin_stays_valid_in_sync_mode() {
    let text = "\
name: e2e-all-faults
seed: 23
duration: 10s
target:
  kind: primary-backup
  nodes: 3
  settings: { heartbeat: 50ms, takeover_timeout: 250ms, replication: sync }
workload:
  kind: cas-register
  keys: 3
  concurrency: 6
  timeout: 500ms
balancer:
  kind: round-robin
faults:
  - { at: 1s, terminate: primary, restart_after: 700ms }
  - { at: 3s, pause: follower, duration: 600ms }
  - { at: 4500ms, restart: primary }
  - { at: 6s, crash-loop: follower, duration: 1500ms, period: 300ms }
  - { at: 8s, kill: n2, restart_after: 1500ms }
  - { at: 8500ms, pause: n2, duration: 100ms }
expect: valid
";
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_experiment(dir.path(), "all", text);
    let out = common::run(dir.path(), &file, &[]);
    let run = common::latest(dir.path(), "e2e-all-faults");
    let r = common::report(&run);
    let err = common::stderr(&out);
    assert_eq!(
        r["verdict"],
        "valid",
        "{err}\n{}",
        serde_json::to_string_pretty(&r["consistency"]).unwrap()
    );
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(r["load"]["mode"], "closed");
    let faults: Vec<&str> = r["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fault"].as_str().unwrap())
        .collect();
    assert_eq!(
        faults,
        ["terminate", "pause", "restart", "crash-loop", "kill"],
        "{faults:?}"
    );
    // Every fault was healed, and the one that found its node already down was skipped (a
    // node the cluster does not have is refused when the file is loaded: bad_input.rs).
    for f in r["faults"].as_array().unwrap() {
        assert!(f["end_ms"].is_f64(), "{f}");
    }
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    assert!(
        events.contains("\"fault_skipped\"") && events.contains("n2 is already down"),
        "{events}"
    );
    // Round-robin hit backups: writes were retried after definite not_leader answers and still
    // succeeded, so ok writes far outnumber the failures.
    assert!(r["ops"]["ok"].as_u64().unwrap() > 500, "{}", r["ops"]);
    // `faultline check` on the run agrees.
    let check = std::process::Command::new(common::exe())
        .arg("check")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", common::stderr(&check));
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"type\":\"invoke\",\"id\":1}\n{not json}\n").unwrap();
    let check = std::process::Command::new(common::exe())
        .arg("check")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(254));
    assert!(
        common::stderr(&check).contains("bad.jsonl:1"),
        "{}",
        common::stderr(&check)
    );
}
