//! Named anomalies on one key, found directly from real-time order without a search: lost
//! writes, stale reads and reads of values never written.
//!
//! Each is sound on its own: it implies the key is not linearizable, whatever the model
//! (register or cas register), and it stays sound when write values repeat (value uniqueness
//! only makes it name the writer). "Completed before" below is strict real-time precedence;
//! `info` ops count as never completing, `fail` ops as never happening.
//!
//! - **stale read**: an ok read R returned a value v (or nil) such that some ok write or cas
//!   W2 completed before R was invoked, and every op that wrote v completed before W2 was
//!   invoked (for nil: there is no such op). Then W2 must be linearized between v's writer and
//!   R, so R cannot see v. Counted per read.
//! - **lost write**: an ok write or cas W such that some ok read R invoked after W completed
//!   shows W gone as above (W playing W2), and no ok read invoked at or after R's invocation
//!   returns W's value again. Counted per write; the read that shows it is also a stale read.
//!   And W is not called lost when, after some read showing W gone, a read returns the value of
//!   a write that may follow W (it did not complete before W began) and began before that
//!   read did, or an ok cas from W's value began after that read: the state had moved past W
//!   (or still held it) without reverting, and the read only lagged. (A stale replica that lags, even one
//!   cut off for a while, shows up as stale reads, not lost writes.)
//! - **never written**: an ok read returned a value that no ok or info write or cas on the key
//!   wrote (perhaps only a failed one did). Counted per read.

use std::collections::HashMap;

use faultline_protocol::{OpKind, Value};

use super::violation::{describe_op, secs, OpSummary, Violation, ViolationKind};
use crate::history::{OpRecord, Outcome};

/// Anomalies found on one key: exact counts, and up to `cap` violations of each kind.
#[derive(Debug, Default)]
pub(crate) struct KeyAnomalies {
    pub lost_writes: usize,
    pub stale_reads: usize,
    pub never_written: usize,
    pub violations: Vec<Violation>,
    pub omitted: usize,
}

impl KeyAnomalies {
    fn push(&mut self, cap: usize, count: usize, v: Violation) {
        if count <= cap {
            self.violations.push(v);
        } else {
            self.omitted += 1;
        }
    }
}

/// Completion time, with `info` (and unrecorded completions) as +infinity.
fn completion(r: &OpRecord) -> Option<u64> {
    match r.outcome {
        Outcome::Ok => r.complete_ns.map(|c| c.max(r.invoke_ns)),
        _ => None,
    }
}

fn writes(r: &OpRecord) -> bool {
    matches!(r.f, OpKind::Write | OpKind::Cas)
}

/// Who wrote a value on this key.
#[derive(Default)]
struct Writers<'a> {
    /// Ok and info writers.
    ops: Vec<&'a OpRecord>,
    /// Latest completion among them; `None` when one of them never completed.
    latest: Option<u64>,
    /// Failed writers (for the never-written message only).
    failed: Vec<&'a OpRecord>,
}

/// What a read saw, for precedence: the latest completion of its value's writers, `-1` for
/// nil (the initial value, written "at -infinity"), `i128::MAX` when nothing can be said
/// (an info writer, or a value never written).
fn seen_at(r: &OpRecord, writers: &HashMap<Value, Writers<'_>>) -> i128 {
    match r.value {
        None => -1,
        Some(v) => match writers.get(&v) {
            Some(w) if !w.ops.is_empty() => w.latest.map_or(i128::MAX, i128::from),
            _ => i128::MAX,
        },
    }
}

/// Find the anomalies among one key's operations (in any order).
pub(crate) fn find(key: &str, ops: &[&OpRecord], cap: usize) -> KeyAnomalies {
    let mut out = KeyAnomalies::default();

    let mut writers: HashMap<Value, Writers<'_>> = HashMap::new();
    for &r in ops.iter().filter(|r| writes(r)) {
        let Some(v) = r.value else { continue };
        let w = writers.entry(v).or_insert_with(|| Writers {
            latest: Some(0),
            ..Writers::default()
        });
        if r.outcome == Outcome::Fail {
            w.failed.push(r);
            continue;
        }
        w.ops.push(r);
        w.latest = match (w.latest, completion(r)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }

    // Ok reads in invocation order, with what they saw.
    let mut reads: Vec<(&OpRecord, i128)> = ops
        .iter()
        .filter(|r| r.f == OpKind::Read && r.outcome == Outcome::Ok)
        .map(|&r| (r, seen_at(r, &writers)))
        .collect();
    reads.sort_by_key(|(r, _)| (r.invoke_ns, r.id));

    // Ok writes (that completed) in invocation order, with the suffix minimum of completion.
    let mut ok_writes: Vec<(&OpRecord, u64)> = ops
        .iter()
        .filter(|r| writes(r) && r.value.is_some())
        .filter_map(|&r| completion(r).map(|c| (r, c)))
        .collect();
    ok_writes.sort_by_key(|(r, _)| (r.invoke_ns, r.id));
    let mut suffix_min: Vec<(u64, usize)> = vec![(u64::MAX, usize::MAX); ok_writes.len() + 1];
    for i in (0..ok_writes.len()).rev() {
        suffix_min[i] = suffix_min[i + 1].min((ok_writes[i].1, i));
    }

    let writer_ops = |r: &OpRecord| -> Vec<OpSummary> {
        r.value
            .and_then(|v| writers.get(&v))
            .map(|w| w.ops.iter().take(2).map(|&o| o.into()).collect())
            .unwrap_or_default()
    };
    let saw = |r: &OpRecord| -> String {
        match r.value {
            None => "nil".to_string(),
            Some(v) => {
                let ids: Vec<String> = writers
                    .get(&v)
                    .map(|w| w.ops.iter().take(3).map(|o| o.id.to_string()).collect())
                    .unwrap_or_default();
                format!("{v} (written by op {})", ids.join(", "))
            }
        }
    };

    // Never written and stale reads.
    for &(r, at) in &reads {
        if let Some(v) = r.value {
            let w = writers.get(&v);
            if w.is_none_or(|w| w.ops.is_empty()) {
                out.never_written += 1;
                let failed: Vec<&OpRecord> = w.map(|w| w.failed.clone()).unwrap_or_default();
                let how = match failed.first() {
                    Some(f) => format!(", only {} did", describe_op(f)),
                    None => String::new(),
                };
                let mut shown: Vec<OpSummary> = vec![r.into()];
                shown.extend(failed.iter().take(2).map(|&f| OpSummary::from(f)));
                out.push(
                    cap,
                    out.never_written,
                    Violation {
                        kind: ViolationKind::NeverWritten,
                        key: key.to_string(),
                        message: format!(
                            "On key {key}, {} at {}, but no ok or indeterminate write or cas \
                             ever wrote {v}{how}.",
                            describe_op(r),
                            secs(r.invoke_ns)
                        ),
                        ops: shown,
                        write: None,
                        read: Some(r.id),
                        value: Some(v),
                        counterexample: None,
                    },
                );
                continue;
            }
        }
        if at == i128::MAX {
            continue;
        }
        // First ok write invoked strictly after every writer of the value completed.
        let from = ok_writes.partition_point(|(w, _)| i128::from(w.invoke_ns) <= at);
        let (min_complete, idx) = suffix_min[from];
        if idx == usize::MAX || min_complete >= r.invoke_ns {
            continue;
        }
        let (w2, _) = ok_writes[idx];
        out.stale_reads += 1;
        let mut shown: Vec<OpSummary> = vec![r.into(), w2.into()];
        shown.extend(writer_ops(r));
        out.push(
            cap,
            out.stale_reads,
            Violation {
                kind: ViolationKind::StaleRead,
                key: key.to_string(),
                message: format!(
                    "On key {key}, read {} (client {}) began at {} and returned {}, older than {} \
                     which completed at {}.",
                    r.id,
                    r.client,
                    secs(r.invoke_ns),
                    saw(r),
                    describe_op(w2),
                    secs(min_complete)
                ),
                ops: shown,
                write: Some(w2.id),
                read: Some(r.id),
                value: r.value,
                counterexample: None,
            },
        );
    }

    // Lost writes: suffix minimum (over invocation order) of what reads saw.
    let mut read_min: Vec<(i128, usize)> = vec![(i128::MAX, usize::MAX); reads.len() + 1];
    for i in (0..reads.len()).rev() {
        read_min[i] = read_min[i + 1].min((reads[i].1, i));
    }
    let mut last_seen: HashMap<Value, u64> = HashMap::new();
    for &(r, _) in &reads {
        if let Some(v) = r.value {
            let e = last_seen.entry(v).or_insert(r.invoke_ns);
            *e = (*e).max(r.invoke_ns);
        }
    }
    // The latest start of an ok cas from each value: proof that the value was current then.
    let mut cas_from: HashMap<Value, u64> = HashMap::new();
    for &r in ops
        .iter()
        .filter(|r| r.f == OpKind::Cas && r.outcome == Outcome::Ok)
    {
        if let Some(from) = r.from {
            let e = cas_from.entry(from).or_insert(r.invoke_ns);
            *e = (*e).max(r.invoke_ns);
        }
    }
    let mut lost: Vec<(&OpRecord, u64)> = ok_writes.clone();
    lost.sort_by_key(|(w, c)| (*c, w.id));
    for (w, complete) in lost {
        let Some(v) = w.value else { continue };
        let after = last_seen.get(&v).map_or(complete, |&s| s.max(complete));
        let from = reads.partition_point(|(r, _)| r.invoke_ns <= after);
        let (at, idx) = read_min[from];
        if idx == usize::MAX || at >= i128::from(w.invoke_ns) {
            continue;
        }
        // A stale replica, not a loss, when after some read showing W gone a read returns a
        // write that may follow W (it did not complete before W began) and that began before
        // that read did: the state had moved past W without reverting; that read only lagged.
        // One pass from the end, keeping the earliest start of such writes seen later.
        // Likewise when an ok cas from W's value began after such a read: W's value was
        // still the state then.
        let shows_gone = |s: i128| s < i128::from(w.invoke_ns);
        let cas_from_w = cas_from.get(&v).copied().unwrap_or(0);
        let mut follower_started = u64::MAX;
        let mut kept = false;
        for &(ri, si) in reads[from..].iter().rev() {
            if shows_gone(si) && (follower_started < ri.invoke_ns || cas_from_w > ri.invoke_ns) {
                kept = true;
                break;
            }
            if let Some(wr) = ri.value.and_then(|v| writers.get(&v)) {
                for &o in &wr.ops {
                    if completion(o).is_none_or(|c| c > w.invoke_ns) {
                        follower_started = follower_started.min(o.invoke_ns);
                    }
                }
            }
        }
        if kept {
            continue;
        }
        let (r, _) = reads[idx];
        out.lost_writes += 1;
        let mut shown: Vec<OpSummary> = vec![w.into(), r.into()];
        shown.extend(writer_ops(r));
        out.push(
            cap,
            out.lost_writes,
            Violation {
                kind: ViolationKind::LostWrite,
                key: key.to_string(),
                message: format!(
                    "On key {key}, {} was acknowledged at {}, but read {} (client {}) began at {} \
                     and returned {}{}, and no later read saw {v} again.",
                    describe_op(w),
                    secs(complete),
                    r.id,
                    r.client,
                    secs(r.invoke_ns),
                    saw(r),
                    if r.value.is_some() {
                        ", which completed before the write began"
                    } else {
                        ""
                    }
                ),
                ops: shown,
                write: Some(w.id),
                read: Some(r.id),
                value: Some(v),
                counterexample: None,
            },
        );
    }
    out
}
