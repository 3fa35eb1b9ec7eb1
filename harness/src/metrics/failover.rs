//! Failover: for each fault, how long until a new leader was elected (server side), until a
//! write succeeded again (client side), and the longest stretch without a successful write
//! around it.

use faultline_protocol::Role;
use serde::Serialize;

use super::latency::{self, LatencySummary};
use super::{ms, ok_write};
use crate::history::{Event, EventKind, OpRecord};

/// One row per fault injected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverEvent {
    /// The fault's id in `events.jsonl`.
    pub id: u64,
    /// Fault verb: kill, pause, partition, ...
    pub fault: String,
    /// The nodes it hit, joined by ",".
    pub target: String,
    /// When it started, ms since run start.
    pub at_ms: f64,
    /// When it healed, ms since run start (`null` if it never did).
    pub end_ms: Option<f64>,
    /// Fault start -> the first `role` event at or after it in which a node the fault did not
    /// hit reports itself leader in a term above every leader term seen before the fault.
    /// `null` when there was none before the next fault started (a fault on a follower
    /// usually causes no election).
    pub election_ms: Option<f64>,
    /// Fault start -> the earliest completion of a successful write or cas invoked at or
    /// after the fault start (within the load period); `null` if none.
    pub recovery_ms: Option<f64>,
    /// The longest interval between consecutive successful write completions (the load
    /// period's ends count as completions) that overlaps the span from the fault start to
    /// the recovery (or to the load end, without recovery).
    pub gap_ms: Option<f64>,
    /// `recovery_ms - election_ms`: from a new leader existing to clients succeeding through
    /// it (finding it, retrying, the first commit). Negative when a write succeeded before the
    /// observer's dating of the election (a fault that caused no election, say).
    pub client_lag_ms: Option<f64>,
    /// Latency of the `ok` operations invoked while the fault was active (from when it took
    /// effect to when it healed, or to the load end), every kind together, in microseconds;
    /// `null` when none succeeded.
    pub latency_us: Option<LatencySummary>,
}

/// Nearest-rank percentiles in ms; `null` without samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Percentiles {
    pub fn of(mut samples: Vec<f64>) -> Self {
        samples.retain(|v| v.is_finite());
        samples.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let n = samples.len();
            let i = ((q * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
            samples.get(i).copied()
        };
        Percentiles {
            p50: rank(0.5),
            p99: rank(0.99),
            max: samples.last().copied(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failover {
    pub events: Vec<FailoverEvent>,
    /// Over the events with a recovery.
    pub recovery_ms: Percentiles,
    /// Over the events with an election.
    pub election_ms: Percentiles,
    /// Over the events with both.
    pub client_lag_ms: Percentiles,
}

pub(crate) fn compute(ops: &[&OpRecord], events: &[Event], start: u64, end: u64) -> Failover {
    // Successful write completions, in order, with the load period's ends as sentinels.
    let mut done: Vec<u64> = ops
        .iter()
        .filter(|o| ok_write(o))
        .filter_map(|o| o.complete_ns)
        .filter(|&c| c >= start && c <= end)
        .collect();
    done.push(start);
    done.push(end);
    done.sort_unstable();

    let starts: Vec<(usize, &Event)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, EventKind::FaultStart { .. }))
        .collect();
    let mut rows = Vec::with_capacity(starts.len());
    for (n, &(i, e)) in starts.iter().enumerate() {
        let EventKind::FaultStart {
            id, fault, nodes, ..
        } = &e.kind
        else {
            continue;
        };
        // Failover counts from the moment the fault took effect, when that was journaled.
        let t = events[i + 1..]
            .iter()
            .find_map(|a| match a.kind {
                EventKind::FaultApplied { id: applied, .. } if applied == *id => Some(a.t),
                _ => None,
            })
            .filter(|&a| a < next_start(&starts, n, e.t))
            .unwrap_or(e.t);
        let healed = events[i + 1..].iter().find_map(|h| match &h.kind {
            EventKind::FaultEnd { id: end_id, .. } if end_id == id && h.t >= t => Some(h.t),
            _ => None,
        });
        let next_fault = next_start(&starts, n, e.t);

        let recovered = ops
            .iter()
            .filter(|o| ok_write(o) && o.invoke_ns >= t)
            .filter_map(|o| o.complete_ns)
            .min();
        let election_ms = election(events, t, next_fault, nodes).map(|u| ms(u - t));
        let recovery_ms = recovered.map(|c| ms(c.saturating_sub(t)));
        let active_until = healed.unwrap_or(end);
        let latency_us = latency::all(
            ops.iter()
                .copied()
                .filter(|o| o.invoke_ns >= t && o.invoke_ns < active_until),
        );
        rows.push(FailoverEvent {
            id: *id,
            fault: fault.clone(),
            target: nodes.join(","),
            at_ms: ms(t),
            end_ms: healed.map(ms),
            election_ms,
            recovery_ms,
            gap_ms: gap(&done, t, recovered.unwrap_or(end)).map(ms),
            client_lag_ms: election_ms.zip(recovery_ms).map(|(e, r)| r - e),
            latency_us,
        });
    }
    let of =
        |f: fn(&FailoverEvent) -> Option<f64>| Percentiles::of(rows.iter().filter_map(f).collect());
    Failover {
        recovery_ms: of(|r| r.recovery_ms),
        election_ms: of(|r| r.election_ms),
        client_lag_ms: of(|r| r.client_lag_ms),
        events: rows,
    }
}

/// When the fault after the `n`-th one started (`u64::MAX` for the last).
fn next_start(starts: &[(usize, &Event)], n: usize, t: u64) -> u64 {
    starts[n + 1..]
        .iter()
        .map(|(_, e)| e.t)
        .find(|&u| u > t)
        .unwrap_or(u64::MAX)
}

/// When a node outside `hit` became leader in a term above every leader term seen before
/// `t`, at or after `t` and before `until`.
fn election(events: &[Event], t: u64, until: u64, hit: &[String]) -> Option<u64> {
    fn leader_term(e: &Event) -> Option<(u64, &str)> {
        match &e.kind {
            EventKind::Role {
                role: Role::Leader,
                term,
                node,
                ..
            } => Some((*term, node.as_str())),
            _ => None,
        }
    }
    let before = events
        .iter()
        .filter(|e| e.t < t)
        .filter_map(leader_term)
        .map(|(term, _)| term)
        .max();
    events
        .iter()
        .filter(|e| e.t >= t && e.t < until)
        .filter_map(|e| leader_term(e).map(|lt| (e.t, lt)))
        .filter(|&(_, (term, node))| {
            before.is_none_or(|b| term > b) && !hit.iter().any(|h| h == node)
        })
        .map(|(at, _)| at)
        .min()
}

/// The longest interval between consecutive completions in `done` (sorted) that overlaps
/// `(from, to]`: it ends after `from` and starts before `to`.
fn gap(done: &[u64], from: u64, to: u64) -> Option<u64> {
    done.windows(2)
        .filter(|w| w[1] > from && w[0] < to)
        .map(|w| w[1] - w[0])
        .max()
}
