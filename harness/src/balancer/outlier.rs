//! Passive outlier ejection, after Envoy's: count each node's consecutive failures as replies
//! come back, eject a node that reaches the threshold for a time that grows with each
//! ejection, never eject more than a set share of the nodes, and re-admit a node when its time
//! is up. Every transition is kept as an [`OutlierEvent`] until the harness drains it for the
//! timeline.
//!
//! Time comes in as an argument (`now`), never from the clock, so tests drive the state
//! machine with made-up instants. Re-admission happens at the first `record` or `drain` at or
//! after a node's time is up; the harness drains at least every observer tick.
//!
//! ```text
//!            consecutive_failures reached, fewer than the cap ejected
//!   in ─────────────────────────────────────────────────────────────> ejected
//!   (failures counted,                                                (skipped by every
//!    reset by any other reply) <──────────────────────────────────────  strategy)
//!                              base_ejection × times ejected elapsed
//!                              (at most max_ejection)
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::nodes::{NodeSet, MAX_NODES};
use super::Reply;
use crate::experiment::OutlierCfg;

/// One ejection or re-admission, for the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierEvent {
    /// Index of the node, as in the view.
    pub node: usize,
    pub transition: Transition,
    pub at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Out for `duration`; `count` is how many times the node has been ejected, this one
    /// included.
    Ejected {
        duration: Duration,
        count: u32,
    },
    Readmitted,
}

#[derive(Debug, Default)]
struct Slot {
    consecutive: AtomicU32,
    times: AtomicU32,
    /// Nanoseconds after the detector's epoch when the current ejection ends; meaningful only
    /// while the node's bit is set in `ejected`.
    until: AtomicU64,
}

/// The outlier detector of one balancer. Lock-free except the event list, which is touched
/// only on a transition.
#[derive(Debug)]
pub struct OutlierDetector {
    threshold: u32,
    base_ns: u64,
    max_ns: u64,
    /// The most nodes out at once.
    cap: u32,
    epoch: Instant,
    slots: Box<[Slot]>,
    ejected: AtomicU64,
    /// The earliest `until` among ejected nodes (`u64::MAX` when none): the fast path of every
    /// `record` is one load and one comparison.
    next_due: AtomicU64,
    events: Mutex<Vec<OutlierEvent>>,
}

impl OutlierDetector {
    /// A detector for `nodes` nodes (at most [`MAX_NODES`] are tracked), measuring time from
    /// `epoch`; instants before it count as the epoch.
    pub fn new(cfg: &OutlierCfg, nodes: usize, epoch: Instant) -> Self {
        let nodes = nodes.min(MAX_NODES);
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        OutlierDetector {
            threshold: cfg.consecutive_failures.max(1),
            base_ns: nanos(cfg.base_ejection.0).max(1),
            max_ns: nanos(cfg.max_ejection.0).max(1),
            cap: (nodes as u64 * u64::from(cfg.max_ejection_percent.min(100)) / 100) as u32,
            epoch,
            slots: (0..nodes).map(|_| Slot::default()).collect(),
            ejected: AtomicU64::new(0),
            next_due: AtomicU64::new(u64::MAX),
            events: Mutex::new(Vec::new()),
        }
    }

    /// The nodes out now (as of the last `record` or `drain`).
    pub fn ejected(&self) -> NodeSet {
        NodeSet::from_bits(self.ejected.load(Ordering::Acquire))
    }

    /// How many times `node` has been ejected.
    pub fn times_ejected(&self, node: usize) -> u32 {
        self.slots
            .get(node)
            .map_or(0, |s| s.times.load(Ordering::Relaxed))
    }

    /// Count `node`'s reply (at `now`): a failure towards ejection, anything else resets the
    /// count. Also re-admits nodes whose time is up.
    pub fn record(&self, node: usize, reply: Reply, now: Instant) {
        let now_ns = self.ns(now);
        self.readmit_due(now, now_ns);
        let Some(slot) = self.slots.get(node) else {
            return;
        };
        if !reply.counts_against_node() {
            slot.consecutive.store(0, Ordering::Relaxed);
            return;
        }
        let failures = slot.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.threshold || self.ejected().contains(node) {
            return;
        }
        // Write the end first: a concurrent sweep that sees the bit must see the new end.
        let count = slot.times.load(Ordering::Relaxed).saturating_add(1);
        let duration_ns = self
            .base_ns
            .saturating_mul(u64::from(count))
            .min(self.max_ns);
        let until = now_ns.saturating_add(duration_ns);
        slot.until.store(until, Ordering::Release);
        let bit = 1u64 << node;
        let cap = self.cap;
        let won = self
            .ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                (m & bit == 0 && m.count_ones() < cap).then_some(m | bit)
            });
        if won.is_err() {
            // At the cap (or ejected meanwhile): the count stays up, so the next failure
            // tries again.
            return;
        }
        slot.times.fetch_add(1, Ordering::Relaxed);
        slot.consecutive.store(0, Ordering::Relaxed);
        self.next_due.fetch_min(until, Ordering::AcqRel);
        self.push(OutlierEvent {
            node,
            transition: Transition::Ejected {
                duration: Duration::from_nanos(duration_ns),
                count,
            },
            at: now,
        });
    }

    /// Re-admit the nodes whose time is up at `now`, then hand over every transition since the
    /// last call, oldest first.
    pub fn drain(&self, now: Instant) -> Vec<OutlierEvent> {
        self.readmit_due(now, self.ns(now));
        std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn readmit_due(&self, now: Instant, now_ns: u64) {
        if now_ns < self.next_due.load(Ordering::Acquire) {
            return;
        }
        // Reset first: an ejection racing with this sweep either is seen below or lowers
        // `next_due` itself afterwards.
        self.next_due.store(u64::MAX, Ordering::Release);
        for node in self.ejected().iter() {
            let Some(slot) = self.slots.get(node) else {
                continue;
            };
            let until = slot.until.load(Ordering::Acquire);
            if until > now_ns {
                self.next_due.fetch_min(until, Ordering::AcqRel);
                continue;
            }
            let bit = 1u64 << node;
            if self.ejected.fetch_and(!bit, Ordering::AcqRel) & bit != 0 {
                slot.consecutive.store(0, Ordering::Relaxed);
                self.push(OutlierEvent {
                    node,
                    transition: Transition::Readmitted,
                    at: now,
                });
            }
        }
    }

    fn push(&self, e: OutlierEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e);
    }

    fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Dur;

    fn cfg(failures: u32, percent: u32) -> OutlierCfg {
        OutlierCfg {
            consecutive_failures: failures,
            base_ejection: Dur(Duration::from_secs(1)),
            max_ejection: Dur(Duration::from_secs(3)),
            max_ejection_percent: percent,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The whole cycle on one node: failures counted and reset, ejection at the threshold,
    /// re-admission after base × times ejected, growing to max_ejection.
    #[test]
    fn ejection_and_readmission_follow_the_state_machine() {
        let t0 = Instant::now();
        let d = OutlierDetector::new(&cfg(3, 50), 4, t0);
        // Two failures, then a success: the count starts over.
        d.record(1, Reply::Refused, t0);
        d.record(1, Reply::Indefinite, t0);
        d.record(1, Reply::Served, t0);
        d.record(1, Reply::Refused, t0);
        d.record(1, Reply::Unavailable, t0);
        assert!(d.ejected().is_empty());
        // Not-leader answers and rejections are not failures of the node.
        d.record(1, Reply::NotLeader, t0);
        d.record(1, Reply::Rejected, t0);
        for _ in 0..2 {
            d.record(1, Reply::Refused, t0);
        }
        assert!(d.ejected().is_empty());
        d.record(1, Reply::Refused, t0 + ms(10));
        assert_eq!(d.ejected(), NodeSet::EMPTY.with(1));
        assert_eq!(
            d.drain(t0 + ms(10)),
            [OutlierEvent {
                node: 1,
                transition: Transition::Ejected {
                    duration: ms(1000),
                    count: 1
                },
                at: t0 + ms(10),
            }]
        );
        // Still out just before its time, back at it.
        assert!(d.drain(t0 + ms(1009)).is_empty());
        assert!(d.ejected().contains(1));
        let back = d.drain(t0 + ms(1010));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].transition, Transition::Readmitted);
        assert!(d.ejected().is_empty());

        // Second ejection lasts 2 s, third 3 s, fourth is capped at max_ejection (3 s).
        let mut t = t0 + ms(2000);
        for (count, secs) in [(2, 2), (3, 3), (4, 3)] {
            for _ in 0..3 {
                d.record(1, Reply::Indefinite, t);
            }
            let out = d.drain(t);
            assert_eq!(
                out[0].transition,
                Transition::Ejected {
                    duration: Duration::from_secs(secs),
                    count
                }
            );
            // A reply from a try sent before the ejection does not extend it.
            d.record(1, Reply::Refused, t + ms(1));
            assert!(d.drain(t + Duration::from_secs(secs) - ms(1)).is_empty());
            // Re-admitted by the next reply of any node, not only by a drain.
            d.record(0, Reply::Served, t + Duration::from_secs(secs));
            assert!(d.ejected().is_empty());
            let back = d.drain(t + Duration::from_secs(secs));
            assert_eq!(back[0].transition, Transition::Readmitted);
            t += ms(10_000);
        }
        assert_eq!(d.times_ejected(1), 4);
    }

    /// At most `max_ejection_percent` of the nodes (rounded down) are out at once; a node held
    /// in by the cap is ejected at its next failure once another is back.
    #[test]
    fn ejections_stop_at_the_cap() {
        let t0 = Instant::now();
        // 50% of 5 nodes: 2 at most.
        let d = OutlierDetector::new(&cfg(1, 50), 5, t0);
        for node in 0..5 {
            d.record(node, Reply::Refused, t0);
        }
        assert_eq!(d.ejected(), NodeSet::EMPTY.with(0).with(1));
        d.record(2, Reply::Refused, t0 + ms(500));
        assert_eq!(d.ejected().len(), 2);
        // Nodes 0 and 1 come back at 1 s; node 2 fails again and goes out.
        d.record(2, Reply::Refused, t0 + ms(1000));
        assert_eq!(d.ejected(), NodeSet::EMPTY.with(2));
        let kinds: Vec<(usize, bool)> = d
            .drain(t0 + ms(1000))
            .iter()
            .map(|e| (e.node, e.transition == Transition::Readmitted))
            .collect();
        assert_eq!(
            kinds,
            [(0, false), (1, false), (0, true), (1, true), (2, false)]
        );

        // 0% never ejects; 3 nodes at 50% allow one.
        let none = OutlierDetector::new(&cfg(1, 0), 3, t0);
        none.record(0, Reply::Refused, t0);
        assert!(none.ejected().is_empty());
        let one = OutlierDetector::new(&cfg(1, 50), 3, t0);
        one.record(0, Reply::Refused, t0);
        one.record(1, Reply::Refused, t0);
        assert_eq!(one.ejected().len(), 1);
        // Out-of-range nodes are ignored.
        one.record(7, Reply::Refused, t0);
        assert_eq!(one.times_ejected(7), 0);
    }
}
