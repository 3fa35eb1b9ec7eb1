//! The Multi-Paxos verdict matrix (`targets/paxos/README.md`), cell by cell: each experiment in
//! `experiments/paxos/` runs against a real 3-node Multi-Paxos cluster and must reach the
//! verdict the matrix gives it: correct settings valid, each planted bug invalid under the
//! fault that exposes it.

mod common;

/// (experiment file, the matrix's verdict). Keep in step with the README's tables: the five
/// process-fault columns for both read modes, quorum loss and kill-all, the partition cells,
/// then the cells that expose each bug (with a control on the correct node where the schedule
/// is a special one).
const MATRIX: &[(&str, &str)] = &[
    ("kill-leader", "valid"),
    ("kill-follower", "valid"),
    ("pause-leader", "valid"),
    ("crash-loop", "valid"),
    ("amnesia", "valid"),
    ("read-lease-kill-leader", "valid"),
    ("read-lease-kill-follower", "valid"),
    ("read-lease-pause-leader", "valid"),
    ("read-lease-crash-loop", "valid"),
    ("read-lease-amnesia", "valid"),
    ("quorum-loss", "valid"),
    ("kill-all", "valid"),
    ("partition-isolate-leader", "valid"),
    ("partition-isolate-leader-lease", "valid"),
    ("partition-leader-one-follower", "valid"),
    ("partition-lagging-follower-kill-leader", "valid"),
    ("lower-ballot-control", "valid"),
    ("bug-skip-phase1-recovery", "invalid"),
    ("bug-skip-phase1-recovery-lagging-follower", "invalid"),
    ("bug-stale-local-reads", "invalid"),
    ("bug-ack-before-persist", "invalid"),
    ("bug-accept-lower-ballot", "invalid"),
];

/// Run a cell's experiment and check its verdict (and that `expect:` agrees with the matrix,
/// so the run exits 0); the report.
fn cell(name: &str) -> serde_json::Value {
    let expected = MATRIX.iter().find(|(n, _)| *n == name).unwrap().1;
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments/paxos")
        .join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("expect: {expected}")),
        "{name}.yaml's `expect:` disagrees with the matrix"
    );
    assert!(
        text.contains(&format!("name: paxos-{name}\n")),
        "{name}.yaml's `name:` is not paxos-{name}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(dir.path(), &file, &[]);
    let run = common::latest(dir.path(), &format!("paxos-{name}"));
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
    r
}

#[test]
fn every_cell_has_a_test_and_every_experiment_a_cell() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/paxos");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut cells: Vec<String> = MATRIX.iter().map(|(n, _)| n.to_string()).collect();
    cells.sort();
    assert_eq!(files, cells);
}

/// One `#[test]` per cell, so cells run in parallel and fail by name.
macro_rules! cells {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                cell($file);
            }
        )*
        /// Every cell of the matrix has its `#[test]` here (`kill_leader` has its own).
        #[test]
        fn every_cell_is_run() {
            let mut run: Vec<&str> = vec!["kill-leader", $($file,)*];
            run.sort_unstable();
            let mut cells: Vec<&str> = MATRIX.iter().map(|(n, _)| *n).collect();
            cells.sort_unstable();
            assert_eq!(run, cells);
        }
    };
}

/// The bar for the leader-kill cell: at least 20 kill -9 events of the leader under load in
/// one run, every one followed by a new leader, and no acknowledged write lost.
#[test]
fn kill_leader() {
    let r = cell("kill-leader");
    let kills: Vec<&serde_json::Value> = r["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["fault"] == "kill")
        .collect();
    assert!(kills.len() >= 20, "only {} leader kills", kills.len());
    assert_eq!(r["consistency"]["lost_writes"], 0);
    let events = r["failover"]["events"].as_array().unwrap();
    let elected = events
        .iter()
        .filter(|e| e["election_ms"].is_number())
        .count();
    assert!(
        elected >= 20,
        "{elected} of {} kills saw a new leader",
        events.len()
    );
}

cells! {
    kill_follower => "kill-follower",
    pause_leader => "pause-leader",
    crash_loop => "crash-loop",
    amnesia => "amnesia",
    read_lease_kill_leader => "read-lease-kill-leader",
    read_lease_kill_follower => "read-lease-kill-follower",
    read_lease_pause_leader => "read-lease-pause-leader",
    read_lease_crash_loop => "read-lease-crash-loop",
    read_lease_amnesia => "read-lease-amnesia",
    quorum_loss => "quorum-loss",
    kill_all => "kill-all",
    partition_isolate_leader => "partition-isolate-leader",
    partition_isolate_leader_lease => "partition-isolate-leader-lease",
    partition_leader_one_follower => "partition-leader-one-follower",
    partition_lagging_follower_kill_leader => "partition-lagging-follower-kill-leader",
    lower_ballot_control => "lower-ballot-control",
    bug_skip_phase1_recovery => "bug-skip-phase1-recovery",
    bug_skip_phase1_recovery_lagging_follower => "bug-skip-phase1-recovery-lagging-follower",
    bug_stale_local_reads => "bug-stale-local-reads",
    bug_ack_before_persist => "bug-ack-before-persist",
    bug_accept_lower_ballot => "bug-accept-lower-ballot",
}
