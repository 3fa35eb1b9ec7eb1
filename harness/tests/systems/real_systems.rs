//! Real systems as targets, end to end on real binaries: etcd 3.4 (Debian's etcd-server) stays
//! valid with linearizable reads under leader kills, pauses and an isolated leader, and shows
//! stale reads with serializable ones; Redis with Sentinel (Debian's redis-server) loses
//! acknowledged writes when a partition isolates its primary; a `kind: command` target started
//! from an argv template runs like a reference node; and a SIGKILLed harness leaves no etcd,
//! Redis or Sentinel process. Skipped, saying why, where the binaries are missing, unless
//! `FAULTLINE_REQUIRE_REAL_SYSTEMS` is set (CI sets it); the netns cells also need root.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Whether `program` is on PATH; if not, says so (and fails where CI requires it).
fn have(program: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .any(|d| d.join(program).is_file());
    if !found {
        assert!(
            std::env::var_os("FAULTLINE_REQUIRE_REAL_SYSTEMS").is_none(),
            "FAULTLINE_REQUIRE_REAL_SYSTEMS is set but `{program}` is not on PATH (apt-get install {package})"
        );
        eprintln!("SKIPPED: `{program}` is not on PATH (apt-get install {package})");
    }
    found
}

/// The event that says a run's load has begun.
const LOAD: &str = "\"name\":\"load\"";

fn experiment(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// Run a committed experiment with `--set` overrides; its report and the run's directory.
fn run_file(rel: &str, name: &str, sets: &[&str]) -> (serde_json::Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = Vec::new();
    for s in sets {
        extra.push("--set");
        extra.push(*s);
    }
    let out = common::run(dir.path(), &experiment(rel), &extra);
    let run = common::latest(dir.path(), name);
    let report = common::report(&run);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{rel}: expected verdict not reached (verdict {}):\n{}",
        report["verdict"],
        common::stderr(&out)
    );
    (report, dir)
}

/// Every fault of the run has an election and a recovery time.
fn assert_failovers(r: &serde_json::Value, faults: usize) {
    let events = r["failover"]["events"].as_array().unwrap();
    assert!(
        events.len() >= faults,
        "{} faults: {events:?}",
        events.len()
    );
    for e in events {
        assert!(e["election_ms"].is_number(), "no election time: {e}");
        assert!(e["recovery_ms"].is_number(), "no recovery time: {e}");
    }
}

#[test]
fn etcd_with_linearizable_reads_stays_valid_under_leader_kills_and_pauses() {
    if !have("etcd", "etcd-server") {
        return;
    }
    let (r, _d) = run_file(
        "experiments/etcd/1-kill-leader.yaml",
        "etcd-kill-leader",
        &["duration=15s"],
    );
    assert_eq!(r["verdict"], "valid");
    assert_eq!(r["consistency"]["lost_writes"], 0);
    assert_failovers(&r, 2);
    // Member names come back from etcd's member ids: the killed nodes are named.
    let killed: Vec<&str> = r["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["nodes"][0].as_str())
        .collect();
    assert!(killed.iter().all(|n| n.starts_with('n')), "{killed:?}");

    let (r, _d) = run_file(
        "experiments/etcd/2-pause-leader.yaml",
        "etcd-pause-leader",
        &["duration=15s"],
    );
    assert_eq!(r["verdict"], "valid");
    assert_failovers(&r, 2);
}

#[test]
fn etcd_isolated_leader_is_valid_and_serializable_reads_go_stale() {
    if !have("etcd", "etcd-server") || !common::netns_available() {
        return;
    }
    let (r, _d) = run_file(
        "experiments/etcd/3-isolate-leader.yaml",
        "etcd-isolate-leader",
        &["duration=14s"],
    );
    assert_eq!(r["verdict"], "valid");
    assert_failovers(&r, 2);

    let (r, _d) = run_file(
        "experiments/etcd/4-serializable-reads-partition.yaml",
        "etcd-serializable-reads-partition",
        &["duration=14s"],
    );
    assert_eq!(r["verdict"], "invalid");
    let stale = r["consistency"]["stale_reads"].as_u64().unwrap();
    assert!(stale > 0, "no stale read found: {}", r["consistency"]);
    let kinds: Vec<&str> = r["consistency"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"stale-read"), "{kinds:?}");
}

#[test]
fn redis_sentinel_loses_acknowledged_writes_when_the_primary_is_isolated() {
    if !have("redis-server", "redis-server redis-sentinel") || !common::netns_available() {
        return;
    }
    let (r, _d) = run_file(
        "experiments/redis-sentinel/1-isolate-primary.yaml",
        "redis-sentinel-isolate-primary",
        &[],
    );
    assert_eq!(r["verdict"], "invalid");
    let lost = r["consistency"]["lost_writes"].as_u64().unwrap();
    assert!(lost > 0, "no lost write: {}", r["consistency"]);
    // The Sentinels promoted another server: an election was seen.
    let events = r["failover"]["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["election_ms"].is_number()),
        "no failover seen: {events:?}"
    );
}

#[test]
fn redis_sentinel_fails_over_a_killed_primary_and_clients_follow() {
    if !have("redis-server", "redis-server redis-sentinel") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: redis-kill\nseed: 5\nduration: 12s\ntarget:\n  kind: redis-sentinel\n  nodes: 3\n  \
                settings: { down_after: 1s, failover_timeout: 3s }\n\
                workload:\n  kind: cas-register\n  keys: 4\n  mix: { read: 0.5, write: 0.4, cas: 0.1 }\n  \
                rate: 200/s\n  timeout: 1s\nbalancer:\n  kind: leader-aware\n  max_tries: 3\n\
                faults:\n  - { at: 3s, kill: primary, restart_after: 5s }\n\
                checks: [linearizable, lost-writes, stale-reads]\n";
    let file = common::write_experiment(dir.path(), "redis-kill", yaml);
    let out = common::run(dir.path(), &file, &[]);
    let run = common::latest(dir.path(), "redis-kill");
    let r = common::report(&run);
    // Replication is asynchronous: a write the killed primary acknowledged but had not yet
    // sent may be lost, so the verdict may be either; the run itself must work.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        common::stderr(&out)
    );
    // The Sentinels promoted a replica: a new primary took writes before the old one came back.
    let e = &r["failover"]["events"][0];
    assert!(e["election_ms"].is_number(), "{e}");
    let recovery = e["recovery_ms"].as_f64().unwrap();
    assert!(
        recovery < 5000.0,
        "writes resumed only with the restart: {e}"
    );
    // The clients found the new primary: most operations succeeded.
    let ok = r["ops"]["ok"].as_u64().unwrap();
    let total = r["ops"]["invoked"].as_u64().unwrap();
    assert!(ok * 10 > total * 8, "only {ok} of {total} ok: {}", r["ops"]);
}

#[test]
fn a_command_target_runs_from_its_argv_template() {
    let (r, _d) = run_file(
        "experiments/command/raft-as-command.yaml",
        "raft-as-command",
        &["duration=14s"],
    );
    assert_eq!(r["verdict"], "valid");
    assert_failovers(&r, 2);
    assert_eq!(r["experiment"]["target"], "command");
}

#[test]
fn bad_real_system_targets_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "target:\n  kind: command\n  nodes: 3\n",
            "needs `command:`",
        ),
        (
            "target:\n  kind: command\n  nodes: 3\n  command: [x, \"{port}\"]\n",
            "unknown placeholder `{port}`",
        ),
        (
            "target:\n  kind: etcd\n  nodes: 3\n  settings: { heartbeat: 100ms, election_timeout: 200ms }\n",
            "5 x settings.heartbeat",
        ),
        (
            "target:\n  kind: etcd\n  nodes: 3\n  binary: /nonexistent/etcd\n",
            "cannot find `/nonexistent/etcd`",
        ),
        (
            "target:\n  kind: etcd\n  nodes: 3\nfaults:\n  - { at: 1s, partition: halves, duration: 1s }\n\
             network: { mode: proxy }\n",
            "use `network: {mode: netns}`",
        ),
        (
            "target:\n  kind: raft\n  nodes: 3\n  command: [x]\n",
            "only kind: command takes a command",
        ),
        (
            "target:\n  kind: redis-sentinel\n  nodes: 3\n  settings: { quorum: 4 }\n",
            "settings.quorum (4) is more than the 3",
        ),
    ];
    for (i, (target, want)) in cases.iter().enumerate() {
        let yaml = format!(
            "name: bad{i}\nduration: 2s\n{target}workload:\n  kind: register\n  rate: 10/s\n"
        );
        let file = common::write_experiment(dir.path(), &format!("bad{i}"), &yaml);
        let out = common::run(dir.path(), &file, &[]);
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(254), "case {i}: {err}");
        assert!(err.contains(want), "case {i}: want {want:?} in:\n{err}");
    }
}

#[test]
fn a_sentinel_that_dies_during_the_run_is_reported() {
    if !have("redis-server", "redis-server redis-sentinel") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        "name: sentinel-dies\nseed: 9\nduration: 8s\ntarget:\n  kind: redis-sentinel\n  nodes: 3\n\
                workload:\n  kind: register\n  keys: 4\n  rate: 100/s\n";
    let (mut child, _run) = common::start_until(dir.path(), "sentinel-dies", yaml, LOAD);
    // Redis titles a Sentinel `redis-server HOST:PORT [sentinel]`.
    let sentinel = children_of(child.id()).into_iter().find(|p| {
        std::fs::read(format!("/proc/{p}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("[sentinel]"))
    });
    let Some(sentinel) = sentinel else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no Sentinel among the harness's children while the load ran");
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sentinel as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the run itself still passes");
    let r = common::report(&common::latest(dir.path(), "sentinel-dies"));
    let exits = r["unexpected_exits"].as_array().unwrap();
    assert!(
        exits
            .iter()
            .any(|x| x["node"].as_str().unwrap().ends_with("(sidecar)")
                && x["status"].as_str().unwrap().contains("SIGKILL")),
        "{exits:?}"
    );
}

/// Start a long run of `yaml`, wait until its load has begun, SIGKILL the harness, and check
/// that none of the (at least `min_children`) processes it had started survives.
fn sigkill_leaves_nothing(name: &str, yaml: &str, min_children: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, run) = common::start_until(dir.path(), name, yaml, LOAD);
    // Servers and Sentinels rename their process titles, so find them as the harness's
    // children.
    let children = children_of(child.id());
    assert!(
        children.len() >= min_children,
        "{name}: {} processes under the harness while it ran, want {min_children}",
        children.len()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left: Vec<u32> = children.clone();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left.retain(|&p| alive(p));
    }
    assert!(
        left.is_empty(),
        "{name}: left behind: {left:?} (of {children:?}) in {}",
        run.display()
    );
}

/// Live (not zombie) processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = stat.rsplit(')').next().unwrap_or("");
            let mut fields = after.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            ppid == parent && state != "Z"
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn a_sigkilled_harness_leaves_no_etcd_redis_or_sentinel_process() {
    let load = "workload:\n  kind: register\n  keys: 4\n  rate: 100/s\n";
    if have("etcd", "etcd-server") {
        sigkill_leaves_nothing(
            "etcd-leftovers",
            &format!(
                "name: etcd-leftovers\nduration: 60s\ntarget:\n  kind: etcd\n  nodes: 3\n  \
                 settings: {{ heartbeat: 50ms, election_timeout: 250ms }}\n{load}"
            ),
            3,
        );
    }
    if have("redis-server", "redis-server redis-sentinel") {
        sigkill_leaves_nothing(
            "redis-leftovers",
            &format!(
                "name: redis-leftovers\nduration: 60s\ntarget:\n  kind: redis-sentinel\n  nodes: 3\n{load}"
            ),
            6,
        );
    }
}
