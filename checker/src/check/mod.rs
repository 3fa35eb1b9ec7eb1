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
//! A key whose search runs out of its time or memory budget is `unknown`, never guessed; so
//! is a key holding operations the model does not support (a cas under
//! [`ModelKind::Register`]). Other keys are unaffected.

mod anomalies;
mod html;
mod kv;
mod leaders;
mod model;
mod record;
mod verdict;
mod violation;
mod wgl;

#[cfg(test)]
mod tests;

pub use html::esc as html_escape;
pub use html::{counterexample_file_name, counterexample_pages, render_counterexample_html};
pub use kv::{KvAppend, KvHistory, KvKind, KvOp, KvRecord, KvState};
pub use leaders::{two_leaders, LeaderClaim, TwoLeaders};
pub use model::{Model, ModelError, Register, RegisterOp};
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
    /// Read/write register, initially nil ([`Register::PLAIN`]).
    Register,
    /// Read/write/cas register, initially nil ([`Register::CAS`]).
    #[default]
    CasRegister,
    /// Porcupine's key-value store: get/put/append (and cas) on strings, initially `""`
    /// ([`KvAppend`]).
    KvAppend,
}

impl ModelKind {
    /// The model to check a foreign history against when none was asked for: kv-append for
    /// get/put/append histories, else cas-register.
    pub fn default_for(history: &crate::history::import::Foreign) -> ModelKind {
        if history.has_kv_ops() {
            ModelKind::KvAppend
        } else {
            ModelKind::CasRegister
        }
    }
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
    /// Memory budget for the whole run, in bytes: the searches running at once (one per
    /// thread) get equal shares, and a key whose search would take more than its share is
    /// `unknown`, never guessed. What is counted is each search's memo of explored
    /// configurations, which is what grows on a hard key: its hash table and what its entries
    /// own (the model state's heap, [`Model::state_bytes`]: kv-append's strings). Not
    /// counted: the history itself and a few hundred bytes per operation of working data.
    pub max_memory_bytes: u64,
    /// Threads that search keys in parallel. 0: one per core, except for histories under
    /// 1,024 operations, which are checked on the calling thread (faster than starting
    /// threads).
    pub threads: usize,
}

impl CheckOptions {
    /// The default [`CheckOptions::max_memory_bytes`]: 2 GiB.
    pub const DEFAULT_MEMORY: u64 = 2 << 30;
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            model: ModelKind::default(),
            time_budget: Duration::from_secs(60),
            max_memory_bytes: Self::DEFAULT_MEMORY,
            threads: 0,
        }
    }
}

/// A memory size that [`parse_size`] cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad size {0:?}: expected bytes, or a number with K, M, G or T (powers of 1024): 512MiB")]
pub struct BadSize(pub String);

/// Read a memory size: `1048576`, `512K`, `512KiB`, `1.5GB`, `2G`. Units are powers of 1024
/// whatever their spelling, and case does not matter.
pub fn parse_size(s: &str) -> Result<u64, BadSize> {
    let bad = || BadSize(s.to_string());
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    if number.is_empty() {
        return Err(bad());
    }
    let bytes = if let Ok(n) = number.parse::<u64>() {
        n.checked_mul(1 << shift).ok_or_else(bad)?
    } else {
        let x: f64 = number.parse().map_err(|_| bad())?;
        let bytes = (x * (1u64 << shift) as f64).round();
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(bad());
        }
        bytes as u64
    };
    Ok(bytes)
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
    /// Terms (views) that more than one node claimed to lead, as the observer saw the nodes'
    /// status during a run (the `election-safety` check; empty for a bare history).
    pub two_leaders: Vec<TwoLeaders>,
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
        ModelKind::Register => check_with(history, &Register::PLAIN, opts),
        ModelKind::CasRegister => check_with(history, &Register::CAS, opts),
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

/// Below this many ops in all, keys are searched on the calling thread only (unless
/// [`CheckOptions::threads`] says otherwise).
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
    // time try again with whatever time remains, and keys that ran out of memory too if
    // fewer searches at once leave each a larger share.
    // Small histories are checked faster than a thread starts.
    let total: usize = prepared
        .iter()
        .map(|p| p.search.as_ref().map_or(0, |(ops, _)| ops.len()))
        .sum();
    let threads = match opts.threads {
        0 if total < SMALL_HISTORY => 1,
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // The memory share of each of the searches that run at once when `keys` are searched.
    let memory = usize::try_from(opts.max_memory_bytes).unwrap_or(usize::MAX);
    let share = |keys: usize| memory / threads.min(keys).max(1);
    let mut order: Vec<usize> = (0..prepared.len())
        .filter(|&i| prepared[i].search.is_ok())
        .collect();
    order.sort_by_key(|&i| {
        std::cmp::Reverse(prepared[i].search.as_ref().map_or(0, |(ops, _)| ops.len()))
    });
    // Each key's result, with the memory share it had.
    type Slot<S> = Mutex<Option<(SearchResult<S>, usize)>>;
    let results: Vec<Slot<M::State>> = prepared.iter().map(|_| Mutex::new(None)).collect();
    let search_key = |k: usize, deadline: Instant, memory: usize| {
        if let Ok((ops, _)) = &prepared[k].search {
            let r = wgl::search(model, ops, Budget { deadline, memory });
            if let Ok(mut slot) = results[k].lock() {
                *slot = Some((r, memory));
            }
        }
    };
    let first = share(order.len());
    run_pass(&order, threads, deadline, true, |k, d| {
        search_key(k, d, first)
    });
    let ran_out = |k: usize, memory_too: bool| {
        results[k].lock().is_ok_and(|r| match &*r {
            Some((SearchResult::OutOfTime, _)) => true,
            Some((SearchResult::OutOfMemory, _)) => memory_too,
            _ => false,
        })
    };
    let mut retry: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&k| ran_out(k, true))
        .collect();
    if share(retry.len()) <= first {
        retry.retain(|&k| ran_out(k, false));
    }
    let second = share(retry.len());
    run_pass(&retry, threads, deadline, false, |k, d| {
        search_key(k, d, second)
    });

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
        two_leaders: Vec::new(),
    };
    let mut anomaly_violations = Vec::new();
    for (p, result) in prepared.iter().zip(results) {
        let (result, memory) = match result.into_inner().ok().flatten() {
            Some((r, memory)) => (Some(r), memory),
            None => (None, 0),
        };
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
            (Ok(_), Some(SearchResult::OutOfMemory)) => {
                report.notes.push(format!(
                    "key {}: the search ran out of its memory budget (its share: {} of {})",
                    p.key,
                    human_bytes(memory as u64),
                    human_bytes(opts.max_memory_bytes),
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

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `100 B`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut x = n as f64 / 1024.0;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    let x = format!("{x:.1}");
    format!("{} {}", x.trim_end_matches(".0"), UNITS[unit])
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
