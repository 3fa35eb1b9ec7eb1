//! Measures of a run (ARCHITECTURE.md, section 2, step 11): availability overall, in steady
//! state, under faults and after healing; failover times per fault (election, recovery, gap); latency HDR
//! histograms per op kind and per phase; throughput; and a per-second timeline.
//!
//! Every time here is on the history's clock (ns since run start); `*_ms` and `t_s` fields
//! in the output count from run start too. Only operations invoked within the load period
//! (`[load_start_ns, load_end_ns]`) count; final reads and `status` ops do not.

mod availability;
mod failover;
mod latency;
mod phases;
mod timeline;

#[cfg(test)]
mod tests;

pub use availability::{Availability, OpCounts};
pub use failover::{Failover, FailoverEvent, Percentiles};
pub use latency::{LatencyByKind, LatencyByPhase, LatencySummary};
pub use phases::Phase;
pub use timeline::TimelineBucket;

use faultline_protocol::OpKind;
use serde::Serialize;

use crate::history::{Event, EventKind, History, OpRecord, RunPhase};

/// How to compute the measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Width of the windows of `availability.windows` (default 100 ms).
    pub window_ms: u64,
    /// How long after a fault heals its aftermath lasts (default 2000 ms).
    pub after_heal_ms: u64,
    /// Start of the load period, ns since run start.
    pub load_start_ns: u64,
    /// End of the load period, ns since run start. `u64::MAX` means "the last op's time".
    pub load_end_ns: u64,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            window_ms: 100,
            after_heal_ms: 2_000,
            load_start_ns: 0,
            load_end_ns: u64::MAX,
        }
    }
}

impl MetricsOptions {
    /// Default windows, with the load period read from the journal ([`load_window`]).
    pub fn from_events(events: &[Event], history: &History) -> Self {
        let (start, end) = load_window(events, history);
        MetricsOptions {
            load_start_ns: start,
            load_end_ns: end,
            ..MetricsOptions::default()
        }
    }
}

/// All the measures; serialized into `report.json` as they are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub ops: OpCounts,
    pub availability: Availability,
    pub failover: Failover,
    /// Latency of `ok` ops in microseconds, per op kind (`read`, `write`, `cas`; a kind
    /// without `ok` ops is absent).
    pub latency_us: LatencyByKind,
    /// Latency of every `ok` op, all kinds together, in microseconds (`null` without any).
    pub latency_all_us: Option<LatencySummary>,
    /// The same, per phase (by invocation time).
    pub latency_by_phase_us: LatencyByPhase,
    pub throughput: Throughput,
    /// One bucket per second of the load period, by invocation time.
    pub timeline: Vec<TimelineBucket>,
}

/// Operations per second over the load period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    pub ok_per_s: f64,
    pub invoked_per_s: f64,
}

/// Compute every measure of a run from its history and event journal.
pub fn compute(history: &History, events: &[Event], opts: &MetricsOptions) -> Metrics {
    let start = opts.load_start_ns;
    let end = if opts.load_end_ns == u64::MAX {
        last_time(&history.ops).max(start)
    } else {
        opts.load_end_ns.max(start)
    };
    let ops: Vec<&OpRecord> = history
        .ops
        .iter()
        .filter(|o| o.f != OpKind::Status && o.invoke_ns >= start && o.invoke_ns <= end)
        .collect();
    let faults = phases::Faults::from_events(events, end, opts.after_heal_ms.saturating_mul(MS));

    let counts = OpCounts::count(&ops);
    let secs = (end - start) as f64 / 1e9;
    let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    Metrics {
        availability: availability::compute(&ops, &faults, start, end, opts.window_ms.max(1) * MS),
        failover: failover::compute(&ops, events, start, end),
        latency_us: latency::by_kind(ops.iter().copied()),
        latency_all_us: latency::all(ops.iter().copied()),
        latency_by_phase_us: LatencyByPhase::of(&ops, &faults),
        throughput: Throughput {
            ok_per_s: per_s(counts.ok),
            invoked_per_s: per_s(counts.invoked),
        },
        timeline: timeline::compute(&ops, start, end),
        ops: counts,
    }
}

const MS: u64 = 1_000_000;

/// The latest invocation or completion in a history (0 when empty).
/// The load period as the journal tells it: from the `load` phase (or `run_start`, or 0) to
/// the next phase after it (`heal`, `recover`, `stop`), or `run_end`, or the last op's time.
/// The report uses it too when `run.json` is missing (a killed harness).
pub fn load_window(events: &[Event], history: &History) -> (u64, u64) {
    let load = events.iter().find(|e| e.kind.is_phase(RunPhase::Load));
    let start = load
        .or_else(|| {
            events
                .iter()
                .find(|e| matches!(e.kind, EventKind::RunStart { .. }))
        })
        .map_or(0, |e| e.t);
    let end = events
        .iter()
        .filter(|e| e.t >= start)
        .find(|e| match &e.kind {
            EventKind::Phase { .. } => {
                !e.kind.is_phase(RunPhase::Load) && !e.kind.is_phase(RunPhase::Launch)
            }
            EventKind::RunEnd { .. } => true,
            _ => false,
        })
        .map_or_else(|| last_time(&history.ops), |e| e.t);
    (start, end.max(start))
}

fn last_time(ops: &[OpRecord]) -> u64 {
    ops.iter()
        .map(|o| o.complete_ns.unwrap_or(o.invoke_ns).max(o.invoke_ns))
        .max()
        .unwrap_or(0)
}

/// Nanoseconds to milliseconds, rounded to the microsecond.
fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

/// Whether an op is a successful write (a write or a cas that took effect).
fn ok_write(o: &OpRecord) -> bool {
    o.outcome == crate::history::Outcome::Ok && matches!(o.f, OpKind::Write | OpKind::Cas)
}
