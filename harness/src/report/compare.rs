//! `faultline compare`: lines up `report.json` files metric by metric, with absolute and
//! relative deltas against the first, as a terminal table, Markdown or JSON.
//!
//! Three layouts, chosen by what the arguments are (see [`load`]):
//! - **runs** (two or more run directories or report files): one row per metric, one column
//!   per run;
//! - **suites** (two or more suite results directories, the `--out` of `faultline run DIR`):
//!   one row per metric and experiment (matched by experiment name), one column per suite;
//! - **experiments** (one suite results directory): its experiments against the first that
//!   ran, one row per experiment, one column per metric.
//!
//! Reports are read as JSON values, not as [`super::Report`]: a comparison reads what is
//! on disk, also reports written by other versions of the same schema. An input that is
//! missing, not JSON, not a report or of another schema is a [`CompareError`] naming its
//! path. The exporters ([`render`]) are pure functions of a [`Comparison`].

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::catalog;
use super::SCHEMA;

/// The `schema` of `faultline compare --format json`.
pub const COMPARE_SCHEMA: &str = "faultline.compare/v1";

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a faultline report: {reason}")]
    NotAReport { path: PathBuf, reason: String },
    #[error("{path}: unknown report schema `{schema}` (this faultline reads {SCHEMA})")]
    UnknownSchema { path: PathBuf, schema: String },
    #[error(
        "{0}: not a run directory (no report.json), a report file, or a suite results \
         directory (no <experiment>/latest/report.json inside)"
    )]
    NotAnInput(PathBuf),
    #[error("cannot compare a run ({run}) with a suite results directory ({suite})")]
    Mixed { run: PathBuf, suite: PathBuf },
    #[error(
        "nothing to compare: {0} (give two or more runs or report files, two or more suite \
         results directories, or one suite results directory with two or more experiments)"
    )]
    TooFew(String),
}

/// Output formats of `faultline compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// A GitHub-flavoured Markdown table.
    Markdown,
    /// One JSON document (schema `faultline.compare/v1`).
    Json,
}

/// What a column lines up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Columns are runs; one row per metric.
    Runs,
    /// Columns are suites; one row per metric and experiment.
    Suites,
    /// Columns are the experiments of one suite (rendered one row per experiment).
    Experiments,
}

/// How a metric's values are read and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A string (the verdict); no delta.
    Text,
    /// yes/no; no delta.
    Bool,
    /// A whole number.
    Count,
    /// A number with a unit.
    Number,
    /// A share between 0 and 1, shown as a percentage; its absolute delta is in percentage
    /// points.
    Share,
}

/// Which direction of change is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
    /// Not a quantity (verdict, passed).
    None,
}

/// One metric of the comparison: where it sits in `report.json` and how to show it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metric {
    /// Stable name (JSON output, `--format json` consumers).
    pub id: &'static str,
    /// Column or row heading.
    pub label: &'static str,
    /// JSON pointer into `report.json`.
    #[serde(skip)]
    pub pointer: &'static str,
    pub kind: Kind,
    /// Unit after scaling (`ms`, `ops/s`, ...), empty for none.
    pub unit: &'static str,
    /// Factor from the report's unit to `unit` (µs to ms: 0.001).
    #[serde(skip)]
    pub scale: f64,
    /// Decimals shown.
    #[serde(skip)]
    pub decimals: usize,
    pub better: Better,
}

/// One metric's value in one report; `null` in JSON when the report has none (no fault, so no
/// recovery; no `ok` op, so no latency).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    Text(String),
    Bool(bool),
    /// A count.
    Int(i64),
    Num(f64),
}

impl Cell {
    fn number(&self) -> Option<f64> {
        match *self {
            Cell::Int(n) => Some(n as f64),
            Cell::Num(x) => Some(x),
            Cell::Text(_) | Cell::Bool(_) => None,
        }
    }
}

impl Metric {
    /// This metric's value in a report, scaled to [`Metric::unit`].
    pub fn read(&self, report: &Value) -> Option<Cell> {
        let v = report.pointer(self.pointer)?;
        match self.kind {
            Kind::Text => v.as_str().map(|s| Cell::Text(s.to_string())),
            Kind::Bool => v.as_bool().map(Cell::Bool),
            Kind::Count => v
                .as_i64()
                .map(Cell::Int)
                .or_else(|| v.as_f64().map(Cell::Num)),
            Kind::Number | Kind::Share => v.as_f64().map(|x| Cell::Num(x * self.scale)),
        }
    }

    /// A value as shown in a table.
    fn show(&self, cell: Option<&Cell>) -> String {
        match cell {
            None => "-".into(),
            Some(Cell::Text(s)) => s.clone(),
            Some(Cell::Bool(b)) => if *b { "yes" } else { "no" }.into(),
            Some(Cell::Int(n)) => n.to_string(),
            Some(Cell::Num(x)) => match self.kind {
                Kind::Share => format!("{:.*}%", self.decimals, x * 100.0),
                _ => format!("{:.*}", self.decimals, x),
            },
        }
    }

    /// An absolute delta as shown in a table (`+1.5`, `-0.25 pp`).
    fn show_abs(&self, d: &Delta) -> String {
        match self.kind {
            Kind::Share => format!("{:+.*} pp", self.decimals, d.abs * 100.0),
            _ => format!("{:+.*}", self.decimals, d.abs),
        }
    }
}

/// A value against the first column's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Delta {
    /// `value - first`, in the metric's unit (a share's as a fraction: 0.01 = 1 pp).
    pub abs: f64,
    /// `(value - first) / first`, as a fraction (0.1 = +10%); `null` when the first is 0.
    pub rel: Option<f64>,
}

impl Delta {
    fn of(first: Option<&Cell>, value: Option<&Cell>) -> Option<Delta> {
        let (a, b) = (first?.number()?, value?.number()?);
        // To 1e-9: what a float subtraction adds below that is noise, not a difference.
        let round = |x: f64| (x * 1e9).round() / 1e9;
        Some(Delta {
            abs: round(b - a),
            rel: (a != 0.0).then(|| round((b - a) / a.abs())),
        })
    }

    /// The relative delta as shown (`+12.3%`); `-` when there is none.
    fn show_rel(&self) -> String {
        self.rel
            .map_or("-".into(), |r| format!("{:+.1}%", r * 100.0))
    }
}

/// What one column stands for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    /// Heading: `<experiment>/<run>` for a run, the path for a suite, the experiment name for
    /// an experiment of a suite.
    pub label: String,
    /// The report file (runs, experiments) or the suite results directory.
    pub path: String,
}

/// One row: one metric (of one experiment, in the suites layout) across the columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub metric: Metric,
    /// The experiment of the row (suites layout only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// One per column.
    pub values: Vec<Option<Cell>>,
    /// One per column: against the first column (`null` for the first, for text and yes/no
    /// metrics, and where either value is missing).
    pub deltas: Vec<Option<Delta>>,
}

/// A comparison, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub schema: &'static str,
    pub layout: Layout,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

/// One report read from disk.
#[derive(Debug, Clone)]
pub struct LoadedReport {
    /// The report file.
    pub path: PathBuf,
    /// `experiment.name`.
    pub experiment: String,
    pub report: Value,
}

/// A suite's runs: the latest run of each experiment in its results directory.
#[derive(Debug, Clone)]
pub struct LoadedSuite {
    pub dir: PathBuf,
    /// In the order they ran (by `run.started_utc`, then by name).
    pub runs: Vec<LoadedReport>,
}

/// What one argument of `faultline compare` turned out to be.
#[derive(Debug, Clone)]
pub enum Input {
    Run(LoadedReport),
    Suite(LoadedSuite),
}

/// Read one report file: JSON, an object with `schema` equal to [`SCHEMA`].
pub fn read_report(path: &Path) -> Result<LoadedReport, CompareError> {
    let text = std::fs::read_to_string(path).map_err(|source| CompareError::Read {
        path: path.to_owned(),
        source,
    })?;
    let not_a_report = |reason: String| CompareError::NotAReport {
        path: path.to_owned(),
        reason,
    };
    let report: Value =
        serde_json::from_str(&text).map_err(|e| not_a_report(format!("not JSON ({e})")))?;
    match report.get("schema") {
        Some(Value::String(s)) if s == SCHEMA => {}
        Some(Value::String(s)) => {
            return Err(CompareError::UnknownSchema {
                path: path.to_owned(),
                schema: s.clone(),
            })
        }
        _ => return Err(not_a_report("no `schema` field".into())),
    }
    let experiment = report
        .pointer("/experiment/name")
        .and_then(Value::as_str)
        .ok_or_else(|| not_a_report("no `experiment.name`".into()))?
        .to_string();
    Ok(LoadedReport {
        path: path.to_owned(),
        experiment,
        report,
    })
}

/// Read one argument: a report file, a run directory (holding `report.json`), an experiment's
/// results directory (its `latest` run), or a suite results directory (holding
/// `<experiment>/latest/report.json`).
pub fn load_input(path: &Path) -> Result<Input, CompareError> {
    let meta = std::fs::metadata(path).map_err(|source| CompareError::Read {
        path: path.to_owned(),
        source,
    })?;
    if meta.is_file() {
        return read_report(path).map(Input::Run);
    }
    for candidate in [path.join("report.json"), path.join("latest/report.json")] {
        if candidate.is_file() {
            return read_report(&candidate).map(Input::Run);
        }
    }
    let entries = std::fs::read_dir(path).map_err(|source| CompareError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("latest/report.json"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CompareError::NotAnInput(path.to_owned()));
    }
    let mut runs = files
        .iter()
        .map(|f| read_report(f))
        .collect::<Result<Vec<_>, _>>()?;
    let started = |r: &LoadedReport| {
        r.report
            .pointer("/run/started_utc")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // Unstarted (killed) runs last; RFC 3339 UTC strings sort by time.
    runs.sort_by_key(|r| (started(r).is_none(), started(r), r.experiment.clone()));
    Ok(Input::Suite(LoadedSuite {
        dir: path.to_owned(),
        runs,
    }))
}

/// Read every argument and line them up (see the module documentation for the layouts).
pub fn load(paths: &[PathBuf]) -> Result<Comparison, CompareError> {
    let inputs = paths
        .iter()
        .map(|p| load_input(p).map(|i| (p, i)))
        .collect::<Result<Vec<_>, _>>()?;
    let first_run = inputs.iter().find(|(_, i)| matches!(i, Input::Run(_)));
    let first_suite = inputs.iter().find(|(_, i)| matches!(i, Input::Suite(_)));
    if let (Some((run, _)), Some((suite, _))) = (first_run, first_suite) {
        return Err(CompareError::Mixed {
            run: run.to_path_buf(),
            suite: suite.to_path_buf(),
        });
    }
    let mut runs = Vec::new();
    let mut suites = Vec::new();
    for (p, i) in inputs {
        match i {
            Input::Run(r) => runs.push((p.clone(), r)),
            Input::Suite(s) => suites.push(s),
        }
    }
    match (runs.len(), suites.len()) {
        (0, 1) => {
            let suite = suites.pop().expect("one suite");
            if suite.runs.len() < 2 {
                return Err(CompareError::TooFew(format!(
                    "{} holds one experiment",
                    suite.dir.display()
                )));
            }
            Ok(compare_experiments(&suite))
        }
        (0, n) if n >= 2 => Ok(compare_suites(&suites)),
        (n, 0) if n >= 2 => Ok(compare_runs(&runs)),
        _ => Err(CompareError::TooFew(match paths.first() {
            Some(p) => format!("only {}", p.display()),
            None => "no input".into(),
        })),
    }
}

/// The columns for (proposed label, fallback label, path) each, labels made unique.
fn columns<'a>(entries: impl Iterator<Item = (String, String, &'a PathBuf)>) -> Vec<Column> {
    let (labels, paths): (Vec<(String, String)>, Vec<&PathBuf>) = entries
        .map(|(label, fallback, path)| ((label, fallback), path))
        .unzip();
    unique(labels)
        .into_iter()
        .zip(paths)
        .map(|(label, path)| Column {
            label,
            path: path.display().to_string(),
        })
        .collect()
}

/// Unique labels: each as proposed, or where two collide, the fallback (the argument as
/// given), numbered if that collides too.
fn unique(labels: Vec<(String, String)>) -> Vec<String> {
    let count = |v: &[String], l: &str| v.iter().filter(|x| x.as_str() == l).count();
    let first: Vec<String> = labels.iter().map(|(l, _)| l.clone()).collect();
    let second: Vec<String> = labels
        .iter()
        .map(|(l, fallback)| {
            if count(&first, l) > 1 {
                fallback.clone()
            } else {
                l.clone()
            }
        })
        .collect();
    second
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if count(&second, l) > 1 {
                format!("{l} #{}", i + 1)
            } else {
                l.clone()
            }
        })
        .collect()
}

/// `<experiment>/<run>` for a run's report.json (its `latest` link resolved), else the file
/// name.
fn run_label(r: &LoadedReport) -> String {
    if r.path.file_name().is_some_and(|n| n == "report.json") {
        let dir = r.path.parent().unwrap_or(Path::new("."));
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        if let Some(name) = dir.file_name() {
            return format!("{}/{}", r.experiment, name.to_string_lossy());
        }
    }
    r.path.file_name().map_or_else(
        || r.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn row(metric: &Metric, experiment: Option<String>, reports: &[Option<&Value>]) -> Row {
    let values: Vec<Option<Cell>> = reports
        .iter()
        .map(|r| r.and_then(|r| metric.read(r)))
        .collect();
    let deltas = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if i == 0 {
                None
            } else {
                Delta::of(values[0].as_ref(), v.as_ref())
            }
        })
        .collect();
    Row {
        metric: *metric,
        experiment,
        values,
        deltas,
    }
}

/// Runs side by side: `(argument, report)` each.
pub fn compare_runs(runs: &[(PathBuf, LoadedReport)]) -> Comparison {
    let columns = columns(
        runs.iter()
            .map(|(arg, r)| (run_label(r), arg.display().to_string(), &r.path)),
    );
    let reports: Vec<&Value> = runs.iter().map(|(_, r)| &r.report).collect();
    one_report_per_column(Layout::Runs, columns, &reports)
}

/// A comparison with one report per column: a row per metric.
fn one_report_per_column(layout: Layout, columns: Vec<Column>, reports: &[&Value]) -> Comparison {
    let reports: Vec<Option<&Value>> = reports.iter().copied().map(Some).collect();
    Comparison {
        schema: COMPARE_SCHEMA,
        layout,
        columns,
        rows: catalog::compared()
            .map(|m| row(&m, None, &reports))
            .collect(),
    }
}

/// Suites side by side, experiments matched by name (in the first suite's order, then those
/// only later suites have).
pub fn compare_suites(suites: &[LoadedSuite]) -> Comparison {
    let columns = columns(suites.iter().map(|s| {
        let dir = s.dir.display().to_string();
        (dir.clone(), dir, &s.dir)
    }));
    let mut experiments: Vec<&str> = Vec::new();
    for r in suites.iter().flat_map(|s| &s.runs) {
        if !experiments.contains(&r.experiment.as_str()) {
            experiments.push(&r.experiment);
        }
    }
    let mut rows = Vec::new();
    for m in catalog::compared() {
        for e in &experiments {
            let reports: Vec<Option<&Value>> = suites
                .iter()
                .map(|s| {
                    s.runs
                        .iter()
                        .find(|r| r.experiment == *e)
                        .map(|r| &r.report)
                })
                .collect();
            rows.push(row(&m, Some(e.to_string()), &reports));
        }
    }
    Comparison {
        schema: COMPARE_SCHEMA,
        layout: Layout::Suites,
        columns,
        rows,
    }
}

/// The experiments of one suite against its first.
pub fn compare_experiments(suite: &LoadedSuite) -> Comparison {
    let columns = columns(
        suite
            .runs
            .iter()
            .map(|r| (r.experiment.clone(), r.path.display().to_string(), &r.path)),
    );
    let reports: Vec<&Value> = suite.runs.iter().map(|r| &r.report).collect();
    one_report_per_column(Layout::Experiments, columns, &reports)
}

/// The comparison in the format asked for.
pub fn render(c: &Comparison, format: Format) -> Vec<u8> {
    match format {
        Format::Table => render_table(c).into_bytes(),
        Format::Markdown => render_markdown(c).into_bytes(),
        Format::Json => render_json(c).into_bytes(),
    }
}

/// `--format json`: the comparison as one pretty-printed document, newline-terminated.
pub fn render_json(c: &Comparison) -> String {
    let mut s = serde_json::to_string_pretty(c).expect("comparisons serialize");
    s.push('\n');
    s
}

/// `--format markdown`.
pub fn render_markdown(c: &Comparison) -> String {
    let grid = grid(c);
    let mut s = String::new();
    let line = |cells: &[String]| {
        let escaped: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        format!("| {} |\n", escaped.join(" | "))
    };
    s.push_str(&line(&grid.header));
    let rule: Vec<String> = grid
        .right
        .iter()
        .map(|&r| if r { "---:" } else { "---" }.to_string())
        .collect();
    let _ = writeln!(s, "|{}|", rule.join("|"));
    for r in &grid.rows {
        s.push_str(&line(r));
    }
    s
}

/// `--format table`: aligned columns, numbers to the right.
pub fn render_table(c: &Comparison) -> String {
    let grid = grid(c);
    let n = grid.header.len();
    let width: Vec<usize> = (0..n)
        .map(|i| {
            std::iter::once(&grid.header)
                .chain(&grid.rows)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if grid.right[i] {
                    format!("{c:>w$}", w = width[i])
                } else {
                    format!("{c:<w$}", w = width[i])
                }
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut s = line(&grid.header);
    let rule: Vec<String> = width.iter().map(|&w| "-".repeat(w)).collect();
    s.push_str(&line(&rule));
    for r in &grid.rows {
        s.push_str(&line(r));
    }
    s
}

/// A comparison as a grid of strings, shared by the table and Markdown exporters.
struct Grid {
    header: Vec<String>,
    /// Whether each column is right-aligned (numbers).
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

fn grid(c: &Comparison) -> Grid {
    let (header, right, rows) = match c.layout {
        Layout::Runs | Layout::Suites => {
            let suites = c.layout == Layout::Suites;
            let mut header = vec!["metric".to_string()];
            let mut right = vec![false];
            if suites {
                header.push("experiment".into());
                right.push(false);
            }
            for (i, col) in c.columns.iter().enumerate() {
                header.push(col.label.clone());
                right.push(true);
                if i > 0 {
                    header.push("Δ".into());
                    header.push("Δ%".into());
                    right.extend([true, true]);
                }
            }
            let rows = c
                .rows
                .iter()
                .map(|r| {
                    let mut cells = vec![r.metric.label.to_string()];
                    if suites {
                        cells.push(r.experiment.clone().unwrap_or_default());
                    }
                    for (i, v) in r.values.iter().enumerate() {
                        cells.push(r.metric.show(v.as_ref()));
                        if i > 0 {
                            match &r.deltas[i] {
                                Some(d) => {
                                    cells.push(r.metric.show_abs(d));
                                    cells.push(d.show_rel());
                                }
                                None => cells.extend(["-".to_string(), "-".to_string()]),
                            }
                        }
                    }
                    cells
                })
                .collect();
            (header, right, rows)
        }
        Layout::Experiments => {
            // Transposed: one row per experiment; deltas (relative, or absolute when the
            // first is 0) in brackets after each value.
            let mut header = vec!["experiment".to_string()];
            header.extend(c.rows.iter().map(|r| r.metric.label.to_string()));
            let mut right = vec![false];
            right.extend(c.rows.iter().map(|r| r.metric.kind != Kind::Text));
            let rows = c
                .columns
                .iter()
                .enumerate()
                .map(|(i, col)| {
                    let mut cells = vec![col.label.clone()];
                    for r in &c.rows {
                        let v = r.metric.show(r.values[i].as_ref());
                        cells.push(match &r.deltas[i] {
                            Some(d) if d.rel.is_some() => format!("{v} ({})", d.show_rel()),
                            Some(d) => format!("{v} ({})", r.metric.show_abs(d)),
                            None => v,
                        });
                    }
                    cells
                })
                .collect();
            (header, right, rows)
        }
    };
    Grid {
        header,
        right,
        rows,
    }
}

#[cfg(test)]
mod tests;
