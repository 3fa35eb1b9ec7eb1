//! Scenario tests of the pure core, driven through the simulator with small fixed delays and
//! explicit partitions and crashes. Every step still runs the simulator's safety checks.

use faultline_protocol::{ErrorCode, Role};
use faultline_replica::testkit::core::{
    acknowledged, answer_after, answered_at_once, cas, lagging_node_catches_up_from_a_snapshot,
    others, read, settled, wipe_a_follower, write, ScenarioSim,
};
use faultline_replica::{Input, Millis};

use crate::msg::{Msg, Vote, VoteReply};
use crate::settings::{ReadMode, Settings};
use crate::sim::Sim;

faultline_replica::scenario_core!(crate::core::RaftCore, snap_index);
faultline_replica::shared_scenarios!(super::Sim);

/// A settled cluster of three (see [`settled`]), every node in the leader's term.
fn cluster(settings: Settings) -> (Sim, String) {
    let (sim, leader) = settled::<Sim>(settings, &[]);
    let term = sim.core(&leader).unwrap().term();
    for n in &sim.nodes {
        assert_eq!(sim.core(n).unwrap().term(), term, "{n}");
    }
    (sim, leader)
}

#[test]
fn isolated_leader_steps_down_and_majority_elects_a_new_one() {
    let (mut sim, old) = cluster(Settings::default());
    sim.isolate(&old);
    let pending = sim.request(&old, write("a", 1)).unwrap();
    let stale = sim.request(&old, read("a")).unwrap();
    sim.run_for(1_000).unwrap();
    // CheckQuorum: the old leader gave up; its write is indeterminate, its read definite.
    assert_ne!(sim.core(&old).unwrap().role(), Role::Leader);
    let e = sim.reply(pending).unwrap().error.clone().unwrap();
    assert_eq!(e.code, ErrorCode::Timeout);
    assert!(!e.definite);
    assert!(!sim.reply(stale).unwrap().ok);
    let new = sim.leader().expect("the majority elected a leader");
    assert_ne!(new, old);
    let t = sim.request(&new, write("a", 2)).unwrap();
    sim.run_for(50).unwrap();
    assert!(sim.reply(t).unwrap().ok);
    // After healing the old leader learns the newer term and the write (it never overwrote).
    sim.heal();
    sim.run_for(300).unwrap();
    let c = sim.core(&old).unwrap();
    assert_eq!(c.term(), sim.core(&new).unwrap().term());
    assert_eq!(c.inspect().kv.read("a"), Some(2));
}

#[test]
fn deposed_leader_never_serves_a_stale_read() {
    for mode in [ReadMode::ReadIndex, ReadMode::Lease, ReadMode::Log] {
        let settings = Settings {
            read: mode,
            check_quorum: false,
            ..Settings::default()
        };
        let (mut sim, old) = cluster(settings);
        let t = sim.request(&old, write("k", 1)).unwrap();
        sim.run_for(20).unwrap();
        assert!(sim.reply(t).unwrap().ok);
        sim.isolate(&old);
        sim.run_for(800).unwrap();
        let new = sim.leader().unwrap();
        assert_ne!(new, old, "{mode:?}");
        acknowledged(&mut sim, &new, write("k", 2), 20);
        // Without CheckQuorum the old leader still believes it leads; it must not answer 1.
        assert!(sim.core(&old).unwrap().is_leader(), "{mode:?}");
        let resp = answer_after(&mut sim, &old, read("k"), 1_500);
        assert!(!resp.ok, "{mode:?}: deposed leader answered {resp:?}");
    }
}

#[test]
fn lease_reads_need_no_round_trip_while_the_lease_holds() {
    let (mut sim, leader) = cluster(Settings {
        read: ReadMode::Lease,
        ..Settings::default()
    });
    acknowledged(&mut sim, &leader, write("k", 5), 10);
    // Cut the leader off: a read right away is answered from the lease, at once.
    sim.isolate(&leader);
    let r = answered_at_once(&mut sim, &leader, read("k"));
    assert_eq!(r.value, Some(Some(5)));
    // Once the lease ran out, reads wait for a quorum round (which never comes).
    sim.run_for(Settings::default().election_timeout[0].as_millis() as Millis)
        .unwrap();
    let r = sim.request(&leader, read("k")).unwrap();
    sim.run_for(50).unwrap();
    assert_eq!(sim.reply(r), None);
}

#[test]
fn lagging_follower_catches_up_from_a_snapshot() {
    let settings = Settings {
        snapshot_threshold: 20,
        max_batch: 7,
        ..Settings::default()
    };
    let (sim, _, lagger) = lagging_node_catches_up_from_a_snapshot::<Sim>(settings, (100, 4), 400);
    assert_eq!(sim.state(&lagger).read("k3"), Some(99));
}

#[test]
fn node_with_an_empty_disk_votes_only_after_catching_up() {
    let (mut sim, leader) = cluster(Settings::default());
    let victim = wipe_a_follower(&mut sim, &leader, 10, 50);
    assert!(!sim.core(&victim).unwrap().inspect().voter);
    sim.run_for(200).unwrap();
    let c = sim.core(&victim).unwrap().inspect();
    assert!(c.voter, "caught up but still not voting");
    assert_eq!(c.kv.read("a"), Some(10));
    assert!(sim.disks[&victim].recovered.hard.voter);
}

#[test]
fn restarted_node_remembers_its_vote_unless_the_bug_is_planted() {
    for (bugs, expect) in [
        (vec![], Some("n2")),
        (vec![crate::BUG_FORGET_VOTE_ON_RESTART.to_owned()], None),
    ] {
        let mut rec = crate::storage::Recovered::default();
        rec.hard.term = 4;
        rec.hard.vote = Some("n2".into());
        rec.hard.voter = true;
        let nodes = vec!["n1".into(), "n2".into(), "n3".into()];
        let core = crate::RaftCore::new(faultline_replica::Start {
            id: "n1".into(),
            nodes,
            settings: Settings::default(),
            bugs: bugs.clone(),
            recovered: rec,
            seed: 1,
        });
        assert_eq!(core.inspect().vote.as_deref(), expect, "{bugs:?}");
        assert_eq!(core.term(), 4);
    }
}

fn is_vote(m: &Msg) -> bool {
    matches!(m, Msg::Vote(Vote { pre: false, .. }))
}

fn is_vote_reply(m: &Msg) -> bool {
    matches!(m, Msg::VoteReply(VoteReply { pre: false, .. }))
}

/// The interleaving that makes `forget-vote-on-restart` elect two leaders in one term, driven
/// step by step (no timers run unless a step is a `Tick`), with `pre_vote` and `check_quorum`
/// off, 3 nodes:
///
/// 1. L leads term t; every node holds the same committed log.
/// 2. L crashes. A times out and campaigns in t+1; C votes for A (durably); A leads t+1.
/// 3. A is isolated before its no-op reaches C; C crashes and restarts (its log still ends in
///    term t, its term is t+1).
/// 4. L restarts (term t), times out and campaigns in t+1 with a log as up to date as C's.
///    C, having voted for A in t+1, must refuse; with the bug it grants, so L leads t+1 too.
///
/// Returns the simulator, (L, A, C), t, whether C granted L its vote, and the result of
/// delivering that answer to L.
fn vote_twice_in_one_term(bugs: &[&str]) -> (Sim, [String; 3], u64, bool, Result<usize, String>) {
    let settings = Settings {
        pre_vote: false,
        check_quorum: false,
        ..Settings::default()
    };
    let mut sim = Sim::new(7, 3, settings, bugs);
    sim.max_delay = 1;
    sim.run_for(600).unwrap();
    let l = sim.leader().expect("a leader within 600ms");
    let writes: Vec<_> = (0..3)
        .map(|i| sim.request(&l, write("a", i)).unwrap())
        .collect();
    sim.run_for(50).unwrap();
    assert!(writes.iter().all(|w| sim.reply(*w).is_some_and(|r| r.ok)));
    let t = sim.core(&l).unwrap().term();
    let [a, c]: [String; 2] = others(&sim.nodes, &l).try_into().unwrap();

    // 2. L crashes; A campaigns in t+1 (every election timeout has passed) and C elects it.
    sim.crash(&l);
    sim.now += 400;
    sim.step(&a, Input::Tick).unwrap();
    let ca = sim.core(&a).unwrap().inspect();
    assert_eq!((ca.role, ca.term), (Role::Candidate, t + 1));
    let n = sim
        .deliver(|f, to, m| f == a && to == c && is_vote(m))
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        sim.core(&c).unwrap().inspect().vote.as_deref(),
        Some(a.as_str())
    );
    assert_eq!(
        sim.disks[&c].recovered.hard.vote.as_deref(),
        Some(a.as_str())
    );
    assert_eq!(sim.disks[&c].recovered.hard.term, t + 1);
    sim.deliver(|f, to, m| f == c && to == a && is_vote_reply(m))
        .unwrap();
    assert!(sim.core(&a).unwrap().is_leader());
    assert_eq!(sim.leaders.get(&(t + 1)), Some(&a));

    // 3. A is cut off before its no-op reaches C; C restarts.
    sim.isolate(&a);
    sim.crash(&c);
    sim.start(&c);

    // 4. L restarts, times out, and campaigns in t+1.
    sim.start(&l);
    sim.step(&l, Input::Tick).unwrap(); // boots: arms its election timer
    sim.now += 400;
    sim.step(&l, Input::Tick).unwrap();
    let cl = sim.core(&l).unwrap().inspect();
    assert_eq!((cl.role, cl.term), (Role::Candidate, t + 1));
    sim.deliver(|f, to, m| f == l && to == c && is_vote(m))
        .unwrap();
    assert_eq!(sim.core(&c).unwrap().term(), t + 1);
    let answers: Vec<_> = sim
        .in_flight()
        .into_iter()
        .filter(|(f, to, m)| *f == c && *to == l && is_vote_reply(m))
        .collect();
    let [(_, _, Msg::VoteReply(VoteReply { term, granted, .. }))] = answers.as_slice() else {
        panic!("C answers L's vote request once: {answers:?}");
    };
    assert_eq!(*term, t + 1);
    let granted = *granted;
    let result = sim.deliver(|f, to, m| f == c && to == l && is_vote_reply(m));
    (sim, [l, a, c], t, granted, result)
}

#[test]
fn forgotten_vote_elects_two_leaders_in_one_term() {
    let (sim, [l, a, c], t, granted, result) =
        vote_twice_in_one_term(&[crate::BUG_FORGET_VOTE_ON_RESTART]);
    assert!(granted, "C forgot its vote for A and granted L");
    let e = result.expect_err("the election-safety check must fire");
    eprintln!("L={l} A={a} C={c} t={t}: {e}");
    assert!(
        e.starts_with("election safety:")
            && e.contains(&format!("{a} and {l} both lead term {}", t + 1)),
        "{e}"
    );
    // C voted twice in t+1: first for A, then (after its restart) for L.
    assert_eq!(
        sim.core(&c).unwrap().inspect().vote.as_deref(),
        Some(l.as_str())
    );
    assert!(sim.core(&a).unwrap().is_leader() && sim.core(&l).unwrap().is_leader());
}

#[test]
fn remembered_vote_refuses_a_second_candidate_in_the_same_term() {
    let (mut sim, [l, a, c], t, granted, result) = vote_twice_in_one_term(&[]);
    assert!(!granted, "C remembers voting for A in t+1");
    assert_eq!(
        result,
        Ok(1),
        "C answered L once, without a safety violation"
    );
    assert_eq!(
        sim.core(&c).unwrap().inspect().vote.as_deref(),
        Some(a.as_str())
    );
    let cl = sim.core(&l).unwrap().inspect();
    assert_eq!((cl.role, cl.term), (Role::Candidate, t + 1));
    // Healed, the cluster moves on without a second leader in t+1.
    sim.heal();
    sim.run_for(1_500).unwrap();
    assert_eq!(sim.leaders.get(&(t + 1)), Some(&a));
    assert!(sim.leader().is_some());
}

#[test]
fn followers_forward_writes_and_reads_to_the_leader() {
    let settings = Settings {
        forward: true,
        ..Settings::default()
    };
    let (mut sim, leader) = cluster(settings);
    let f = others(&sim.nodes, &leader)[0].clone();
    let w = sim.request(&f, write("x", 7)).unwrap();
    sim.run_for(30).unwrap();
    assert!(sim.reply(w).unwrap().ok, "{:?}", sim.reply(w));
    let r = sim.request(&f, read("x")).unwrap();
    sim.run_for(30).unwrap();
    assert_eq!(sim.reply(r).unwrap().value, Some(Some(7)));
    let c = sim.request(&f, cas("x", Some(1), 2)).unwrap();
    sim.run_for(30).unwrap();
    assert_eq!(
        sim.reply(c).unwrap().error.as_ref().unwrap().code,
        ErrorCode::CasMismatch
    );
}

#[test]
fn a_candidate_asks_again_for_votes_it_lost() {
    // A survivor of a leader crash campaigns while the other survivor cannot hear it, so its
    // first vote request is lost. It must ask again a heartbeat later (§5.1), not wait a
    // whole election timeout for its next campaign.
    let (mut sim, leader) = cluster(Settings::default());
    sim.crash(&leader);
    let [a, c] = <[String; 2]>::try_from(others(&sim.nodes, &leader)).unwrap();
    sim.blocked.insert((a.clone(), c.clone()));
    sim.now += 400;
    sim.step(&a, Input::Tick).unwrap();
    let asked = |sim: &Sim| {
        sim.in_flight()
            .iter()
            .filter(|(from, to, m)| *from == a && *to == c && matches!(m, Msg::Vote(_)))
            .count()
    };
    assert_eq!(asked(&sim), 0, "the first request should have been dropped");
    sim.heal();
    sim.now += 20;
    sim.step(&a, Input::Tick).unwrap();
    assert_eq!(asked(&sim), 0, "asked again before a heartbeat passed");
    sim.now += 40;
    sim.step(&a, Input::Tick).unwrap();
    assert_eq!(
        asked(&sim),
        1,
        "the request was not resent after a heartbeat"
    );
}

/// Messages became structs (`Msg::Vote(Vote)`) and the forwarding fields got full names;
/// the bytes on the wire are those of the former struct variants with their short names.
#[test]
fn messages_encode_as_before_they_were_structs() {
    use faultline_replica::codec::encode;
    use faultline_replica::forward::{Forward, ForwardReply};
    use faultline_replica::{Command, FwdOp, OpResult};
    use serde::Serialize;

    use crate::msg::{Append, Entry, EntryOp, ProbeReply};

    /// The message enum as it was, variant for variant.
    #[derive(Serialize)]
    #[allow(dead_code)]
    enum Before {
        Vote {
            term: u64,
            pre: bool,
            last_index: u64,
            last_term: u64,
        },
        VoteReply {
            term: u64,
            pre: bool,
            granted: bool,
        },
        Append {
            term: u64,
            prev_index: u64,
            prev_term: u64,
            entries: Vec<Entry>,
            commit: u64,
            last: u64,
            round: u64,
        },
        AppendReply,
        Snapshot,
        Forward {
            inc: u64,
            fid: u64,
            op: FwdOp,
        },
        ForwardReply {
            fid: u64,
            result: OpResult,
        },
        Probe,
        ProbeReply {
            term: u64,
            last: u64,
        },
    }
    let entries = vec![Entry {
        term: 3,
        op: EntryOp::Cmd(Command::Write {
            key: "k".into(),
            value: 7,
        }),
    }];
    let op = FwdOp::Read { key: "k".into() };
    let pairs = [
        (
            encode(&Msg::Vote(Vote {
                term: 4,
                pre: true,
                last_index: 9,
                last_term: 3,
            })),
            encode(&Before::Vote {
                term: 4,
                pre: true,
                last_index: 9,
                last_term: 3,
            }),
        ),
        (
            encode(&Msg::VoteReply(VoteReply {
                term: 4,
                pre: false,
                granted: true,
            })),
            encode(&Before::VoteReply {
                term: 4,
                pre: false,
                granted: true,
            }),
        ),
        (
            encode(&Msg::Append(Append {
                term: 4,
                prev_index: 8,
                prev_term: 3,
                entries: entries.clone(),
                commit: 8,
                last: 9,
                round: 2,
            })),
            encode(&Before::Append {
                term: 4,
                prev_index: 8,
                prev_term: 3,
                entries,
                commit: 8,
                last: 9,
                round: 2,
            }),
        ),
        (
            encode(&Msg::Forward(Forward {
                incarnation: 11,
                forward_id: 5,
                op: op.clone(),
            })),
            encode(&Before::Forward {
                inc: 11,
                fid: 5,
                op,
            }),
        ),
        (
            encode(&Msg::ForwardReply(ForwardReply {
                forward_id: 5,
                result: OpResult::Value(Some(1)),
            })),
            encode(&Before::ForwardReply {
                fid: 5,
                result: OpResult::Value(Some(1)),
            }),
        ),
        (encode(&Msg::Probe), encode(&Before::Probe)),
        (
            encode(&Msg::ProbeReply(ProbeReply { term: 4, last: 0 })),
            encode(&Before::ProbeReply { term: 4, last: 0 }),
        ),
    ];
    for (now, before) in pairs {
        assert_eq!(now.unwrap(), before.unwrap());
    }
}
