//! The Raft verdict matrix (`targets/raft/README.md`), cell by cell: each experiment in
//! `experiments/raft/` runs against a real Raft cluster (3 or 5 nodes) and must reach the verdict the
//! matrix gives it: correct settings valid, each planted bug invalid under the fault that
//! exposes it.

mod common;

/// (experiment file, the matrix's verdict). Keep in step with the README's table.
const MATRIX: &[(&str, &str)] = &[
    ("kill-leader", "valid"),
    ("kill-follower", "valid"),
    ("pause-leader", "valid"),
    ("crash-loop", "valid"),
    ("amnesia", "valid"),
    ("lease-reads-pause-leader", "valid"),
    ("quorum-loss", "valid"),
    ("kill-all", "valid"),
    ("bug-stale-local-reads", "invalid"),
    ("bug-ack-before-persist", "invalid"),
    ("bug-commit-without-quorum", "invalid"),
    ("partition-isolate-leader", "valid"),
    ("partition-random-halves-reset", "valid"),
    ("partition-bridge-ring", "valid"),
    ("partition-one-way-leader", "valid"),
    ("partition-leader-minority-lease", "valid"),
    ("bug-lease-without-margin", "invalid"),
];

fn cell(name: &str) {
    let expected = MATRIX.iter().find(|(n, _)| *n == name).unwrap().1;
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments/raft")
        .join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("expect: {expected}")),
        "{name}.yaml's `expect:` disagrees with the matrix"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(dir.path(), &file, &[]);
    let run = common::latest(dir.path(), &format!("raft-{name}"));
    let r = common::report(&run);
    assert_eq!(
        r["verdict"],
        expected,
        "{name}: {}\n{}",
        common::stderr(&out),
        serde_json::to_string_pretty(&r["consistency"]).unwrap()
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: {}",
        common::stderr(&out)
    );
}

#[test]
fn every_cell_has_a_test_and_every_experiment_a_cell() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/raft");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut cells: Vec<String> = MATRIX.iter().map(|(n, _)| n.to_string()).collect();
    cells.sort();
    assert_eq!(files, cells);
}

#[test]
fn kill_leader() {
    cell("kill-leader");
}
#[test]
fn kill_follower() {
    cell("kill-follower");
}
#[test]
fn pause_leader() {
    cell("pause-leader");
}
#[test]
fn crash_loop() {
    cell("crash-loop");
}
#[test]
fn amnesia() {
    cell("amnesia");
}
#[test]
fn lease_reads_pause_leader() {
    cell("lease-reads-pause-leader");
}
#[test]
fn kill_all() {
    cell("kill-all");
}
#[test]
fn quorum_loss() {
    cell("quorum-loss");
}
#[test]
fn bug_stale_local_reads() {
    cell("bug-stale-local-reads");
}
#[test]
fn bug_ack_before_persist() {
    cell("bug-ack-before-persist");
}
#[test]
fn bug_commit_without_quorum() {
    cell("bug-commit-without-quorum");
}
#[test]
fn partition_isolate_leader() {
    cell("partition-isolate-leader");
}
#[test]
fn partition_random_halves_reset() {
    cell("partition-random-halves-reset");
}
#[test]
fn partition_bridge_ring() {
    cell("partition-bridge-ring");
}
#[test]
fn partition_one_way_leader() {
    cell("partition-one-way-leader");
}
#[test]
fn partition_leader_minority_lease() {
    cell("partition-leader-minority-lease");
}
#[test]
fn bug_lease_without_margin() {
    cell("bug-lease-without-margin");
}
