//! Scenario tests of the pure core, driven through the simulator with small fixed delays and
//! explicit partitions and crashes. Every step still runs the simulator's safety checks.

use faultline_protocol::Role;
use faultline_replica::testkit::core::{
    acknowledged, answer_after, answered_at_once, lagging_node_catches_up_from_a_snapshot, others,
    read, read_at_leader, settled, wipe_a_follower, write, ScenarioSim,
};

use crate::msg::{Accept, Msg, Nack, Value};
use crate::settings::{ReadMode, Settings};
use crate::sim::Sim;
use crate::{BUG_ACCEPT_LOWER_BALLOT, BUG_ACK_BEFORE_PERSIST, BUG_SKIP_PHASE1_RECOVERY};

faultline_replica::scenario_core!(crate::core::PaxosCore, snap_slot);
faultline_replica::shared_scenarios!(super::Sim);

fn cluster_with(settings: Settings, bugs: &[&str]) -> (Sim, String) {
    settled(settings, bugs)
}

fn cluster(settings: Settings) -> (Sim, String) {
    settled(settings, &[])
}

#[test]
fn isolated_leader_steps_down_and_the_majority_takes_over() {
    let (mut sim, old) = cluster(Settings::default());
    sim.isolate(&old);
    let pending = sim.request(&old, write("a", 1)).unwrap();
    sim.run_for(1_000).unwrap();
    assert_ne!(sim.core(&old).unwrap().role(), Role::Leader);
    let r = sim.reply(pending).expect("answered when it stepped down");
    assert!(!r.ok, "{r:?}");
    let new = sim.leader().expect("the majority took over");
    assert_ne!(new, old);
    let t = sim.request(&new, write("a", 2)).unwrap();
    sim.run_for(100).unwrap();
    assert!(sim.reply(t).is_some_and(|r| r.ok));
    // The old leader raised its promise with failed takeovers while cut off; after the heal
    // its nack makes the leader prepare a higher ballot at once (or the old node wins with
    // its own): one leader again, followed by all, holding the write.
    sim.heal();
    sim.run_for(600).unwrap();
    let leader = sim.leader().expect("a leader after the heal");
    for n in sim.nodes.clone() {
        assert_eq!(sim.leader_of(&n), Some(leader.clone()));
    }
    assert_eq!(read_at_leader(&mut sim, "a"), Some(2));
}

/// Leader `L` proposes a write that only `n_a` accepts (its answer is lost), then dies. Phase 1
/// of the next leader must find it in `n_a`'s promise and choose it. Returns what a read of
/// the key at the new leader gives.
fn minority_accepted_value_after_leader_crash(bugs: &[&str]) -> Option<i64> {
    let (mut sim, old) = cluster_with(Settings::default(), bugs);
    let fs = others(&sim.nodes, &old);
    let (a, b) = (fs[0].clone(), fs[1].clone());
    sim.blocked.insert((old.clone(), b.clone()));
    sim.blocked.insert((a.clone(), old.clone()));
    let t = sim.request(&old, write("x", 7)).unwrap();
    sim.run_for(10).unwrap();
    assert_eq!(sim.reply(t), None);
    let slot = sim
        .core(&old)
        .unwrap()
        .inspect()
        .accepted
        .keys()
        .copied()
        .max();
    let slot = slot.expect("the leader accepted its proposal");
    assert!(sim.core(&a).unwrap().inspect().accepted.contains_key(&slot));
    assert!(!sim.core(&b).unwrap().inspect().accepted.contains_key(&slot));
    sim.crash(&old);
    sim.heal();
    sim.run_for(800).unwrap();
    read_at_leader(&mut sim, "x")
}

#[test]
fn a_new_leader_adopts_a_value_only_a_minority_accepted() {
    assert_eq!(minority_accepted_value_after_leader_crash(&[]), Some(7));
}

#[test]
fn skip_phase1_recovery_drops_a_value_only_a_minority_accepted() {
    // The bug's leader starts proposing at its own chosen prefix: the slot gets a fresh value
    // (or a read), and the write that was accepted there is gone.
    assert_eq!(
        minority_accepted_value_after_leader_crash(&[BUG_SKIP_PHASE1_RECOVERY]),
        None
    );
}

#[test]
fn a_gap_nobody_accepted_is_filled_with_a_noop() {
    let (mut sim, old) = cluster(Settings::default());
    let fs = others(&sim.nodes, &old);
    let (a, b) = (fs[0].clone(), fs[1].clone());
    // The first proposal reaches nobody; the second only `a`, whose answer is lost.
    sim.blocked.insert((old.clone(), a.clone()));
    sim.blocked.insert((old.clone(), b.clone()));
    sim.request(&old, write("g", 1)).unwrap();
    sim.run_for(1).unwrap();
    sim.blocked.remove(&(old.clone(), a.clone()));
    sim.blocked.insert((a.clone(), old.clone()));
    sim.request(&old, write("h", 2)).unwrap();
    sim.run_for(5).unwrap();
    let gap = sim.core(&old).unwrap().commit() + 1;
    let acc = sim.core(&a).unwrap().inspect().accepted;
    assert!(
        !acc.contains_key(&gap) && acc.contains_key(&(gap + 1)),
        "{acc:?}"
    );
    sim.crash(&old);
    sim.heal();
    sim.run_for(800).unwrap();
    let leader = sim.leader().unwrap();
    let c = sim.core(&leader).unwrap().inspect();
    assert_eq!(c.chosen.get(&gap), Some(&Value::Noop), "{:?}", c.chosen);
    assert_eq!(read_at_leader(&mut sim, "g"), None);
    assert_eq!(read_at_leader(&mut sim, "h"), Some(2));
}

#[test]
fn acknowledged_writes_survive_a_restart_of_every_node() {
    let (mut sim, leader) = cluster(Settings::default());
    let ts: Vec<_> = (1..=20)
        .map(|i| {
            sim.request(&leader, write(&format!("k{}", i % 4), i))
                .unwrap()
        })
        .collect();
    sim.run_for(100).unwrap();
    assert!(ts.iter().all(|t| sim.reply(*t).is_some_and(|r| r.ok)));
    for n in sim.nodes.clone() {
        sim.crash(&n);
    }
    for n in sim.nodes.clone() {
        sim.start(&n);
    }
    sim.run_for(800).unwrap();
    assert_eq!(read_at_leader(&mut sim, "k0"), Some(20));
    assert_eq!(read_at_leader(&mut sim, "k3"), Some(19));
}

#[test]
fn ack_before_persist_loses_acknowledged_writes_when_every_node_crashes() {
    let (mut sim, leader) = cluster_with(Settings::default(), &[BUG_ACK_BEFORE_PERSIST]);
    let t = sim.request(&leader, write("a", 1)).unwrap();
    sim.run_for(20).unwrap();
    assert!(sim.reply(t).is_some_and(|r| r.ok));
    for n in sim.nodes.clone() {
        sim.crash(&n);
    }
    for n in sim.nodes.clone() {
        sim.start(&n);
    }
    // The simulator's agreement check may fire first (a new value in the lost slot); either
    // way the acknowledged write is gone.
    if sim.run_for(800).is_ok() {
        let leader = sim.leader().unwrap();
        let r = sim.request(&leader, read("a"));
        let lost = match r {
            Ok(t) => {
                sim.run_for(100).is_err() || sim.reply(t).is_some_and(|r| r.value == Some(None))
            }
            Err(_) => true,
        };
        assert!(
            lost,
            "the buffered acceptance survived a crash of every node"
        );
    }
}

#[test]
fn lease_reads_take_no_slot_and_a_deposed_leader_stops_serving_them() {
    let (mut sim, old) = cluster(Settings {
        read: ReadMode::Lease,
        ..Settings::default()
    });
    acknowledged(&mut sim, &old, write("a", 1), 100);
    let before = sim.core(&old).unwrap().commit();
    let got = answered_at_once(&mut sim, &old, read("a"));
    assert_eq!(got.value, Some(Some(1)));
    assert_eq!(
        sim.core(&old).unwrap().commit(),
        before,
        "the read took a slot"
    );
    // Cut off, the old leader's lease runs out before the others may promise a new ballot;
    // once they have a new leader, it does not answer reads.
    sim.isolate(&old);
    sim.run_for(1_000).unwrap();
    let new = sim.leader().unwrap();
    assert_ne!(new, old);
    acknowledged(&mut sim, &new, write("a", 2), 100);
    let r = answer_after(&mut sim, &old, read("a"), 100);
    assert!(!r.ok, "a deposed leader answered a read: {r:?}");
}

#[test]
fn a_lagging_node_catches_up_from_a_snapshot() {
    let settings = Settings {
        snapshot_threshold: 20,
        ..Settings::default()
    };
    lagging_node_catches_up_from_a_snapshot::<Sim>(settings, (100, 5), 500);
}

#[test]
fn a_wiped_node_acts_as_acceptor_only_after_catching_up() {
    let (mut sim, leader) = cluster(Settings::default());
    let wiped = wipe_a_follower(&mut sim, &leader, 30, 100);
    assert!(!sim.core(&wiped).unwrap().inspect().acceptor);
    sim.run_for(300).unwrap();
    let (l, w) = (
        sim.core(&leader).unwrap().inspect(),
        sim.core(&wiped).unwrap().inspect(),
    );
    assert!(w.acceptor, "never caught up");
    assert_eq!(w.applied, l.applied);
    assert_eq!(w.promised, l.ballot);
}

#[test]
fn a_lower_ballot_is_refused_with_the_promise() {
    let (mut sim, leader) = cluster(Settings::default());
    let f = others(&sim.nodes, &leader)[0].clone();
    let promised = sim.core(&f).unwrap().inspect().promised;
    let low = crate::msg::Ballot { round: 0, node: 1 };
    sim.step(
        &f,
        faultline_replica::Input::Peer {
            from: leader.clone(),
            msg: Msg::Accept(Accept {
                ballot: low,
                first: 1,
                values: vec![Value::Noop],
                chosen: 0,
                last: 1,
                round: 0,
            }),
        },
    )
    .unwrap();
    let nack = sim.in_flight().into_iter().any(|(from, to, m)| {
        from == f
            && to == leader
            && m == Msg::Nack(Nack {
                ballot: low,
                promised,
            })
    });
    assert!(nack, "no nack for a lower ballot");
}

/// The leader `L` and follower `b` cannot reach each other (a bridge through `c`), and `L` is
/// silent for longer than the minimum takeover timeout but shorter than the maximum (a pause,
/// here a short isolation): `b` takes over through `c`. When `L` speaks again it still leads
/// in its own eyes (a quorum answered within the maximum timeout) and cannot hear `b`. A
/// correct `c` refuses `L`'s lower ballot, so `L` steps down; with `accept-lower-ballot` `c`
/// accepts for both leaders and they choose different values in the same slots.
fn bridge_then_silence(bugs: &[&str]) -> Result<(), String> {
    let settings = Settings {
        election_timeout: [
            std::time::Duration::from_millis(150),
            std::time::Duration::from_millis(600),
        ],
        ..Settings::default()
    };
    let mut sim = Sim::new(11, 3, settings, bugs);
    sim.max_delay = 1;
    sim.run_for(600)?;
    let old = sim.leader().ok_or("no leader")?;
    let fs = others(&sim.nodes, &old);
    let (b, c) = (fs[0].clone(), fs[1].clone());
    sim.blocked.insert((old.clone(), b.clone()));
    sim.blocked.insert((b.clone(), old.clone()));
    let mut v = 0;
    for round in 0..6 {
        // Silence the old leader (if it still leads) until the other side took over.
        let l = sim.leader().ok_or("no leader")?;
        sim.blocked.insert((l.clone(), c.clone()));
        sim.blocked.insert((c.clone(), l.clone()));
        sim.run_for(420)?;
        sim.blocked.remove(&(l.clone(), c.clone()));
        sim.blocked.remove(&(c.clone(), l.clone()));
        for _ in 0..100 {
            for n in [&old, &b, &c] {
                v += 1;
                sim.request(n, write("k", v))?;
            }
            sim.run_for(3)?;
        }
        let _ = round;
    }
    sim.heal();
    sim.run_for(1_000)
}

#[test]
fn accept_lower_ballot_lets_two_leaders_choose_in_the_same_slots() {
    bridge_then_silence(&[]).expect("correct acceptors keep agreement");
    let e =
        bridge_then_silence(&[BUG_ACCEPT_LOWER_BALLOT]).expect_err("two leaders went unnoticed");
    assert!(
        e.starts_with("agreement:") || e.starts_with("stale read"),
        "{e}"
    );
}
