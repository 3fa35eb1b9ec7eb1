//! `network: {mode: netns}` end to end (root only): a Raft cluster in namespaces survives
//! partitions, packet loss and a bandwidth limit with a valid verdict; a normal run leaves no
//! namespace, link or process; a SIGKILLed harness leaves nothing that `faultline cleanup` does
//! not remove. Skipped with a message where the process lacks CAP_NET_ADMIN or the tools.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn skip() -> bool {
    !common::netns_available()
}

/// The run's journal, and what it names: holder pids and the host link.
fn journal(run: &Path) -> (String, Vec<u32>, String) {
    let text = std::fs::read_to_string(run.join("netns.journal")).unwrap();
    let holders = text
        .lines()
        .filter(|l| l.starts_with("holder "))
        .map(|l| l.split_whitespace().rev().nth(1).unwrap().parse().unwrap())
        .collect();
    let link = text
        .lines()
        .find_map(|l| l.strip_prefix("link "))
        .unwrap()
        .to_string();
    (text, holders, link)
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purposes: it holds no namespace.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn raft_in_namespaces_is_valid_under_partitions_loss_and_bandwidth_and_leaves_nothing() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_experiment(
        dir.path(),
        "raft-netns",
        "\
name: raft-netns
seed: 7
duration: 10s
network: { mode: netns }
target:
  kind: raft
  nodes: 3
  settings: { heartbeat: 50ms, election_timeout: [150ms, 300ms] }
workload:
  kind: cas-register
  keys: 4
  mix: { read: 0.5, write: 0.4, cas: 0.1 }
  rate: 300/s
  timeout: 500ms
balancer:
  kind: leader-aware
faults:
  - { at: 1500ms, partition: isolate-leader, duration: 1500ms }
  - { at: 3500ms, partition: { isolate: leader, direction: in }, cut: reset, duration: 1s }
  - { at: 5s, link: { from: leader, to: others, both: true, loss: 20% }, duration: 1s }
  - { at: 6500ms, link: { from: clients, to: leader, bandwidth: 400kbit/s }, duration: 1s }
  - { at: 8s, link: { from: leader, to: others, delay: 100ms }, duration: 1200ms }
expect: valid
",
    );
    let out = common::run(dir.path(), &file, &[]);
    let run = common::latest(dir.path(), "raft-netns");
    let r = common::report(&run);
    assert_eq!(
        r["verdict"],
        "valid",
        "{}\n{}",
        common::stderr(&out),
        serde_json::to_string_pretty(&r["consistency"]).unwrap()
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    // Every fault was applied (none skipped), and the partition of the leader made a failover
    // with both election and recovery figures.
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    assert_eq!(events.matches("\"fault_applied\"").count(), 5, "{events}");
    assert!(!events.contains("fault_skipped"), "{events}");
    let failovers = r["failover"]["events"].as_array().unwrap();
    assert!(
        failovers
            .iter()
            .any(|e| e["recovery_ms"].is_number() && e["election_ms"].is_number()),
        "{failovers:?}"
    );
    // The delay went through link proxies inside the leader's namespace: a write that began
    // and ended inside that fault needed an acknowledgement from a follower, so it took at least
    // the 100 ms the leader's bytes were held.
    let ev: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |kind: &str| {
        ev.iter()
            .find(|e| e["event"] == kind && e["id"] == 5)
            .and_then(|e| e["t"].as_u64())
            .unwrap()
    };
    let (from, to) = (at("fault_applied"), at("fault_end"));
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let mut invoked = std::collections::HashMap::new();
    let mut inside = Vec::new();
    for l in history.lines() {
        let h: serde_json::Value = serde_json::from_str(l).unwrap();
        let (id, t) = (h["id"].as_u64().unwrap(), h["t"].as_u64().unwrap());
        match h["type"].as_str().unwrap() {
            "invoke" if h["f"] != "read" => {
                invoked.insert(id, t);
            }
            "ok" => {
                if let Some(&s) = invoked.get(&id) {
                    if s >= from && t <= to {
                        inside.push(t - s);
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        inside.len() > 10,
        "only {} writes inside the delay",
        inside.len()
    );
    let fastest = *inside.iter().min().unwrap();
    assert!(
        fastest >= 100_000_000,
        "a write finished in {fastest} ns under a 100 ms delay on the leader's links"
    );
    // Nodes listened on their namespace addresses.
    let cfg = std::fs::read_to_string(run.join("nodes/n1/config.json")).unwrap();
    assert!(cfg.contains("\"10.2"), "{cfg}");
    // Nothing left: holders gone, the host link gone, the registry entry gone, no node.
    let (text, holders, link) = journal(&run);
    assert!(text.trim_end().ends_with("closed"), "{text}");
    assert_eq!(holders.len(), 4, "{text}");
    assert!(wait_until(Duration::from_secs(3), || {
        !link_exists(&link) && holders.iter().all(|p| !alive(*p))
    }));
    let id = link.trim_start_matches(faultline_faults::netns::HOST_LINK_PREFIX);
    assert!(!Path::new(faultline_faults::netns::REGISTRY)
        .join(format!("{id}.journal"))
        .exists());
    assert!(common::wait_gone(run.to_str().unwrap(), Duration::from_secs(3)).is_empty());
}

const LONG_RUN: &str = "\
name: netns-leftovers
seed: 3
duration: 60s
network: { mode: netns }
target:
  kind: raft
  nodes: 3
workload:
  kind: cas-register
  keys: 4
  rate: 200/s
faults:
  - { at: 1s, partition: isolate-leader, duration: 30s }
";

#[test]
fn sigkill_of_the_harness_mid_netns_run_then_cleanup_leaves_nothing() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut child, run) =
        common::start_until(dir.path(), "netns-leftovers", LONG_RUN, "\"fault_applied\"");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let (_, holders, link) = journal(&run);
    assert_eq!(holders.len(), 4);
    let node_pids = common::node_pids(&run);
    assert_eq!(node_pids.len(), 3);
    // `faultline cleanup RUN_DIR` removes whatever is left (the kernel may already have taken
    // it all, holders dying with the harness), and is idempotent.
    for _ in 0..2 {
        let out = Command::new(common::exe())
            .arg("cleanup")
            .arg(&run)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::stderr(&out));
    }
    assert!(wait_until(Duration::from_secs(5), || {
        !link_exists(&link)
            && holders.iter().all(|p| !alive(*p))
            && node_pids.iter().all(|p| !alive(*p))
    }));
    assert!(common::wait_gone(run.to_str().unwrap(), Duration::from_secs(3)).is_empty());
    // And the registry-wide form finds nothing of this run any more.
    let out = Command::new(common::exe()).arg("cleanup").output().unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let id = link.trim_start_matches(faultline_faults::netns::HOST_LINK_PREFIX);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(id));
}

#[test]
fn loss_in_proxy_mode_is_refused_with_its_place() {
    // No root needed: a load-time error.
    let dir = tempfile::tempdir().unwrap();
    let cases = [(
        "",
        "{ at: 1s, link: { from: leader, to: others, loss: 10% }, duration: 1s }",
        "`loss` drops packets",
    )];
    for (net, fault, msg) in cases {
        let yaml = format!(
            "name: refused\nduration: 3s\n{net}target:\n  kind: raft\n  nodes: 3\nworkload:\n  kind: register\nfaults:\n  - {fault}\n"
        );
        let file = common::write_experiment(dir.path(), "refused", &yaml);
        let out = common::run(dir.path(), &file, &[]);
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(254), "{err}");
        assert!(err.contains(msg), "{err}");
        let line = yaml.lines().position(|l| l.contains("- {")).unwrap() + 1;
        assert!(err.contains(&format!("refused.yaml:{line}:")), "{err}");
    }
}

/// Without CAP_NET_ADMIN (a user's shell, or root with every capability dropped by `setpriv`),
/// netns mode is refused before anything starts: exit 254 (bad input, not an internal error),
/// a message naming what it needs, and no node started. Runs everywhere: as root the harness is
/// started through `setpriv`, otherwise directly.
#[test]
fn netns_mode_without_privileges_is_refused_with_what_it_needs() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap();
    let root = euid == "0";
    if root && !Path::new("/usr/bin/setpriv").exists() {
        assert!(
            std::env::var_os("FAULTLINE_REQUIRE_NETNS").is_none(),
            "FAULTLINE_REQUIRE_NETNS is set but /usr/bin/setpriv (util-linux) is missing"
        );
        eprintln!("SKIPPED: root without /usr/bin/setpriv cannot drop its capabilities");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_experiment(
        dir.path(),
        "netns-unprivileged",
        "\
name: netns-unprivileged
duration: 2s
network: { mode: netns }
target: { kind: raft, nodes: 3 }
workload: { kind: register, keys: 2, rate: 50/s }
",
    );
    let mut cmd = if root {
        let mut c = Command::new("/usr/bin/setpriv");
        c.args(["--bounding-set", "-all", "--inh-caps", "-all", "--"])
            .arg(common::exe());
        c
    } else {
        Command::new(common::exe())
    };
    let out = cmd
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("results"))
        .arg("--quiet")
        .output()
        .unwrap();
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(254), "{err}");
    assert!(err.contains("CAP_NET_ADMIN"), "{err}");
    let run = common::newest_run(dir.path(), "netns-unprivileged").expect("a run directory");
    assert!(
        common::node_pids(&run).is_empty(),
        "nodes were started: {err}"
    );
}
