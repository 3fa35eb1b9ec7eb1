//! The Raft verdict matrix (`targets/raft/README.md`), cell by cell: each experiment in
//! `experiments/raft/` runs against a real Raft cluster (3 or 5 nodes) and must reach the verdict the
//! matrix gives it: correct settings valid, each planted bug invalid under the fault that
//! exposes it.

use crate::common;

/// (experiment file, the matrix's verdict). Keep in step with the README's tables: the five
/// process-fault columns for every correct-settings row, then the cells that expose each bug.
const MATRIX: &[(&str, &str)] = &[
    ("kill-leader", "valid"),
    ("kill-follower", "valid"),
    ("pause-leader", "valid"),
    ("crash-loop", "valid"),
    ("amnesia", "valid"),
    ("read-log-kill-leader", "valid"),
    ("read-log-kill-follower", "valid"),
    ("read-log-pause-leader", "valid"),
    ("read-log-crash-loop", "valid"),
    ("read-log-amnesia", "valid"),
    ("read-lease-kill-leader", "valid"),
    ("read-lease-kill-follower", "valid"),
    ("lease-reads-pause-leader", "valid"),
    ("read-lease-crash-loop", "valid"),
    ("read-lease-amnesia", "valid"),
    ("no-prevote-kill-leader", "valid"),
    ("no-prevote-kill-follower", "valid"),
    ("no-prevote-pause-leader", "valid"),
    ("no-prevote-crash-loop", "valid"),
    ("no-prevote-amnesia", "valid"),
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
    ("nemesis-mix", "valid"),
    ("bug-forget-vote-on-restart", "invalid"),
    ("forget-vote-control", "valid"),
];

/// A partition cell again in `network: {mode: netns}`: namespaces, a bridge and nftables
/// instead of the link proxy; the same verdict expected.
fn netns_cell(name: &str) {
    if common::netns_available() {
        let (r, _keep) = cell_with(name, &["--set", "network.mode=netns"]);
        let dir = std::path::PathBuf::from(r["run"]["dir"].as_str().unwrap());
        let nodes = std::fs::read_to_string(dir.join("nodes/n1/config.json")).unwrap();
        assert!(
            nodes.contains("\"10.2"),
            "n1 not on a namespace address: {nodes}"
        );
        assert!(dir.join("netns.journal").exists());
    }
}

/// Run a cell's experiment and check its verdict; the report, and the directory holding the
/// run (deleted when dropped).
fn cell_with(name: &str, extra: &[&str]) -> (serde_json::Value, tempfile::TempDir) {
    common::matrix_cell("raft", MATRIX, name, extra)
}

matrix_tests! {
    "raft",
    own: ["bug-forget-vote-on-restart", "bug-commit-without-quorum"],
    cells: {
        kill_follower => "kill-follower",
        pause_leader => "pause-leader",
        crash_loop => "crash-loop",
        amnesia => "amnesia",
        read_log_kill_leader => "read-log-kill-leader",
        read_log_kill_follower => "read-log-kill-follower",
        read_log_pause_leader => "read-log-pause-leader",
        read_log_crash_loop => "read-log-crash-loop",
        read_log_amnesia => "read-log-amnesia",
        read_lease_kill_leader => "read-lease-kill-leader",
        read_lease_kill_follower => "read-lease-kill-follower",
        lease_reads_pause_leader => "lease-reads-pause-leader",
        read_lease_crash_loop => "read-lease-crash-loop",
        read_lease_amnesia => "read-lease-amnesia",
        no_prevote_kill_leader => "no-prevote-kill-leader",
        no_prevote_kill_follower => "no-prevote-kill-follower",
        no_prevote_pause_leader => "no-prevote-pause-leader",
        no_prevote_crash_loop => "no-prevote-crash-loop",
        no_prevote_amnesia => "no-prevote-amnesia",
        quorum_loss => "quorum-loss",
        kill_all => "kill-all",
        bug_stale_local_reads => "bug-stale-local-reads",
        bug_ack_before_persist => "bug-ack-before-persist",
        partition_isolate_leader => "partition-isolate-leader",
        partition_random_halves_reset => "partition-random-halves-reset",
        partition_bridge_ring => "partition-bridge-ring",
        partition_one_way_leader => "partition-one-way-leader",
        partition_leader_minority_lease => "partition-leader-minority-lease",
        bug_lease_without_margin => "bug-lease-without-margin",
        nemesis_mix => "nemesis-mix",
        forget_vote_control => "forget-vote-control",
    }
}

/// commit-without-quorum shows when the leader, alone after both followers are killed, keeps
/// acknowledging, and a read after the new leader's election reaches a key before a new write
/// overwrites it. Alone on the machine every run of seed 17 catches it; with the whole matrix
/// running beside it, one run in three of this session's `.ci/run`s came out valid (the first
/// operation on each key after the outage was a write). As for the other rare bugs, up to three
/// runs (seeds 17, 18, 19): the bug must show in one, and no run may end in anything but
/// `invalid` or `valid`.
#[test]
fn bug_commit_without_quorum() {
    let r = common::first_catch(
        "raft",
        MATRIX,
        "bug-commit-without-quorum",
        &["17", "18", "19"],
    );
    let c = &r["consistency"];
    assert!(
        c["lost_writes"].as_u64().unwrap() + c["stale_reads"].as_u64().unwrap() > 0,
        "{c}"
    );
}

/// The forgotten vote shows as two nodes leading one term, found by the election-safety
/// check from the nodes' own status, whatever the clients saw. The exposing interleaving is a
/// race (the voter must die between its grant and the winner's first append): on a quiet
/// machine every run of seven rounds catches it, but with the whole matrix running beside it a
/// run can miss. As Jepsen does for rare bugs, up to three runs (seeds 11, 12, 13): the bug
/// must show in one of them, and no run may end in anything but `invalid` or `valid`.
#[test]
fn bug_forget_vote_on_restart() {
    let r = common::first_catch(
        "raft",
        MATRIX,
        "bug-forget-vote-on-restart",
        &["11", "12", "13"],
    );
    let two = r["consistency"]["two_leaders"].as_array().unwrap().clone();
    assert!(!two.is_empty(), "{}", r["consistency"]);
    for t in &two {
        assert!(t["leaders"].as_array().unwrap().len() >= 2, "{t}");
    }
}

/// The partition rows in `network: {mode: netns}` (root; skipped with a message elsewhere).
macro_rules! netns_cells {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                netns_cell($file);
            }
        )*
    };
}

netns_cells! {
    netns_partition_isolate_leader => "partition-isolate-leader",
    netns_partition_random_halves_reset => "partition-random-halves-reset",
    netns_partition_bridge_ring => "partition-bridge-ring",
    netns_partition_one_way_leader => "partition-one-way-leader",
    netns_partition_leader_minority_lease => "partition-leader-minority-lease",
    netns_bug_lease_without_margin => "bug-lease-without-margin",
}
