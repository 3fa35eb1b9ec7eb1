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
        time_budget: Duration::from_secs(60),
        max_memo_entries: 1_000_000,
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
/// unplaced `ok` op completed before it was invoked), placing `info` ops or not.
fn brute_force(ops: &[OpRecord]) -> bool {
    let ops: Vec<&OpRecord> = ops.iter().filter(|o| o.outcome != Outcome::Fail).collect();
    fn go(ops: &[&OpRecord], used: u32, state: Option<Value>) -> bool {
        let required_left = ops
            .iter()
            .enumerate()
            .any(|(i, o)| used & (1 << i) == 0 && o.outcome == Outcome::Ok);
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
                    && y.outcome == Outcome::Ok
                    && y.complete_ns.unwrap() < x.invoke_ns
            });
            if blocked {
                continue;
            }
            let ok = x.outcome == Outcome::Ok;
            let next = match x.f {
                OpKind::Read if !ok => Some(state),
                OpKind::Read => (x.value == state).then_some(state),
                OpKind::Write => Some(x.value),
                OpKind::Cas => (x.from == state).then_some(x.value),
                OpKind::Status => unreachable!(),
            };
            if let Some(s) = next {
                if go(ops, used | (1 << i), s) {
                    return true;
                }
            }
        }
        false
    }
    go(&ops, 0, None)
}

/// A random history of at most 7 ops on one key, values in 1..=3 (so they repeat). Half are
/// produced by a real register (then perhaps corrupted), half are pure noise.
fn random_small(rng: &mut ChaCha8Rng, with_cas: bool) -> Vec<OpRecord> {
    let n = rng.gen_range(1..=7);
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
    let (mut valid, mut invalid) = (0, 0);
    for i in 0..4000 {
        let with_cas = i % 2 == 0;
        let ops = random_small(&mut rng, with_cas);
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
        valid > 800 && invalid > 800,
        "valid {valid}, invalid {invalid}"
    );
}

// ---- generated register histories -------------------------------------------------------

/// A run against a correct linearizable register: `clients` clients issue ops back to back on
/// `keys` keys; each op takes effect at a random point inside its interval. Values are unique.
/// About 3% of ops are indeterminate (taking effect or not).
fn simulated(seed: u64, clients: u32, per_client: usize, keys: usize) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ops: Vec<(OpRecord, u64, bool)> = Vec::new();
    let mut id = 0u64;
    for c in 0..clients {
        let mut t = rng.gen_range(0..1_000u64);
        for _ in 0..per_client {
            let inv = t;
            let comp = inv + rng.gen_range(100..5_000u64);
            let f = match rng.gen_range(0..10) {
                0..=4 => OpKind::Read,
                5..=7 => OpKind::Write,
                _ => OpKind::Cas,
            };
            id += 1;
            let info = rng.gen_bool(0.03);
            let mut o = OpRecord {
                id,
                client: c,
                f,
                key: format!("k{}", rng.gen_range(0..keys)),
                value: (f != OpKind::Read).then_some(id as Value),
                from: None,
                node: None,
                outcome: if info { Outcome::Info } else { Outcome::Ok },
                invoke_ns: inv * 1_000,
                complete_ns: (!info).then_some(comp * 1_000),
                error: None,
            };
            if info && rng.gen_bool(0.5) {
                o.complete_ns = Some(comp * 1_000);
            }
            let effect = !info || rng.gen_bool(0.5);
            ops.push((o, rng.gen_range(inv..=comp) * 1_000, effect));
            t = comp + rng.gen_range(0..200);
        }
    }
    ops.sort_by_key(|(_, p, _)| *p);
    let mut state: std::collections::HashMap<String, Option<Value>> = Default::default();
    let mut last_write: std::collections::HashMap<String, Value> = Default::default();
    for (o, _, effect) in &mut ops {
        let s = state.entry(o.key.clone()).or_default();
        match o.f {
            OpKind::Read => o.value = if o.outcome == Outcome::Ok { *s } else { None },
            OpKind::Write if *effect => *s = o.value,
            OpKind::Cas => {
                // Usually expect the current value, sometimes a recent one that may be stale.
                o.from = if rng.gen_bool(0.8) {
                    *s
                } else {
                    last_write.get(&o.key).copied()
                };
                if o.from != *s {
                    if o.outcome == Outcome::Ok {
                        o.outcome = Outcome::Fail;
                    }
                } else if *effect {
                    *s = o.value;
                }
            }
            _ => {}
        }
        if o.f != OpKind::Read {
            if let Some(v) = o.value {
                last_write.insert(o.key.clone(), v);
            }
        }
    }
    let mut ops: Vec<OpRecord> = ops.into_iter().map(|(o, _, _)| o).collect();
    ops.sort_by_key(|o| (o.invoke_ns, o.id));
    History { ops }
}

#[test]
fn simulated_register_is_valid_and_one_stale_read_makes_it_invalid() {
    let mut h = simulated(7, 8, 400, 3);
    let report = check(&h, &opts(Cas));
    assert_eq!(report.verdict(), Valid, "{:#?}", report.notes);
    assert_eq!(report.keys.valid, 3);

    // Make one late ok read on k0 return the key's first written value: that write completed
    // before some other ok write that completed before the read began.
    let first = h
        .ops
        .iter()
        .find(|o| o.key == "k0" && o.f == OpKind::Write && o.outcome == Outcome::Ok)
        .cloned()
        .unwrap();
    let first_done = first.complete_ns.unwrap();
    let second_done = h
        .ops
        .iter()
        .filter(|o| o.key == "k0" && o.outcome == Outcome::Ok && o.f != OpKind::Read)
        .filter(|o| o.invoke_ns > first_done)
        .filter_map(|o| o.complete_ns)
        .min()
        .unwrap();
    let victim = h
        .ops
        .iter_mut()
        .filter(|o| o.key == "k0" && o.f == OpKind::Read && o.outcome == Outcome::Ok)
        .find(|o| o.invoke_ns > second_done && o.value != first.value)
        .unwrap();
    victim.value = first.value;
    let victim = victim.id;

    let report = check(&h, &opts(Cas));
    assert_eq!(report.linearizable, Invalid);
    assert_eq!(
        report.keys,
        KeyCounts {
            checked: 3,
            valid: 2,
            invalid: 1,
            unknown: 0
        }
    );
    assert_eq!(report.stale_reads, 1);
    assert!(report
        .violations
        .iter()
        .any(|v| v.kind == ViolationKind::StaleRead && v.read == Some(victim)));
    assert!(report
        .violations
        .iter()
        .any(|v| v.kind == ViolationKind::Nonlinearizable && v.key == "k0"));
}

#[test]
fn tiny_budgets_give_unknown_never_a_wrong_answer() {
    let h = simulated(11, 6, 300, 2);
    // No time at all: the search looks at the clock within its first 1024 steps.
    let o = CheckOptions {
        time_budget: Duration::ZERO,
        ..opts(Cas)
    };
    let report = check(&h, &o);
    assert_eq!(report.linearizable, Unknown);
    assert_eq!(report.keys.unknown, 2);
    assert_eq!(report.notes.len(), 2, "{:?}", report.notes);

    // One memo entry: the search forgets, but still decides.
    let o = CheckOptions {
        max_memo_entries: 1,
        ..opts(Cas)
    };
    assert_eq!(check(&h, &o).linearizable, Valid);

    // Budgets never hide an anomaly: a stale read still makes the key invalid.
    let stale = history(vec![w(1, 1, 0, 10), w(2, 2, 20, 30), r(3, Some(1), 40, 50)]);
    let o = CheckOptions {
        max_memo_entries: 1,
        ..opts(Cas)
    };
    let report = check(&stale, &o);
    assert_eq!(report.linearizable, Invalid);
    assert_eq!(report.verdict(), Invalid);

    // Random small histories with a tiny memo and no time: the brute-force verdict or
    // unknown; with a tiny memo alone, the brute-force verdict.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..500 {
        let ops = random_small(&mut rng, true);
        let want = if brute_force(&ops) { Valid } else { Invalid };
        let h = History { ops };
        let o = CheckOptions {
            max_memo_entries: 2,
            ..opts(Cas)
        };
        assert_eq!(check(&h, &o).linearizable, want);
        let o = CheckOptions {
            time_budget: Duration::ZERO,
            ..o
        };
        let got = check(&h, &o).linearizable;
        assert!(got == want || got == Unknown, "{got} vs {want}");
    }
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
/// 4 keys (about a dozen concurrent ops per key), 3% indeterminate; then the second with one
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
    let ops: Vec<&KvRecord> = ops.iter().filter(|o| o.outcome != Outcome::Fail).collect();
    fn go(ops: &[&KvRecord], used: u32, state: &str) -> bool {
        let required_left = ops
            .iter()
            .enumerate()
            .any(|(i, o)| used & (1 << i) == 0 && o.outcome == Outcome::Ok);
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
                    && y.outcome == Outcome::Ok
                    && y.complete_ns.unwrap() < x.invoke_ns
            });
            if blocked {
                continue;
            }
            let v = x.value.as_deref().unwrap_or("");
            let next = match x.f {
                KvKind::Get if x.outcome != Outcome::Ok => Some(state.to_string()),
                KvKind::Get => (v == state).then(|| state.to_string()),
                KvKind::Put => Some(v.to_string()),
                KvKind::Append => Some(format!("{state}{v}")),
                KvKind::Cas => unreachable!(),
            };
            if let Some(s) = next {
                if go(ops, used | (1 << i), &s) {
                    return true;
                }
            }
        }
        false
    }
    go(&ops, 0, "")
}

/// At most 7 ops; texts from a tiny alphabet so that values overlap ("ab" is "a" + "b") and
/// some writes are never observed.
fn random_kv(rng: &mut ChaCha8Rng) -> Vec<KvRecord> {
    const TEXTS: [&str; 5] = ["a", "b", "ab", "c", ""];
    let n = rng.gen_range(1..=7);
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
    let (mut valid, mut invalid) = (0, 0);
    for i in 0..4000 {
        let ops = random_kv(&mut rng);
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
        valid > 800 && invalid > 800,
        "valid {valid}, invalid {invalid}"
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
