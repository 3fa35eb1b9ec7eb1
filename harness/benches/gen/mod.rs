//! Generated histories of a correct linearizable register store for benchmarks and scale
//! tests: `clients` clients issue operations back to back, each on a random key, and each
//! operation takes effect at a random point inside its interval. Values are unique.

use faultline::history::{History, OpRecord, Outcome};
use faultline_protocol::OpKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `ops` operations from `clients` clients on `keys` keys: 50% reads, 30% writes, 20% cas
/// (a cas expecting a stale value fails), 1% indeterminate. Times in ns.
pub fn register_history(seed: u64, clients: u32, ops: usize, keys: usize) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let key_names: Vec<String> = (0..keys).map(|k| format!("k{k}")).collect();
    let mut key_of: Vec<u32> = Vec::with_capacity(ops);
    let mut recs: Vec<(OpRecord, u64, bool)> = Vec::with_capacity(ops);
    let mut clock: Vec<u64> = (0..clients).map(|_| rng.gen_range(0..1_000)).collect();
    for id in 0..ops as u64 {
        let c = (id % u64::from(clients)) as usize;
        let inv = clock[c];
        let comp = inv + rng.gen_range(100_000..2_000_000u64);
        clock[c] = comp + rng.gen_range(1_000..50_000);
        let f = match rng.gen_range(0..10) {
            0..=4 => OpKind::Read,
            5..=7 => OpKind::Write,
            _ => OpKind::Cas,
        };
        let info = rng.gen_bool(0.01);
        let k = rng.gen_range(0..keys);
        key_of.push(k as u32);
        recs.push((
            OpRecord {
                id,
                client: c as u32,
                f,
                key: String::new(),
                value: (f != OpKind::Read).then_some(id as i64 + 1),
                from: None,
                node: None,
                outcome: if info { Outcome::Info } else { Outcome::Ok },
                invoke_ns: inv,
                due_ns: None,
                complete_ns: (!info).then_some(comp),
                error: None,
            },
            rng.gen_range(inv..=comp),
            !info || rng.gen_bool(0.5),
        ));
    }
    let mut order: Vec<usize> = (0..recs.len()).collect();
    order.sort_by_key(|&i| recs[i].1);
    let mut state: Vec<Option<i64>> = vec![None; keys];
    let mut last: Vec<Option<i64>> = vec![None; keys];
    for i in order {
        let k = key_of[i] as usize;
        let (o, _, effect) = &mut recs[i];
        match o.f {
            OpKind::Read => {
                o.value = if o.outcome == Outcome::Ok {
                    state[k]
                } else {
                    None
                }
            }
            OpKind::Write => {
                if *effect {
                    state[k] = o.value;
                }
                last[k] = o.value;
            }
            _ => {
                o.from = if rng.gen_bool(0.8) { state[k] } else { last[k] };
                if o.from != state[k] {
                    if o.outcome == Outcome::Ok {
                        o.outcome = Outcome::Fail;
                    }
                } else if *effect {
                    state[k] = o.value;
                }
                last[k] = o.value;
            }
        }
    }
    let mut ops: Vec<OpRecord> = recs
        .into_iter()
        .zip(key_of)
        .map(|((mut o, _, _), k)| {
            o.key.clone_from(&key_names[k as usize]);
            o
        })
        .collect();
    ops.sort_by_key(|o| (o.invoke_ns, o.id));
    History { ops }
}
