//! Consistency checkers: per-key linearizability (a P-compositional Wing-Gong/Lowe search
//! with a time and memory budget) and named anomalies (lost writes, stale reads, values never
//! written), each violation with the operations that show it.
//!
//! ```text
//! History ──by key──> anomalies::find   (fast, exact counts)
//!            └──────> Model::op ─> wgl::search per key, in parallel  (valid|invalid|unknown)
//!                                         └──> ConsistencyReport
//! ```
//!
//! Foreign string-valued histories (Porcupine's key-value data, Jepsen EDN under kv-append)
//! go through the same search as [`KvRecord`]s with [`check_kv`]; each [`Model`] names the
//! record type it reads. [`render_counterexample_html`] draws a violation as a standalone page.
//!
//! A key whose search runs out of the time budget is `unknown`, never guessed (the memo is
//! capped by forgetting old entries, which costs time, not correctness); so is a key holding operations the model does not support (a cas under
//! [`ModelKind::Register`]). Other keys are unaffected.

mod anomalies;
mod html;
mod kv;
mod model;
mod record;
mod verdict;
mod violation;
mod wgl;

#[cfg(test)]
mod tests;

pub use html::{counterexample_file_name, counterexample_pages, render_counterexample_html};
pub use kv::{KvAppend, KvHistory, KvKind, KvOp, KvRecord, KvState};
pub use model::{CasRegister, Model, ModelError, Register, RegisterOp};
pub use record::CheckRecord;
pub use verdict::Verdict;
pub use violation::{Counterexample, OpSummary, Violation, ViolationKind};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use faultline_protocol::OpKind;
use serde::{Deserialize, Serialize};

use crate::history::{History, OpRecord, Outcome};
use wgl::{Budget, SearchOp, SearchResult};

/// Which sequential specification to check against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Read/write register, initially nil ([`Register`]).
    Register,
    /// Read/write/cas register, initially nil ([`CasRegister`]).
    #[default]
    CasRegister,
    /// Porcupine's key-value store: get/put/append (and cas) on strings, initially `""`
    /// ([`KvAppend`]).
    KvAppend,
}

impl ModelKind {
    /// Every model, in the order `faultline list` shows them.
    pub const ALL: [ModelKind; 3] = [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::KvAppend,
    ];

    /// The name used in YAML, on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::KvAppend => "kv-append",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model name that is not one of [`ModelKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model {0:?} (expected one of: register, cas-register, kv-append)")]
pub struct UnknownModel(pub String);

impl std::str::FromStr for ModelKind {
    type Err = UnknownModel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelKind::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownModel(s.to_string()))
    }
}

/// How to check a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    pub model: ModelKind,
    /// Wall-clock budget for the whole run (all keys). Keys not decided by then are `unknown`.
    pub time_budget: Duration,
    /// Cap on live memo entries across the keys searched at once (each of the searches running
    /// in parallel gets an equal share). Beyond it the search forgets its oldest entries, which
    /// costs time (and so perhaps `unknown`), never a wrong answer. A memo entry costs roughly
    /// 80 to 120 bytes, so the default of 4 million keeps the memo under about half a GiB.
    pub max_memo_entries: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            model: ModelKind::default(),
            time_budget: Duration::from_secs(60),
            max_memo_entries: 4_000_000,
        }
    }
}

/// How many keys reached each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KeyCounts {
    pub checked: usize,
    pub valid: usize,
    pub invalid: usize,
    pub unknown: usize,
}

/// The result of [`check`], embedded in `report.json` as `consistency`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsistencyReport {
    /// The model checked against.
    pub model: String,
    /// Composed over keys. A key counts as invalid when the search proved it, or when an
    /// anomaly (which implies non-linearizability) was found on it even if the search ran out
    /// of budget.
    pub linearizable: Verdict,
    /// Acknowledged writes lost (see `lost-write` violations).
    pub lost_writes: usize,
    /// Reads that returned a value older than a write completed before they began.
    pub stale_reads: usize,
    /// Reads that returned a value nobody wrote.
    pub never_written: usize,
    /// Non-linearizable keys first, then anomalies, by key. At most
    /// [`ConsistencyReport::MAX_PER_KIND`] anomalies of each kind per key are listed; the
    /// counts above are exact.
    pub violations: Vec<Violation>,
    /// Anomaly violations counted but not listed.
    pub violations_omitted: usize,
    pub keys: KeyCounts,
    /// Why keys are unknown (budget exhausted, unsupported operations), one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub elapsed_ms: u64,
}

impl ConsistencyReport {
    /// Anomalies of one kind listed per key, at most.
    pub const MAX_PER_KIND: usize = 50;

    /// The overall verdict: the linearizability verdict, made invalid by any anomaly.
    pub fn verdict(&self) -> Verdict {
        let anomalies = if self.lost_writes + self.stale_reads + self.never_written > 0 {
            Verdict::Invalid
        } else {
            Verdict::Valid
        };
        self.linearizable.compose(anomalies)
    }
}

/// Check a history against the model `opts.model` names. Under [`ModelKind::KvAppend`] the
/// history is seen as a key-value store ([`KvHistory::from_native`]).
pub fn check(history: &History, opts: &CheckOptions) -> ConsistencyReport {
    match opts.model {
        ModelKind::Register => check_with(history, &Register, opts),
        ModelKind::CasRegister => check_with(history, &CasRegister, opts),
        ModelKind::KvAppend => check_kv(&KvHistory::from_native(history), opts),
    }
}

/// Check a string-valued key-value history (imported from Porcupine or Jepsen) against
/// [`KvAppend`] (`opts.model` is ignored). Lost writes, stale reads and never-written values
/// are register notions: their counts stay 0 here, and a violation is a non-linearizable key.
pub fn check_kv(history: &KvHistory, opts: &CheckOptions) -> ConsistencyReport {
    check_records(history.ops.iter().collect(), &KvAppend, opts, |_, _, _| {
        anomalies::KeyAnomalies::default()
    })
}

/// Below this many ops in all, keys are searched on the calling thread only.
const SMALL_HISTORY: usize = 1024;

/// One key's ops as the search sees them, or why it cannot be searched.
struct Prepared<'h, R, O> {
    key: &'h str,
    recs: Vec<&'h R>,
    /// Search ops and the record each came from.
    search: Result<(Vec<SearchOp<O>>, Vec<&'h R>), ModelError>,
}

/// Check a history against any [`Model`] of faultline's records (`opts.model` is ignored).
/// Keys are checked in parallel on the available cores, largest first.
pub fn check_with<M: Model<Record = OpRecord>>(
    history: &History,
    model: &M,
    opts: &CheckOptions,
) -> ConsistencyReport {
    let recs = history
        .ops
        .iter()
        .filter(|o| o.f != OpKind::Status)
        .collect();
    check_records(recs, model, opts, anomalies::find)
}

/// The checker proper, for any record type: group by key, search keys in parallel, look for
/// anomalies with `find`, and compose the report.
fn check_records<'h, M: Model>(
    records: Vec<&'h M::Record>,
    model: &M,
    opts: &CheckOptions,
    find: impl Fn(&str, &[&M::Record], usize) -> anomalies::KeyAnomalies,
) -> ConsistencyReport {
    let started = Instant::now();
    let deadline = started
        .checked_add(opts.time_budget)
        .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 3600));

    let mut by_key: BTreeMap<&'h str, Vec<&'h M::Record>> = BTreeMap::new();
    for op in records {
        by_key.entry(op.key()).or_default().push(op);
    }

    let prepared: Vec<Prepared<'_, M::Record, M::Op>> = by_key
        .into_iter()
        .map(|(key, recs)| {
            let search = prepare(model, &recs);
            Prepared { key, recs, search }
        })
        .collect();

    // Search keys in parallel, largest first. First pass: each key gets a fair share of the
    // time left, so one hard key cannot starve the others; second pass: keys that ran out of
    // time try again with whatever time remains.
    // Small histories are checked faster than a thread starts.
    let total: usize = prepared
        .iter()
        .map(|p| p.search.as_ref().map_or(0, |(ops, _)| ops.len()))
        .sum();
    let threads = if total < SMALL_HISTORY {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let memo_cap = (opts.max_memo_entries / threads).max(1);
    let mut order: Vec<usize> = (0..prepared.len())
        .filter(|&i| prepared[i].search.is_ok())
        .collect();
    order.sort_by_key(|&i| {
        std::cmp::Reverse(prepared[i].search.as_ref().map_or(0, |(ops, _)| ops.len()))
    });
    let results: Vec<Mutex<Option<SearchResult<M::State>>>> =
        prepared.iter().map(|_| Mutex::new(None)).collect();
    let search_key = |k: usize, deadline: Instant| {
        if let Ok((ops, _)) = &prepared[k].search {
            let r = wgl::search(model, ops, Budget { deadline, memo_cap });
            if let Ok(mut slot) = results[k].lock() {
                *slot = Some(r);
            }
        }
    };
    run_pass(&order, threads, deadline, true, search_key);
    let retry: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&k| {
            results[k]
                .lock()
                .is_ok_and(|r| matches!(*r, Some(SearchResult::OutOfTime)))
        })
        .collect();
    run_pass(&retry, threads, deadline, false, search_key);

    let mut report = ConsistencyReport {
        model: model.name().to_string(),
        linearizable: Verdict::Valid,
        lost_writes: 0,
        stale_reads: 0,
        never_written: 0,
        violations: Vec::new(),
        violations_omitted: 0,
        keys: KeyCounts::default(),
        notes: Vec::new(),
        elapsed_ms: 0,
    };
    let mut anomaly_violations = Vec::new();
    for (p, result) in prepared.iter().zip(results) {
        let result = result.into_inner().ok().flatten();
        let found = find(p.key, &p.recs, ConsistencyReport::MAX_PER_KIND);
        report.lost_writes += found.lost_writes;
        report.stale_reads += found.stale_reads;
        report.never_written += found.never_written;
        report.violations_omitted += found.omitted;
        let anomalous = found.lost_writes + found.stale_reads + found.never_written > 0;
        anomaly_violations.extend(found.violations);

        let verdict = match (&p.search, result) {
            (Err(e), _) => {
                report.notes.push(format!("key {}: {e}", p.key));
                Verdict::Unknown
            }
            (Ok(_), Some(SearchResult::Linearizable)) => Verdict::Valid,
            (Ok((_, recs)), Some(SearchResult::NotLinearizable(f))) => {
                report
                    .violations
                    .push(nonlinearizable(model, p.key, &p.recs, recs, f));
                Verdict::Invalid
            }
            (Ok(_), Some(SearchResult::OutOfTime)) => {
                report.notes.push(format!(
                    "key {}: the search ran out of its time budget",
                    p.key
                ));
                Verdict::Unknown
            }
            (Ok(_), None) => {
                report
                    .notes
                    .push(format!("key {}: the search did not run", p.key));
                Verdict::Unknown
            }
        };
        let verdict = if anomalous {
            verdict.compose(Verdict::Invalid)
        } else {
            verdict
        };
        report.keys.checked += 1;
        match verdict {
            Verdict::Valid => report.keys.valid += 1,
            Verdict::Invalid => report.keys.invalid += 1,
            Verdict::Unknown => report.keys.unknown += 1,
        }
        report.linearizable = report.linearizable.compose(verdict);
    }
    report.violations.extend(anomaly_violations);
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

/// Run `search(key, deadline)` for every key on `threads` threads, pulling keys in order.
/// With `fair`, a key's deadline is its share of the time left: the time left times the
/// threads over the keys not yet started (all of it once there are no more keys than threads).
fn run_pass(
    keys: &[usize],
    threads: usize,
    deadline: Instant,
    fair: bool,
    search: impl Fn(usize, Instant) + Sync,
) {
    let next = AtomicUsize::new(0);
    let work = || loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let Some(&k) = keys.get(n) else { break };
        let now = Instant::now();
        let waiting = keys.len() - n;
        let key_deadline = if fair && waiting > threads {
            let left = deadline.saturating_duration_since(now);
            let share = left.mul_f64(threads as f64 / waiting as f64);
            now.checked_add(share).map_or(deadline, |d| d.min(deadline))
        } else {
            deadline
        };
        search(k, key_deadline);
    };
    let threads = threads.min(keys.len());
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
}

/// Translate one key's records into search ops: `fail` ops dropped, `info` ops optional,
/// ops the model finds droppable left out.
#[allow(clippy::type_complexity)]
fn prepare<'h, M: Model>(
    model: &M,
    recs: &[&'h M::Record],
) -> Result<(Vec<SearchOp<M::Op>>, Vec<&'h M::Record>), ModelError> {
    let mut ops: Vec<M::Op> = Vec::with_capacity(recs.len());
    let mut times: Vec<(u64, Option<u64>)> = Vec::with_capacity(recs.len());
    let mut from = Vec::with_capacity(recs.len());
    for &r in recs {
        if r.outcome() == Outcome::Fail {
            continue;
        }
        let Some(op) = model.op(r)? else { continue };
        // An ok op without a recorded completion is treated like an indeterminate one.
        let complete = match (r.outcome(), r.complete_ns()) {
            (Outcome::Ok, Some(c)) => Some(c.max(r.invoke_ns())),
            _ => None,
        };
        ops.push(op);
        times.push((r.invoke_ns(), complete));
        from.push(r);
    }
    model.simplify(&mut ops);
    let drop = if times.iter().any(|t| t.1.is_none()) {
        let flags: Vec<(M::Op, bool)> = ops
            .iter()
            .zip(&times)
            .map(|(o, t)| (o.clone(), t.1.is_some()))
            .collect();
        model.droppable(&flags)
    } else {
        Vec::new()
    };
    let mut kept_ops = Vec::with_capacity(ops.len());
    let mut kept_from = Vec::with_capacity(ops.len());
    for (i, ((op, (invoke, complete)), r)) in ops.into_iter().zip(times).zip(from).enumerate() {
        if complete.is_none() && drop.get(i).copied().unwrap_or(false) {
            continue;
        }
        kept_ops.push(SearchOp {
            op,
            invoke,
            complete,
        });
        kept_from.push(r);
    }
    Ok((kept_ops, kept_from))
}

/// The violation for a key the search proved non-linearizable.
fn nonlinearizable<M: Model>(
    model: &M,
    key: &str,
    all: &[&M::Record],
    recs: &[&M::Record],
    f: wgl::Failure<M::State>,
) -> Violation {
    let offender = recs[f.offender];
    let prefix_len = f.prefix.len();
    let prefix: Vec<OpSummary> = f
        .prefix
        .iter()
        .skip(prefix_len.saturating_sub(Counterexample::PREFIX_SHOWN))
        .map(|&i| recs[i].summary())
        .collect();
    let end = offender.complete_ns().unwrap_or(u64::MAX);
    let mut window: Vec<&M::Record> = all
        .iter()
        .copied()
        .filter(|o| o.id() != offender.id() && o.outcome() != Outcome::Fail)
        .filter(|o| {
            o.invoke_ns() <= end && o.complete_ns().unwrap_or(u64::MAX) >= offender.invoke_ns()
        })
        .collect();
    window.sort_by_key(|o| (o.invoke_ns().abs_diff(offender.invoke_ns()), o.id()));
    window.truncate(Counterexample::WINDOW);
    window.push(offender);
    window.sort_by_key(|o| (o.invoke_ns(), o.id()));
    let state = model.describe_state(&f.state);
    let ops: Vec<OpSummary> = window.iter().map(|&o| o.summary()).collect();
    let last = match f.prefix.last() {
        Some(&i) => format!(", the last being {}", recs[i].describe()),
        None => String::new(),
    };
    Violation {
        kind: ViolationKind::Nonlinearizable,
        key: key.to_string(),
        message: format!(
            "Key {key} is not linearizable: after the longest linearizable prefix ({prefix_len} \
             ops{last}) the {} holds {state}, and {} cannot take effect before it completed {}.",
            model.name(),
            offender.describe(),
            offender.completed_when(),
        ),
        ops: ops.clone(),
        write: None,
        read: None,
        value: None,
        counterexample: Some(Counterexample {
            prefix_len,
            prefix,
            state,
            offender: offender.summary(),
            concurrent: ops,
        }),
    }
}
