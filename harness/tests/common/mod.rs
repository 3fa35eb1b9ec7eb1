//! Helpers shared by the integration tests: running the real `faultline` binary on an
//! experiment written to a temporary directory, and finding what a run left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_faultline")
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

/// The newest run directory of an experiment.
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
