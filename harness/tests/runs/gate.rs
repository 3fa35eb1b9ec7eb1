//! `faultline gate` on real runs: a good quickstart run passes every rule (exit 0, JUnit with no
//! failure), a run with planted stale reads fails (exit 1, the broken rule named on stderr and
//! as a JUnit failure), and a bad rules file is a bad-input error with its place.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;

fn gate(run: &Path, rules: &Path, extra: &[&str]) -> Output {
    Command::new(exe())
        .arg("gate")
        .arg(run)
        .arg("--rules")
        .arg(rules)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn gate_passes_a_good_run_and_fails_one_with_planted_stale_reads() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let good = run(
        dir.path(),
        &root.join("experiments/quickstart.yaml"),
        // The quickstart's first kill only: faults after the end of a run are refused.
        &[
            "--set",
            "duration=10s",
            "--set",
            "faults=[{at: 5s, kill: primary, restart_after: 3s}]",
        ],
    );
    assert_eq!(good.status.code(), Some(0), "{}", stderr(&good));
    let good_dir = latest(dir.path(), "quickstart");
    // Multi-Paxos with stale local reads planted: the run itself passes (it expects
    // `invalid`), and the gate's consistency rules must still break.
    let bad = run(
        dir.path(),
        &root.join("experiments/paxos/bug-stale-local-reads.yaml"),
        &[
            "--set",
            "duration=5s",
            "--set",
            "faults=[{at: 1s, kill: leader, restart_after: 1s}]",
        ],
    );
    assert_eq!(bad.status.code(), Some(0), "{}", stderr(&bad));
    let bad_dir = latest(dir.path(), "paxos-bug-stale-local-reads");
    assert_eq!(report(&bad_dir)["verdict"], "invalid");

    let rules = dir.path().join("gate.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - violations == 0\n  - verdict == valid\n  - availability >= 50%\n  - throughput >= baseline * 0.5\n",
    )
    .unwrap();
    let baseline = good_dir.join("report.json");
    let baseline = baseline.to_str().unwrap();

    // Good run, against itself as the baseline.
    let junit = dir.path().join("good.xml");
    let out = gate(
        &good_dir,
        &rules,
        &["--baseline", baseline, "--junit", junit.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("gate: 4 of 4 rules held"), "{text}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"4\" failures=\"0\""), "{xml}");
    assert!(xml.contains("name=\"violations == 0\"/>"), "{xml}");

    // The run with lost writes: the consistency rules break and are named.
    let junit = dir.path().join("bad.xml");
    let out = gate(
        &bad_dir,
        &rules,
        &["--baseline", baseline, "--junit", junit.to_str().unwrap()],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("broken rule `violations == 0`"), "{err}");
    assert!(err.contains("broken rule `verdict == valid`"), "{err}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testcase classname=\"paxos-bug-stale-local-reads\" name=\"violations == 0\">\n      <failure"),
        "{xml}"
    );

    // A relative rule with no baseline, and a rule that does not parse: bad input, placed.
    let out = gate(&good_dir, &rules, &[]);
    assert_eq!(out.status.code(), Some(254), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no baseline was given"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        &rules,
        "rules:\n  - violations == 0\n  - recovery_p99 <= quickly\n",
    )
    .unwrap();
    let out = gate(&good_dir, &rules, &[]);
    assert_eq!(out.status.code(), Some(254), "{}", stderr(&out));
    let want = format!("{}:3:5: ", rules.display());
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    // A path that holds no report.
    let out = gate(dir.path(), &rules, &[]);
    assert_eq!(out.status.code(), Some(254), "{}", stderr(&out));
}

/// The committed rules file and baselines parse, and every experiment of the nightly suite
/// has a baseline.
#[test]
fn committed_gate_rules_and_baselines_fit_the_nightly_suite() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rules = root.join("experiments/gate.yaml");
    let text = std::fs::read_to_string(&rules).unwrap();
    let parsed = faultline::report::gate::parse_rules(&rules, &text).unwrap();
    assert!(parsed.iter().any(|r| r.needs_baseline()));
    let suite = faultline::experiment::load_suite(&root.join("experiments/nightly")).unwrap();
    assert!(!suite.is_empty());
    for file in suite {
        let loaded = faultline::experiment::load_experiment(&file, &[], None).unwrap();
        let name = &loaded.experiment.name;
        let base = faultline::report::gate::baseline_for(&root.join("results/baselines"), name)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            base.pointer("/experiment/name").and_then(|v| v.as_str()),
            Some(name.as_str())
        );
    }
}
