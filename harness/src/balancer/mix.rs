//! Fixed 64-bit hashing for the ring and the keys (FNV-1a, then murmur3's finaliser: the same
//! on every platform and Rust release, unlike `DefaultHasher`), and a seeded random stream that
//! many client tasks can draw from at once without a lock.
//!
//! Why not `rand`: its generators take `&mut self`, so sharing one between client tasks needs a
//! lock or a thread-local (which loses the seed). The stream here is SplitMix64, whose state is
//! a counter: one atomic add per draw, and the draws of one seed are the same in every run (in
//! the order the tasks happen to make them).

use std::sync::atomic::{AtomicU64, Ordering};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// A well-mixed 64-bit hash of `bytes`.
pub fn hash64(bytes: &[u8]) -> u64 {
    fmix64(fnv1a(FNV_OFFSET, bytes))
}

/// The hash of a ring point: node `id`'s `v`th virtual node.
pub fn point_hash(id: &str, v: u32) -> u64 {
    let h = fnv1a(FNV_OFFSET, id.as_bytes());
    let h = fnv1a(h, b"#");
    fmix64(fnv1a(h, &v.to_le_bytes()))
}

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// murmur3's 64-bit finaliser: every input bit flips about half the output bits.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// SplitMix64 over an atomic counter: a seeded, lock-free source of random numbers.
#[derive(Debug)]
pub struct RandomStream {
    state: AtomicU64,
}

impl RandomStream {
    pub fn new(seed: u64) -> Self {
        RandomStream {
            state: AtomicU64::new(seed),
        }
    }

    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GOLDEN, Ordering::Relaxed)
            .wrapping_add(GOLDEN);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0), by Lemire's multiply-shift: no division.
    pub fn below(&self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ring must not move when the toolchain changes: pin a few values.
    #[test]
    fn hashes_are_pinned() {
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash64(b""), fmix64(FNV_OFFSET));
        assert_ne!(point_hash("n1", 0), point_hash("n1", 1));
        assert_ne!(point_hash("n1", 0), point_hash("n2", 0));
    }

    #[test]
    fn stream_is_seeded_and_roughly_uniform() {
        let a = RandomStream::new(7);
        let b = RandomStream::new(7);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[a.below(10) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(a.below(0), 0);
    }
}
