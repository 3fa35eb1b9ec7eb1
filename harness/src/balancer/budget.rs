//! The retry budget, after Finagle's `RetryBudget`: over a sliding window of `ttl`, retries
//! may number at most `ratio` times the operations started in it, plus a floor of
//! `min_per_sec` per second so that a quiet client can still retry.
//!
//! The window is ten slots of `ttl / 10`. Each slot is one atomic word holding the slot's
//! generation and its count, so that moving a slot to a new generation and counting in it are
//! one compare-and-swap: no lock, and no count lost to a race. Time comes in as an argument.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::experiment::RetryBudgetCfg;

const SLOTS: u64 = 10;
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// Counts in the slots of the last `ttl`, tagged by generation.
#[derive(Debug)]
struct Window {
    slots: [AtomicU64; SLOTS as usize],
}

impl Window {
    fn new() -> Self {
        Window {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Generation `g`'s count in its slot (0 when the slot holds another generation).
    fn count(&self, g: u64) -> u64 {
        let v = self.slots[(g % SLOTS) as usize].load(Ordering::Acquire);
        if v >> COUNT_BITS == tag(g) {
            v & COUNT_MASK
        } else {
            0
        }
    }

    /// The total of the generations before `g` still in the window.
    fn before(&self, g: u64) -> u64 {
        (1..SLOTS)
            .filter_map(|k| g.checked_sub(k))
            .map(|old| self.count(old))
            .sum()
    }

    /// Add one to generation `g`'s count if `allow(current count)`; whether it did.
    fn add_if(&self, g: u64, allow: impl Fn(u64) -> bool) -> bool {
        self.slots[(g % SLOTS) as usize]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                let current = if v >> COUNT_BITS == tag(g) {
                    v & COUNT_MASK
                } else {
                    0
                };
                allow(current).then(|| tag(g) << COUNT_BITS | (current + 1).min(COUNT_MASK))
            })
            .is_ok()
    }
}

/// The generation tag kept in a slot word (24 bits: months of 1 s slots before it wraps).
fn tag(g: u64) -> u64 {
    g & ((1 << (64 - COUNT_BITS)) - 1)
}

/// A retry budget shared by every client task.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    /// Retries allowed over a whole window whatever the operation count.
    floor: f64,
    epoch: Instant,
    slot_ns: u64,
    operations: Window,
    retries: Window,
    denied: AtomicU64,
}

impl RetryBudget {
    /// A budget measuring time from `epoch` (instants before it count as the epoch).
    pub fn new(cfg: &RetryBudgetCfg, epoch: Instant) -> Self {
        let ttl_ns = u64::try_from(cfg.ttl.0.as_nanos()).unwrap_or(u64::MAX);
        RetryBudget {
            ratio: cfg.ratio.max(0.0),
            floor: f64::from(cfg.min_per_sec) * cfg.ttl.0.as_secs_f64(),
            epoch,
            slot_ns: (ttl_ns / SLOTS).max(1),
            operations: Window::new(),
            retries: Window::new(),
            denied: AtomicU64::new(0),
        }
    }

    /// An operation started (its first try): it earns `ratio` of a retry.
    pub fn deposit(&self, now: Instant) {
        self.operations.add_if(self.generation(now), |_| true);
    }

    /// Whether a retry may go now; if so it is counted against the budget.
    pub fn try_retry(&self, now: Instant) -> bool {
        let g = self.generation(now);
        let operations = self.operations.before(g) + self.operations.count(g);
        let allowed = self.floor + self.ratio * operations as f64;
        let earlier = self.retries.before(g);
        let ok = self
            .retries
            .add_if(g, |current| ((earlier + current + 1) as f64) <= allowed);
        if !ok {
            self.denied.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Retries refused so far.
    pub fn denied(&self) -> u64 {
        self.denied.load(Ordering::Relaxed)
    }

    fn generation(&self, now: Instant) -> u64 {
        let ns =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        ns / self.slot_ns
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::experiment::Dur;

    fn budget(ratio: f64, min_per_sec: u32, t0: Instant) -> RetryBudget {
        RetryBudget::new(
            &RetryBudgetCfg {
                ratio,
                min_per_sec,
                ttl: Dur(Duration::from_secs(10)),
            },
            t0,
        )
    }

    fn retries_allowed(b: &RetryBudget, at: Instant) -> usize {
        (0..10_000).take_while(|_| b.try_retry(at)).count()
    }

    #[test]
    fn retries_follow_the_ratio_over_the_floor() {
        let t0 = Instant::now();
        // The floor alone: 1/s over a 10 s window.
        let b = budget(0.2, 1, t0);
        assert_eq!(retries_allowed(&b, t0), 10);
        assert_eq!(b.denied(), 1);
        // 100 operations earn 20 more.
        for _ in 0..100 {
            b.deposit(t0);
        }
        assert_eq!(retries_allowed(&b, t0 + Duration::from_secs(1)), 20);

        // No floor, ratio only.
        let b = budget(0.5, 0, t0);
        assert!(!b.try_retry(t0));
        for _ in 0..10 {
            b.deposit(t0);
        }
        assert_eq!(retries_allowed(&b, t0), 5);
    }

    /// Operations and retries leave the window after `ttl`.
    #[test]
    fn the_window_slides() {
        let t0 = Instant::now();
        let b = budget(1.0, 0, t0);
        for _ in 0..4 {
            b.deposit(t0);
        }
        assert_eq!(retries_allowed(&b, t0 + Duration::from_millis(9_500)), 4);
        // At 10 s the deposits of the first slot have left the window, but the retries made
        // at 9.5 s have not: 4 new deposits buy nothing yet.
        for _ in 0..4 {
            b.deposit(t0 + Duration::from_secs(10));
        }
        assert_eq!(retries_allowed(&b, t0 + Duration::from_secs(10)), 0);
        // Once the retries of 9.5 s have left too (at 19.5 s), the 4 deposits of 10 s count.
        assert_eq!(retries_allowed(&b, t0 + Duration::from_millis(19_500)), 4);
        assert_eq!(retries_allowed(&b, t0 + Duration::from_secs(60)), 0);
    }
}
