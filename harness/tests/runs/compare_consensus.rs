//! The consensus comparison suite (`experiments/compare-consensus/`): Raft, Multi-Paxos and
//! primary-backup under one workload and one kill/pause schedule, lined up in the suite
//! summary. The test runs the suite's own files with the schedule shortened (5 leader kills
//! and 2 pauses instead of 12 and 3) to keep the test suite's time down.

use crate::common;

/// The suite's files, with the timeline scaled down; everything else as committed.
fn shortened_suite(dir: &std::path::Path) -> std::path::PathBuf {
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/compare-consensus");
    let suite = dir.join("compare-consensus");
    std::fs::create_dir(&suite).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let short = text
            .replace("duration: 25s", "duration: 12s")
            .replace("until: 18500ms", "until: 7100ms")
            .replace(
                "{ every: 2s, from: 19s, until: 24s, pause: leader, duration: 1s }",
                "{ every: 1500ms, from: 8s, until: 10s, pause: leader, duration: 1s }",
            );
        assert_ne!(
            short,
            text,
            "{}: the schedule changed; update this test",
            path.display()
        );
        std::fs::write(suite.join(path.file_name().unwrap()), short).unwrap();
    }
    suite
}

#[test]
fn the_suite_lines_up_raft_paxos_and_primary_backup() {
    let dir = tempfile::tempdir().unwrap();
    let suite = shortened_suite(dir.path());
    let out = common::run(dir.path(), &suite, &[]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let summary = std::fs::read_to_string(dir.path().join("results/suite-summary.md"))
        .unwrap_or_else(|e| panic!("{e}\n{err}"));
    let rows: Vec<Vec<&str>> = summary
        .lines()
        // The first table: one row per experiment (the per-fault table follows).
        .filter(|l| l.starts_with("| compare-consensus-") && l.contains(" x3 |"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let targets: Vec<&str> = rows.iter().map(|r| r[2]).collect();
    assert_eq!(
        targets,
        ["raft x3", "paxos x3", "primary-backup x3"],
        "{summary}"
    );
    for r in &rows {
        assert_eq!(r[4], "valid", "{summary}");
        assert!(r[6].ends_with('%'), "availability: {summary}");
        // recovery_ms p50 / p99 / max: measured for every protocol.
        assert!(!r[8].contains('-'), "recovery: {summary}");
        assert!(r[9].parse::<f64>().is_ok(), "p50: {summary}");
    }
    for kind in ["raft", "paxos", "primary-backup"] {
        let run = common::latest(dir.path(), &format!("compare-consensus-{kind}"));
        let r = common::report(&run);
        let faults: Vec<&str> = r["failover"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["fault"].as_str().unwrap())
            .collect();
        assert_eq!(
            faults.iter().filter(|f| **f == "kill").count(),
            5,
            "{kind}: {faults:?}"
        );
        assert_eq!(
            faults.iter().filter(|f| **f == "pause").count(),
            2,
            "{kind}: {faults:?}"
        );
        assert_eq!(r["consistency"]["lost_writes"], 0, "{kind}");
    }
}
