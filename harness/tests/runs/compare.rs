//! `faultline compare` on real runs: two short quickstart runs side by side (Markdown and
//! JSON, with deltas), a suite's results directory alone and against a second run of the same
//! suite, and bad input (exit 254, naming the path).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn compare(args: &[&Path], format: &str) -> Output {
    Command::new(common::exe())
        .arg("compare")
        .args(args)
        .args(["--format", format])
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The quickstart, three seconds long with one primary kill.
fn short_quickstart(dir: &Path, seed: &str) -> Output {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/quickstart.yaml");
    common::run(
        dir,
        &file,
        &[
            "--seed",
            seed,
            "--set",
            "duration=3s",
            "--set",
            "workload.rate=200/s",
            "--set",
            "faults=[{at: 1s, kill: primary, restart_after: 1s}]",
        ],
    )
}

/// The run directories of an experiment under `<dir>/results`, oldest first.
fn run_dirs(dir: &Path, experiment: &str) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join("results").join(experiment))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "latest")
        .collect();
    runs.sort();
    runs
}

#[test]
fn two_quickstart_runs_compare_in_markdown_and_json_with_deltas() {
    let dir = tempfile::tempdir().unwrap();
    // Different seeds: two distinct run directories, run one after the other.
    for seed in ["1", "2"] {
        let out = short_quickstart(dir.path(), seed);
        assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    }
    let runs = run_dirs(dir.path(), "quickstart");
    assert_eq!(runs.len(), 2, "{runs:?}");
    let labels: Vec<String> = runs
        .iter()
        .map(|r| format!("quickstart/{}", r.file_name().unwrap().to_string_lossy()))
        .collect();
    // The second as a report file, to take both kinds of argument.
    let second = runs[1].join("report.json");
    let args = [runs[0].as_path(), second.as_path()];

    let md = compare(&args, "markdown");
    assert_eq!(md.status.code(), Some(0), "{}", common::stderr(&md));
    let md = stdout(&md);
    let header = md.lines().next().unwrap();
    assert_eq!(
        header,
        format!("| metric | {} | {} | Δ | Δ% |", labels[0], labels[1]),
        "{md}"
    );
    let row = |name: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no {name} row:\n{md}"))
            .split(" | ")
            .map(|c| c.trim_matches(|ch| ch == '|' || ch == ' ').to_string())
            .collect::<Vec<String>>()
    };
    assert_eq!(row("verdict")[1..3], ["valid", "valid"]);
    // Each run's values, then the second's absolute and relative delta against the first.
    let ok = row("ops ok");
    let (a, b): (i64, i64) = (ok[1].parse().unwrap(), ok[2].parse().unwrap());
    assert_eq!(ok[3], format!("{:+}", b - a), "{ok:?}");
    assert!(ok[4].ends_with('%'), "{ok:?}");
    let recovery = row("recovery p99 ms");
    assert!(recovery[1].parse::<f64>().is_ok() && recovery[2].parse::<f64>().is_ok());
    assert!(recovery[3].starts_with(['+', '-']), "{recovery:?}");
    assert!(row("availability")[3].ends_with(" pp"));
    for name in [
        "throughput ok/s",
        "availability faulted",
        "availability after heal",
        "election p50 ms",
        "latency p99.9 ms",
        "lost writes",
        "stale reads",
        "fault late p99 ms",
    ] {
        row(name);
    }

    let json = compare(&args, "json");
    assert_eq!(json.status.code(), Some(0), "{}", common::stderr(&json));
    let c: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(c["schema"], "faultline.compare/v1");
    assert_eq!(c["layout"], "runs");
    assert_eq!(c["columns"][0]["label"], labels[0].as_str());
    assert_eq!(c["columns"][1]["label"], labels[1].as_str());
    let rows = c["rows"].as_array().unwrap();
    // Runs with a kill have every metric: no pointer into report.json has gone stale.
    for r in rows {
        let values = r["values"].as_array().unwrap();
        assert!(
            values.len() == 2 && values.iter().all(|v| !v.is_null()),
            "{}",
            r
        );
    }
    let ops_ok = rows.iter().find(|r| r["metric"]["id"] == "ops_ok").unwrap();
    let (a, b) = (
        ops_ok["values"][0].as_f64().unwrap(),
        ops_ok["values"][1].as_f64().unwrap(),
    );
    assert!(ops_ok["deltas"][0].is_null());
    assert_eq!(ops_ok["deltas"][1]["abs"].as_f64(), Some(b - a));
    let rel = ops_ok["deltas"][1]["rel"].as_f64().unwrap();
    assert!((rel - (b - a) / a).abs() < 1e-6, "{rel}");
    let lat = rows
        .iter()
        .find(|r| r["metric"]["id"] == "latency_p99_ms")
        .unwrap();
    assert!(lat["values"][0].as_f64().unwrap() > 0.0);
}

#[test]
fn suite_results_compare_per_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite");
    std::fs::create_dir(&suite).unwrap();
    // File names give the run order: cmp-steady runs first though it sorts last by name.
    let steady = common::primary_backup_yaml("cmp-steady", 4, "2s", 200, "");
    let kill = common::primary_backup_yaml(
        "cmp-kill",
        3,
        "2s",
        200,
        "  - { at: 700ms, kill: primary, restart_after: 800ms }\n",
    );
    std::fs::write(suite.join("1-steady.yaml"), steady).unwrap();
    std::fs::write(suite.join("2-kill.yaml"), kill).unwrap();
    let outs: Vec<PathBuf> = ["old", "new"].iter().map(|n| dir.path().join(n)).collect();
    std::thread::scope(|s| {
        for out in &outs {
            let suite = &suite;
            s.spawn(move || {
                let o = Command::new(common::exe())
                    .arg("run")
                    .arg(suite)
                    .arg("--out")
                    .arg(out)
                    .arg("--quiet")
                    .output()
                    .unwrap();
                assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
            });
        }
    });

    // One suite: its experiments against the first that ran, one row per experiment.
    let one = compare(&[&outs[0]], "table");
    assert_eq!(one.status.code(), Some(0), "{}", common::stderr(&one));
    let table = stdout(&one);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("experiment ") && lines[0].contains("recovery p99 ms"));
    assert!(lines[2].starts_with("cmp-steady "), "{table}");
    assert!(lines[3].starts_with("cmp-kill "), "{table}");
    assert!(lines[3].contains('%'), "no relative delta: {table}");

    // Two suites: one row per metric and experiment.
    let two = compare(&[&outs[0], &outs[1]], "markdown");
    assert_eq!(two.status.code(), Some(0), "{}", common::stderr(&two));
    let md = stdout(&two);
    assert_eq!(
        md.lines().next().unwrap(),
        format!(
            "| metric | experiment | {} | {} | Δ | Δ% |",
            outs[0].display(),
            outs[1].display()
        )
    );
    for experiment in ["cmp-steady", "cmp-kill"] {
        let prefix = format!("| verdict | {experiment} | valid | valid |");
        assert!(md.lines().any(|l| l.starts_with(&prefix)), "{md}");
        assert!(
            md.lines()
                .any(|l| l.starts_with(&format!("| ops ok | {experiment} |"))),
            "{md}"
        );
    }
}

#[test]
fn bad_input_exits_254_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let other = dir.path().join("other.json");
    std::fs::write(&other, r#"{"schema": "someone.else/v3"}"#).unwrap();
    let not_json = dir.path().join("report.json");
    std::fs::write(&not_json, "not json").unwrap();
    for (bad, wanted) in [
        (&missing, "No such file"),
        (&other, "unknown report schema `someone.else/v3`"),
        (&not_json, "not a faultline report"),
    ] {
        let out = compare(&[bad, &other], "table");
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(254), "{err}");
        assert!(
            err.contains(&bad.display().to_string()) && err.contains(wanted),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}
