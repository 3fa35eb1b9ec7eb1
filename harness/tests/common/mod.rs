//! Helpers shared by the integration tests: running the real `faultline` binary on an
//! experiment written to a temporary directory, and finding what a run left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_faultline")
}

/// A short experiment on a 3-node primary-backup cluster (sync replication) under open-loop
/// cas-register load: `rate` ops/s, and `faults` as a YAML block list (or "").
pub fn primary_backup_yaml(
    name: &str,
    seed: u64,
    duration: &str,
    rate: u32,
    faults: &str,
) -> String {
    let faults = if faults.is_empty() {
        String::new()
    } else {
        format!("faults:\n{faults}")
    };
    format!(
        "name: {name}\nseed: {seed}\nduration: {duration}\ntarget:\n  kind: primary-backup\n  nodes: 3\n  \
         settings: {{ heartbeat: 50ms, takeover_timeout: 250ms, replication: sync }}\n\
         workload:\n  kind: cas-register\n  keys: 4\n  mix: {{ read: 0.5, write: 0.4, cas: 0.1 }}\n  \
         rate: {rate}/s\n  timeout: 500ms\nbalancer:\n  kind: leader-aware\n{faults}"
    )
}

/// A short experiment on a 3-node Raft cluster (50 ms heartbeat, 150-300 ms elections) with a
/// leader-aware balancer: `workload` as the lines inside `workload:` (two-space indented, kind
/// cas-register given), and `faults` as a YAML block list (or "").
pub fn raft_yaml(name: &str, seed: u64, duration: &str, workload: &str, faults: &str) -> String {
    let faults = if faults.is_empty() {
        String::new()
    } else {
        format!("faults:\n{faults}")
    };
    format!(
        "name: {name}\nseed: {seed}\nduration: {duration}\ntarget:\n  kind: raft\n  nodes: 3\n  \
         settings: {{ heartbeat: 50ms, election_timeout: [150ms, 300ms] }}\n\
         workload:\n  kind: cas-register\n  mix: {{ read: 0.5, write: 0.4, cas: 0.1 }}\n{workload}\
         balancer:\n  kind: leader-aware\n{faults}"
    )
}

/// `faultline <args>`, run to its end.
pub fn faultline<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(exe()).args(args).output().unwrap()
}

/// Write `yaml` as `<dir>/<name>.yaml`.
pub fn write_experiment(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, yaml).unwrap();
    p
}

/// `faultline run FILE --out DIR/results --quiet`, waited for (bounded by the caller's
/// experiment duration; the harness stops by itself).
pub fn run(dir: &Path, file: &Path, extra: &[&str]) -> Output {
    Command::new(exe())
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(dir.join("results"))
        .arg("--quiet")
        .args(extra)
        .output()
        .unwrap()
}

/// Start `faultline run` on `yaml` (named `name`) in `dir`, in the background, and wait (up to
/// 40 s) until its `events.jsonl` contains `until` (as `"\"fault_start\""`); the harness child
/// and the run's directory. On a timeout the harness is killed and the test fails. The caller
/// signals and waits for the child.
#[allow(clippy::zombie_processes)]
pub fn start_until(
    dir: &Path,
    name: &str,
    yaml: &str,
    until: &str,
) -> (std::process::Child, PathBuf) {
    let file = write_experiment(dir, name, yaml);
    // Only a run directory this harness makes counts, not an earlier run's.
    let before = newest_run(dir, name);
    let mut child = Command::new(exe())
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.join("results"))
        .arg("--quiet")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if Instant::now() > deadline {
            // Never leave the harness running behind a failed test.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name}: no {until} in events.jsonl in time");
        }
        if let Some(run) = newest_run(dir, name).filter(|r| Some(r) != before.as_ref()) {
            let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap_or_default();
            if events.contains(until) {
                return (child, run);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The newest run directory of an experiment, finished or not (`latest` names a run only once
/// its report is written).
pub fn newest_run(dir: &Path, name: &str) -> Option<PathBuf> {
    let exp_dir = dir.join("results").join(name);
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&exp_dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    runs.sort();
    runs.pop()
}

/// The run directory `latest` names: the newest run with a written report.
pub fn latest(dir: &Path, name: &str) -> PathBuf {
    let link = dir.join("results").join(name).join("latest");
    let target = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    dir.join("results").join(name).join(target)
}

pub fn report(run_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run_dir.join("report.json"))
        .unwrap_or_else(|e| panic!("{}/report.json: {e}", run_dir.display()));
    serde_json::from_str(&text).unwrap()
}

/// The run's `events.jsonl`, one JSON value per line (a torn last line left out).
pub fn events(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Pids of every node process the run started (from `events.jsonl`).
pub fn node_pids(run_dir: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "node_start")
        .filter_map(|e| e["pid"].as_u64().map(|p| p as u32))
        .collect()
}

/// Processes whose command line mentions `needle` (a run directory path), zombies excluded.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if cmd.contains(needle) && !zombie {
            out.push((pid, cmd));
        }
    }
    out
}

/// Wait (bounded) until no process mentions `needle`; returns the survivors.
pub fn wait_gone(needle: &str, within: Duration) -> Vec<(u32, String)> {
    let deadline = Instant::now() + within;
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// False (after printing why) where this process cannot run `network: {mode: netns}`; CI sets
/// `FAULTLINE_REQUIRE_NETNS` so that a broken setup fails there instead of skipping.
pub fn netns_available() -> bool {
    match faultline_faults::netns::supported() {
        Ok(()) => true,
        Err(e) => {
            assert!(
                std::env::var_os("FAULTLINE_REQUIRE_NETNS").is_none(),
                "FAULTLINE_REQUIRE_NETNS is set but netns mode cannot run: {e}"
            );
            eprintln!("SKIPPED: {e}");
            false
        }
    }
}

/// A reference node's verdict-matrix cell: run `experiments/<target>/<name>.yaml` (whose
/// `expect:` must agree with the matrix and whose `name:` is `<target>-<name>`), check the
/// verdict the matrix gives it and exit 0. Returns the report, and the directory holding the
/// run (deleted when dropped).
pub fn matrix_cell(
    target: &str,
    matrix: &[(&str, &str)],
    name: &str,
    extra: &[&str],
) -> (serde_json::Value, tempfile::TempDir) {
    let expected = matrix.iter().find(|(n, _)| *n == name).unwrap().1;
    let (dir, out, r) = matrix_run_in(target, matrix, name, extra);
    assert_eq!(
        r["verdict"],
        expected,
        "{name}: {}\n{}",
        stderr(&out),
        serde_json::to_string_pretty(&r["consistency"]).unwrap()
    );
    assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
    (r, dir)
}

/// Run a cell once (checking its file against the matrix) and return the harness's output
/// and the report, whatever the verdict: for cells whose bug is a race that a run can miss.
pub fn matrix_run(
    target: &str,
    matrix: &[(&str, &str)],
    name: &str,
    extra: &[&str],
) -> (Output, serde_json::Value) {
    let (_dir, out, r) = matrix_run_in(target, matrix, name, extra);
    (out, r)
}

/// A cell whose bug is a race a run can miss: run it with each seed in turn until one comes
/// out `invalid` (exit 0, as its `expect:` asks) and return that run's report. Every other
/// run must be `valid`; none catching it fails the test.
pub fn first_catch(
    target: &str,
    matrix: &[(&str, &str)],
    name: &str,
    seeds: &[&str],
) -> serde_json::Value {
    let mut seen = Vec::new();
    for seed in seeds {
        let (out, r) = matrix_run(target, matrix, name, &["--seed", seed]);
        if r["verdict"] == "invalid" {
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            return r;
        }
        assert_eq!(r["verdict"], "valid", "seed {seed}: {}", stderr(&out));
        seen.push(format!("seed {seed}: valid"));
    }
    panic!("{name}: no run caught it ({seen:?})");
}

fn matrix_run_in(
    target: &str,
    matrix: &[(&str, &str)],
    name: &str,
    extra: &[&str],
) -> (tempfile::TempDir, Output, serde_json::Value) {
    let expected = matrix.iter().find(|(n, _)| *n == name).unwrap().1;
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments")
        .join(target)
        .join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("expect: {expected}")),
        "{name}.yaml's `expect:` disagrees with the matrix"
    );
    assert!(
        text.contains(&format!("name: {target}-{name}\n")),
        "{name}.yaml's `name:` is not {target}-{name}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &file, extra);
    let r = report(&latest(dir.path(), &format!("{target}-{name}")));
    (dir, out, r)
}

/// Every experiment in `experiments/<target>/` has a cell in `matrix`, and every cell a file.
pub fn assert_matrix_matches_files(target: &str, matrix: &[(&str, &str)]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments")
        .join(target);
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut cells: Vec<String> = matrix.iter().map(|(n, _)| n.to_string()).collect();
    cells.sort();
    assert_eq!(files, cells);
}

/// The bar for a leader-kill cell: at least `n` kill -9 events of the leader under load in
/// one run, each followed by a new leader, and no acknowledged write lost.
pub fn assert_leader_kills(r: &serde_json::Value, n: usize) {
    let kills = r["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["fault"] == "kill")
        .count();
    assert!(kills >= n, "only {kills} leader kills");
    assert_eq!(r["consistency"]["lost_writes"], 0);
    let events = r["failover"]["events"].as_array().unwrap();
    let elected = events
        .iter()
        .filter(|e| e["election_ms"].is_number())
        .count();
    assert!(
        elected >= n,
        "{elected} of {} kills saw a new leader",
        events.len()
    );
}
