//! Snapshot tests of the compare exporters on fixed reports, and of reading inputs.

use serde_json::json;

use super::*;

/// The fields of a report that compare reads (the rest of report.json does not matter here).
struct Fake {
    name: &'static str,
    started: &'static str,
    ok: u64,
    availability: f64,
    recovery_ms: Option<f64>,
    p99_us: f64,
}

impl Fake {
    fn report(&self) -> Value {
        let Fake {
            name,
            started,
            ok,
            availability,
            recovery_ms,
            p99_us,
        } = *self;
        json!({
            "schema": "faultline.report/v1",
            "experiment": { "name": name },
            "verdict": if ok > 0 { "valid" } else { "unknown" },
            "passed": ok > 0,
            "run": { "started_utc": started },
            "ops": { "invoked": ok + 10, "ok": ok, "fail": 10, "info": 0 },
            "throughput": { "ok_per_s": ok as f64 / 4.0, "invoked_per_s": (ok + 10) as f64 / 4.0 },
            "availability": {
                "overall": availability,
                "faulted": availability - 0.2,
                "after_heal": null
            },
            "failover": {
                "recovery_ms": { "p50": recovery_ms, "p99": recovery_ms, "max": recovery_ms },
                "election_ms": { "p50": recovery_ms.map(|r| r - 12.0), "p99": null, "max": null }
            },
            "latency_all_us": {
                "count": ok, "p50": 1500.0, "p90": 2000.0, "p99": p99_us, "p999": p99_us * 2.0,
                "max": 20000.0
            },
            "consistency": { "lost_writes": 0, "stale_reads": if ok > 0 { 0 } else { 3 } },
            "fault_timing": { "faults": 1, "late_us": { "p50": 2529.0, "p99": 2529.0, "max": 2529.0 } }
        })
    }

    fn loaded(&self, path: &str) -> LoadedReport {
        LoadedReport {
            path: PathBuf::from(path),
            experiment: self.name.to_string(),
            report: self.report(),
        }
    }
}

const A: Fake = Fake {
    name: "quickstart",
    started: "2026-01-01T00:00:00Z",
    ok: 740,
    availability: 0.925,
    recovery_ms: Some(305.29),
    p99_us: 9445.4,
};

const B: Fake = Fake {
    name: "quickstart",
    started: "2026-01-01T00:01:00Z",
    ok: 814,
    availability: 0.95,
    recovery_ms: Some(250.0),
    p99_us: 8000.0,
};

/// No fault (no recovery), and a verdict of unknown.
const C: Fake = Fake {
    name: "no-faults",
    started: "2026-01-01T00:02:00Z",
    ok: 0,
    availability: 0.5,
    recovery_ms: None,
    p99_us: 0.0,
};

fn two_runs() -> Comparison {
    compare_runs(&[
        ("a.json".into(), A.loaded("a.json")),
        ("b.json".into(), B.loaded("b.json")),
    ])
}

/// Only the rows of these metrics, to keep a snapshot short.
fn only(mut c: Comparison, ids: &[&str]) -> Comparison {
    c.rows.retain(|r| ids.contains(&r.metric.id));
    c
}

fn suites() -> Vec<LoadedSuite> {
    vec![
        LoadedSuite {
            dir: "old".into(),
            runs: vec![
                A.loaded("old/quickstart/latest/report.json"),
                C.loaded("old/no-faults/latest/report.json"),
            ],
        },
        LoadedSuite {
            dir: "new".into(),
            runs: vec![B.loaded("new/quickstart/latest/report.json")],
        },
    ]
}

#[test]
fn table_of_two_runs() {
    assert_eq!(
        render_table(&two_runs()),
        r#"metric                   a.json  b.json         Δ      Δ%
-----------------------  ------  ------  --------  ------
verdict                   valid   valid         -       -
passed                      yes     yes         -       -
ops ok                      740     814       +74  +10.0%
ops fail                     10      10        +0   +0.0%
ops info                      0       0        +0       -
throughput ok/s           185.0   203.5     +18.5  +10.0%
availability             92.50%  95.00%  +2.50 pp   +2.7%
availability faulted     72.50%  75.00%  +2.50 pp   +3.4%
availability after heal       -       -         -       -
recovery p50 ms           305.3   250.0     -55.3  -18.1%
recovery p99 ms           305.3   250.0     -55.3  -18.1%
recovery max ms           305.3   250.0     -55.3  -18.1%
election p50 ms           293.3   238.0     -55.3  -18.9%
election p99 ms               -       -         -       -
latency p50 ms             1.50    1.50     +0.00   +0.0%
latency p99 ms             9.45    8.00     -1.45  -15.3%
latency p99.9 ms          18.89   16.00     -2.89  -15.3%
lost writes                   0       0        +0       -
stale reads                   0       0        +0       -
fault late p99 ms          2.53    2.53     +0.00   +0.0%
"#
    );
}

#[test]
fn markdown_of_two_runs() {
    assert_eq!(
        render_markdown(&two_runs()),
        r#"| metric | a.json | b.json | Δ | Δ% |
|---|---:|---:|---:|---:|
| verdict | valid | valid | - | - |
| passed | yes | yes | - | - |
| ops ok | 740 | 814 | +74 | +10.0% |
| ops fail | 10 | 10 | +0 | +0.0% |
| ops info | 0 | 0 | +0 | - |
| throughput ok/s | 185.0 | 203.5 | +18.5 | +10.0% |
| availability | 92.50% | 95.00% | +2.50 pp | +2.7% |
| availability faulted | 72.50% | 75.00% | +2.50 pp | +3.4% |
| availability after heal | - | - | - | - |
| recovery p50 ms | 305.3 | 250.0 | -55.3 | -18.1% |
| recovery p99 ms | 305.3 | 250.0 | -55.3 | -18.1% |
| recovery max ms | 305.3 | 250.0 | -55.3 | -18.1% |
| election p50 ms | 293.3 | 238.0 | -55.3 | -18.9% |
| election p99 ms | - | - | - | - |
| latency p50 ms | 1.50 | 1.50 | +0.00 | +0.0% |
| latency p99 ms | 9.45 | 8.00 | -1.45 | -15.3% |
| latency p99.9 ms | 18.89 | 16.00 | -2.89 | -15.3% |
| lost writes | 0 | 0 | +0 | - |
| stale reads | 0 | 0 | +0 | - |
| fault late p99 ms | 2.53 | 2.53 | +0.00 | +0.0% |
"#
    );
}

#[test]
fn json_of_two_runs_has_values_and_deltas() {
    let c = only(
        two_runs(),
        &[
            "verdict",
            "ops_ok",
            "availability_overall",
            "election_p99_ms",
        ],
    );
    assert_eq!(
        render_json(&c),
        r#"{
  "schema": "faultline.compare/v1",
  "layout": "runs",
  "columns": [
    {
      "label": "a.json",
      "path": "a.json"
    },
    {
      "label": "b.json",
      "path": "b.json"
    }
  ],
  "rows": [
    {
      "metric": {
        "id": "verdict",
        "label": "verdict",
        "kind": "text",
        "unit": "",
        "better": "none"
      },
      "values": [
        "valid",
        "valid"
      ],
      "deltas": [
        null,
        null
      ]
    },
    {
      "metric": {
        "id": "ops_ok",
        "label": "ops ok",
        "kind": "count",
        "unit": "",
        "better": "higher"
      },
      "values": [
        740,
        814
      ],
      "deltas": [
        null,
        {
          "abs": 74.0,
          "rel": 0.1
        }
      ]
    },
    {
      "metric": {
        "id": "availability_overall",
        "label": "availability",
        "kind": "share",
        "unit": "",
        "better": "higher"
      },
      "values": [
        0.925,
        0.95
      ],
      "deltas": [
        null,
        {
          "abs": 0.025,
          "rel": 0.027027027
        }
      ]
    },
    {
      "metric": {
        "id": "election_p99_ms",
        "label": "election p99 ms",
        "kind": "number",
        "unit": "ms",
        "better": "lower"
      },
      "values": [
        null,
        null
      ],
      "deltas": [
        null,
        null
      ]
    }
  ]
}
"#
    );
}

#[test]
fn markdown_of_two_suites_matches_experiments_by_name() {
    let c = only(compare_suites(&suites()), &["verdict", "recovery_p99_ms"]);
    assert_eq!(
        render_markdown(&c),
        r#"| metric | experiment | old | new | Δ | Δ% |
|---|---|---:|---:|---:|---:|
| verdict | quickstart | valid | valid | - | - |
| verdict | no-faults | unknown | - | - | - |
| recovery p99 ms | quickstart | 305.3 | 250.0 | -55.3 | -18.1% |
| recovery p99 ms | no-faults | - | - | - | - |
"#
    );
}

#[test]
fn table_of_one_suite_has_a_row_per_experiment() {
    let one = LoadedSuite {
        dir: "s".into(),
        runs: vec![
            A.loaded("s/quickstart/latest/report.json"),
            C.loaded("s/no-faults/latest/report.json"),
        ],
    };
    let c = only(
        compare_experiments(&one),
        &[
            "verdict",
            "ops_ok",
            "ops_info",
            "availability_overall",
            "recovery_p99_ms",
            "stale_reads",
        ],
    );
    assert_eq!(
        render_table(&c),
        r#"experiment  verdict       ops ok  ops info     availability  recovery p99 ms  stale reads
----------  -------  -----------  --------  ---------------  ---------------  -----------
quickstart  valid            740         0           92.50%            305.3            0
no-faults   unknown  0 (-100.0%)    0 (+0)  50.00% (-45.9%)                -       3 (+3)
"#
    );
}

#[test]
fn render_dispatches_on_the_format() {
    let c = two_runs();
    assert_eq!(render(&c, Format::Table), render_table(&c).into_bytes());
    assert_eq!(
        render(&c, Format::Markdown),
        render_markdown(&c).into_bytes()
    );
    assert_eq!(render(&c, Format::Json), render_json(&c).into_bytes());
}

#[test]
fn colliding_labels_fall_back_to_the_argument_then_a_number() {
    let labels = unique(vec![
        ("x.json".into(), "a/x.json".into()),
        ("x.json".into(), "b/x.json".into()),
        ("y".into(), "y".into()),
        ("z".into(), "same".into()),
        ("z".into(), "same".into()),
    ]);
    assert_eq!(labels, ["a/x.json", "b/x.json", "y", "same #4", "same #5"]);
}

/// Write `<dir>/<experiment>/<run>/report.json` and point `<experiment>/latest` at the run.
fn write_run(dir: &Path, fake: &Fake, run: &str) -> PathBuf {
    let run_dir = dir.join(fake.name).join(run);
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("report.json"), fake.report().to_string()).unwrap();
    let latest = dir.join(fake.name).join("latest");
    let _ = std::fs::remove_file(&latest);
    std::os::unix::fs::symlink(run, latest).unwrap();
    run_dir
}

#[test]
fn a_suite_directory_is_read_in_the_order_its_runs_started() {
    let dir = tempfile::tempdir().unwrap();
    // "no-faults" sorts first by name, but ran last.
    write_run(dir.path(), &C, "3");
    write_run(dir.path(), &A, "1");
    std::fs::write(dir.path().join("suite-summary.md"), "# not a run").unwrap();
    let c = load(&[dir.path().to_owned()]).unwrap();
    assert_eq!(c.layout, Layout::Experiments);
    let labels: Vec<&str> = c.columns.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["quickstart", "no-faults"]);
}

#[test]
fn runs_are_labelled_by_experiment_and_run_with_latest_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_run(dir.path(), &A, "run-1");
    write_run(dir.path(), &B, "run-2");
    let c = load(&[
        first.join("report.json"),
        dir.path().join("quickstart/latest"),
    ])
    .unwrap();
    assert_eq!(c.layout, Layout::Runs);
    let labels: Vec<&str> = c.columns.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["quickstart/run-1", "quickstart/run-2"]);
    // An experiment's results directory stands for its latest run.
    let c = load(&[first.clone(), dir.path().join("quickstart")]).unwrap();
    assert_eq!(c.columns[1].label, "quickstart/run-2");
}

#[test]
fn bad_inputs_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_run(dir.path(), &A, "1");
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let cases = [
        (dir.path().join("missing.json"), "No such file"),
        (
            file("text.json", "hello"),
            "not a faultline report: not JSON",
        ),
        (
            file("other.json", r#"{"a": 1}"#),
            "not a faultline report: no `schema` field",
        ),
        (
            file("v2.json", r#"{"schema": "faultline.report/v2"}"#),
            "unknown report schema `faultline.report/v2`",
        ),
        (
            file("noname.json", r#"{"schema": "faultline.report/v1"}"#),
            "no `experiment.name`",
        ),
        (empty.clone(), "not a run directory"),
    ];
    for (path, wanted) in cases {
        let err = load(&[good.clone(), path.clone()]).unwrap_err().to_string();
        assert!(
            err.starts_with(&path.display().to_string()) && err.contains(wanted),
            "{}: {err}",
            path.display()
        );
    }
}

#[test]
fn one_run_or_runs_mixed_with_suites_cannot_be_compared() {
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(dir.path(), &A, "1");
    let err = load(std::slice::from_ref(&run)).unwrap_err();
    assert!(matches!(err, CompareError::TooFew(_)), "{err}");
    let err = load(&[run.clone(), dir.path().to_owned()]).unwrap_err();
    assert!(matches!(err, CompareError::Mixed { .. }), "{err}");
    // A suite of one experiment has nothing to compare either.
    let err = load(&[dir.path().to_owned()]).unwrap_err();
    assert!(matches!(err, CompareError::TooFew(_)), "{err}");
}
