//! The harness SIGKILLed at random points of a run: during start-up, the load, a fault, the
//! healing and the report writing. After each kill: no node process survives, `faultline
//! cleanup` has nothing left to do, `faultline report` rebuilds a report that passes the schema
//! and says the run is incomplete (unless the run had already ended), the history on disk lost
//! at most the last flush interval of the load, and `latest` never named a run without its
//! report. The points are drawn from a seed printed by the test; `FAULTLINE_KILL_SEED=<seed>`
//! replays them.

use crate::common;
use crate::report_schema::validate;

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Raft, 3 nodes, a partition then a leader kill, and a pause still in force when the load
/// ends (so the healing has work to do).
fn experiment() -> String {
    common::raft_yaml(
        "kill-anywhere",
        12,
        "5s",
        "  keys: 4\n  rate: 300/s\n  timeout: 500ms\n",
        "  - { at: 1500ms, partition: isolate-leader, duration: 1s }\n  \
         - { at: 3s, kill: leader, restart_after: 500ms }\n  \
         - { at: 4s, pause: follower, duration: 10s }\n",
    )
}

/// How long a recorded line may wait before it reaches the file (`FLUSH_EVERY` in
/// checker/src/history/recorder.rs), and the scheduling slack allowed on top of it on a loaded
/// two-core machine. Without the periodic flush, a 64 KiB buffer at 300 ops/s would hold
/// about two seconds of history, far past this bound.
const FLUSH_EVERY_MS: u64 = 100;
const SLACK_MS: u64 = 300;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// xorshift64*: enough to spread the kill points; the seed is printed for replay.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The latest time (ns on the run clock) of any complete history line.
fn last_history_ns(run: &Path) -> Option<u64> {
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["t"].as_u64())
        .max()
}

/// `latest` may be missing, or name a run whose report is whole; never anything else.
fn assert_latest_names_a_finished_run(results: &Path, when: &str) {
    let link = results.join("latest");
    let Ok(target) = std::fs::read_link(&link) else {
        return;
    };
    let report = results.join(&target).join("report.json");
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("{when}: latest -> {} has no report: {e}", target.display()));
    serde_json::from_str::<Value>(&text)
        .unwrap_or_else(|e| panic!("{when}: latest -> {}: half a report: {e}", target.display()));
}

#[test]
fn sigkill_at_random_points_leaves_nothing_and_a_rebuilt_report_says_what_it_saw() {
    let seed = std::env::var("FAULTLINE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| unix_ms() | 1);
    eprintln!("kill points from FAULTLINE_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    // (what, the journal line that opens it, extra random delay up to this many ms)
    let points = [
        ("start-up", "\"launch\"", 40),
        ("load", "\"name\":\"load\"", 1200),
        ("a fault", "\"fault_start\"", 800),
        ("healing", "\"name\":\"heal\"", 30),
        ("report writing", "\"run_end\"", 20),
    ];
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results").join("kill-anywhere");
    let mut rebuilt = Vec::new();
    for (what, marker, spread) in points {
        let delay = rng.below(spread);
        let ctx = format!("killed during {what} (+{delay} ms, FAULTLINE_KILL_SEED={seed})");
        let (mut child, run) =
            common::start_until(dir.path(), "kill-anywhere", &experiment(), marker);
        std::thread::sleep(Duration::from_millis(delay));
        let killed_at = unix_ms();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        assert_latest_names_a_finished_run(&results, &ctx);

        // Nothing outlives the harness, and cleanup finds nothing to do.
        let left = common::wait_gone(run.to_str().unwrap(), Duration::from_secs(5));
        assert!(left.is_empty(), "{ctx}: left behind: {left:?}");
        let out = common::faultline(&[OsStr::new("cleanup"), run.as_os_str()]);
        assert!(out.status.success(), "{ctx}: {}", common::stderr(&out));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("0 namespace(s) and 0 link(s)"),
            "{ctx}: {said}"
        );

        // The history on disk reaches within a flush of the kill while the load was running.
        let journal = common::events(&run);
        let origin = journal
            .iter()
            .find(|e| e["event"] == "run_start")
            .and_then(|e| e["unix_ms"].as_u64());
        let load_start = journal
            .iter()
            .find(|e| e["event"] == "phase" && e["name"] == "load")
            .and_then(|e| e["t"].as_u64());
        let load_ended = journal
            .iter()
            .any(|e| e["event"] == "phase" && e["name"] == "heal");
        if let (Some(origin), Some(load_start), false) = (origin, load_start, load_ended) {
            // Kills that land in the last instant of the load (the end is not journaled yet)
            // are left out: no operation is due then.
            let load_end_ms = origin + load_start / 1_000_000 + 5_000;
            if killed_at + FLUSH_EVERY_MS < load_end_ms {
                let last = origin + last_history_ns(&run).expect("history lines") / 1_000_000;
                let lost = killed_at.saturating_sub(last);
                eprintln!("{ctx}: the history on disk ends {lost} ms before the kill");
                assert!(
                    lost <= FLUSH_EVERY_MS + SLACK_MS,
                    "{ctx}: the history on disk ends {lost} ms before the kill"
                );
            }
        }

        // A rebuilt report: whole, valid against the schema, honest about the ending.
        let out = common::faultline(&[OsStr::new("report"), run.as_os_str()]);
        let r = common::report(&run);
        validate(&r).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        // The harness writes run.json (what only the live run knew) after it journals the
        // run's end and closes its files: with it, the run was whole and only the report was
        // cut short, so the rebuilt report is the run's own.
        let ended = run.join("run.json").exists();
        if ended {
            assert!(
                journal.iter().any(|e| e["event"] == "run_end"),
                "{ctx}: run.json without run_end"
            );
            assert_eq!(r["run"]["complete"], true, "{ctx}");
            assert_eq!(r["verdict"], "valid", "{ctx}: {}", common::stderr(&out));
            assert_eq!(out.status.code(), Some(0), "{ctx}");
        } else {
            assert_eq!(r["aborted"], true, "{ctx}");
            assert_eq!(r["run"]["complete"], false, "{ctx}");
            assert_eq!(r["verdict"], "unknown", "{ctx}: {}", common::stderr(&out));
            assert_eq!(out.status.code(), Some(2), "{ctx}");
        }
        // The rebuilt report of the newest run moves `latest` to it.
        let target = std::fs::read_link(results.join("latest")).unwrap();
        assert_eq!(target.as_os_str(), run.file_name().unwrap(), "{ctx}");
        rebuilt.push(run);
    }
    // Five runs, five directories, even for runs started within the same second: each kill
    // left its own run to rebuild.
    rebuilt.sort();
    rebuilt.dedup();
    assert_eq!(rebuilt.len(), 5, "{rebuilt:?}");
}
