//! Tests of the consistency checkers: hand-made histories with known verdicts, agreement with
//! a brute-force checker on thousands of random small histories, generated register histories,
//! and budgets.

use std::time::Duration;

use faultline_protocol::{OpKind, Value};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::history::{History, OpRecord, Outcome};

const MS: u64 = 1_000_000;

/// One op on key `k`, times in ms; `complete: None` = never completed.
fn rec(
    id: u64,
    f: OpKind,
    value: Option<Value>,
    from: Option<Value>,
    outcome: Outcome,
    invoke: u64,
    complete: Option<u64>,
) -> OpRecord {
    OpRecord {
        id,
        client: id as u32,
        f,
        key: "k".into(),
        value,
        from,
        node: None,
        outcome,
        invoke_ns: invoke * MS,
        due_ns: None,
        complete_ns: complete.map(|c| c * MS),
        error: None,
    }
}

/// Terse constructors for hand-made histories: `w(id, v, inv, comp)`, `r(id, v, inv, comp)`,
/// `cas(id, from, to, inv, comp)`, with `_info` / `_fail` variants.
fn w(id: u64, v: Value, i: u64, c: u64) -> OpRecord {
    rec(id, OpKind::Write, Some(v), None, Outcome::Ok, i, Some(c))
}
fn w_info(id: u64, v: Value, i: u64) -> OpRecord {
    rec(id, OpKind::Write, Some(v), None, Outcome::Info, i, None)
}
fn w_fail(id: u64, v: Value, i: u64, c: u64) -> OpRecord {
    rec(id, OpKind::Write, Some(v), None, Outcome::Fail, i, Some(c))
}
fn r(id: u64, v: Option<Value>, i: u64, c: u64) -> OpRecord {
    rec(id, OpKind::Read, v, None, Outcome::Ok, i, Some(c))
}
fn cas(id: u64, from: Option<Value>, to: Value, i: u64, c: u64) -> OpRecord {
    rec(id, OpKind::Cas, Some(to), from, Outcome::Ok, i, Some(c))
}
fn cas_info(id: u64, from: Option<Value>, to: Value, i: u64) -> OpRecord {
    rec(id, OpKind::Cas, Some(to), from, Outcome::Info, i, None)
}
fn cas_fail(id: u64, from: Option<Value>, to: Value, i: u64, c: u64) -> OpRecord {
    rec(id, OpKind::Cas, Some(to), from, Outcome::Fail, i, Some(c))
}

fn history(mut ops: Vec<OpRecord>) -> History {
    ops.sort_by_key(|o| (o.invoke_ns, o.id));
    History { ops }
}

fn opts(model: ModelKind) -> CheckOptions {
    CheckOptions {
        model,
        ..CheckOptions::default()
    }
}

use ModelKind::{CasRegister as Cas, Register as Reg};
use Verdict::{Invalid, Unknown, Valid};

struct Case {
    name: &'static str,
    model: ModelKind,
    ops: Vec<OpRecord>,
    linearizable: Verdict,
    /// (lost writes, stale reads, never written)
    anomalies: (usize, usize, usize),
}

fn cases() -> Vec<Case> {
    let case = |name, model, ops, linearizable, anomalies| Case {
        name,
        model,
        ops,
        linearizable,
        anomalies,
    };
    vec![
        case("empty", Reg, vec![], Valid, (0, 0, 0)),
        case(
            "sequential",
            Reg,
            vec![w(1, 1, 0, 10), r(2, Some(1), 20, 30)],
            Valid,
            (0, 0, 0),
        ),
        case(
            "nil-before-write",
            Reg,
            vec![r(1, None, 0, 5), w(2, 1, 10, 20)],
            Valid,
            (0, 0, 0),
        ),
        case(
            "concurrent-read-sees-either",
            Reg,
            vec![
                w(1, 1, 0, 10),
                w(2, 2, 5, 50),
                r(3, Some(1), 20, 30),
                r(4, Some(2), 40, 60),
            ],
            Valid,
            (0, 0, 0),
        ),
        case(
            "touching-intervals-are-concurrent",
            Reg,
            vec![w(1, 1, 0, 10), w(2, 2, 10, 20), r(3, Some(1), 20, 30)],
            Valid,
            (0, 0, 0),
        ),
        case(
            "stale-read-then-caught-up",
            Reg,
            vec![
                w(1, 1, 0, 10),
                w(2, 2, 20, 30),
                r(3, Some(1), 40, 50),
                r(4, Some(2), 60, 70),
            ],
            Invalid,
            (0, 1, 0),
        ),
        case(
            "lost-write-older-value",
            Reg,
            vec![
                w(1, 1, 0, 10),
                w(2, 2, 20, 30),
                r(3, Some(1), 40, 50),
                r(4, Some(1), 60, 70),
            ],
            Invalid,
            (1, 2, 0),
        ),
        case(
            "lost-write-nil",
            Reg,
            vec![w(1, 1, 0, 10), r(2, None, 20, 30)],
            Invalid,
            (1, 1, 0),
        ),
        case(
            "never-written",
            Reg,
            vec![w(1, 1, 0, 10), r(2, Some(7), 20, 30)],
            Invalid,
            (0, 0, 1),
        ),
        case(
            "read-of-failed-write",
            Reg,
            vec![w_fail(1, 7, 0, 10), r(2, Some(7), 20, 30)],
            Invalid,
            (0, 0, 1),
        ),
        case(
            "reads-flip-back",
            Reg,
            vec![
                w(1, 1, 0, 100),
                w(2, 2, 0, 100),
                r(3, Some(1), 10, 20),
                r(4, Some(2), 30, 40),
                r(5, Some(1), 50, 60),
            ],
            Invalid,
            (0, 0, 0),
        ),
        case(
            "info-write-took-effect",
            Reg,
            vec![w_info(1, 1, 0), r(2, Some(1), 100, 110)],
            Valid,
            (0, 0, 0),
        ),
        case(
            "info-write-did-not",
            Reg,
            vec![w_info(1, 1, 0), r(2, None, 100, 110)],
            Valid,
            (0, 0, 0),
        ),
        case(
            "info-write-took-effect-late",
            Reg,
            vec![
                w(1, 1, 0, 10),
                w_info(2, 2, 5),
                r(3, Some(1), 20, 30),
                r(4, Some(2), 40, 50),
            ],
            Valid,
            (0, 0, 0),
        ),
        case(
            "info-write-not-before-invoked",
            Reg,
            vec![r(1, Some(2), 0, 10), w_info(2, 2, 20)],
            Invalid,
            (0, 0, 0),
        ),
        case(
            "info-write-once-only",
            Reg,
            vec![
                w_info(1, 2, 0),
                w(2, 1, 5, 10),
                r(3, Some(2), 20, 30),
                r(4, Some(1), 40, 50),
                r(5, Some(2), 60, 70),
            ],
            Invalid,
            (0, 0, 0),
        ),
        case(
            "cas-ok",
            Cas,
            vec![
                w(1, 1, 0, 10),
                cas(2, Some(1), 2, 20, 30),
                r(3, Some(2), 40, 50),
            ],
            Valid,
            (0, 0, 0),
        ),
        case(
            "cas-from-nil",
            Cas,
            vec![cas(1, None, 1, 0, 10), r(2, Some(1), 20, 30)],
            Valid,
            (0, 0, 0),
        ),
        case(
            "cas-from-wrong-value",
            Cas,
            vec![w(1, 1, 0, 10), cas(2, Some(3), 4, 20, 30)],
            Invalid,
            (0, 0, 0),
        ),
        case(
            "failed-cas-is-ignored",
            Cas,
            vec![
                w(1, 1, 0, 10),
                cas_fail(2, Some(1), 2, 20, 30),
                r(3, Some(1), 40, 50),
            ],
            Valid,
            (0, 0, 0),
        ),
        case(
            "info-cas-took-effect",
            Cas,
            vec![
                w(1, 1, 0, 10),
                cas_info(2, Some(1), 2, 20),
                r(3, Some(2), 40, 50),
            ],
            Valid,
            (0, 0, 0),
        ),
        case(
            "info-cas-cannot-take-effect",
            Cas,
            vec![
                w(1, 1, 0, 10),
                cas_info(2, Some(5), 2, 20),
                r(3, Some(2), 40, 50),
            ],
            Invalid,
            (0, 0, 0),
        ),
        case(
            "cas-value-lost",
            Cas,
            vec![
                w(1, 1, 0, 10),
                cas(2, Some(1), 2, 20, 30),
                r(3, Some(1), 40, 50),
            ],
            Invalid,
            (1, 1, 0),
        ),
        // A replica cut off keeps answering 1 while the majority moves on to 2 and 3, which
        // later reads see: stale reads, but 2 was overwritten, not lost (etcd's serializable
        // reads under a partition).
        case(
            "cut-off-replica-is-stale-not-lossy",
            Reg,
            vec![
                w(1, 1, 0, 10),
                w(2, 2, 20, 30),
                r(3, Some(2), 40, 50),
                w(4, 3, 60, 70),
                r(5, Some(1), 80, 90),
                r(6, Some(3), 100, 110),
            ],
            Invalid,
            (0, 1, 0),
        ),
        // The state reverts to 1 and moves on from there (Redis's old primary demoted after a
        // partition): 2 is lost, though later writes are seen.
        case(
            "reverted-write-is-lost",
            Reg,
            vec![
                w(1, 1, 0, 10),
                w(2, 2, 20, 30),
                r(3, Some(2), 40, 50),
                r(4, Some(1), 60, 70),
                w(5, 3, 80, 90),
                r(6, Some(3), 100, 110),
            ],
            Invalid,
            (1, 1, 0),
        ),
        case(
            "cas-under-register-model",
            Reg,
            vec![cas(1, None, 1, 0, 10)],
            Unknown,
            (0, 0, 0),
        ),
    ]
}

#[test]
fn hand_made_histories() {
    for c in cases() {
        let report = check(&history(c.ops), &opts(c.model));
        let got = (report.lost_writes, report.stale_reads, report.never_written);
        assert_eq!(
            report.linearizable, c.linearizable,
            "{}: {report:#?}",
            c.name
        );
        assert_eq!(got, c.anomalies, "{}: {report:#?}", c.name);
        let listed = |k| report.violations.iter().filter(|v| v.kind == k).count();
        assert_eq!(
            listed(ViolationKind::LostWrite),
            c.anomalies.0,
            "{}",
            c.name
        );
        assert_eq!(
            listed(ViolationKind::StaleRead),
            c.anomalies.1,
            "{}",
            c.name
        );
        assert_eq!(
            listed(ViolationKind::NeverWritten),
            c.anomalies.2,
            "{}",
            c.name
        );
        // Serializes, and every violation has a sentence and the ops that show it.
        serde_json::to_string(&report).unwrap();
        for v in &report.violations {
            assert!(
                v.message.ends_with('.') && !v.ops.is_empty(),
                "{}: {v:?}",
                c.name
            );
        }
    }
}

#[test]
fn counterexample_names_the_offender_and_prefix() {
    let h = history(vec![
        w(1, 1, 0, 100),
        w(2, 2, 0, 100),
        r(3, Some(1), 10, 20),
        r(4, Some(2), 30, 40),
        r(5, Some(1), 50, 60),
        w(6, 9, 200, 210),
    ]);
    let report = check(&h, &opts(Reg));
    assert_eq!(report.verdict(), Invalid);
    assert_eq!(
        report.keys,
        KeyCounts {
            checked: 1,
            valid: 0,
            invalid: 1,
            unknown: 0
        }
    );
    let v = &report.violations[0];
    assert_eq!(v.kind, ViolationKind::Nonlinearizable);
    let ce = v.counterexample.as_ref().unwrap();
    // Longest prefix: w1 r3 w2 r4, then r5 cannot read 1 any more.
    let ids: Vec<u64> = ce.prefix.iter().map(|o| o.id).collect();
    assert_eq!(ids, vec![1, 3, 2, 4]);
    assert_eq!(ce.prefix_len, 4);
    assert_eq!(ce.offender.id, 5);
    assert_eq!(ce.state, "2");
    let concurrent: Vec<u64> = ce.concurrent.iter().map(|o| o.id).collect();
    assert_eq!(concurrent, vec![1, 2, 5]);
    assert!(v.message.contains("read 5"), "{}", v.message);
    let json = serde_json::to_value(v).unwrap();
    assert_eq!(json["kind"], "nonlinearizable");
    assert_eq!(json["counterexample"]["offender"]["id"], 5);
}

#[test]
fn keys_are_checked_independently() {
    let mut ops = vec![w(1, 1, 0, 10), r(2, Some(1), 20, 30)];
    let mut bad = vec![w(3, 1, 0, 10), r(4, Some(5), 20, 30)];
    for o in &mut bad {
        o.key = "other".into();
    }
    ops.append(&mut bad);
    let report = check(&history(ops), &opts(Reg));
    assert_eq!(
        report.keys,
        KeyCounts {
            checked: 2,
            valid: 1,
            invalid: 1,
            unknown: 0
        }
    );
    assert!(report.violations.iter().all(|v| v.key == "other"));
}

// ---- brute force ------------------------------------------------------------------------

/// Try every order of the ops that respects real time (an op may go next only when no
/// unplaced `ok` op completed before it was invoked), placing `info` ops or not; `step` gives
/// the state after an op, or `None` where the op cannot go next.
fn brute_force_with<R: CheckRecord, S>(
    ops: &[R],
    init: S,
    step: &dyn Fn(&R, &S) -> Option<S>,
) -> bool {
    let ops: Vec<&R> = ops
        .iter()
        .filter(|o| o.outcome() != Outcome::Fail)
        .collect();
    fn go<R: CheckRecord, S>(
        ops: &[&R],
        used: u32,
        state: &S,
        step: &dyn Fn(&R, &S) -> Option<S>,
    ) -> bool {
        let required_left = ops
            .iter()
            .enumerate()
            .any(|(i, o)| used & (1 << i) == 0 && o.outcome() == Outcome::Ok);
        if !required_left {
            return true;
        }
        for (i, x) in ops.iter().enumerate() {
            if used & (1 << i) != 0 {
                continue;
            }
            let blocked = ops.iter().enumerate().any(|(j, y)| {
                j != i
                    && used & (1 << j) == 0
                    && y.outcome() == Outcome::Ok
                    && y.complete_ns().unwrap() < x.invoke_ns()
            });
            if blocked {
                continue;
            }
            if let Some(next) = step(x, state) {
                if go(ops, used | (1 << i), &next, step) {
                    return true;
                }
            }
        }
        false
    }
    go(&ops, 0, &init, step)
}

/// Every real-time-respecting order of the register ops.
fn brute_force(ops: &[OpRecord]) -> bool {
    brute_force_with(ops, None, &|x: &OpRecord, state: &Option<Value>| {
        let ok = x.outcome == Outcome::Ok;
        match x.f {
            OpKind::Read if !ok => Some(*state),
            OpKind::Read => (x.value == *state).then_some(*state),
            OpKind::Write => Some(x.value),
            OpKind::Cas => (x.from == *state).then_some(x.value),
            OpKind::Status => unreachable!(),
        }
    })
}

/// A random history of at most 8 ops on one key, values in 1..=3 (so they repeat). Half are
/// produced by a real register (then perhaps corrupted), half are pure noise.
fn random_small(rng: &mut ChaCha8Rng, with_cas: bool) -> Vec<OpRecord> {
    let n = rng.gen_range(1..=8);
    let simulate = rng.gen_bool(0.5);
    let mut ops: Vec<(OpRecord, u64)> = (0..n)
        .map(|id| {
            let inv = rng.gen_range(0..30u64);
            let comp = inv + rng.gen_range(0..15u64);
            let f = match rng.gen_range(0..if with_cas { 3 } else { 2 }) {
                0 => OpKind::Read,
                1 => OpKind::Write,
                _ => OpKind::Cas,
            };
            let val = |rng: &mut ChaCha8Rng| {
                if rng.gen_bool(0.2) {
                    None
                } else {
                    Some(rng.gen_range(1..=3))
                }
            };
            let value = match f {
                OpKind::Read => val(rng),
                _ => Some(rng.gen_range(1..=3)),
            };
            let from = if f == OpKind::Cas { val(rng) } else { None };
            let outcome = match rng.gen_range(0..10) {
                0..=5 => Outcome::Ok,
                6..=8 => Outcome::Info,
                _ => Outcome::Fail,
            };
            let complete = match outcome {
                Outcome::Info if rng.gen_bool(0.5) => None,
                _ => Some(comp),
            };
            let point = rng.gen_range(inv..=comp);
            (rec(id, f, value, from, outcome, inv, complete), point)
        })
        .collect();
    if simulate {
        ops.sort_by_key(|&(_, p)| p);
        let mut state = None;
        for (o, _) in &mut ops {
            let takes_effect = match o.outcome {
                Outcome::Ok => true,
                Outcome::Info => rng.gen_bool(0.5),
                Outcome::Fail => false,
            };
            match o.f {
                OpKind::Read => o.value = state,
                OpKind::Write if takes_effect => state = o.value,
                OpKind::Cas => {
                    if rng.gen_bool(0.7) {
                        o.from = state;
                    }
                    if o.from != state && o.outcome == Outcome::Ok {
                        o.outcome = Outcome::Fail;
                    } else if o.from == state && takes_effect {
                        state = o.value;
                    }
                }
                _ => {}
            }
        }
        if rng.gen_bool(0.4) {
            let i = rng.gen_range(0..ops.len());
            let o = &mut ops[i].0;
            match o.f {
                OpKind::Read => {
                    o.value = if o.value.is_some() {
                        None
                    } else {
                        Some(rng.gen_range(1..=3))
                    }
                }
                _ => o.outcome = Outcome::Ok,
            }
            if o.complete_ns.is_none() {
                o.complete_ns = Some(o.invoke_ns + MS);
            }
        }
    }
    let mut ops: Vec<OpRecord> = ops.into_iter().map(|(o, _)| o).collect();
    ops.sort_by_key(|o| (o.invoke_ns, o.id));
    ops
}

#[test]
fn search_agrees_with_brute_force_on_random_small_histories() {
    let seed = 0x5eed_0001;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut valid, mut invalid, mut eights) = (0, 0, 0);
    for i in 0..4000 {
        let with_cas = i % 2 == 0;
        let ops = random_small(&mut rng, with_cas);
        eights += usize::from(ops.len() == 8);
        let want = brute_force(&ops);
        let model = if with_cas { Cas } else { Reg };
        let h = History { ops };
        let report = check(&h, &opts(model));
        let want_verdict = if want { Valid } else { Invalid };
        assert_eq!(
            report.linearizable, want_verdict,
            "history {i} (seed {seed:#x}) disagrees with brute force: {:#?}\n{report:#?}",
            h.ops
        );
        if want {
            valid += 1;
            // Anomalies are sound: none on a linearizable history.
            assert_eq!(
                (report.lost_writes, report.stale_reads, report.never_written),
                (0, 0, 0),
                "history {i}: anomaly on a linearizable history: {:#?}\n{report:#?}",
                h.ops
            );
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 800 && invalid > 800 && eights > 300,
        "valid {valid}, invalid {invalid}, with 8 ops {eights}"
    );
}

// ---- generated register histories -------------------------------------------------------

/// A run of a real sequential register store (one register per key, initially nil, applying
/// requests one at a time in the order they reach it) driven by `clients` concurrent
/// simulated clients over a network that delays and loses messages. Each client issues
/// `per_client` ops back to back on random keys: reads, writes of unique values, and cas from
/// the value the client last saw on that key (so often stale: the cas then fails, definitely).
/// A request takes effect when it reaches the store, 1 to 1,000 µs after its invocation
/// (1 in 20 messages is slow: up to 10,000 µs), or never if lost (2%); the reply takes as
/// long again, or is lost (2%). A client waits at most [`SIM_TIMEOUT_US`] for its reply, then
/// records the op `info` and moves on, while its request may still be in flight and take
/// effect later. Linearizable by construction.
fn simulated(seed: u64, clients: u32, per_client: usize, keys: usize) -> History {
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashMap};

    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Event {
        /// Client `c` invokes its next op.
        Invoke(u32),
        /// Op `i`'s request reaches the store.
        Arrive(usize),
        /// Op `i`'s client gets the reply (`true`), or gives up waiting (`false`).
        Reply(usize, bool),
    }

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut events: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut at = |events: &mut BinaryHeap<_>, t: u64, e: Event| {
        seq += 1;
        events.push(Reverse((t, seq, e)));
    };
    for c in 0..clients {
        at(&mut events, rng.gen_range(0..1_000), Event::Invoke(c));
    }
    let mut ops: Vec<OpRecord> = Vec::new();
    // What the store answered (the value read, or whether a cas matched), by op.
    let mut answer: Vec<Option<Value>> = Vec::new();
    let mut cas_ok: Vec<bool> = Vec::new();
    let mut store: HashMap<String, Option<Value>> = HashMap::new();
    let mut seen: HashMap<(u32, String), Option<Value>> = HashMap::new();
    let mut left = vec![per_client; clients as usize];
    while let Some(Reverse((t, _, event))) = events.pop() {
        match event {
            Event::Invoke(c) => {
                left[c as usize] -= 1;
                let i = ops.len();
                let id = i as u64 + 1;
                let key = format!("k{}", rng.gen_range(0..keys));
                let f = match rng.gen_range(0..10) {
                    0..=4 => OpKind::Read,
                    5..=7 => OpKind::Write,
                    _ => OpKind::Cas,
                };
                let from = match f {
                    OpKind::Cas => seen.get(&(c, key.clone())).copied().flatten(),
                    _ => None,
                };
                ops.push(OpRecord {
                    id,
                    client: c,
                    f,
                    key,
                    value: (f != OpKind::Read).then_some(id as Value),
                    from,
                    node: None,
                    outcome: Outcome::Ok,
                    invoke_ns: t * 1_000,
                    due_ns: None,
                    complete_ns: None,
                    error: None,
                });
                answer.push(None);
                cas_ok.push(false);
                let mut delay = || {
                    if rng.gen_bool(0.05) {
                        rng.gen_range(1..=10_000)
                    } else {
                        rng.gen_range(1..=1_000)
                    }
                };
                let (there, back) = (delay(), delay());
                let (request_lost, reply_lost) = (rng.gen_bool(0.02), rng.gen_bool(0.02));
                if !request_lost {
                    at(&mut events, t + there, Event::Arrive(i));
                }
                if request_lost || reply_lost || there + back > SIM_TIMEOUT_US {
                    at(&mut events, t + SIM_TIMEOUT_US, Event::Reply(i, false));
                } else {
                    at(&mut events, t + there + back, Event::Reply(i, true));
                }
            }
            Event::Arrive(i) => {
                let o = &ops[i];
                let reg = store.entry(o.key.clone()).or_default();
                match o.f {
                    OpKind::Read => answer[i] = *reg,
                    OpKind::Write => *reg = o.value,
                    _ => {
                        cas_ok[i] = *reg == o.from;
                        if cas_ok[i] {
                            *reg = o.value;
                        }
                    }
                }
            }
            Event::Reply(i, delivered) => {
                let o = &mut ops[i];
                o.complete_ns = Some(t * 1_000);
                if !delivered {
                    o.outcome = Outcome::Info;
                    o.error = Some("timeout".into());
                } else if o.f == OpKind::Cas && !cas_ok[i] {
                    o.outcome = Outcome::Fail;
                } else {
                    if o.f == OpKind::Read {
                        o.value = answer[i];
                    }
                    seen.insert((o.client, o.key.clone()), o.value);
                }
                if left[o.client as usize] > 0 {
                    let c = o.client;
                    at(&mut events, t + rng.gen_range(0..300), Event::Invoke(c));
                }
            }
        }
    }
    ops.sort_by_key(|o| (o.invoke_ns, o.id));
    History { ops }
}

/// How long a simulated client waits for a reply, in µs.
const SIM_TIMEOUT_US: u64 = 5_000;

/// A change to one ok read of a valid history that makes it non-linearizable by construction
/// (values are unique, and nothing writes nil).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadChange {
    /// Return the value of an ok write (or cas) W1 such that another ok write W2 was invoked
    /// after W1 completed and completed before the read began: W2 stands between them.
    Stale,
    /// Return nil although an ok write completed before the read began.
    Nil,
    /// Return a value nobody wrote.
    NeverWritten,
    /// Return the value of a cas that failed (definitely took no effect).
    FailedWrite,
    /// Return the value of a write (or cas) invoked after the read completed.
    Future,
}

impl ReadChange {
    const ALL: [ReadChange; 5] = [
        ReadChange::Stale,
        ReadChange::Nil,
        ReadChange::NeverWritten,
        ReadChange::FailedWrite,
        ReadChange::Future,
    ];

    /// Apply the change to a random eligible read; the read's id, or `None` if no read is
    /// eligible.
    fn apply(self, h: &mut History, rng: &mut ChaCha8Rng) -> Option<u64> {
        let ok_write = |o: &OpRecord| o.f != OpKind::Read && o.outcome == Outcome::Ok;
        let done = |o: &OpRecord| o.complete_ns.unwrap_or(u64::MAX);
        let mut choices: Vec<(usize, Option<Value>)> = Vec::new();
        for (i, r) in h.ops.iter().enumerate() {
            if r.f != OpKind::Read || r.outcome != Outcome::Ok {
                continue;
            }
            let same_key = || h.ops.iter().filter(|o| o.key == r.key);
            match self {
                ReadChange::Stale => {
                    // The latest invocation of an ok write completed before the read began.
                    let Some(w2_invoked) = same_key()
                        .filter(|o| ok_write(o) && done(o) < r.invoke_ns)
                        .map(|o| o.invoke_ns)
                        .max()
                    else {
                        continue;
                    };
                    choices.extend(
                        same_key()
                            .filter(|o| ok_write(o) && done(o) < w2_invoked)
                            .map(|w1| (i, w1.value)),
                    );
                }
                ReadChange::Nil => {
                    if same_key().any(|o| ok_write(o) && done(o) < r.invoke_ns) {
                        choices.push((i, None));
                    }
                }
                ReadChange::NeverWritten => choices.push((i, Some(Value::MAX))),
                ReadChange::FailedWrite => choices.extend(
                    same_key()
                        .filter(|o| o.f == OpKind::Cas && o.outcome == Outcome::Fail)
                        .map(|w| (i, w.value)),
                ),
                ReadChange::Future => choices.extend(
                    same_key()
                        .filter(|o| o.f != OpKind::Read && o.outcome != Outcome::Fail)
                        .filter(|o| o.invoke_ns > done(r))
                        .map(|w| (i, w.value)),
                ),
            }
        }
        if choices.is_empty() {
            return None;
        }
        let (i, value) = choices[rng.gen_range(0..choices.len())];
        assert_ne!(h.ops[i].value, value, "{self:?} would change nothing");
        h.ops[i].value = value;
        Some(h.ops[i].id)
    }
}

/// 200 runs of [`simulated`] (2 to 8 clients, 1 to 3 keys, some runs long enough to be
/// checked on several threads) are valid; each with one read changed visibly (a
/// [`ReadChange`], taking turns) is invalid, on the changed read's key, and the anomalies
/// that name such a change name it.
#[test]
fn simulated_register_runs_are_valid_and_one_changed_read_makes_them_invalid() {
    let (mut infos, mut long) = (0, 0);
    let mut changes = [0usize; ReadChange::ALL.len()];
    for seed in 0..200u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (clients, per_client) = if seed % 20 == 0 {
            (8, 200)
        } else {
            (rng.gen_range(2..=8), rng.gen_range(10..=60))
        };
        let keys = rng.gen_range(1..=3);
        let mut h = simulated(seed, clients, per_client, keys);
        infos += h.ops.iter().filter(|o| o.outcome == Outcome::Info).count();
        long += usize::from(h.ops.len() >= SMALL_HISTORY);
        let report = check(&h, &opts(Cas));
        assert_eq!(
            report.verdict(),
            Valid,
            "seed {seed}: {:?} {:#?}",
            report.notes,
            report.violations
        );

        let (change, victim) = (0..ReadChange::ALL.len())
            .map(|n| ReadChange::ALL[(seed as usize + n) % ReadChange::ALL.len()])
            .find_map(|c| c.apply(&mut h, &mut rng).map(|v| (c, v)))
            .unwrap_or_else(|| panic!("seed {seed}: no read to change"));
        changes[ReadChange::ALL.iter().position(|&c| c == change).unwrap()] += 1;
        let key = h.ops.iter().find(|o| o.id == victim).unwrap().key.clone();
        let report = check(&h, &opts(Cas));
        let why = format!("seed {seed}, {change:?} on read {victim}: {report:#?}");
        assert_eq!(report.linearizable, Invalid, "{why}");
        assert_eq!(report.keys.invalid, 1, "{why}");
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.kind == ViolationKind::Nonlinearizable && v.key == key),
            "{why}"
        );
        let named = |kind| {
            report
                .violations
                .iter()
                .any(|v| v.kind == kind && v.read == Some(victim))
        };
        match change {
            ReadChange::Stale | ReadChange::Nil => {
                assert!(named(ViolationKind::StaleRead), "{why}")
            }
            ReadChange::NeverWritten | ReadChange::FailedWrite => {
                assert!(named(ViolationKind::NeverWritten), "{why}")
            }
            ReadChange::Future => {}
        }
    }
    assert!(
        infos > 500 && long >= 10,
        "{infos} info ops, {long} long runs"
    );
    assert!(
        changes.iter().all(|&n| n >= 10),
        "changes made: {changes:?}"
    );
}

#[test]
fn tiny_budgets_give_unknown_never_a_wrong_answer() {
    let h = simulated(11, 6, 1_000, 2);
    // No time at all: the search looks at the clock within its first 1024 steps.
    let o = CheckOptions {
        time_budget: Duration::ZERO,
        ..opts(Cas)
    };
    let report = check(&h, &o);
    assert_eq!(report.linearizable, Unknown);
    assert_eq!(report.keys.unknown, 2);
    assert_eq!(report.notes.len(), 2, "{:?}", report.notes);
    assert!(report.notes.iter().all(|n| n.contains("time budget")));

    // Too little memory: each key's search needs a memo entry per op it linearizes (over a
    // thousand here, 50 bytes each at least), so every key is unknown, and the notes say why.
    for memory in [0, 1_000, 20_000] {
        let o = CheckOptions {
            max_memory_bytes: memory,
            ..opts(Cas)
        };
        let report = check(&h, &o);
        assert_eq!(report.linearizable, Unknown, "{memory}: {:?}", report.notes);
        assert_eq!(report.keys.unknown, 2);
        assert_eq!(report.notes.len(), 2, "{:?}", report.notes);
        assert!(
            report.notes.iter().all(|n| n.contains("memory budget")),
            "{:?}",
            report.notes
        );
    }
    let o = CheckOptions {
        max_memory_bytes: 64 << 20,
        ..opts(Cas)
    };
    assert_eq!(check(&h, &o).linearizable, Valid);

    // Budgets never hide an anomaly: a stale read still makes the key invalid.
    let stale = history(vec![w(1, 1, 0, 10), w(2, 2, 20, 30), r(3, Some(1), 40, 50)]);
    let o = CheckOptions {
        max_memory_bytes: 0,
        ..opts(Cas)
    };
    let report = check(&stale, &o);
    assert_eq!(report.linearizable, Invalid);
    assert_eq!(report.verdict(), Invalid);

    // Random small histories under growing memory budgets: the brute-force verdict or
    // unknown, never the other verdict; the search takes the same path whatever its budget,
    // so once decided it stays decided as the budget grows; and with no memory nothing with
    // an ok op to place is found valid.
    let budgets = [0, 300, 600, 1_200, 1 << 20];
    let mut unknown = [0usize; 5];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for i in 0..1000 {
        let ops = random_small(&mut rng, true);
        let want = if brute_force(&ops) { Valid } else { Invalid };
        let required = ops.iter().any(|o| o.outcome == Outcome::Ok);
        let h = History { ops };
        let mut decided = false;
        for (b, &memory) in budgets.iter().enumerate() {
            let o = CheckOptions {
                max_memory_bytes: memory,
                ..opts(Cas)
            };
            let report = check(&h, &o);
            let got = report.linearizable;
            assert!(
                got == want || got == Unknown,
                "history {i}, {memory} bytes: {got} vs {want}: {:#?}",
                h.ops
            );
            if got == Unknown {
                assert!(
                    !decided,
                    "history {i}: decided with less than {memory} bytes"
                );
                assert!(
                    report.notes[0].contains("memory budget"),
                    "{:?}",
                    report.notes
                );
                unknown[b] += 1;
            }
            decided = got != Unknown;
            if memory == 0 {
                // Only a proof needing no memo entry: an anomaly, or a dead end at the start.
                assert!(
                    !required || got != Valid,
                    "history {i}: valid with no memory"
                );
            }
        }
        let o = CheckOptions {
            time_budget: Duration::ZERO,
            max_memory_bytes: 300,
            ..opts(Cas)
        };
        let got = check(&h, &o).linearizable;
        assert!(got == want || got == Unknown, "{got} vs {want}");
    }
    assert_eq!(unknown[budgets.len() - 1], 0);
    assert!(
        unknown[0] > unknown[2] && unknown[2] > 0,
        "unknown per budget: {unknown:?}"
    );
}

#[test]
fn model_kind_names_round_trip() {
    for m in ModelKind::ALL {
        assert_eq!(m.as_str().parse::<ModelKind>(), Ok(m));
        assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
    }
    assert!("kv".parse::<ModelKind>().is_err());
}

/// Long runs: 16 clients issuing 80,000 ops on 8 keys, and 50 clients issuing 100,000 ops on
/// 4 keys (about a dozen concurrent ops per key), some indeterminate; then the second with one
/// read made stale. Run with `cargo test --release -- --ignored` to see the search's speed.
#[test]
#[ignore]
fn large_simulated_histories() {
    for (clients, per_client, keys) in [(16, 5_000, 8), (50, 2_000, 4)] {
        let h = simulated(99, clients, per_client, keys);
        let t = std::time::Instant::now();
        let report = check(&h, &opts(Cas));
        eprintln!(
            "{} ops on {keys} keys: {:?} in {:?}",
            h.ops.len(),
            report.keys,
            t.elapsed()
        );
        assert_eq!(report.verdict(), Valid, "{:?}", report.notes);
    }
    let mut h = simulated(99, 50, 2_000, 4);
    let first = h
        .ops
        .iter()
        .find(|o| o.key == "k0" && o.f == OpKind::Write && o.outcome == Outcome::Ok)
        .cloned()
        .unwrap();
    let half = h.ops.len() / 2;
    let victim = h.ops[half..]
        .iter_mut()
        .find(|o| o.key == "k0" && o.f == OpKind::Read && o.outcome == Outcome::Ok)
        .unwrap();
    victim.value = first.value;
    let t = std::time::Instant::now();
    let report = check(&h, &opts(Cas));
    eprintln!("one stale read: {:?} in {:?}", report.keys, t.elapsed());
    assert_eq!(report.keys.invalid, 1);
    assert!(report
        .violations
        .iter()
        .any(|v| v.kind == ViolationKind::Nonlinearizable && v.key == "k0"));
}

// ---- kv-append against brute force ------------------------------------------------------

fn kv_rec(
    id: u64,
    f: KvKind,
    value: Option<&str>,
    outcome: Outcome,
    inv: u64,
    comp: Option<u64>,
) -> KvRecord {
    KvRecord {
        id,
        client: id as u32,
        f,
        key: "k".into(),
        value: value.map(str::to_string),
        from: None,
        outcome,
        invoke_ns: inv * MS,
        complete_ns: comp.map(|c| c * MS),
        line: 0,
        complete_line: None,
    }
}

/// Every real-time-respecting order of the kv ops, info ops placed or not.
fn kv_brute_force(ops: &[KvRecord]) -> bool {
    brute_force_with(ops, String::new(), &|x: &KvRecord, state: &String| {
        let v = x.value.as_deref().unwrap_or("");
        match x.f {
            KvKind::Get if x.outcome != Outcome::Ok => Some(state.clone()),
            KvKind::Get => (v == state).then(|| state.clone()),
            KvKind::Put => Some(v.to_string()),
            KvKind::Append => Some(format!("{state}{v}")),
            KvKind::Cas => unreachable!(),
        }
    })
}

/// At most 8 ops; texts from a tiny alphabet so that values overlap ("ab" is "a" + "b") and
/// some writes are never observed.
fn random_kv(rng: &mut ChaCha8Rng) -> Vec<KvRecord> {
    const TEXTS: [&str; 5] = ["a", "b", "ab", "c", ""];
    let n = rng.gen_range(1..=8);
    let mut ops: Vec<(KvRecord, u64)> = (0..n)
        .map(|id| {
            let inv = rng.gen_range(0..30u64);
            let comp = inv + rng.gen_range(0..15u64);
            let f = match rng.gen_range(0..5) {
                0 | 1 => KvKind::Get,
                2 => KvKind::Put,
                _ => KvKind::Append,
            };
            let outcome = match rng.gen_range(0..10) {
                0..=6 => Outcome::Ok,
                7 | 8 => Outcome::Info,
                _ => Outcome::Fail,
            };
            let complete = match outcome {
                Outcome::Info if rng.gen_bool(0.5) => None,
                _ => Some(comp),
            };
            let text = match f {
                // Gets return concatenations now and then.
                KvKind::Get if rng.gen_bool(0.3) => "aab",
                _ => TEXTS[rng.gen_range(0..TEXTS.len())],
            };
            let value = if f == KvKind::Get && outcome != Outcome::Ok {
                None
            } else {
                Some(text)
            };
            let point = rng.gen_range(inv..=comp);
            (kv_rec(id, f, value, outcome, inv, complete), point)
        })
        .collect();
    if rng.gen_bool(0.5) {
        // A real store; then perhaps corrupt one get.
        ops.sort_by_key(|&(_, p)| p);
        let mut state = String::new();
        for (o, _) in &mut ops {
            let effect = match o.outcome {
                Outcome::Ok => true,
                Outcome::Info => rng.gen_bool(0.5),
                Outcome::Fail => false,
            };
            match o.f {
                KvKind::Get if o.outcome == Outcome::Ok => o.value = Some(state.clone()),
                KvKind::Put if effect => state = o.value.clone().unwrap_or_default(),
                KvKind::Append if effect => state.push_str(o.value.as_deref().unwrap_or("")),
                _ => {}
            }
        }
        if rng.gen_bool(0.4) {
            if let Some((o, _)) = ops
                .iter_mut()
                .find(|(o, _)| o.f == KvKind::Get && o.outcome == Outcome::Ok)
            {
                o.value = Some(TEXTS[rng.gen_range(0..TEXTS.len())].to_string());
            }
        }
    }
    let mut ops: Vec<KvRecord> = ops.into_iter().map(|(o, _)| o).collect();
    ops.sort_by_key(|o| (o.invoke_ns, o.id));
    ops
}

#[test]
fn kv_append_agrees_with_brute_force_on_random_small_histories() {
    let seed = 0x5eed_0002;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut valid, mut invalid, mut eights) = (0, 0, 0);
    for i in 0..4000 {
        let ops = random_kv(&mut rng);
        eights += usize::from(ops.len() == 8);
        let want = kv_brute_force(&ops);
        let h = KvHistory { ops };
        let report = check_kv(&h, &opts(ModelKind::KvAppend));
        let want_verdict = if want { Valid } else { Invalid };
        assert_eq!(
            report.linearizable, want_verdict,
            "kv history {i} (seed {seed:#x}) disagrees with brute force: {:#?}\n{report:#?}",
            h.ops
        );
        if want {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 800 && invalid > 800 && eights > 300,
        "valid {valid}, invalid {invalid}, with 8 ops {eights}"
    );
}

#[test]
fn kv_append_on_a_native_history_reads_nil_as_empty() {
    let h = history(vec![
        r(1, None, 0, 5),
        w(2, 7, 10, 20),
        r(3, Some(7), 30, 40),
    ]);
    let report = check(&h, &opts(ModelKind::KvAppend));
    assert_eq!(report.model, "kv-append");
    assert_eq!(report.linearizable, Valid);
    let h = history(vec![w(1, 7, 0, 10), r(2, None, 20, 30)]);
    let report = check(&h, &opts(ModelKind::KvAppend));
    assert_eq!(report.linearizable, Invalid);
    let ce = report.violations[0].counterexample.as_ref().unwrap();
    assert_eq!(ce.offender.id, 2);
}

#[test]
fn kv_append_strings_count_against_the_memory_budget() {
    // Six sequential appends, then a get of the whole: one memo entry per op either way, but
    // with long texts each entry holds a string of up to 6,000 bytes.
    let run = |len: usize, memory: u64| {
        let text = |i: usize| char::from(b'a' + i as u8).to_string().repeat(len);
        let mut ops: Vec<KvRecord> = (0..6)
            .map(|i| {
                let t = 10 * i as u64;
                kv_rec(
                    i as u64,
                    KvKind::Append,
                    Some(&text(i)),
                    Outcome::Ok,
                    t,
                    Some(t + 5),
                )
            })
            .collect();
        let all: String = (0..6).map(text).collect();
        ops.push(kv_rec(
            6,
            KvKind::Get,
            Some(&all),
            Outcome::Ok,
            100,
            Some(105),
        ));
        let o = CheckOptions {
            max_memory_bytes: memory,
            ..opts(ModelKind::KvAppend)
        };
        check_kv(&KvHistory { ops }, &o)
    };
    assert_eq!(run(1, 8 << 10).linearizable, Valid);
    assert_eq!(run(1_000, 64 << 10).linearizable, Valid);
    let report = run(1_000, 8 << 10);
    assert_eq!(report.linearizable, Unknown);
    assert!(
        report.notes[0].contains("memory budget (its share: 8 KiB of 8 KiB)"),
        "{:?}",
        report.notes
    );
}

#[test]
fn memory_sizes_parse() {
    for (text, want) in [
        ("0", Some(0)),
        ("1048576", Some(1 << 20)),
        ("512K", Some(512 << 10)),
        ("512KiB", Some(512 << 10)),
        ("512kb", Some(512 << 10)),
        ("2G", Some(2 << 30)),
        ("2 GiB", Some(2 << 30)),
        ("1.5GB", Some(3 << 29)),
        ("1T", Some(1 << 40)),
        ("", None),
        ("G", None),
        ("-1", None),
        ("2x", None),
        ("1.2.3M", None),
        ("99999999999T", None),
    ] {
        assert_eq!(parse_size(text).ok(), want, "{text:?}");
    }
    assert_eq!(CheckOptions::default().max_memory_bytes, 2 << 30);
}

/// Random small histories on 2 to 6 keys at once, each key's ops from [`random_small`] or
/// [`random_kv`], checked on the calling thread (the default for small histories) and on 2 and
/// 3 threads: the verdict is invalid exactly when some key's brute-force verdict is, and the
/// keys proved non-linearizable are exactly those.
#[test]
fn multi_key_histories_agree_with_brute_force_in_parallel() {
    use std::collections::BTreeSet;

    /// `(ops, invalid keys)` for `keys` keys, ids unique across keys.
    fn keyed<R>(
        rng: &mut ChaCha8Rng,
        keys: u64,
        mut gen: impl FnMut(&mut ChaCha8Rng) -> Vec<R>,
        linearizable: impl Fn(&[R]) -> bool,
        rekey: impl Fn(&mut R, String, u64),
    ) -> (Vec<R>, BTreeSet<String>) {
        let mut all = Vec::new();
        let mut invalid = BTreeSet::new();
        for k in 0..keys {
            let mut ops = gen(rng);
            let key = format!("k{k}");
            if !linearizable(&ops) {
                invalid.insert(key.clone());
            }
            for o in &mut ops {
                rekey(o, key.clone(), 100 * k);
            }
            all.extend(ops);
        }
        (all, invalid)
    }
    let agree = |i: usize, report: &ConsistencyReport, keys: u64, invalid: &BTreeSet<String>| {
        let want = if invalid.is_empty() { Valid } else { Invalid };
        assert_eq!(report.verdict(), want, "history {i}: {report:#?}");
        assert_eq!(report.linearizable, want, "history {i}");
        assert_eq!(
            (
                report.keys.checked,
                report.keys.invalid,
                report.keys.unknown
            ),
            (keys as usize, invalid.len(), 0),
            "history {i}"
        );
        let proved: BTreeSet<String> = report
            .violations
            .iter()
            .filter(|v| v.kind == ViolationKind::Nonlinearizable)
            .map(|v| v.key.clone())
            .collect();
        assert_eq!(&proved, invalid, "history {i}");
    };

    let seed = 0x5eed_0003;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut some_invalid = 0;
    for i in 0..600 {
        let keys = rng.gen_range(2..=6);
        let with_cas = i % 2 == 0;
        let (mut ops, invalid) = keyed(
            &mut rng,
            keys,
            |rng| random_small(rng, with_cas),
            brute_force,
            |o, key, id| {
                o.key = key;
                o.id += id;
                o.client = o.id as u32;
            },
        );
        ops.sort_by_key(|o| (o.invoke_ns, o.id));
        let h = History { ops };
        some_invalid += usize::from(!invalid.is_empty() && invalid.len() < keys as usize);
        for threads in [0, 2, 3] {
            let o = CheckOptions {
                threads,
                ..opts(if with_cas { Cas } else { Reg })
            };
            agree(i, &check(&h, &o), keys, &invalid);
        }

        let keys = rng.gen_range(2..=6);
        let (mut ops, invalid) = keyed(&mut rng, keys, random_kv, kv_brute_force, |o, key, id| {
            o.key = key;
            o.id += id;
            o.client = o.id as u32;
        });
        ops.sort_by_key(|o| (o.invoke_ns, o.id));
        let h = KvHistory { ops };
        for threads in [0, 2, 3] {
            let o = CheckOptions {
                threads,
                ..opts(ModelKind::KvAppend)
            };
            agree(i, &check_kv(&h, &o), keys, &invalid);
        }
    }
    // Mixed histories (some keys valid, some not) are the common case.
    assert!(some_invalid > 200, "{some_invalid}");
}
