//! Faults that overlap on one node have the meaning the README gives them ("Faults that overlap
//! on one node"): two pauses nest (the node stays stopped until both have ended), and a kill
//! during a pause wins (the restarted process runs; the pause's end has nothing left to do).
//! Checked on the real processes, by their state in /proc.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

fn experiment() -> String {
    common::raft_yaml(
        "overlapping-faults",
        4,
        "6s",
        "  keys: 2\n  rate: 50/s\n  timeout: 500ms\n",
        "  - { at: 1s, pause: n2, duration: 2s }\n  \
         - { at: 2s, pause: n2, duration: 2s }\n  \
         - { at: 1s, pause: n3, duration: 3s }\n  \
         - { at: 2s, kill: n3, restart_after: 500ms }\n",
    )
}

/// 'T' when the process is stopped, its /proc state letter otherwise.
fn state(pid: u64) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')')
        .next()
        .and_then(|s| s.trim_start().chars().next())
        .unwrap_or('?')
}

/// Sleep until `at` (ms since the Unix epoch).
fn sleep_until(at: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    std::thread::sleep(Duration::from_millis(at.saturating_sub(now)));
}

fn latest_pid(journal: &[Value], node: &str) -> u64 {
    journal
        .iter()
        .filter(|e| e["event"] == "node_start" && e["node"] == node)
        .filter_map(|e| e["pid"].as_u64())
        .next_back()
        .unwrap_or_else(|| panic!("no node_start for {node}"))
}

#[test]
fn overlapping_pauses_nest_and_a_kill_during_a_pause_wins() {
    let dir = tempfile::tempdir().unwrap();
    // Wait until the kill of n3 has been journaled: both pauses of n2 are in force.
    let (mut child, run) = common::start_until(
        dir.path(),
        "overlapping-faults",
        &experiment(),
        "\"fault\":\"kill\"",
    );
    let journal = common::events(&run);
    let origin = journal
        .iter()
        .find(|e| e["event"] == "run_start")
        .and_then(|e| e["unix_ms"].as_u64())
        .expect("run_start.unix_ms");
    let load = journal
        .iter()
        .find(|e| e["event"] == "phase" && e["name"] == "load")
        .and_then(|e| e["t"].as_u64())
        .expect("load phase")
        / 1_000_000;
    // The load starts at `origin + load`; the faults are scheduled from there.
    let at = |ms: u64| origin + load + ms;

    // 3.5 s: the first pause of n2 ended at 3 s, the second holds it until 4 s. n3 was killed
    // at 2 s during its pause and restarted at 2.5 s: the new process runs.
    sleep_until(at(3_500));
    let journal = common::events(&run);
    let n2 = latest_pid(&journal, "n2");
    let n3 = latest_pid(&journal, "n3");
    let (n2_mid, n3_mid) = (state(n2), state(n3));
    // 4.6 s: every pause has ended.
    sleep_until(at(4_600));
    let (n2_after, n3_after) = (state(n2), state(n3));
    let status = child.wait().unwrap();
    let journal = common::events(&run);
    let starts = journal
        .iter()
        .filter(|e| e["event"] == "node_start" && e["node"] == "n3")
        .count();

    assert_eq!(n2_mid, 'T', "n2 must still be stopped by its second pause");
    assert_ne!(n3_mid, 'T', "n3 restarted after its kill must run");
    assert_ne!(n2_after, 'T', "n2 must run once both pauses ended");
    assert_ne!(n3_after, 'T', "n3 must run after its pause's end");
    assert_eq!(starts, 2, "n3 started at launch and again after its kill");
    // Every fault was journaled as ended, and the run finished.
    let ends = journal.iter().filter(|e| e["event"] == "fault_end").count();
    assert_eq!(ends, 4, "{journal:?}");
    assert!(status.code().is_some_and(|c| c <= 2), "{status:?}");
}
