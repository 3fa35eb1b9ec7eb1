//! The seeded operation generator: keys, the read/write/cas mix, and write values unique per
//! key, so that every read names the write it saw.

use faultline_protocol::Op;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::experiment::{Mix, WorkloadKind};

pub struct Generator {
    rng: ChaCha8Rng,
    keys: Vec<String>,
    mix: Mix,
    kind: WorkloadKind,
    /// Next value to write, per key: 1, 2, 3, ...
    next_value: Vec<i64>,
    /// The latest value seen for each key (by an ok read or write); cas expects it.
    last_seen: Vec<Option<i64>>,
}

impl Generator {
    pub fn new(seed: u64, keys: u32, mix: Mix, kind: WorkloadKind) -> Self {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            keys: (0..keys).map(|i| format!("k{i}")).collect(),
            mix,
            kind,
            next_value: vec![1; keys as usize],
            last_seen: vec![None; keys as usize],
        }
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    fn key_index(&self, key: &str) -> Option<usize> {
        key.strip_prefix('k')?
            .parse::<usize>()
            .ok()
            .filter(|&i| i < self.keys.len())
    }

    fn fresh(&mut self, k: usize) -> i64 {
        let v = self.next_value[k];
        self.next_value[k] += 1;
        v
    }

    pub fn next_op(&mut self) -> Op {
        let k = self.rng.gen_range(0..self.keys.len());
        let key = self.keys[k].clone();
        let x: f64 = self.rng.gen();
        if x < self.mix.read {
            Op::Read { key }
        } else if x < self.mix.read + self.mix.write || self.kind == WorkloadKind::Register {
            let value = self.fresh(k);
            Op::Write { key, value }
        } else {
            let to = self.fresh(k);
            Op::Cas {
                key,
                from: self.last_seen[k],
                to,
            }
        }
    }

    /// A write to a random key (the recovery probe after the load).
    pub fn next_write(&mut self) -> Op {
        let k = self.rng.gen_range(0..self.keys.len());
        let value = self.fresh(k);
        Op::Write {
            key: self.keys[k].clone(),
            value,
        }
    }

    /// An ok operation saw `value` on `key`; later cas operations expect it.
    pub fn observe(&mut self, key: &str, value: i64) {
        if let Some(k) = self.key_index(key) {
            self.last_seen[k] = Some(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ops_and_values_unique_per_key() {
        let mix = Mix {
            read: 0.4,
            write: 0.4,
            cas: 0.2,
        };
        let mut a = Generator::new(9, 3, mix, WorkloadKind::CasRegister);
        let mut b = Generator::new(9, 3, mix, WorkloadKind::CasRegister);
        let mut written = std::collections::HashSet::new();
        let (mut reads, mut writes, mut cas) = (0, 0, 0);
        for _ in 0..3000 {
            let op = a.next_op();
            assert_eq!(op, b.next_op());
            match op {
                Op::Read { .. } => reads += 1,
                Op::Write { key, value } => {
                    writes += 1;
                    assert!(written.insert((key, value)), "value reused");
                }
                Op::Cas { key, to, .. } => {
                    cas += 1;
                    assert!(written.insert((key, to)), "value reused");
                }
                Op::Status => unreachable!(),
            }
        }
        // 3000 draws at 40/40/20: each share within a few percent.
        assert!((1050..1350).contains(&reads), "{reads}");
        assert!((1050..1350).contains(&writes), "{writes}");
        assert!((480..720).contains(&cas), "{cas}");
    }
}
