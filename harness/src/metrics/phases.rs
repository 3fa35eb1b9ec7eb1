//! Which phase of a run an instant belongs to: steady state, under a fault, or just after one
//! healed.

use serde::Serialize;

use crate::history::{Event, EventKind};

/// The phase of an instant (an op's invocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// No fault active, and none healed within `after_heal_ms`.
    Steady,
    /// Some fault active (from `fault_start` to its `fault_end`, or to the load end).
    Faulted,
    /// No fault active, but one healed within the last `after_heal_ms`.
    AfterHeal,
}

/// The faults of a run as intervals.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// `[start, end)` of each fault, in start order; a fault never healed ends at load end.
    pub active: Vec<(u64, u64)>,
    /// `[end, end + after_heal)` of each healed fault.
    pub aftermath: Vec<(u64, u64)>,
}

impl Faults {
    pub fn from_events(events: &[Event], load_end: u64, after_heal_ns: u64) -> Self {
        let mut f = Faults::default();
        for (i, e) in events.iter().enumerate() {
            let EventKind::FaultStart { id, .. } = &e.kind else {
                continue;
            };
            let healed = events[i + 1..].iter().find_map(|h| match &h.kind {
                EventKind::FaultEnd { id: end_id, .. } if end_id == id && h.t >= e.t => Some(h.t),
                _ => None,
            });
            match healed {
                Some(t) => {
                    f.active.push((e.t, t));
                    f.aftermath.push((t, t.saturating_add(after_heal_ns)));
                }
                None => f.active.push((e.t, load_end.max(e.t))),
            }
        }
        f.active.sort_unstable();
        f
    }

    pub fn phase(&self, t: u64) -> Phase {
        let within = |v: &[(u64, u64)]| v.iter().any(|&(a, b)| a <= t && t < b);
        if within(&self.active) {
            Phase::Faulted
        } else if within(&self.aftermath) {
            Phase::AfterHeal
        } else {
            Phase::Steady
        }
    }
}
