//! The run report: analysing a run directory's recorded files (`experiment.yaml`,
//! `history.jsonl`, `events.jsonl`, `run.json`) into `report.json` (schema
//! `faultline.report/v1`) and `summary.md`, and the exit code the verdict maps to; and the
//! summary that lines up the runs of a suite.
//!
//! The same analysis serves `faultline run` at the end of a run and `faultline report
//! <run-dir>` afterwards, also for a run that was interrupted or whose harness was killed.

mod balancer;
mod catalog;
pub mod compare;
pub mod gate;
mod html;
mod suite;
mod summary;

pub use balancer::{BalancerReport, Ejection, ShareWindow, Totals};
pub use html::render_html;
pub use suite::{render_suite_summary, SuiteRun};
pub use summary::render_summary;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::check::{self, CheckOptions, ConsistencyReport, ModelKind, Verdict};
use crate::experiment::{self, CheckKind, Expect, Experiment, WorkloadKind};
use crate::history::{load_events, Event, EventKind, History, HistoryError};
use crate::metrics::{self, Metrics, MetricsOptions};
use crate::rundir::{self, RunMeta, UnexpectedExit};
use crate::workload::LoadSummary;

pub const SCHEMA: &str = "faultline.report/v1";

/// Time budget of the consistency check inside a run's analysis.
const CHECK_BUDGET: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0} is not a run directory (no experiment.yaml)")]
    NotARun(PathBuf),
    #[error(transparent)]
    Experiment(#[from] experiment::ExperimentError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ReportError {
    /// Errors caused by what the user pointed at (exit 254), rather than by faultline.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, ReportError::Write { .. })
    }
}

/// `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub experiment: ExperimentInfo,
    /// The consistency verdict (`unknown` when an interrupted run found nothing wrong).
    pub verdict: Verdict,
    /// Whether the run passes: the verdict matches `expect` (or is valid) and every SLO holds.
    pub passed: bool,
    pub expect: Option<Expect>,
    pub aborted: bool,
    pub abort_reason: Option<String>,
    pub run: RunInfo,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub consistency: ConsistencyReport,
    /// Self-contained HTML views of each invalid key's counterexample, relative to the run
    /// directory (`counterexamples/<key>.html`).
    pub counterexamples: Vec<String>,
    pub slo: Vec<SloResult>,
    pub faults: Vec<FaultRecord>,
    /// Scheduled versus applied time of the faults.
    pub fault_timing: FaultTiming,
    pub load: Option<LoadSummary>,
    pub unexpected_exits: Vec<UnexpectedExit>,
    /// What the client's balancer did: strategy and parameters, per-node counters, shares
    /// over time, ejections.
    pub balancer: BalancerReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentInfo {
    pub name: String,
    pub seed: u64,
    pub target: String,
    pub nodes: u32,
    pub duration_s: f64,
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub bugs: Vec<String>,
    pub backend: String,
    pub network: String,
    pub workload: String,
    pub balancer: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub dir: String,
    pub started_utc: Option<String>,
    /// The command that reproduces this run.
    pub reproduce: Option<String>,
    /// Launch to every node serving and a leader known.
    pub ready_ms: Option<f64>,
    /// Whether the cluster served a write and every final read after the load.
    pub recovered: Option<bool>,
    /// Whether the harness finished the run (false: it was killed; the report was rebuilt
    /// from what it had recorded).
    pub complete: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SloResult {
    pub name: String,
    pub limit: String,
    pub actual: String,
    pub ok: bool,
}

/// A fault as applied: when, on whom, until when.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub id: u64,
    pub fault: String,
    pub selector: String,
    pub nodes: Vec<String>,
    /// Network faults: the directed flows cut or degraded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    pub start_ms: f64,
    pub end_ms: Option<f64>,
    /// How long after its scheduled time the fault took effect, in microseconds.
    pub late_us: Option<u64>,
}

/// Scheduled versus applied time over the run's scheduled faults, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct FaultTiming {
    pub faults: usize,
    pub late_us: crate::metrics::Percentiles,
}

impl FaultTiming {
    pub fn of(faults: &[FaultRecord]) -> FaultTiming {
        let late: Vec<f64> = faults
            .iter()
            .filter_map(|f| f.late_us)
            .map(|u| u as f64)
            .collect();
        FaultTiming {
            faults: late.len(),
            late_us: crate::metrics::Percentiles::of(late),
        }
    }
}

impl Report {
    /// 0 pass, 1 fail, 2 unknown (see the binary's help).
    pub fn exit_code(&self) -> u8 {
        if self.passed {
            0
        } else if self.verdict == Verdict::Unknown && self.slo.iter().all(|s| s.ok) {
            2
        } else {
            1
        }
    }
}

/// The exit code for a bare verdict: 0 valid, 1 invalid, 2 unknown.
pub fn verdict_exit(v: Verdict) -> u8 {
    match v {
        Verdict::Valid => 0,
        Verdict::Invalid => 1,
        Verdict::Unknown => 2,
    }
}

/// Analyse a run directory and (re)write its `report.json`, `summary.md` and `report.html`.
/// Files are written to a temporary name and renamed, so a reader never sees half a report.
pub fn analyze_and_write(run_dir: &Path) -> Result<Report, ReportError> {
    let (report, history, events) = analyze_inputs(run_dir)?;
    let views = run_dir.join(rundir::COUNTEREXAMPLES);
    let _ = std::fs::remove_dir_all(&views);
    let pages = check::counterexample_pages(&report.consistency);
    if !pages.is_empty() {
        std::fs::create_dir_all(&views).map_err(|source| ReportError::Write {
            path: views.clone(),
            source,
        })?;
        for (name, html) in pages {
            write_atomic(&views.join(name), html.as_bytes())?;
        }
    }
    let json = serde_json::to_vec_pretty(&report).expect("reports serialize");
    write_atomic(&run_dir.join(rundir::REPORT), &json)?;
    write_atomic(
        &run_dir.join(rundir::SUMMARY),
        render_summary(&report).as_bytes(),
    )?;
    write_atomic(
        &run_dir.join(rundir::REPORT_HTML),
        render_html(&report, &history, &events).as_bytes(),
    )?;
    Ok(report)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let tmp = path.with_extension("tmp");
    let err = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Analyse a run directory without writing anything.
pub fn analyze(run_dir: &Path) -> Result<Report, ReportError> {
    analyze_inputs(run_dir).map(|(report, _, _)| report)
}

/// [`analyze`], also handing back the history and event journal it loaded.
fn analyze_inputs(run_dir: &Path) -> Result<(Report, History, Vec<Event>), ReportError> {
    let exp_path = run_dir.join(rundir::EXPERIMENT);
    if !exp_path.is_file() {
        return Err(ReportError::NotARun(run_dir.to_owned()));
    }
    let loaded = experiment::load_experiment(&exp_path, &[], None)?;
    let exp = &loaded.experiment;
    let history = History::load(&run_dir.join(rundir::HISTORY))?;
    let events_path = run_dir.join(rundir::EVENTS);
    let events = if events_path.exists() {
        load_events(&events_path)?
    } else {
        Vec::new()
    };
    let meta: Option<RunMeta> = std::fs::read(run_dir.join(rundir::RUN_META))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let complete = meta.is_some();
    let (load_start_ns, load_end_ns) = match &meta {
        Some(m) => (m.load_start_ns, m.load_end_ns),
        None => metrics::load_window(&events, &history),
    };
    let run_end_aborted = events
        .iter()
        .any(|e| matches!(e.kind, EventKind::RunEnd { aborted: true, .. }));
    let aborted = meta.as_ref().is_none_or(|m| m.aborted) || run_end_aborted;
    let abort_reason = match &meta {
        Some(m) => m.abort_reason.clone(),
        None => Some(
            "the harness did not finish this run (killed?); report rebuilt from its files".into(),
        ),
    };

    let faults = fault_records(&events);
    let metrics = metrics::compute(
        &history,
        &events,
        &MetricsOptions {
            window_ms: 100,
            after_heal_ms: 2000,
            load_start_ns,
            load_end_ns,
        },
    );
    let mut consistency = check::check(
        &history,
        &CheckOptions {
            model: match exp.workload.kind {
                WorkloadKind::Register => ModelKind::Register,
                WorkloadKind::CasRegister => ModelKind::CasRegister,
            },
            time_budget: CHECK_BUDGET,
            ..CheckOptions::default()
        },
    );
    consistency.two_leaders = check::two_leaders(&events);
    let verdict = consistency_verdict(exp, &consistency, aborted);
    let counterexamples = check::counterexample_pages(&consistency)
        .into_iter()
        .map(|(name, _)| format!("{}/{name}", rundir::COUNTEREXAMPLES))
        .collect();
    let slo = evaluate_slo(exp, &metrics, &consistency);
    let verdict_ok = match exp.expect {
        Some(Expect::Valid) | None => verdict == Verdict::Valid,
        Some(Expect::Invalid) => verdict == Verdict::Invalid,
    };
    let passed = verdict_ok && slo.iter().all(|s| s.ok);
    let report = Report {
        schema: SCHEMA,
        experiment: ExperimentInfo {
            name: exp.name.clone(),
            seed: loaded.seed,
            target: exp.target.kind.name.into(),
            nodes: exp.target.nodes,
            duration_s: exp.duration.0.as_secs_f64(),
            settings: exp.target.settings.clone(),
            bugs: exp.target.bugs.clone(),
            backend: "process".into(),
            network: exp.network.mode.as_str().into(),
            workload: describe_workload(exp),
            balancer: exp.balancer.kind.as_str().into(),
        },
        verdict,
        passed,
        expect: exp.expect,
        aborted,
        abort_reason,
        run: RunInfo {
            dir: run_dir.display().to_string(),
            started_utc: meta.as_ref().map(|m| m.started_utc.clone()),
            reproduce: meta.as_ref().map(|m| m.reproduce.clone()),
            ready_ms: meta.as_ref().and_then(|m| m.ready_ms),
            recovered: meta.as_ref().and_then(|m| m.recovered),
            complete,
        },
        metrics,
        consistency,
        counterexamples,
        slo,
        fault_timing: FaultTiming::of(&faults),
        faults,
        load: meta.as_ref().and_then(|m| m.load.clone()),
        unexpected_exits: meta.map(|m| m.unexpected_exits).unwrap_or_default(),
        balancer: balancer::analyze(&exp.balancer, &events),
    };
    Ok((report, history, events))
}

fn describe_workload(exp: &Experiment) -> String {
    let w = &exp.workload;
    let kind = match w.kind {
        WorkloadKind::Register => "register",
        WorkloadKind::CasRegister => "cas-register",
    };
    let load = match w.load {
        experiment::Load::Open { rate, .. } => format!("open loop {}/s", rate.per_second),
        experiment::Load::Closed { concurrency } => format!("closed loop x{concurrency}"),
    };
    format!(
        "{kind}, {} keys, read {:.0}% write {:.0}% cas {:.0}%, {load}, timeout {}",
        w.keys,
        w.mix.read * 100.0,
        w.mix.write * 100.0,
        w.mix.cas * 100.0,
        w.timeout
    )
}

/// The verdict over the checks the experiment asked for. An interrupted run that found no
/// violation is `unknown`: it did not run to the end.
fn consistency_verdict(exp: &Experiment, c: &ConsistencyReport, aborted: bool) -> Verdict {
    let mut v = Verdict::Valid;
    for check in &exp.checks {
        v = v.compose(match check {
            CheckKind::Linearizable => c.linearizable,
            CheckKind::LostWrites if c.lost_writes > 0 => Verdict::Invalid,
            CheckKind::StaleReads if c.stale_reads > 0 => Verdict::Invalid,
            CheckKind::ElectionSafety if !c.two_leaders.is_empty() => Verdict::Invalid,
            _ => Verdict::Valid,
        });
    }
    if aborted && v == Verdict::Valid {
        Verdict::Unknown
    } else {
        v
    }
}

fn evaluate_slo(exp: &Experiment, m: &Metrics, c: &ConsistencyReport) -> Vec<SloResult> {
    let mut out = Vec::new();
    let Some(slo) = &exp.slo else { return out };
    if let Some(min) = slo.availability {
        let actual = m.availability.overall;
        out.push(SloResult {
            name: "availability".into(),
            limit: format!(">= {min}"),
            actual: actual.map_or("n/a".into(), |a| format!("{a:.4}")),
            ok: actual.is_some_and(|a| a >= min),
        });
    }
    if let Some(max) = slo.recovery_p99 {
        let actual = m.failover.recovery_ms.p99;
        // A fault after which writes never succeeded again breaks the objective outright.
        let unrecovered = m
            .failover
            .events
            .iter()
            .filter(|e| e.recovery_ms.is_none())
            .count();
        out.push(SloResult {
            name: "recovery_p99".into(),
            limit: format!("<= {max}"),
            actual: match (actual, unrecovered) {
                (_, n) if n > 0 => format!("{n} fault(s) never recovered"),
                (Some(a), _) => format!("{a:.0}ms"),
                (None, _) => "n/a".into(),
            },
            ok: unrecovered == 0 && actual.is_none_or(|a| a <= max.0.as_secs_f64() * 1000.0),
        });
    }
    if let Some(max) = slo.violations {
        let actual = (c.violations.len() + c.two_leaders.len()) as u64;
        out.push(SloResult {
            name: "violations".into(),
            limit: format!("<= {max}"),
            actual: actual.to_string(),
            ok: actual <= max,
        });
    }
    out
}

fn fault_records(events: &[Event]) -> Vec<FaultRecord> {
    let mut out: Vec<FaultRecord> = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::FaultStart {
                id,
                fault,
                selector,
                nodes,
                links,
            } => out.push(FaultRecord {
                id: *id,
                fault: fault.clone(),
                selector: selector.clone(),
                nodes: nodes.clone(),
                links: links.clone(),
                start_ms: e.t as f64 / 1e6,
                end_ms: None,
                late_us: None,
            }),
            EventKind::FaultApplied {
                id,
                late_us: Some(late),
            } => {
                if let Some(f) = out.iter_mut().find(|f| f.id == *id) {
                    f.late_us = Some(*late);
                }
            }
            EventKind::FaultEnd { id, .. } => {
                if let Some(f) = out.iter_mut().find(|f| f.id == *id) {
                    f.end_ms = Some(e.t as f64 / 1e6);
                }
            }
            _ => {}
        }
    }
    out
}
