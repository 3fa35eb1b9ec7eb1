//! The harness leaves nothing behind: after a SIGKILL of the harness no node survives
//! (PR_SET_PDEATHSIG), and after SIGINT the run heals, stops the cluster and writes a partial
//! report marked aborted.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

const LONG_RUN: &str = "\
name: leftovers
seed: 3
duration: 60s
target:
  kind: primary-backup
  nodes: 3
workload:
  kind: register
  keys: 4
  rate: 200/s
faults:
  - { at: 1s, pause: follower, duration: 30s }
";

/// Wait (bounded) for the signalled harness to exit; past `within` it is killed and the test
/// fails, so no harness outlives a failed test.
fn wait_exit(
    child: &mut std::process::Child,
    within: Duration,
    after: &str,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("harness did not stop after {after}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start a long run and wait until the pause fault is applied (so the load has begun). The
/// caller signals and waits for the returned child.
fn start(dir: &std::path::Path) -> (std::process::Child, std::path::PathBuf) {
    common::start_until(dir, "leftovers", LONG_RUN, "\"fault_start\"")
}

#[test]
fn sigkill_of_the_harness_leaves_no_node_process() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, run) = start(dir.path());
    let pids = common::node_pids(&run);
    assert_eq!(pids.len(), 3, "three nodes started");
    for p in &pids {
        assert!(std::path::Path::new(&format!("/proc/{p}")).exists());
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    // One node is SIGSTOPped by the pause fault; SIGKILL still ends it.
    let left = common::wait_gone(run.to_str().unwrap(), Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "node processes survived the harness: {left:?}"
    );
    // The history recorded so far is on disk and a report can be rebuilt from it.
    let out = Command::new(common::exe())
        .arg("report")
        .arg(&run)
        .output()
        .unwrap();
    let r = common::report(&run);
    assert_eq!(r["aborted"], true, "{}", common::stderr(&out));
    assert_eq!(r["run"]["complete"], false);
    assert!(r["ops"]["invoked"].as_u64().unwrap() > 0);
    // Nothing wrong in what was recorded, but the run did not finish: unknown, exit 2.
    assert_eq!(r["verdict"], "unknown", "{}", common::stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    // The page says so too.
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("id=\"aborted\""),
        "no aborted banner in report.html"
    );
    assert!(
        html.contains("Incomplete"),
        "no aborted banner in report.html"
    );
}

#[test]
fn sigint_heals_stops_and_writes_a_partial_report() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, run) = start(dir.path());
    // A node dies behind the harness's back: the report must say so, with its last log lines.
    let victim = common::node_pids(&run)[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(30), "SIGINT");
    // An interrupted run that found nothing wrong cannot call itself valid: unknown, exit 2.
    assert_eq!(status.code(), Some(2));
    let r = common::report(&run);
    assert_eq!(r["aborted"], true);
    assert_eq!(r["verdict"], "unknown");
    assert_eq!(r["run"]["complete"], true);
    let exits = r["unexpected_exits"].as_array().unwrap();
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert_eq!(exits[0]["node"], "n1");
    assert!(exits[0]["status"].as_str().unwrap().contains("SIGKILL"));
    assert!(
        !exits[0]["log_tail"].as_str().unwrap().is_empty(),
        "{}",
        exits[0]
    );
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("Node n1 exited unexpectedly"), "{summary}");
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    // The pause was healed before the cluster stopped.
    assert!(events.contains("\"fault_end\""), "{events}");
    assert!(events.contains("\"run_end\""));
    let left = common::wait_gone(run.to_str().unwrap(), Duration::from_secs(2));
    assert!(left.is_empty(), "node processes survived: {left:?}");
}

/// Multi-Paxos with stale local reads planted, read round-robin: followers lag the leader, so
/// the history shows stale reads within a second or two, with no fault at all. Interrupted (SIGINT) or killed (SIGKILL) after that, the run's report judges what
/// was recorded and says `invalid` (exit 1): a violation already seen is a finding, not an
/// unknown.
const STALE: &str = "\
name: interrupted-stale
seed: 5
duration: 60s
target:
  kind: paxos
  nodes: 3
  settings: { heartbeat: 50ms, election_timeout: [150ms, 300ms] }
  bugs: [stale-local-reads]
workload:
  kind: register
  keys: 2
  rate: 300/s
balancer:
  kind: round-robin
";

#[test]
fn an_interrupted_run_whose_history_shows_a_violation_is_invalid() {
    for signal in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGKILL,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, run) =
            common::start_until(dir.path(), "interrupted-stale", STALE, "\"load\"");
        std::thread::sleep(Duration::from_secs(3));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(40), signal.as_str());
        let code = if signal == nix::sys::signal::Signal::SIGKILL {
            let left = common::wait_gone(run.to_str().unwrap(), Duration::from_secs(5));
            assert!(left.is_empty(), "{signal}: left behind: {left:?}");
            let out = Command::new(common::exe())
                .arg("report")
                .arg(&run)
                .output()
                .unwrap();
            out.status.code()
        } else {
            status.code()
        };
        let r = common::report(&run);
        assert_eq!(r["aborted"], true, "{signal}");
        assert_eq!(
            r["verdict"],
            "invalid",
            "{signal}: {}",
            serde_json::to_string_pretty(&r["consistency"]).unwrap()
        );
        assert!(
            r["consistency"]["stale_reads"].as_u64().unwrap() > 0,
            "{signal}"
        );
        assert_eq!(code, Some(1), "{signal}");
    }
}
