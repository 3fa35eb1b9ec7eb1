//! The CI gate: rules over a run's `report.json` (absolute, or relative to a baseline report),
//! checked one by one, with a verdict per rule and a JUnit XML export so CI systems show each
//! rule as a test case.
//!
//! A rules file:
//!
//! ```yaml
//! rules:
//!   - violations == 0
//!   - availability >= 99%
//!   - recovery_p99 <= 1s
//!   - recovery_p99 <= baseline * 1.2
//!   - throughput >= baseline * 0.9
//! ```
//!
//! A rule is `METRIC OP VALUE`: OP one of `== != <= >= < >`; VALUE a number, a percentage
//! (`99%`), a duration (`250ms`, `1s`, `800us`) for a time metric, `true`/`false`, a verdict
//! (`valid`), or `baseline`, `baseline * K`, `baseline + D`, `baseline - D` (the same metric
//! in the baseline report). A metric the report has no value for (no failover measured, say)
//! breaks its rule: a gate that cannot see a number does not pass it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::compare::{load_input, read_report, CompareError, Input, LoadedReport};

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Rule {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(transparent)]
    Input(#[from] CompareError),
    #[error("rule `{rule}` compares with the baseline, and no baseline was given (--baseline)")]
    NoBaseline { rule: String },
    #[error("no baseline report for experiment `{experiment}` in {dir}")]
    MissingBaseline { experiment: String, dir: PathBuf },
}

use super::catalog::{self, Source, Unit};

fn unit_of(metric: &str) -> Option<Unit> {
    catalog::by_rule(metric).map(|e| e.unit)
}

/// The names of every metric, for help texts and errors.
pub fn metric_names() -> Vec<&'static str> {
    catalog::CATALOG.iter().map(|e| e.rule).collect()
}

/// A metric's value in a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Num(f64),
    Bool(bool),
    Text(String),
}

fn len(report: &Value, pointer: &str) -> Option<f64> {
    report.pointer(pointer)?.as_array().map(|a| a.len() as f64)
}

/// Read one metric from a `report.json` value.
pub fn metric(report: &Value, name: &str) -> Option<Val> {
    match catalog::by_rule(name)?.source {
        Source::At(p) => match report.pointer(p)? {
            Value::Number(n) => n.as_f64().map(Val::Num),
            Value::Bool(b) => Some(Val::Bool(*b)),
            Value::String(t) => Some(Val::Text(t.clone())),
            _ => None,
        },
        Source::Len(p) => len(report, p).map(Val::Num),
        Source::Violations => {
            let listed = len(report, "/consistency/violations")?;
            let omitted = report
                .pointer("/consistency/violations_omitted")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let two = len(report, "/consistency/two_leaders").unwrap_or(0.0);
            Some(Val::Num(listed + omitted + two))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Le,
    Ge,
    Lt,
    Gt,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Le => "<=",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Gt => ">",
        }
    }
}

/// The right-hand side of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    Value(Val),
    /// `baseline * factor + offset` (offset in the metric's unit).
    Baseline {
        factor: f64,
        offset: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// As written.
    pub text: String,
    pub metric: String,
    pub op: Op,
    pub limit: Limit,
    /// 1-based line and column in the rules file.
    pub line: usize,
    pub column: usize,
}

impl Rule {
    pub fn needs_baseline(&self) -> bool {
        matches!(self.limit, Limit::Baseline { .. })
    }
}

/// Parse a number with an optional unit into the metric's unit.
fn parse_value(text: &str, unit: Unit) -> Result<Val, String> {
    let t = text.trim();
    match unit {
        Unit::Bool => match t {
            "true" => Ok(Val::Bool(true)),
            "false" => Ok(Val::Bool(false)),
            _ => Err(format!("`{t}` is not true or false")),
        },
        Unit::Verdict => match t {
            "valid" | "invalid" | "unknown" => Ok(Val::Text(t.to_string())),
            _ => Err(format!("`{t}` is not a verdict (valid, invalid, unknown)")),
        },
        Unit::Ratio => {
            if let Some(p) = t.strip_suffix('%') {
                p.trim()
                    .parse::<f64>()
                    .map(|v| Val::Num(v / 100.0))
                    .map_err(|_| format!("`{t}` is not a percentage"))
            } else {
                t.parse::<f64>()
                    .map(Val::Num)
                    .map_err(|_| format!("`{t}` is not a ratio (0.99) or a percentage (99%)"))
            }
        }
        Unit::Ms | Unit::Us => {
            if let Ok(v) = t.parse::<f64>() {
                return Ok(Val::Num(v));
            }
            let d = humantime::parse_duration(t)
                .map_err(|_| format!("`{t}` is not a duration (250ms, 1s) or a number"))?;
            let us = d.as_secs_f64() * 1e6;
            Ok(Val::Num(if unit == Unit::Ms { us / 1000.0 } else { us }))
        }
        Unit::Count | Unit::PerSecond => {
            let t = t.strip_suffix("/s").unwrap_or(t).trim();
            t.parse::<f64>()
                .map(Val::Num)
                .map_err(|_| format!("`{t}` is not a number"))
        }
    }
}

/// Parse one rule; errors are messages, placed by the caller.
pub fn parse_rule(text: &str) -> Result<Rule, String> {
    let ops = [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let (at, len, op) = ops
        .iter()
        .filter_map(|(s, op)| text.find(s).map(|i| (i, s.len(), *op)))
        .min_by_key(|(i, len, _)| (*i, usize::MAX - len))
        .ok_or_else(|| "a rule is `METRIC OP VALUE`, OP one of == != <= >= < >".to_string())?;
    let metric = text[..at].trim().to_string();
    let rhs = text[at + len..].trim();
    let unit = unit_of(&metric).ok_or_else(|| {
        format!(
            "unknown metric `{metric}`; known: {}",
            metric_names().join(", ")
        )
    })?;
    if rhs.is_empty() {
        return Err(format!("nothing after `{}`", op.as_str()));
    }
    let limit = if let Some(rest) = rhs.strip_prefix("baseline") {
        if matches!(unit, Unit::Bool | Unit::Verdict) {
            if !rest.trim().is_empty() {
                return Err(format!(
                    "`{metric}` can only be compared with `baseline` itself"
                ));
            }
            Limit::Baseline {
                factor: 1.0,
                offset: 0.0,
            }
        } else {
            let rest = rest.trim();
            let num = |s: &str| -> Result<f64, String> {
                match parse_value(s, unit)? {
                    Val::Num(v) => Ok(v),
                    _ => Err(format!("`{s}` is not a number")),
                }
            };
            if rest.is_empty() {
                Limit::Baseline {
                    factor: 1.0,
                    offset: 0.0,
                }
            } else if let Some(k) = rest.strip_prefix('*') {
                let factor = k
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("`{}` is not a factor", k.trim()))?;
                Limit::Baseline {
                    factor,
                    offset: 0.0,
                }
            } else if let Some(d) = rest.strip_prefix('+') {
                Limit::Baseline {
                    factor: 1.0,
                    offset: num(d)?,
                }
            } else if let Some(d) = rest.strip_prefix('-') {
                Limit::Baseline {
                    factor: 1.0,
                    offset: -num(d)?,
                }
            } else {
                return Err(format!(
                    "after `baseline`: `* K`, `+ D` or `- D`, not `{rest}`"
                ));
            }
        }
    } else {
        Limit::Value(parse_value(rhs, unit)?)
    };
    if matches!(unit, Unit::Bool | Unit::Verdict) && !matches!(op, Op::Eq | Op::Ne) {
        return Err(format!("`{metric}` takes == or != only"));
    }
    Ok(Rule {
        text: text.trim().to_string(),
        metric,
        op,
        limit,
        line: 0,
        column: 0,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rules: Vec<String>,
}

/// Parse a rules file's text; `path` names it in errors (`file:line:col`).
pub fn parse_rules(path: &Path, text: &str) -> Result<Vec<Rule>, GateError> {
    let err = |line: usize, column: usize, message: String| GateError::Rule {
        file: path.to_owned(),
        line,
        column,
        message,
    };
    let file: RulesFile = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        err(line, column, msg)
    })?;
    if file.rules.is_empty() {
        return Err(err(
            1,
            1,
            "`rules` is empty: a gate needs at least one rule".into(),
        ));
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0;
    let mut rules = Vec::new();
    for r in &file.rules {
        // Where the rule is written: the first line at or after the previous rule's that holds
        // its text.
        let (line, column) = lines
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(n, l)| {
                l.find(r.trim())
                    .map(|c| (n + 1, l[..c].chars().count() + 1))
            })
            .unwrap_or((1, 1));
        from = line.saturating_sub(1);
        let mut rule = parse_rule(r).map_err(|m| err(line, column, m))?;
        rule.line = line;
        rule.column = column;
        rules.push(rule);
    }
    Ok(rules)
}

/// One rule checked against one report.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleResult {
    pub experiment: String,
    pub rule: String,
    pub ok: bool,
    /// The value found, readable (`230 ms`, `99.2%`, `none`).
    pub actual: String,
    /// The limit it was held to, readable (for baseline rules, with the baseline's value).
    pub limit: String,
}

fn show(v: &Option<Val>, unit: Unit) -> String {
    match v {
        None => "none".into(),
        Some(Val::Bool(b)) => b.to_string(),
        Some(Val::Text(t)) => t.clone(),
        Some(Val::Num(x)) => match unit {
            Unit::Ratio => format!("{:.3}%", x * 100.0),
            Unit::Ms => format!("{x:.1} ms"),
            Unit::Us if *x >= 1000.0 => format!("{:.1} ms", x / 1000.0),
            Unit::Us => format!("{x:.1} µs"),
            Unit::PerSecond => format!("{x:.1}/s"),
            _ => format!("{x}"),
        },
    }
}

fn compare(actual: &Val, op: Op, limit: &Val) -> bool {
    match (actual, limit) {
        (Val::Num(a), Val::Num(b)) => match op {
            Op::Eq => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
            Op::Ne => (a - b).abs() > 1e-9 * b.abs().max(1.0),
            Op::Le => a <= b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Gt => a > b,
        },
        (a, b) => match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            _ => false,
        },
    }
}

/// Check every rule against a report (and a baseline, for the rules that need one).
pub fn check(
    experiment: &str,
    rules: &[Rule],
    report: &Value,
    baseline: Option<&Value>,
) -> Result<Vec<RuleResult>, GateError> {
    let mut out = Vec::new();
    for r in rules {
        let unit = unit_of(&r.metric).expect("parsed rules name known metrics");
        let actual = metric(report, &r.metric);
        let (limit_val, limit_text) = match &r.limit {
            Limit::Value(v) => (Some(v.clone()), show(&Some(v.clone()), unit)),
            Limit::Baseline { factor, offset } => {
                let b = baseline.ok_or_else(|| GateError::NoBaseline {
                    rule: r.text.clone(),
                })?;
                let base = metric(b, &r.metric);
                let limit = match &base {
                    Some(Val::Num(x)) => Some(Val::Num(x * factor + offset)),
                    other => other.clone(),
                };
                let text = format!("{} (baseline {})", show(&limit, unit), show(&base, unit));
                (limit, text)
            }
        };
        let ok = match (&actual, &limit_val) {
            (Some(a), Some(l)) => compare(a, r.op, l),
            _ => false,
        };
        out.push(RuleResult {
            experiment: experiment.to_string(),
            rule: r.text.clone(),
            ok,
            actual: show(&actual, unit),
            limit: format!("{} {}", r.op.as_str(), limit_text),
        });
    }
    Ok(out)
}

/// The reports under `path`, read as `faultline compare` reads its arguments: one report (a
/// report.json, a run directory, or an experiment's directory and its `latest` run), or the
/// `latest` run of each experiment in a suite's results directory.
pub fn collect(path: &Path) -> Result<Vec<LoadedReport>, GateError> {
    Ok(match load_input(path)? {
        Input::Run(r) => vec![r],
        Input::Suite(s) => s.runs,
    })
}

/// The baseline for an experiment: `--baseline` is one report (used for every experiment),
/// or a directory of `<experiment>.json` (as `results/baselines/`) or of suite results.
pub fn baseline_for(baseline: &Path, experiment: &str) -> Result<Value, GateError> {
    if let Ok(Input::Run(r)) = load_input(baseline) {
        return Ok(r.report);
    }
    for candidate in [
        baseline.join(format!("{experiment}.json")),
        baseline.join(experiment).join("latest").join("report.json"),
        baseline.join(experiment).join("report.json"),
    ] {
        if candidate.is_file() {
            return Ok(read_report(&candidate)?.report);
        }
    }
    Err(GateError::MissingBaseline {
        experiment: experiment.to_string(),
        dir: baseline.to_owned(),
    })
}

/// The gate's verdict for people: one line per rule, the broken ones marked.
pub fn render_text(outcomes: &[RuleResult]) -> String {
    let mut s = String::new();
    let width = outcomes.iter().map(|o| o.rule.len()).max().unwrap_or(0);
    let mut last = None;
    for o in outcomes {
        if last != Some(&o.experiment) {
            let _ = writeln!(s, "{}:", o.experiment);
            last = Some(&o.experiment);
        }
        let _ = writeln!(
            s,
            "  {}  {:width$}  actual {}, limit {}",
            if o.ok { "ok  " } else { "FAIL" },
            o.rule,
            o.actual,
            o.limit
        );
    }
    let broken = outcomes.iter().filter(|o| !o.ok).count();
    let _ = writeln!(
        s,
        "gate: {} of {} rules held{}",
        outcomes.len() - broken,
        outcomes.len(),
        if broken == 0 {
            String::new()
        } else {
            format!(", {broken} broken")
        }
    );
    s
}

/// Escaped for XML text and attributes: as for HTML, less the control characters XML 1.0
/// forbids.
fn xml_escape(s: &str) -> String {
    let allowed: String = s
        .chars()
        .filter(|c| (*c as u32) >= 0x20 || matches!(c, '\t' | '\n' | '\r'))
        .collect();
    crate::check::html_escape(&allowed)
}

/// JUnit XML: one test suite per experiment, one test case per rule, a `<failure>` for each
/// broken rule.
pub fn render_junit(outcomes: &[RuleResult]) -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = outcomes.iter().filter(|o| !o.ok).count();
    let _ = writeln!(
        s,
        "<testsuites name=\"faultline gate\" tests=\"{}\" failures=\"{failures}\">",
        outcomes.len()
    );
    let mut experiments: Vec<&str> = Vec::new();
    for o in outcomes {
        if !experiments.contains(&o.experiment.as_str()) {
            experiments.push(&o.experiment);
        }
    }
    for e in experiments {
        let cases: Vec<&RuleResult> = outcomes.iter().filter(|o| o.experiment == e).collect();
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">",
            xml_escape(e),
            cases.len(),
            cases.iter().filter(|o| !o.ok).count()
        );
        for o in cases {
            let _ = write!(
                s,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml_escape(e),
                xml_escape(&o.rule)
            );
            if o.ok {
                s.push_str("/>\n");
            } else {
                let msg = format!("actual {}, limit {}", o.actual, o.limit);
                let _ = writeln!(
                    s,
                    ">\n      <failure message=\"{}\" type=\"gate\">{}</failure>\n    </testcase>",
                    xml_escape(&msg),
                    xml_escape(&format!("{}: {msg}", o.rule))
                );
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({
            "schema": "faultline.report/v1",
            "experiment": {"name": "quickstart"},
            "verdict": "valid",
            "passed": true,
            "aborted": false,
            "ops": {"ok": 900, "fail": 50, "info": 50},
            "availability": {"overall": 0.9, "steady": 0.999, "faulted": 0.7, "after_heal": 0.95},
            "throughput": {"ok_per_s": 450.0},
            "failover": {
                "recovery_ms": {"p50": 200.0, "p99": 400.0, "max": 400.0},
                "election_ms": {"p50": 150.0, "p99": null, "max": null},
                "client_lag_ms": {"p50": 20.0, "p99": 30.0, "max": 30.0}
            },
            "latency_all_us": {"count": 900, "p50": 1000.0, "p90": 2000.0, "p99": 9000.0, "p999": 20000.0, "max": 30000.0},
            "consistency": {"violations": [{"kind": "lost-write"}], "violations_omitted": 2, "two_leaders": [], "lost_writes": 3, "stale_reads": 0, "never_written": 0},
            "fault_timing": {"late_us": {"p50": 500.0, "p99": 900.0, "max": 900.0}},
            "unexpected_exits": []
        })
    }

    #[test]
    fn rules_parse_units_and_baselines() {
        let r = parse_rule("recovery_p99 <= 1s").unwrap();
        assert_eq!(r.op, Op::Le);
        assert_eq!(r.limit, Limit::Value(Val::Num(1000.0)));
        let r = parse_rule("latency_p99<=250ms").unwrap();
        assert_eq!(r.limit, Limit::Value(Val::Num(250_000.0)));
        let r = parse_rule("availability >= 99%").unwrap();
        assert_eq!(r.limit, Limit::Value(Val::Num(0.99)));
        let r = parse_rule("throughput >= baseline * 0.9").unwrap();
        assert_eq!(
            r.limit,
            Limit::Baseline {
                factor: 0.9,
                offset: 0.0
            }
        );
        let r = parse_rule("recovery_p50 <= baseline + 50ms").unwrap();
        assert_eq!(
            r.limit,
            Limit::Baseline {
                factor: 1.0,
                offset: 50.0
            }
        );
        assert_eq!(
            parse_rule("verdict == valid").unwrap().limit,
            Limit::Value(Val::Text("valid".into()))
        );
        assert!(parse_rule("verdict >= valid")
            .unwrap_err()
            .contains("== or !="));
        assert!(parse_rule("recovery <= 1s")
            .unwrap_err()
            .contains("unknown metric `recovery`"));
        assert!(parse_rule("availability 0.99")
            .unwrap_err()
            .contains("METRIC OP VALUE"));
        assert!(parse_rule("recovery_p99 <= soon")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_rule("throughput >= baseline / 2")
            .unwrap_err()
            .contains("after `baseline`"));
    }

    #[test]
    fn rule_errors_carry_file_line_and_column() {
        let text = "# gate\nrules:\n  - violations == 0\n  - recovery_p99 <= later\n";
        match parse_rules(Path::new("gate.yaml"), text) {
            Err(GateError::Rule {
                line,
                column,
                message,
                ..
            }) => {
                assert_eq!((line, column), (4, 5));
                assert!(message.contains("later"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let e = parse_rules(Path::new("g.yaml"), "rule:\n  - a == 1\n").unwrap_err();
        assert!(e.to_string().starts_with("g.yaml:1:1: "), "{e}");
        let e = parse_rules(Path::new("g.yaml"), "rules: []\n").unwrap_err();
        assert!(e.to_string().contains("at least one rule"), "{e}");
    }

    #[test]
    fn rules_hold_or_break_on_the_numbers() {
        let rules = parse_rules(
            Path::new("gate.yaml"),
            "rules:\n  - violations == 0\n  - availability >= 0.85\n  - recovery_p99 <= 1s\n  - election_p99 <= 1s\n  - verdict == valid\n  - throughput >= baseline * 0.9\n  - latency_p99 <= baseline * 1.2\n",
        )
        .unwrap();
        let mut base = report();
        base["throughput"]["ok_per_s"] = json!(600.0);
        base["latency_all_us"]["p99"] = json!(8000.0);
        let out = check("quickstart", &rules, &report(), Some(&base)).unwrap();
        let verdicts: Vec<(&str, bool)> = out.iter().map(|o| (o.rule.as_str(), o.ok)).collect();
        assert_eq!(
            verdicts,
            vec![
                ("violations == 0", false),
                ("availability >= 0.85", true),
                ("recovery_p99 <= 1s", true),
                // No value: broken, not passed.
                ("election_p99 <= 1s", false),
                ("verdict == valid", true),
                ("throughput >= baseline * 0.9", false),
                ("latency_p99 <= baseline * 1.2", true),
            ]
        );
        assert_eq!(out[0].actual, "3");
        assert_eq!(out[3].actual, "none");
        assert_eq!(out[5].limit, ">= 540.0/s (baseline 600.0/s)");
        // A baseline rule with no baseline is an input error.
        assert!(matches!(
            check("quickstart", &rules, &report(), None),
            Err(GateError::NoBaseline { .. })
        ));
    }

    #[test]
    fn text_and_junit_exports() {
        let outcomes = vec![
            RuleResult {
                experiment: "quickstart".into(),
                rule: "violations == 0".into(),
                ok: true,
                actual: "0".into(),
                limit: "== 0".into(),
            },
            RuleResult {
                experiment: "quickstart".into(),
                rule: "recovery_p99 <= 1s".into(),
                ok: false,
                actual: "1200.0 ms".into(),
                limit: "<= 1000.0 ms".into(),
            },
        ];
        assert_eq!(
            render_text(&outcomes),
            "quickstart:\n  ok    violations == 0     actual 0, limit == 0\n  FAIL  recovery_p99 <= 1s  actual 1200.0 ms, limit <= 1000.0 ms\ngate: 1 of 2 rules held, 1 broken\n"
        );
        let xml = String::from_utf8(render_junit(&outcomes)).unwrap();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <testsuites name=\"faultline gate\" tests=\"2\" failures=\"1\">\n\
             \x20 <testsuite name=\"quickstart\" tests=\"2\" failures=\"1\">\n\
             \x20   <testcase classname=\"quickstart\" name=\"violations == 0\"/>\n\
             \x20   <testcase classname=\"quickstart\" name=\"recovery_p99 &lt;= 1s\">\n\
             \x20     <failure message=\"actual 1200.0 ms, limit &lt;= 1000.0 ms\" type=\"gate\">recovery_p99 &lt;= 1s: actual 1200.0 ms, limit &lt;= 1000.0 ms</failure>\n\
             \x20   </testcase>\n\
             \x20 </testsuite>\n\
             </testsuites>\n"
        );
    }
}
