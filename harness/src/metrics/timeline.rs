//! A per-second timeline of outcomes and latency, for charts.

use serde::Serialize;

use super::latency::Recorder;
use crate::history::{OpRecord, Outcome};

/// Ops invoked during one second of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimelineBucket {
    /// Start of the second, seconds since run start.
    pub t_s: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Latency quantiles of the bucket's `ok` ops, microseconds.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

/// At most this many buckets (a bit over eleven days), whatever the load period says.
const MAX_BUCKETS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

pub(crate) fn compute(ops: &[&OpRecord], start: u64, end: u64) -> Vec<TimelineBucket> {
    let first = start / S;
    // The second holding the load's last instant (an end exactly on a second adds no bucket).
    let last = (end.saturating_sub(1).max(start) / S).min(first + MAX_BUCKETS - 1);
    let n = (last - first + 1) as usize;
    let mut buckets: Vec<(TimelineBucket, Recorder)> = (0..n)
        .map(|i| {
            let b = TimelineBucket {
                t_s: first + i as u64,
                ok: 0,
                fail: 0,
                info: 0,
                p50_us: None,
                p99_us: None,
            };
            (b, Recorder::new())
        })
        .collect();
    for o in ops {
        let Some((b, lat)) = usize::try_from((o.invoke_ns / S).saturating_sub(first))
            .ok()
            .and_then(|i| buckets.get_mut(i))
        else {
            continue;
        };
        match o.outcome {
            Outcome::Ok => {
                b.ok += 1;
                if let Some(ns) = o.latency_ns() {
                    lat.record(ns);
                }
            }
            Outcome::Fail => b.fail += 1,
            Outcome::Info => b.info += 1,
        }
    }
    buckets
        .into_iter()
        .map(|(mut b, lat)| {
            b.p50_us = lat.quantile_us(0.5);
            b.p99_us = lat.quantile_us(0.99);
            b
        })
        .collect()
}
