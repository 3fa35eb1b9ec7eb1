//! The checker on whole histories: Porcupine's six key-value files and the golden fixtures
//! (verdict in the name), foreign-format errors with their line numbers, `faultline check`'s
//! exit codes, and the counterexample HTML view (snapshot).

use std::path::{Path, PathBuf};
use std::process::Command;

use faultline::check::{self, CheckOptions, ConsistencyReport, ModelKind, Verdict};
use faultline::history::import::{self, Format, Loaded};

const PORCUPINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/porcupine-kv/");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

/// Load and check a file the way `faultline check` does.
fn check_file(path: &Path, format: Option<Format>, model: Option<ModelKind>) -> ConsistencyReport {
    let loaded = import::load(path, format).unwrap_or_else(|e| panic!("{e}"));
    let mut opts = CheckOptions::default();
    match loaded {
        Loaded::Native(h) => {
            opts.model = model.unwrap_or_default();
            check::check(&h, &opts)
        }
        Loaded::Foreign(f) => {
            opts.model = model.unwrap_or_else(|| faultline::check::ModelKind::default_for(&f));
            match opts.model {
                ModelKind::KvAppend => check::check_kv(&f.to_kv().unwrap(), &opts),
                _ => check::check(&f.to_history().unwrap(), &opts),
            }
        }
    }
}

#[test]
fn porcupine_kv_files_get_their_verdicts() {
    let cases = [
        ("c01-ok", Verdict::Valid),
        ("c01-bad", Verdict::Invalid),
        ("c10-ok", Verdict::Valid),
        ("c10-bad", Verdict::Invalid),
        ("c50-ok", Verdict::Valid),
        ("c50-bad", Verdict::Invalid),
    ];
    for (name, want) in cases {
        let path = PathBuf::from(format!("{PORCUPINE}{name}.txt"));
        // The format and the model are inferred from the content.
        let report = check_file(&path, None, None);
        assert_eq!(report.model, "kv-append", "{name}");
        assert_eq!(report.verdict(), want, "{name}: {:?}", report.notes);
        assert_eq!(report.keys.unknown, 0, "{name}: {:?}", report.notes);
        if want == Verdict::Invalid {
            let v = &report.violations[0];
            let ce = v.counterexample.as_ref().expect("a counterexample");
            assert!(ce.concurrent.iter().any(|o| o.id == ce.offender.id));
            assert!(ce.offender.line.is_some() && ce.offender.text.is_some());
        }
    }
}

/// kv-append's states are strings of hundreds of bytes here, and the memory budget counts
/// them: under budgets too small for some keys, those keys are `unknown` with a note saying
/// so, and the others keep their verdict, never the opposite one.
#[test]
fn porcupine_kv_files_under_small_memory_budgets_are_unknown_never_wrong() {
    let mut unknown = 0;
    let mut decided = 0;
    for name in ["c10-ok", "c10-bad", "c50-ok", "c50-bad"] {
        let kv = import::Foreign::load(&PathBuf::from(format!("{PORCUPINE}{name}.txt")))
            .and_then(|f| f.to_kv())
            .unwrap_or_else(|e| panic!("{e}"));
        for memory in [0, 10 << 10, 100 << 10, 1 << 20] {
            let opts = CheckOptions {
                model: ModelKind::KvAppend,
                max_memory_bytes: memory,
                ..CheckOptions::default()
            };
            let report = check::check_kv(&kv, &opts);
            let wrong = if name.ends_with("-ok") {
                Verdict::Invalid
            } else {
                Verdict::Valid
            };
            assert_ne!(report.verdict(), wrong, "{name} in {memory} bytes");
            assert_eq!(report.keys.unknown, report.notes.len(), "{name}");
            assert!(
                report.notes.iter().all(|n| n.contains("memory budget")),
                "{name}: {:?}",
                report.notes
            );
            if memory == 0 {
                assert_eq!(report.keys.valid, 0, "{name}: valid with no memory");
            }
            unknown += report.keys.unknown;
            decided += report.keys.checked - report.keys.unknown;
        }
    }
    assert!(
        unknown > 0 && decided > 0,
        "{unknown} unknown, {decided} decided"
    );

    let (code, _, stderr) = faultline(&[&format!("{PORCUPINE}c10-ok.txt"), "--memory", "2x"]);
    assert_eq!(code, Some(254), "{stderr}");
    assert!(stderr.contains("bad size \"2x\""), "{stderr}");
}

#[test]
fn golden_fixtures_get_the_verdict_in_their_name() {
    let mut seen = 0;
    for model in ModelKind::ALL {
        let dir = PathBuf::from(format!("{FIXTURES}{model}"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let stem = file.file_stem().unwrap().to_str().unwrap();
            let want = if stem.ends_with("-ok") {
                Verdict::Valid
            } else if stem.ends_with("-bad") {
                Verdict::Invalid
            } else {
                panic!("{}: name must end in -ok or -bad", file.display());
            };
            let report = check_file(&file, None, Some(model));
            assert_eq!(
                report.verdict(),
                want,
                "{}: {:#?}",
                file.display(),
                report.violations
            );
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} fixtures");
}

fn faultline(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_exit_codes_follow_the_verdict() {
    let f = |rel: &str| format!("{FIXTURES}{rel}");
    let p = |name: &str| format!("{PORCUPINE}{name}");
    let cases: Vec<(Vec<String>, i32)> = vec![
        (vec![p("c10-ok.txt")], 0),
        (vec![p("c10-bad.txt")], 1),
        (
            vec![p("c01-ok.txt"), "--format".into(), "porcupine-kv".into()],
            0,
        ),
        (vec![f("register/knossos-vector-ok.edn")], 0),
        (
            vec![
                f("register/reads-flip-back-bad.edn"),
                "--format".into(),
                "jepsen-edn".into(),
                "--model".into(),
                "register".into(),
            ],
            1,
        ),
        (vec![f("register/sequential-ok.jsonl")], 0),
        // Too little memory for any key's search.
        (vec![p("c50-ok.txt"), "--memory".into(), "10KiB".into()], 2),
        // A cas under the register model: the key is unknown.
        (
            vec![
                f("cas-register/cas-chain-ok.edn"),
                "--model".into(),
                "register".into(),
            ],
            2,
        ),
        // Strings under a register model, an append under a register model: bad input.
        (
            vec![p("c01-ok.txt"), "--model".into(), "cas-register".into()],
            254,
        ),
        (vec![f("no-such-file.edn")], 254),
        (
            vec![p("c01-ok.txt"), "--format".into(), "faultline".into()],
            254,
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = faultline(&args);
        assert_eq!(code, Some(want), "{args:?}: {stderr}");
        if want <= 2 {
            let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            for field in [
                "linearizable",
                "lost_writes",
                "stale_reads",
                "never_written",
                "violations",
                "keys",
                "elapsed_ms",
            ] {
                assert!(json.get(field).is_some(), "{args:?}: no {field}");
            }
        } else {
            assert!(
                stderr.starts_with("faultline check: "),
                "{args:?}: {stderr}"
            );
        }
    }
}

#[test]
fn bad_and_truncated_edn_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = "{:process 0, :type :invoke, :f :write, :value 1}\n\
                {:process 0, :type :ok, :f :write, :value 1}\n\
                {:process 1, :type :invoke, :f :read, :value nil}\n\
                {:process 1, :type :ok, :f :read, :value 1}\n";
    let cases = [
        // (what, text, line, words in the message)
        ("truncated map", &good[..good.len() - 12], 4, "not closed"),
        (
            "stray bracket",
            &good.replacen("nil}", "nil]}", 1),
            3,
            "unexpected `]`",
        ),
        (
            "unknown :type",
            &good.replacen(":ok", ":done", 1),
            2,
            ":type :done",
        ),
        (
            "unknown :f",
            &good.replacen(":f :read", ":f :scan", 1),
            3,
            ":f :scan",
        ),
        (
            "orphan completion",
            &good.replacen(":process 1, :type :ok", ":process 7, :type :ok", 1),
            4,
            "no pending invocation",
        ),
        (
            "bad cas value",
            &good
                .replacen(":f :write, :value 1}\n{", ":f :cas, :value 1}\n{", 1)
                .replacen(":ok, :f :write", ":ok, :f :cas", 1),
            1,
            "[from to]",
        ),
        (
            "open string",
            &good.replacen("nil}\n{:process 1", "\"nil}\n{:process 1", 1),
            3,
            "string opened on line 3",
        ),
    ];
    for (what, text, line, needle) in cases {
        let file = dir.path().join("h.edn");
        std::fs::write(&file, text).unwrap();
        let (code, _, stderr) = faultline(&[file.to_str().unwrap()]);
        assert_eq!(code, Some(254), "{what}: {stderr}");
        let want = format!("{}:{line}: ", file.display());
        assert!(stderr.contains(&want), "{what}: `{stderr}` lacks `{want}`");
        assert!(
            stderr.contains(needle),
            "{what}: `{stderr}` lacks `{needle}`"
        );
    }
}

#[test]
fn html_option_writes_one_page_per_invalid_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ce");
    let (code, stdout, stderr) = faultline(&[
        &format!("{PORCUPINE}c10-bad.txt"),
        "--html",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let invalid = json["keys"]["invalid"].as_u64().unwrap() as usize;
    let mut pages: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    assert_eq!(pages.len(), invalid, "{pages:?}");
    for p in &pages {
        let html = std::fs::read_to_string(out.join(p)).unwrap();
        assert!(html.contains("<svg") && html.contains("offender"), "{p}");
        assert!(!html.contains("<script") && !html.contains("src="), "{p}");
    }
}

/// The counterexample page of a small non-linearizable register, compared with the committed
/// `fixtures/html/reads-flip-back-bad.html` (rewrite it with `UPDATE_SNAPSHOTS=1`).
#[test]
fn counterexample_html_snapshot() {
    let file = PathBuf::from(format!("{FIXTURES}register/reads-flip-back-bad.edn"));
    let report = check_file(&file, None, Some(ModelKind::Register));
    let v = report
        .violations
        .iter()
        .find(|v| v.counterexample.is_some())
        .expect("a counterexample");
    let html = check::render_counterexample_html(v);
    // Structure: one lane per client, the offender marked, the prefix listed in order.
    let ce = v.counterexample.as_ref().unwrap();
    assert_eq!(
        html.matches("<text x=\"8\"").count(),
        3,
        "three client lanes"
    );
    assert_eq!(
        html.matches("class=\"ok prefix offender\"").count()
            + html.matches("class=\"ok offender\"").count(),
        1
    );
    assert!(html.contains("<ol class=\"prefix\" start=\"1\">"));
    assert_eq!(html.matches("<li>").count(), ce.prefix.len());
    let pages = check::counterexample_pages(&report);
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].0, "default.html");

    let snapshot = PathBuf::from(format!("{FIXTURES}html/reads-flip-back-bad.html"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &html).unwrap();
    }
    let want = std::fs::read_to_string(&snapshot)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", snapshot.display()));
    assert_eq!(
        html, want,
        "the page changed; review it and rerun with UPDATE_SNAPSHOTS=1"
    );
}
