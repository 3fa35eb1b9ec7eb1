//! The report of a recorded run, re-analysed from its files, matches the committed snapshot
//! (`summary.md`) and keeps the report.json fields the schema fixes. Set `UPDATE_SNAPSHOTS=1`
//! to rewrite the expected summary after an intended change, and review the diff.

use std::path::Path;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/runs/kill-primary"
);

fn copy_fixture(to: &Path) {
    for f in [
        "experiment.yaml",
        "history.jsonl",
        "events.jsonl",
        "run.json",
    ] {
        std::fs::copy(Path::new(FIXTURE).join(f), to.join(f)).unwrap();
    }
}

#[test]
fn summary_of_a_recorded_run_matches_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let report = faultline::report::analyze_and_write(dir.path()).unwrap();
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    let expected_path = Path::new(FIXTURE).join("expected-summary.md");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&expected_path, &summary).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    assert_eq!(
        summary, expected,
        "summary.md changed; UPDATE_SNAPSHOTS=1 to accept"
    );
    assert_eq!(report.exit_code(), 0);

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    for path in [
        "/schema",
        "/experiment/name",
        "/experiment/seed",
        "/experiment/target",
        "/experiment/nodes",
        "/experiment/duration_s",
        "/verdict",
        "/ops/invoked",
        "/ops/ok",
        "/ops/fail",
        "/ops/info",
        "/availability/overall",
        "/availability/steady",
        "/availability/faulted",
        "/availability/windows",
        "/failover/events/0/fault",
        "/failover/events/0/target",
        "/failover/events/0/at_ms",
        "/failover/events/0/election_ms",
        "/failover/events/0/recovery_ms",
        "/failover/events/0/gap_ms",
        "/failover/recovery_ms/p50",
        "/failover/recovery_ms/p99",
        "/failover/recovery_ms/max",
        "/latency_us/read/p50",
        "/latency_us/write/p999",
        "/latency_us/cas/max",
        "/consistency/linearizable",
        "/consistency/lost_writes",
        "/consistency/stale_reads",
        "/consistency/violations",
    ] {
        assert!(json.pointer(path).is_some(), "report.json lacks {path}");
    }
    assert_eq!(json["schema"], "faultline.report/v1");
}

/// A run whose harness was killed has no run.json: the report is rebuilt from the journal,
/// marked aborted and incomplete, and cannot pass.
#[test]
fn a_run_without_its_meta_file_is_reported_as_aborted() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    std::fs::remove_file(dir.path().join("run.json")).unwrap();
    let report = faultline::report::analyze_and_write(dir.path()).unwrap();
    assert!(report.aborted);
    assert!(!report.run.complete);
    assert_eq!(report.exit_code(), 2);
    // The load window comes from the journal's phases, so the figures match the full run's.
    let full = {
        let d = tempfile::tempdir().unwrap();
        copy_fixture(d.path());
        faultline::report::analyze(d.path()).unwrap()
    };
    assert_eq!(report.metrics.ops, full.metrics.ops);
}

/// A second node claiming a term another node leads breaks election safety: the run is
/// invalid even though no client operation showed it, and the summary names the term.
#[test]
fn two_leaders_in_one_term_make_the_run_invalid() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let events = dir.path().join("events.jsonl");
    let mut text = std::fs::read_to_string(&events).unwrap();
    text.push_str(
        r#"{"t":1300000000,"event":"role","node":"n3","role":"leader","term":2,"leader":"n3"}"#,
    );
    text.push('\n');
    std::fs::write(&events, text).unwrap();
    let report = faultline::report::analyze_and_write(dir.path()).unwrap();
    let two = &report.consistency.two_leaders;
    assert_eq!(two.len(), 1, "{two:?}");
    assert_eq!(two[0].term, 2);
    let nodes: Vec<&str> = two[0].leaders.iter().map(|l| l.node.as_str()).collect();
    assert_eq!(nodes, ["n2", "n3"]);
    assert_eq!(report.verdict, faultline::check::Verdict::Invalid);
    assert_eq!(report.exit_code(), 1);
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        summary.contains("- term 2: n2 (seen at 1294 ms), n3 (seen at 1300 ms)"),
        "{summary}"
    );
}
