//! The Multi-Paxos verdict matrix (`targets/paxos/README.md`), cell by cell: each experiment in
//! `experiments/paxos/` runs against a real 3-node Multi-Paxos cluster and must reach the
//! verdict the matrix gives it: correct settings valid, each planted bug invalid under the
//! fault that exposes it.

use crate::common;

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

/// skip-phase1-recovery shows only when a kill lands after an acknowledged write is chosen and
/// before the leader has told anyone: on a quiet machine about 6 runs in 7 of this cell catch
/// it (debug build; 21-kill runs miss as often, so the misses are not independent per kill).
/// As for Raft's forgotten vote, up to three runs (seeds 17, 18, 19): the bug must show in one
/// of them, and no run may end in anything but `invalid` or `valid`.
#[test]
fn bug_skip_phase1_recovery() {
    let r = common::first_catch(
        "paxos",
        MATRIX,
        "bug-skip-phase1-recovery",
        &["17", "18", "19"],
    );
    let c = &r["consistency"];
    assert!(
        c["lost_writes"].as_u64().unwrap() + c["stale_reads"].as_u64().unwrap() > 0,
        "{c}"
    );
}

matrix_tests! {
    "paxos",
    own: ["bug-skip-phase1-recovery"],
    cells: {
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
        bug_skip_phase1_recovery_lagging_follower => "bug-skip-phase1-recovery-lagging-follower",
        bug_stale_local_reads => "bug-stale-local-reads",
        bug_ack_before_persist => "bug-ack-before-persist",
        bug_accept_lower_ballot => "bug-accept-lower-ballot",
    }
}
