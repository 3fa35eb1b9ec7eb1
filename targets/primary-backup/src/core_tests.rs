//! Scenario tests of the pure core, driven through the simulator with no randomness that
//! matters (fixed seed, 1 ms delays, explicit partitions and crashes).

use faultline_protocol::{ErrorCode, Op, Role};
use faultline_replica::testkit::core::{cas, read, write};

use crate::msg::{Msg, Reject};
use crate::settings::{Replication, Settings};
use crate::sim::Sim;

fn cluster(settings: Settings) -> Sim {
    let mut sim = Sim::new(7, 3, settings);
    sim.max_delay = 1;
    sim.run_for(100);
    assert_eq!(sim.primary().as_deref(), Some("n1"), "n1 bootstraps view 1");
    assert_eq!(sim.view("n1"), 1);
    for n in ["n2", "n3"] {
        assert_eq!(sim.role(n), Some(Role::Follower), "{n}");
    }
    sim
}

#[test]
fn fresh_cluster_waits_for_every_node_before_bootstrapping() {
    let mut sim = Sim::new(7, 3, Settings::default());
    sim.crash("n3");
    sim.run_for(500);
    assert_eq!(sim.primary(), None);
    assert_eq!(sim.role("n1"), Some(Role::Candidate));
    sim.start("n3");
    sim.run_for(100);
    assert_eq!(sim.primary().as_deref(), Some("n1"));
}

#[test]
fn sync_write_is_not_acked_until_backups_have_it() {
    let mut sim = cluster(Settings::default());
    sim.blocked.insert(("n1".into(), "n3".into()));
    let t = sim.request("n1", write("a", 1));
    sim.run_for(50);
    assert_eq!(sim.reply(t), None, "acked without n3");
    sim.heal();
    // n1 resends what n3 missed once it notices no progress.
    sim.run_for(150);
    assert!(sim.reply(t).is_some_and(|r| r.ok), "{:?}", sim.reply(t));
    assert_eq!(sim.view("n1"), 1, "no view change was needed");
    let r = sim.request("n1", read("a"));
    assert_eq!(sim.reply(r).unwrap().value, Some(Some(1)));
}

#[test]
fn dead_backup_is_removed_and_pending_writes_complete() {
    let mut sim = cluster(Settings::default());
    sim.crash("n3");
    let t = sim.request("n1", write("a", 1));
    sim.run_for(100);
    assert_eq!(sim.reply(t), None);
    sim.run_for(400);
    assert!(sim.reply(t).is_some_and(|r| r.ok), "{:?}", sim.reply(t));
    assert!(sim.view("n1") > 1, "n1 moved to a view without n3");
    // n3 restarts, recovers, and is re-admitted with the state.
    sim.start("n3");
    sim.run_for(50);
    sim.run_for(400);
    assert_eq!(sim.role("n3"), Some(Role::Follower));
    assert_eq!(sim.view("n3"), sim.view("n1"));
    assert_eq!(
        sim.core("n3").unwrap().inspect().full_state.read("a"),
        Some(1)
    );
}

#[test]
fn async_write_is_acked_before_backups_have_it() {
    let settings = Settings {
        replication: Replication::Async,
        ..Settings::default()
    };
    let mut sim = cluster(settings);
    sim.isolate("n1");
    let t = sim.request("n1", write("a", 1));
    assert!(
        sim.reply(t).is_some_and(|r| r.ok),
        "answered in the same step, after its fsync"
    );
    assert_eq!(
        sim.disks["n1"].recovered.entries.len(),
        1,
        "persisted before the reply"
    );
    assert_eq!(sim.core("n2").unwrap().inspect().last, 0);
}

#[test]
fn backup_takes_over_after_heartbeat_loss_and_keeps_acked_writes() {
    let mut sim = cluster(Settings::default());
    let t = sim.request("n1", write("a", 1));
    sim.run_for(20);
    assert!(sim.reply(t).unwrap().ok);
    sim.crash("n1");
    // takeover_timeout (200ms) + probe/new-view rounds, n2 first in line.
    sim.run_for(400);
    assert_eq!(sim.primary().as_deref(), Some("n2"));
    let view = sim.view("n2");
    assert_eq!(sim.core("n2").unwrap().owner(view), Some("n2"));
    assert_eq!(sim.role("n3"), Some(Role::Follower));
    let r = sim.request("n2", read("a"));
    assert_eq!(sim.reply(r).unwrap().value, Some(Some(1)));
    // Non-primaries redirect.
    let r = sim.request("n3", read("a"));
    let err = sim.reply(r).unwrap().error.clone().unwrap();
    assert_eq!(err.code, ErrorCode::NotLeader);
    assert_eq!(err.leader.as_deref(), Some("n2"));
    // The old primary restarts as recovering and rejoins.
    sim.start("n1");
    assert_eq!(sim.role("n1"), Some(Role::Recovering));
    sim.run_for(400);
    assert_eq!(sim.role("n1"), Some(Role::Follower));
    assert_eq!(sim.primary().as_deref(), Some("n2"));
}

#[test]
fn isolated_primary_serves_stale_reads_and_loses_writes_until_healed() {
    let mut sim = cluster(Settings::default());
    let t = sim.request("n1", write("a", 1));
    sim.run_for(20);
    assert!(sim.reply(t).unwrap().ok);
    sim.isolate("n1");
    let doomed = sim.request("n1", write("a", 2));
    sim.run_for(600);
    assert_eq!(sim.role("n2"), Some(Role::Leader));
    // The isolated primary dropped its silent backups and acknowledged the write alone.
    assert_eq!(sim.role("n1"), Some(Role::Leader));
    assert!(sim.reply(doomed).unwrap().ok);
    let w = sim.request("n2", write("a", 3));
    sim.run_for(20);
    assert!(sim.reply(w).unwrap().ok);
    // Without a lease the old primary still answers reads from its own state: stale.
    let stale = sim.request("n1", read("a"));
    assert_eq!(sim.reply(stale).unwrap().value, Some(Some(2)));
    // Healing: the side with the higher view number wins (here n1's view 4 over n2's view
    // 2), the other primary steps down and rejoins, and its side's acknowledged write is lost.
    assert_eq!((sim.view("n1"), sim.view("n2")), (4, 2));
    sim.heal();
    sim.run_for(600);
    assert_eq!(sim.primary().as_deref(), Some("n1"));
    for n in ["n2", "n3"] {
        assert_eq!(sim.role(n), Some(Role::Follower), "{n}");
        assert_eq!(
            sim.core(n).unwrap().inspect().full_state.read("a"),
            Some(2),
            "{n}"
        );
    }
}

#[test]
fn primary_fenced_by_a_newer_view_fails_pending_writes_indefinitely() {
    let mut sim = cluster(Settings::default());
    sim.isolate("n1");
    let pending = sim.request("n1", write("a", 1));
    sim.run_for(10);
    assert_eq!(sim.reply(pending), None);
    sim.deliver("n1", "n2", Msg::Reject(Reject { view: 2 }));
    let err = sim.reply(pending).unwrap().error.clone().unwrap();
    assert_eq!(err.code, ErrorCode::Timeout);
    assert!(!err.definite, "the write may have reached a backup");
    assert_eq!(sim.role("n1"), Some(Role::Recovering));
    assert_eq!(sim.view("n1"), 2);
    assert_eq!(
        sim.disks["n1"].recovered.seen_view, 2,
        "the newer view is persisted"
    );
    let r = sim.request("n1", write("a", 2));
    let err = sim.reply(r).unwrap().error.clone().unwrap();
    assert_eq!(
        (err.code, err.leader.as_deref()),
        (ErrorCode::NotLeader, Some("n2"))
    );
}

#[test]
fn lease_makes_an_isolated_primary_refuse_reads() {
    let settings = Settings {
        lease: true,
        ..Settings::default()
    };
    let mut sim = cluster(settings);
    let r = sim.request("n1", read("a"));
    assert!(sim.reply(r).unwrap().ok, "lease held while backups ack");
    sim.isolate("n1");
    sim.run_for(150);
    let r = sim.request("n1", read("a"));
    let err = sim.reply(r).unwrap().error.clone().unwrap();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(err.definite);
}

#[test]
fn paused_primary_does_not_serve_stale_reads_with_a_lease() {
    let settings = Settings {
        lease: true,
        ..Settings::default()
    };
    let mut sim = cluster(settings);
    let w = sim.request("n1", write("a", 1));
    sim.run_for(20);
    assert!(sim.reply(w).unwrap().ok);
    // Pause n1: it takes no steps (its messages are delayed, not lost) while time passes.
    let paused = sim.cores.get_mut("n1").unwrap().take();
    sim.run_for(600);
    assert_eq!(sim.role("n2"), Some(Role::Leader));
    let w = sim.request("n2", write("a", 2));
    sim.run_for(20);
    assert!(sim.reply(w).unwrap().ok);
    // Resume: its first step after the pause is a client read.
    sim.cores.insert("n1".into(), paused);
    let r = sim.request("n1", read("a"));
    let resp = sim.reply(r).unwrap();
    assert!(!resp.ok, "stale read served after a pause: {resp:?}");
    sim.run_for(300);
    assert_ne!(sim.role("n1"), Some(Role::Leader));
}

#[test]
fn cas_is_evaluated_in_log_order() {
    let mut sim = cluster(Settings::default());
    let a = sim.request("n1", cas("c", None, 1));
    let b = sim.request("n1", cas("c", Some(1), 2));
    let c = sim.request("n1", cas("c", Some(1), 3));
    sim.run_for(20);
    assert!(sim.reply(a).unwrap().ok);
    assert!(sim.reply(b).unwrap().ok);
    let err = sim.reply(c).unwrap().error.clone().unwrap();
    assert_eq!(err.code, ErrorCode::CasMismatch);
    let r = sim.request("n1", read("c"));
    assert_eq!(sim.reply(r).unwrap().value, Some(Some(2)));
}

#[test]
fn status_reports_role_view_leader_and_commit() {
    let mut sim = cluster(Settings::default());
    let t = sim.request("n1", write("a", 1));
    sim.run_for(100);
    assert!(sim.reply(t).unwrap().ok);
    for (n, role) in [("n1", Role::Leader), ("n2", Role::Follower)] {
        let s = sim.request(n, Op::Status);
        let st = sim.reply(s).unwrap().status.clone().unwrap();
        assert_eq!(st.role, role);
        assert_eq!(st.term, 1);
        assert_eq!(st.leader.as_deref(), Some("n1"));
        assert_eq!(st.commit, 1, "{n}");
    }
}

#[test]
fn backup_that_acks_a_view_late_catches_up_and_joins_without_a_new_view() {
    let mut sim = cluster(Settings::default());
    sim.crash("n3");
    sim.run_for(500);
    let view = sim.view("n1");
    assert!(view > 1, "n3 removed");
    sim.start("n3");
    // n3 asks to join; as soon as n1 starts the view that re-admits it, n3's answers to n1
    // are lost until that view change has timed out without it.
    for _ in 0..500 {
        sim.run_for(1);
        if sim.view("n1") != view {
            break;
        }
    }
    let view = sim.view("n1");
    sim.blocked.insert(("n3".into(), "n1".into()));
    sim.run_for(200);
    assert_eq!(sim.view("n3"), view, "n3 installed the new view");
    assert!(sim.core("n1").unwrap().serving());
    let w = sim.request("n1", write("a", 1));
    sim.run_for(20);
    assert!(
        sim.reply(w).unwrap().ok,
        "committed without n3, which is not a member"
    );
    sim.heal();
    sim.run_for(200);
    assert_eq!(sim.view("n1"), view, "no further view change was needed");
    assert_eq!(sim.role("n3"), Some(Role::Follower));
    assert_eq!(
        sim.core("n3").unwrap().inspect().full_state.read("a"),
        Some(1)
    );
    // n3 is a member again: sync writes wait for it.
    sim.blocked.insert(("n1".into(), "n3".into()));
    let w = sim.request("n1", write("a", 2));
    sim.run_for(50);
    assert_eq!(sim.reply(w), None, "n3 counts for commit again");
}
