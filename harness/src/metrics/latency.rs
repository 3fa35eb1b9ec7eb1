//! Latency of successful operations: HDR histograms (3 significant digits) per op kind, overall
//! and per phase, summarized in microseconds.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::phases::{Faults, Phase};
use crate::history::{OpRecord, Outcome};

/// Quantiles in microseconds (to 0.1 µs; within HDR precision, 0.1%); `max` is exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Per op kind (`read`, `write`, `cas`); a kind without `ok` ops is absent.
pub type LatencyByKind = BTreeMap<String, LatencySummary>;

/// Per phase of the op's invocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencyByPhase {
    pub steady: LatencyByKind,
    pub faulted: LatencyByKind,
    pub after_heal: LatencyByKind,
}

/// An HDR histogram of latencies in ns, plus the exact maximum.
pub(crate) struct Recorder {
    hist: Option<Histogram<u64>>,
    max: u64,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            hist: Histogram::new(3).ok(),
            max: 0,
        }
    }

    pub fn record(&mut self, ns: u64) {
        if let Some(h) = &mut self.hist {
            // `record` grows the histogram as needed; saturate only if it cannot.
            if h.record(ns).is_err() {
                h.saturating_record(ns);
            }
        }
        self.max = self.max.max(ns);
    }

    /// `None` when nothing was recorded.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let h = self.hist.as_ref().filter(|h| !h.is_empty())?;
        Some(us(h.value_at_quantile(q)))
    }

    /// `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        let count = self.hist.as_ref().map_or(0, |h| h.len());
        let max = us(self.max);
        // HDR buckets round up; a quantile never exceeds the exact maximum.
        let q = |q| self.quantile_us(q).unwrap_or(0.0).min(max);
        (count > 0).then(|| LatencySummary {
            count,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max,
        })
    }
}

/// Nanoseconds to microseconds, to 0.1 µs.
fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

/// Summaries of the `ok` ops among `ops`, per op kind.
pub(crate) fn by_kind<'a>(ops: impl IntoIterator<Item = &'a OpRecord>) -> LatencyByKind {
    let mut recorders: BTreeMap<&'static str, Recorder> = BTreeMap::new();
    for o in ops.into_iter().filter(|o| o.outcome == Outcome::Ok) {
        let Some(ns) = o.latency_ns() else { continue };
        recorders
            .entry(o.f.as_str())
            .or_insert_with(Recorder::new)
            .record(ns);
    }
    recorders
        .into_iter()
        .filter_map(|(k, r)| r.summary().map(|s| (k.to_string(), s)))
        .collect()
}

/// One summary of the `ok` ops among `ops`, every kind together; `None` without any.
pub(crate) fn all<'a>(ops: impl IntoIterator<Item = &'a OpRecord>) -> Option<LatencySummary> {
    let mut r = Recorder::new();
    for o in ops.into_iter().filter(|o| o.outcome == Outcome::Ok) {
        if let Some(ns) = o.latency_ns() {
            r.record(ns);
        }
    }
    r.summary()
}

impl LatencyByPhase {
    pub(crate) fn of(ops: &[&OpRecord], faults: &Faults) -> Self {
        let of = |p: Phase| {
            by_kind(
                ops.iter()
                    .copied()
                    .filter(|o| faults.phase(o.invoke_ns) == p),
            )
        };
        LatencyByPhase {
            steady: of(Phase::Steady),
            faulted: of(Phase::Faulted),
            after_heal: of(Phase::AfterHeal),
        }
    }
}
