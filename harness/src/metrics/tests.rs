//! Tests of the measures on synthetic histories and journals with exactly known answers.

use faultline_protocol::{OpKind, Role};

use super::*;
use crate::history::{Event, EventKind, History, OpRecord, Outcome};

const MS: u64 = 1_000_000;

fn op(id: u64, f: OpKind, outcome: Outcome, invoke_ms: u64, latency_ms: Option<u64>) -> OpRecord {
    OpRecord {
        id,
        client: (id % 4) as u32,
        f,
        key: "k".into(),
        value: (f != OpKind::Read).then_some(id as i64),
        from: None,
        node: None,
        outcome,
        invoke_ns: invoke_ms * MS,
        due_ns: None,
        complete_ns: latency_ms.map(|l| (invoke_ms + l) * MS),
        error: None,
    }
}

fn ev(t_ms: u64, kind: EventKind) -> Event {
    Event { t: t_ms * MS, kind }
}

fn role(node: &str, role: Role, term: u64) -> EventKind {
    EventKind::Role {
        node: node.into(),
        role,
        term,
        leader: None,
    }
}

fn fault_start(id: u64, fault: &str, nodes: &[&str]) -> EventKind {
    EventKind::FaultStart {
        id,
        fault: fault.into(),
        selector: "leader".into(),
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        links: vec![],
    }
}

fn fault_end(id: u64, fault: &str, nodes: &[&str]) -> EventKind {
    EventKind::FaultEnd {
        id,
        fault: fault.into(),
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
    }
}

fn phase(name: &str) -> EventKind {
    EventKind::Phase { name: name.into() }
}

/// A 3 s load: a write every 10 ms (10 ms latency) and a read every 10 ms (2 ms latency,
/// offset 5 ms). The leader n1 is killed at 1000 ms and restarted at 2000 ms; writes invoked
/// in [990, 1340) are indeterminate and reads in [1000, 1350) fail, so the first write
/// invoked after the fault that succeeds is invoked at 1340 and completes at 1350. n2 wins the
/// election at 1200 ms. A follower (n3) is paused from 2500 to 2600 ms without effect.
fn kill_leader_run() -> (History, Vec<Event>) {
    let mut ops = Vec::new();
    let mut id = 0;
    for t in (0..3000).step_by(10) {
        id += 1;
        ops.push(if (990..1340).contains(&t) {
            op(id, OpKind::Write, Outcome::Info, t, None)
        } else {
            op(id, OpKind::Write, Outcome::Ok, t, Some(10))
        });
        id += 1;
        let r = t + 5;
        ops.push(if (1000..1350).contains(&r) {
            op(id, OpKind::Read, Outcome::Fail, r, Some(1))
        } else {
            op(id, OpKind::Read, Outcome::Ok, r, Some(2))
        });
    }
    // A final read after the load does not count.
    ops.push(op(10_000, OpKind::Read, Outcome::Fail, 3500, Some(1)));
    let events = vec![
        ev(
            0,
            EventKind::RunStart {
                experiment: "t".into(),
                seed: 1,
                unix_ms: None,
            },
        ),
        ev(0, phase("load")),
        ev(100, role("n1", Role::Leader, 1)),
        ev(1000, fault_start(1, "kill", &["n1"])),
        ev(1100, role("n2", Role::Candidate, 2)),
        ev(1150, role("n3", Role::Leader, 1)), // not a newer term
        ev(1200, role("n2", Role::Leader, 2)),
        ev(1300, role("n3", Role::Leader, 3)), // later than the first
        ev(2000, fault_end(1, "kill", &["n1"])),
        ev(2500, fault_start(2, "pause", &["n3"])),
        ev(2600, fault_end(2, "pause", &["n3"])),
        ev(3000, phase("final-reads")),
        ev(
            3600,
            EventKind::RunEnd {
                aborted: false,
                reason: None,
            },
        ),
    ];
    (History { ops }, events)
}

fn close(a: Option<f64>, b: f64, rel: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= b.abs() * rel + 1e-9)
}

#[test]
fn load_period_comes_from_the_journal() {
    let (h, events) = kill_leader_run();
    let o = MetricsOptions::from_events(&events, &h);
    assert_eq!((o.load_start_ns, o.load_end_ns), (0, 3000 * MS));
    assert_eq!((o.window_ms, o.after_heal_ms), (100, 2000));
}

#[test]
fn failover_of_a_killed_leader() {
    let (h, events) = kill_leader_run();
    let m = compute(&h, &events, &MetricsOptions::from_events(&events, &h));
    let kill = &m.failover.events[0];
    assert_eq!(
        (kill.id, kill.fault.as_str(), kill.target.as_str()),
        (1, "kill", "n1")
    );
    assert_eq!((kill.at_ms, kill.end_ms), (1000.0, Some(2000.0)));
    assert_eq!(kill.election_ms, Some(200.0));
    assert_eq!(kill.recovery_ms, Some(350.0));
    // Last write completion before the fault at 990 ms, next at 1350 ms.
    assert_eq!(kill.gap_ms, Some(360.0));
    assert_eq!(kill.client_lag_ms, Some(150.0));

    let pause = &m.failover.events[1];
    assert_eq!(pause.target, "n3");
    assert_eq!(pause.election_ms, None);
    assert_eq!(pause.client_lag_ms, None);
    // Only the kill had an election: the summaries cover it alone.
    assert_eq!(m.failover.election_ms.p50, Some(200.0));
    assert_eq!(m.failover.client_lag_ms.max, Some(150.0));
    assert_eq!(pause.recovery_ms, Some(10.0));
    assert_eq!(pause.gap_ms, Some(10.0));

    assert_eq!(
        m.failover.recovery_ms,
        Percentiles {
            p50: Some(10.0),
            p99: Some(350.0),
            max: Some(350.0)
        }
    );
}

#[test]
fn availability_by_phase_and_windows() {
    let (h, events) = kill_leader_run();
    let m = compute(&h, &events, &MetricsOptions::from_events(&events, &h));
    // 300 writes and 300 reads; 35 writes indeterminate, 35 reads failed.
    assert_eq!(
        m.ops,
        OpCounts {
            invoked: 600,
            ok: 530,
            fail: 35,
            info: 35
        }
    );
    let a = m.availability;
    assert!(close(a.overall, 530.0 / 600.0, 1e-12), "{a:?}");
    // [0, 1000): the write at 990 ms is indeterminate.
    assert!(close(a.steady, 199.0 / 200.0, 1e-12), "{a:?}");
    // [1000, 2000) and [2500, 2600): 66 + 65 ok of 200, then 20 of 20.
    assert!(close(a.faulted, 151.0 / 220.0, 1e-12), "{a:?}");
    // [2000, 2500) and [2600, 3000].
    assert_eq!(a.after_heal, Some(1.0));
    // 30 windows of 100 ms; none of [1000, 1300) holds a write completion.
    assert!(close(a.windows, 27.0 / 30.0, 1e-12), "{a:?}");
    assert!(close(Some(m.throughput.ok_per_s), 530.0 / 3.0, 1e-12));
    assert!(close(Some(m.throughput.invoked_per_s), 200.0, 1e-12));
}

#[test]
fn latency_quantiles_within_hdr_precision() {
    let mut ops = Vec::new();
    // Writes of 1..=1000 ms: p50 500 ms, p90 900 ms, p99 990 ms, p99.9 999 ms, max 1000 ms.
    for i in 1..=1000u64 {
        ops.push(op(i, OpKind::Write, Outcome::Ok, i, Some(i)));
    }
    // Failed and indeterminate ops have no latency sample.
    ops.push(op(2001, OpKind::Write, Outcome::Fail, 5, Some(5000)));
    ops.push(op(2002, OpKind::Write, Outcome::Info, 5, Some(5000)));
    ops.push(op(2003, OpKind::Cas, Outcome::Ok, 7, Some(3)));
    let h = History { ops };
    let m = compute(&h, &[], &MetricsOptions::default());
    let w = m.latency_us["write"];
    assert_eq!(w.count, 1000);
    for (got, want) in [
        (w.p50, 500_000.0),
        (w.p90, 900_000.0),
        (w.p99, 990_000.0),
        (w.p999, 999_000.0),
    ] {
        assert!(close(Some(got), want, 1e-3), "{got:?} vs {want}");
    }
    assert_eq!(w.max, 1_000_000.0);
    assert_eq!(m.latency_us["cas"].count, 1);
    assert!(close(Some(m.latency_us["cas"].p50), 3000.0, 1e-3));
    // No ok read: no entry.
    let kinds: Vec<&str> = m.latency_us.keys().map(|k| k.as_str()).collect();
    assert_eq!(kinds, vec!["cas", "write"]);
    // No faults: everything is steady.
    assert_eq!(m.latency_by_phase_us.steady, m.latency_us);
    assert!(m.latency_by_phase_us.faulted.is_empty());
    assert_eq!(m.availability.faulted, None);
}

#[test]
fn open_loop_latency_counts_from_the_due_time() {
    // Due at 10 ms, started 40 ms late, done 5 ms after it started: 45 ms, not 5 ms.
    let mut late = op(1, OpKind::Write, Outcome::Ok, 50, Some(5));
    late.due_ns = Some(10 * MS);
    // A due time after the invocation (clock skew between threads) never shortens latency.
    let mut early = op(2, OpKind::Read, Outcome::Ok, 50, Some(5));
    early.due_ns = Some(60 * MS);
    assert_eq!(late.latency_ns(), Some(45 * MS));
    assert_eq!(early.latency_ns(), Some(5 * MS));
    let m = compute(
        &History {
            ops: vec![late, early],
        },
        &[],
        &MetricsOptions::default(),
    );
    assert!(close(Some(m.latency_us["write"].max), 45_000.0, 1e-3));
    assert!(close(Some(m.latency_us["read"].max), 5_000.0, 1e-3));
}

#[test]
fn latency_by_phase_splits_at_the_fault() {
    let (h, events) = kill_leader_run();
    let m = compute(&h, &events, &MetricsOptions::from_events(&events, &h));
    let p = &m.latency_by_phase_us;
    assert_eq!(p.steady["read"].count, 100);
    assert_eq!(p.faulted["read"].count, 75);
    assert_eq!(p.after_heal["write"].count, 90);
    assert!(close(Some(m.latency_us["read"].p99), 2000.0, 1e-3));
    assert_eq!(m.latency_us["write"].max, 10_000.0);
}

#[test]
fn a_fault_never_healed_lasts_until_load_end() {
    // Writes every 10 ms succeed until the fault at 500 ms, then all fail.
    let mut ops = Vec::new();
    for (i, t) in (0..1000).step_by(10).enumerate() {
        let outcome = if t < 490 { Outcome::Ok } else { Outcome::Fail };
        ops.push(op(i as u64, OpKind::Write, outcome, t, Some(10)));
    }
    let events = vec![
        ev(0, phase("load")),
        ev(500, fault_start(7, "partition", &["n1", "n2"])),
        ev(1000, phase("heal")),
    ];
    let h = History { ops };
    let m = compute(&h, &events, &MetricsOptions::from_events(&events, &h));
    let f = &m.failover.events[0];
    assert_eq!(f.target, "n1,n2");
    assert_eq!((f.end_ms, f.election_ms, f.recovery_ms), (None, None, None));
    // Last completion at 490 ms (the write invoked at 480), then nothing until load end.
    assert_eq!(f.gap_ms, Some(510.0));
    assert_eq!(m.failover.recovery_ms, Percentiles::default());
    assert_eq!(m.availability.faulted, Some(0.0));
    assert!(close(m.availability.steady, 49.0 / 50.0, 1e-12));
    assert_eq!(m.availability.after_heal, None);
    assert!(close(m.availability.windows, 0.5, 1e-12));
}

#[test]
fn timeline_buckets_by_second_of_invocation() {
    let (h, events) = kill_leader_run();
    let m = compute(&h, &events, &MetricsOptions::from_events(&events, &h));
    let rows: Vec<(u64, u64, u64, u64)> = m
        .timeline
        .iter()
        .map(|b| (b.t_s, b.ok, b.fail, b.info))
        .collect();
    assert_eq!(rows, vec![(0, 199, 0, 1), (1, 131, 35, 34), (2, 200, 0, 0)]);
    assert!(close(m.timeline[2].p99_us, 10_000.0, 1e-3));
}

#[test]
fn empty_history_has_no_numbers_and_serializes() {
    let m = compute(&History::default(), &[], &MetricsOptions::default());
    assert_eq!(m.ops, OpCounts::default());
    assert_eq!(m.availability.overall, None);
    assert_eq!(m.throughput.ok_per_s, 0.0);
    let json = serde_json::to_value(&m).unwrap();
    for key in [
        "ops",
        "availability",
        "failover",
        "latency_us",
        "latency_by_phase_us",
        "throughput",
        "timeline",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert!(json["availability"]["overall"].is_null());
    assert_eq!(json["latency_us"], serde_json::json!({}));
}

/// A fault is journaled before it is applied; failover counts from when it took effect, so a
/// write that slipped in between does not pass for a recovery.
#[test]
fn failover_counts_from_when_the_fault_took_effect() {
    let (h, mut events) = kill_leader_run();
    let start = events
        .iter()
        .position(|e| matches!(e.kind, EventKind::FaultStart { id: 1, .. }))
        .unwrap();
    events[start].t = 975 * MS;
    // Without the applied mark, the write invoked at 980 ms (ok at 990) looks like a recovery.
    let m = compute(&h, &events, &MetricsOptions::from_events(&events, &h));
    assert_eq!(m.failover.events[0].recovery_ms, Some(15.0));
    events.insert(
        start + 1,
        ev(
            1000,
            EventKind::FaultApplied {
                id: 1,
                late_us: None,
            },
        ),
    );
    let m = compute(&h, &events, &MetricsOptions::from_events(&events, &h));
    let kill = &m.failover.events[0];
    assert_eq!(kill.at_ms, 1000.0);
    assert_eq!(kill.recovery_ms, Some(350.0));
    assert_eq!(kill.election_ms, Some(200.0));
}
