//! Availability: the share of operations that succeeded, overall and per phase, and the share
//! of time windows in which a write succeeded.

use serde::Serialize;

use super::ok_write;
use super::phases::{Faults, Phase};
use crate::history::{OpRecord, Outcome};

/// How many operations were invoked in the load period, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl OpCounts {
    pub(crate) fn count<'a>(ops: impl IntoIterator<Item = &'a &'a OpRecord>) -> Self {
        let mut c = OpCounts::default();
        for o in ops {
            c.invoked += 1;
            match o.outcome {
                Outcome::Ok => c.ok += 1,
                Outcome::Fail => c.fail += 1,
                Outcome::Info => c.info += 1,
            }
        }
        c
    }

    /// ok / (ok + fail + info); `None` without ops.
    pub fn availability(&self) -> Option<f64> {
        let all = self.ok + self.fail + self.info;
        (all > 0).then(|| self.ok as f64 / all as f64)
    }
}

/// Shares between 0 and 1; `None` when the phase had no ops (or the load period no window).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Availability {
    /// ok / (ok + fail + info) over the load period.
    pub overall: Option<f64>,
    /// Over ops invoked with no fault active and none healed within `after_heal_ms`.
    pub steady: Option<f64>,
    /// Over ops invoked while a fault was active.
    pub faulted: Option<f64>,
    /// Over ops invoked within `after_heal_ms` after a fault healed (and no fault active).
    pub after_heal: Option<f64>,
    /// Share of the load period's `window_ms` windows in which at least one write or cas
    /// completed successfully.
    pub windows: Option<f64>,
}

pub(crate) fn compute(
    ops: &[&OpRecord],
    faults: &Faults,
    start: u64,
    end: u64,
    window_ns: u64,
) -> Availability {
    let of = |p: Phase| {
        OpCounts::count(ops.iter().filter(|o| faults.phase(o.invoke_ns) == p)).availability()
    };
    let n_windows = (end - start).div_ceil(window_ns);
    let windows = if n_windows == 0 {
        None
    } else {
        let mut hit = vec![
            false;
            usize::try_from(n_windows)
                .unwrap_or(usize::MAX)
                .min(1 << 26)
        ];
        for o in ops.iter().filter(|o| ok_write(o)) {
            let Some(c) = o.complete_ns else { continue };
            if c < start || c >= end {
                continue;
            }
            if let Some(h) = usize::try_from((c - start) / window_ns)
                .ok()
                .and_then(|i| hit.get_mut(i))
            {
                *h = true;
            }
        }
        Some(hit.iter().filter(|&&h| h).count() as f64 / hit.len() as f64)
    };
    Availability {
        overall: OpCounts::count(ops).availability(),
        steady: of(Phase::Steady),
        faulted: of(Phase::Faulted),
        after_heal: of(Phase::AfterHeal),
        windows,
    }
}
