//! `docs/report.schema.json` against real reports: short real runs (a fault-free one, the
//! quickstart with a primary kill, and Multi-Paxos with its stale-local-reads bug planted,
//! whose report lists violations with counterexamples) must validate, and the schema must be strict enough
//! that a field added to the report without being documented fails here.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema_json() -> Value {
    let path = repo().join("docs/report.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The compiled schema.
fn validator() -> (boon::Schemas, boon::SchemaIndex) {
    const URL: &str = "file:///faultline/docs/report.schema.json";
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource(URL, schema_json()).unwrap();
    let index = compiler
        .compile(URL, &mut schemas)
        .unwrap_or_else(|e| panic!("docs/report.schema.json does not compile: {e:#}"));
    (schemas, index)
}

/// Validate one report; the error lists every failing location.
pub(crate) fn validate(report: &Value) -> Result<(), String> {
    let (schemas, index) = validator();
    schemas
        .validate(report, index)
        .map_err(|e| format!("{e:#}"))
}

/// The real runs, each `(name, report)`, run once for every test of this file (in parallel:
/// about five seconds in all).
fn reports() -> &'static [(String, Value)] {
    static REPORTS: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    REPORTS.get_or_init(|| {
        let quickstart = repo().join("experiments/quickstart.yaml");
        let stale_reads = repo().join("experiments/paxos/bug-stale-local-reads.yaml");
        let runs: Vec<(&str, PathBuf, &str, Vec<&str>)> = vec![
            (
                "no faults",
                quickstart.clone(),
                "quickstart",
                vec!["--set", "duration=2s", "--set", "faults=[]"],
            ),
            (
                "primary kill",
                quickstart,
                "quickstart",
                vec![
                    "--set",
                    "duration=4s",
                    "--set",
                    "workload.rate=200/s",
                    "--set",
                    "faults=[{at: 1s, kill: primary, restart_after: 1s}]",
                ],
            ),
            (
                "stale reads",
                stale_reads,
                "paxos-bug-stale-local-reads",
                vec![
                    "--set",
                    "duration=4s",
                    "--set",
                    "faults=[{at: 1s, kill: leader, restart_after: 1s}]",
                ],
            ),
        ];
        std::thread::scope(|s| {
            let handles: Vec<_> = runs
                .iter()
                .map(|(what, file, name, args)| {
                    s.spawn(move || {
                        let dir = tempfile::tempdir().unwrap();
                        let out = common::run(dir.path(), file, args);
                        let run = common::latest(dir.path(), name);
                        assert!(
                            run.join("report.json").is_file(),
                            "{what}: no report\n{}",
                            common::stderr(&out)
                        );
                        (what.to_string(), common::report(&run))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    })
}

#[test]
fn real_reports_validate_against_the_schema() {
    for (what, report) in reports() {
        if let Err(e) = validate(report) {
            panic!("{what}: report.json does not match docs/report.schema.json:\n{e}");
        }
    }
    // Between them the runs fill in the parts of the schema that are empty lists or nulls in
    // a quiet run: failover rows, applied faults, and violations.
    let any = |f: &dyn Fn(&Value) -> bool| reports().iter().any(|(_, r)| f(r));
    assert!(any(&|r| r["latency_all_us"].is_object()));
    assert!(any(&|r| !r["failover"]["events"]
        .as_array()
        .unwrap()
        .is_empty()));
    assert!(any(&|r| !r["faults"].as_array().unwrap().is_empty()));
    assert!(any(&|r| r["failover"]["recovery_ms"]["p50"].is_null()));
    assert!(any(&|r| r["consistency"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["counterexample"].is_object())));
}

#[test]
fn an_undocumented_or_missing_field_fails_validation() {
    let (_, report) = reports()
        .iter()
        .find(|(what, _)| what == "primary kill")
        .unwrap();
    type Change = fn(&mut Value);
    let drifts: [(&str, Change); 6] = [
        ("a new top-level field", |r| r["new_metric"] = 1.into()),
        ("a new field in a metrics object", |r| {
            r["availability"]["p_new"] = 0.5.into()
        }),
        ("a new field in a failover row", |r| {
            r["failover"]["events"][0]["extra"] = true.into()
        }),
        ("a new field in the balancer totals", |r| {
            r["balancer"]["totals"]["extra"] = 0.into()
        }),
        ("a missing field", |r| {
            r.as_object_mut().unwrap().remove("throughput");
        }),
        ("a null where a number is required", |r| {
            r["ops"]["ok"] = Value::Null
        }),
    ];
    for (what, change) in drifts {
        let mut r = report.clone();
        change(&mut r);
        assert!(validate(&r).is_err(), "{what} passed validation");
    }
}

/// Every field the schema lists carries a description, or refers to a definition that has
/// one.
#[test]
fn every_field_in_the_schema_is_described() {
    let schema = schema_json();
    let defs = schema["$defs"].as_object().unwrap();
    let mut undescribed = Vec::new();
    fn walk(node: &Value, at: &str, defs: &serde_json::Map<String, Value>, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    for (name, prop) in props {
                        let described = prop.get("description").is_some()
                            || prop["$ref"]
                                .as_str()
                                .and_then(|r| r.strip_prefix("#/$defs/"))
                                .and_then(|d| defs.get(d))
                                .is_some_and(|d| d.get("description").is_some());
                        if !described {
                            out.push(format!("{at}/properties/{name}"));
                        }
                    }
                }
                for (k, v) in map {
                    walk(v, &format!("{at}/{k}"), defs, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{at}/{i}"), defs, out);
                }
            }
            _ => {}
        }
    }
    walk(&schema, "#", defs, &mut undescribed);
    assert!(undescribed.is_empty(), "undescribed: {undescribed:#?}");
}
