//! `experiments/primary-backup-async-loss.yaml`: asynchronous replication with the primary
//! killed under write load loses acknowledged writes, and the harness must say so (exit 1).

use crate::common;

use std::collections::BTreeSet;

use faultline::check;
use faultline::rundir::COUNTEREXAMPLES as COUNTEREXAMPLE_DIR;

#[test]
fn async_replication_under_primary_kills_is_caught_losing_writes() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments/primary-backup-async-loss.yaml");
    let out = common::run(dir.path(), &file, &[]);
    let run = common::latest(dir.path(), "primary-backup-async-loss");
    let r = common::report(&run);
    let c = &r["consistency"];
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    assert_eq!(r["verdict"], "invalid");
    assert!(
        c["lost_writes"].as_u64().unwrap() > 0,
        "no lost write found: {}",
        serde_json::to_string_pretty(c).unwrap()
    );
    // Each lost write names the write and the read that shows it.
    let lost: Vec<_> = c["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "lost-write")
        .collect();
    assert!(!lost.is_empty());
    assert!(
        lost[0]["write"].is_u64() && lost[0]["read"].is_u64(),
        "{}",
        lost[0]
    );

    // One counterexample view per invalid key: listed in report.json as
    // counterexamples/<key>.html, and written there in the run directory.
    let invalid_keys: BTreeSet<&str> = c["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        c["keys"]["invalid"].as_u64(),
        Some(invalid_keys.len() as u64)
    );
    let listed: BTreeSet<&str> = r["counterexamples"]
        .as_array()
        .unwrap_or_else(|| panic!("no counterexamples in report.json"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let wanted: BTreeSet<String> = invalid_keys
        .iter()
        .map(|k| {
            format!(
                "{COUNTEREXAMPLE_DIR}/{}",
                check::counterexample_file_name(k)
            )
        })
        .collect();
    assert_eq!(
        listed,
        wanted.iter().map(String::as_str).collect(),
        "invalid keys {invalid_keys:?}"
    );
    for key in &invalid_keys {
        let rel = format!(
            "{COUNTEREXAMPLE_DIR}/{}",
            check::counterexample_file_name(key)
        );
        let html = std::fs::read_to_string(run.join(&rel))
            .unwrap_or_else(|e| panic!("{}: {e}", run.join(&rel).display()));
        assert!(
            html.starts_with("<!DOCTYPE html>") && html.contains(&format!("on key {key}")),
            "{rel}: {}",
            &html[..html.len().min(300)]
        );
    }
    let written = std::fs::read_dir(run.join(COUNTEREXAMPLE_DIR))
        .unwrap()
        .count();
    assert_eq!(
        written,
        invalid_keys.len(),
        "files in {COUNTEREXAMPLE_DIR}/"
    );
}
