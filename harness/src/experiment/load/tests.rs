//! Tests of experiment loading: good files, bad input with its location, overrides, suites.

use super::*;

const GOOD: &str = "\
name: t
seed: 7
duration: 2s
target:
  kind: primary-backup
  nodes: 3
workload:
  kind: register
  keys: 4
  rate: 500/s
faults:
  - { at: 1s, kill: leader, restart_after: 500ms }
";

fn parse(text: &str) -> Result<Loaded, ExperimentError> {
    parse_experiment(Path::new("x.yaml"), text, &[], None)
}

/// Every experiment the repository ships loads under today's rules (a check added to the
/// loader must not strand a committed file).
#[test]
fn every_committed_experiment_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    let mut dirs = vec![root];
    let mut loaded = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml")
                && path.file_name().is_some_and(|n| n != "gate.yaml")
            {
                load_experiment(&path, &[], None)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                loaded += 1;
            }
        }
    }
    assert!(loaded > 50, "only {loaded} experiments found");
}

#[test]
fn names_are_one_plain_path_component() {
    use super::super::schema::name_problem;
    for ok in ["quickstart", "raft-kill-leader", "bench_1.2", "N9"] {
        assert_eq!(name_problem(ok), None, "{ok}");
    }
    let long = "x".repeat(101);
    for bad in [
        "", ".", "..", "../x", "a/b", "/abs", ".hidden", "-flag", "a b", "é", &long,
    ] {
        assert!(name_problem(bad).is_some(), "{bad:?} accepted");
    }
}

#[test]
fn good_file_parses_with_defaults() {
    let l = parse(GOOD).unwrap();
    assert_eq!(l.seed, 7);
    assert_eq!(l.experiment.target.nodes, 3);
    assert_eq!(l.experiment.faults.len(), 1);
    assert_eq!(
        l.experiment.checks,
        [
            super::super::CheckKind::Linearizable,
            super::super::CheckKind::LostWrites,
            super::super::CheckKind::StaleReads,
            super::super::CheckKind::ElectionSafety,
        ]
    );
}

/// Each bad input gives an error at the offending line and column, naming the field.
#[test]
fn errors_name_file_line_column_and_field() {
    let cases: &[(&str, &str, (usize, usize), &str)] = &[
        (
            "nodes: 3",
            "nodes: 0",
            (6, 10),
            "target.nodes: nodes must be between 1 and 15",
        ),
        (
            "keys: 4",
            "keys: 4\n  colour: red",
            (10, 3),
            "unknown field `colour`",
        ),
        (
            "duration: 2s",
            "duration: 2 parsecs",
            (3, 11),
            "invalid duration `2 parsecs`",
        ),
        (
            "kind: primary-backup",
            "kind: zookeeper",
            (5, 9),
            "unknown variant `zookeeper`",
        ),
        ("rate: 500/s", "rate: fast", (10, 9), "invalid rate `fast`"),
        (
            "kill: leader",
            "kill: chief",
            (12, 21),
            "unknown selector `chief`",
        ),
    ];
    for (from, to, (line, col), needle) in cases {
        let text = GOOD.replacen(from, to, 1);
        let err = parse(&text).unwrap_err();
        let msg = err.to_string();
        match &err {
            ExperimentError::Yaml {
                line: l, column: c, ..
            } => {
                assert_eq!((*l, *c), (*line, *col), "{to}: {msg}")
            }
            other => panic!("{to}: expected a located error, got {other:?}"),
        }
        assert!(msg.starts_with("x.yaml:"), "{msg}");
        assert!(msg.contains(needle), "{to}: `{msg}` lacks `{needle}`");
    }
}

#[test]
fn malformed_yaml_is_located() {
    let err = parse("name: t\ntarget: [unclosed\n").unwrap_err();
    match &err {
        ExperimentError::Yaml { line, column, .. } => {
            assert!(*line >= 2 && *column >= 1, "{err}")
        }
        other => panic!("expected a located error, got {other:?}"),
    }
}

#[test]
fn checks_across_fields_are_located() {
    let text = "name: t\nduration: 5s\nnetwork: { mode: direct }\nfaults:\n  # first\n  \
                    - { at: 1s, kill: leader }\n  -   { at: 2s, partition: halves, duration: 1s }\n\
                    target: { kind: raft, nodes: 3 }\nworkload: { kind: register, rate: 10/s }\n";
    match parse(text).unwrap_err() {
        ExperimentError::Yaml {
            line,
            column,
            message,
            ..
        } => {
            assert_eq!((line, column), (7, 7), "{message}");
            assert!(message.starts_with("faults[1]:"), "{message}");
        }
        other => panic!("expected a located error, got {other:?}"),
    }
    assert_eq!(locate("a: 1\nname:   ''\n", "name", None), Some((2, 9)));
    assert_eq!(
        locate("faults: [{}, {}]\n", "faults", Some(1)),
        Some((1, 9))
    );
    assert_eq!(
        locate("faults:\n- x\nname: y\n", "faults", Some(3)),
        Some((1, 8))
    );
    assert_eq!(locate("name: t\n", "faults", Some(0)), None);
    // A value from `--set` is named by its flag, not placed on a line that holds another.
    let o: Override = "name=' '".parse().unwrap();
    let err = parse_experiment(Path::new("x.yaml"), GOOD, &[o], None).unwrap_err();
    assert!(
        matches!(&err, ExperimentError::Override { set, .. } if set == "name=' '"),
        "{err:?}"
    );
}

#[test]
fn the_open_loop_is_bounded_in_flight() {
    use crate::experiment::Load;
    let max = |text: &str| match parse(text).unwrap().experiment.workload.load {
        Load::Open { max_in_flight, .. } => max_in_flight,
        other => panic!("{other:?}"),
    };
    // Default: twice rate x timeout (500/s x 500 ms), at least 1,000.
    assert_eq!(max(GOOD), 1000);
    let fast = GOOD.replace("rate: 500/s", "rate: 20000/s");
    assert_eq!(max(&fast), 20_000);
    let set = GOOD.replace("rate: 500/s", "rate: 500/s\n  max_in_flight: 64");
    assert_eq!(max(&set), 64);
    for (text, needle) in [
        (
            GOOD.replace("rate: 500/s", "rate: 500/s\n  max_in_flight: 0"),
            "max_in_flight: must be at least 1",
        ),
        (
            GOOD.replace("rate: 500/s", "concurrency: 4\n  max_in_flight: 8"),
            "max_in_flight: bounds an open loop",
        ),
    ] {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
        // Placed at the field.
        assert!(err.starts_with("x.yaml:11:3:"), "{err}");
    }
}

#[test]
fn fault_entries_are_validated() {
    for (entry, needle) in [
        ("{ at: 1s, kill: leader, pause: random }", "one verb"),
        ("{ at: 1s, pause: leader }", "needs `duration`"),
        ("{ kill: leader }", "needs `at` or `every`"),
        ("{ at: 1s, every: 2s, kill: leader }", "not both"),
        ("{ at: 1s, partition: halves }", "needs `duration`"),
        (
            "{ at: 1s, partition: triangles, duration: 1s }",
            "unknown partition",
        ),
        (
            "{ at: 1s, partition: halves, kill: leader, duration: 1s }",
            "one verb",
        ),
        (
            "{ at: 1s, link: { from: n1, to: n2 }, duration: 1s }",
            "needs one of cut",
        ),
        (
            "{ at: 1s, link: { from: n1, to: n2, delay: 1ms, lag: 2 }, duration: 1s }",
            "lag",
        ),
        (
            "{ at: 1s, partition: halves, cut: sever, duration: 1s }",
            "sever",
        ),
        (
            "{ every: 2s, kill: leader, one-of: [{ pause: leader, duration: 1s }] }",
            "`kill` goes inside an alternative",
        ),
        (
            "{ every: 2s, one-of: [{ kill: leader }, { at: 3s, pause: random, duration: 1s }] }",
            "one-of[1]: the timing",
        ),
        (
            "{ every: 2s, one-of: [{ kill: leader }, { pause: random }] }",
            "one-of[1]: `pause` needs `duration`",
        ),
        ("{ every: 2s, one-of: [] }", "at least one alternative"),
    ] {
        let text = GOOD.replacen("{ at: 1s, kill: leader, restart_after: 500ms }", entry, 1);
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(needle), "{entry}: {err}");
        assert!(err.starts_with("x.yaml:12:"), "{entry}: {err}");
    }
}

#[test]
fn balancer_weights_must_name_nodes_of_the_cluster() {
    let weighted = format!("{GOOD}balancer:\n  kind: weighted\n  weights:\n    n1: 3\n    n4: 1\n");
    let err = parse(&weighted).unwrap_err();
    match &err {
        ExperimentError::Yaml { line, column, .. } => assert_eq!((*line, *column), (17, 5)),
        other => panic!("expected a located error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("balancer.weights: no node `n4`") && msg.contains("n1..n3"),
        "{msg}"
    );
    let flow = format!("{GOOD}balancer: {{ kind: weighted, weights: {{ n11: 1, n1: 2 }} }}\n");
    match parse(&flow).unwrap_err() {
        ExperimentError::Yaml { line, column, .. } => assert_eq!((line, column), (13, 40)),
        other => panic!("expected a located error, got {other:?}"),
    }
    let ok = weighted.replace("n4: 1", "n3: 1");
    assert_eq!(
        parse(&ok).unwrap().experiment.balancer.params.weights.len(),
        2
    );
    // Five nodes from the command line make n4 a member.
    let five: Override = "target.nodes=5".parse().unwrap();
    assert!(parse_experiment(Path::new("x.yaml"), &weighted, &[five], None).is_ok());
}

#[test]
fn slow_faults_parse_and_are_checked() {
    let text = GOOD.replacen(
        "{ at: 1s, kill: leader, restart_after: 500ms }",
        "{ at: 1s, slow: follower, duration: 2s, burst: 20ms, period: 100ms }",
        1,
    );
    let f = &parse(&text).unwrap().experiment.faults[0];
    assert_eq!(f.action, crate::experiment::FaultAction::Slow);
    assert_eq!(f.selector, crate::experiment::Selector::Follower);
    assert_eq!(
        f.burst.map(|b| b.0),
        Some(std::time::Duration::from_millis(20))
    );
    for (entry, needle) in [
        ("{ at: 1s, slow: random, burst: 20ms }", "needs `duration`"),
        ("{ at: 1s, slow: random, duration: 1s }", "needs `burst`"),
        (
            "{ at: 1s, slow: random, duration: 1s, burst: 100ms }",
            "must be shorter than `period` (100ms)",
        ),
        (
            "{ at: 1s, pause: random, duration: 1s, burst: 10ms }",
            "`burst` does not apply to `pause`",
        ),
    ] {
        let text = GOOD.replacen("{ at: 1s, kill: leader, restart_after: 500ms }", entry, 1);
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(needle), "{entry}: {err}");
        assert!(err.starts_with("x.yaml:12:"), "{entry}: {err}");
    }
}

#[test]
fn one_of_parses_its_alternatives_with_the_entry_timing() {
    let text = GOOD.replacen(
        "{ at: 1s, kill: leader, restart_after: 500ms }",
        "{ every: 2s, from: 1s, until: 9s, one-of: [{ kill: leader, restart_after: 1s }, \
             { pause: random, duration: 500ms }, { partition: halves, duration: 1s }] }",
        1,
    );
    let l = parse(&text).unwrap();
    let f = &l.experiment.faults[0];
    let actions: Vec<&str> = f.choices.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(actions, ["kill", "pause", "partition"]);
    assert!(f.choices.iter().all(|c| c.when == f.when));
    assert!(f.touches_network());
    // A network alternative needs the proxy like a plain network fault.
    let direct = format!("{text}network: {{ mode: direct }}\n");
    let err = parse(&direct).unwrap_err().to_string();
    assert!(
        err.contains("faults[0]: `partition` needs the link proxy"),
        "{err}"
    );
}

#[test]
fn network_faults_parse_and_need_the_proxy() {
    let text = GOOD.replacen(
        "{ at: 1s, kill: leader, restart_after: 500ms }",
        "{ at: 1s, partition: {isolate: leader, direction: in}, cut: reset, duration: 2s }",
        1,
    );
    let l = parse(&text).unwrap();
    let f = &l.experiment.faults[0];
    assert_eq!(f.action, crate::experiment::FaultAction::Partition);
    assert!(matches!(
        f.net,
        Some(crate::experiment::NetFault::Partition {
            cut: crate::experiment::CutMode::Reset,
            ..
        })
    ));
    let direct = format!("{text}network: {{ mode: direct }}\n");
    let err = parse(&direct).unwrap_err().to_string();
    assert!(err.contains("faults[0]") && err.contains("direct"), "{err}");
}

#[test]
fn overrides_apply_and_are_checked() {
    let o: Override = "target.nodes=5".parse().unwrap();
    let l = parse_experiment(Path::new("x.yaml"), GOOD, &[o], Some(99)).unwrap();
    assert_eq!(l.experiment.target.nodes, 5);
    assert_eq!(l.seed, 99);
    assert_eq!(l.as_run["seed"], Value::from(99u64));
    assert_eq!(l.as_run["target"]["nodes"], Value::from(5));
    let bad: Override = "target.nodes=0".parse().unwrap();
    let err = parse_experiment(Path::new("x.yaml"), GOOD, &[bad], None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--set target.nodes=0") && err.contains("between 1 and 15"),
        "{err}"
    );
    let unknown: Override = "workload.colour=red".parse().unwrap();
    let err = parse_experiment(Path::new("x.yaml"), GOOD, &[unknown], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `colour`"), "{err}");
    assert!("nodes".parse::<Override>().is_err());
}

/// Every experiment the repository ships loads (a gate's rules file, `gate.yaml`, is not an
/// experiment), and its target kind is one the registry knows by the name it was written with.
#[test]
fn every_shipped_experiment_loads() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml")
                && path.file_name().is_some_and(|n| n != "gate.yaml")
            {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(
        files.len() > 50,
        "{} experiments under {}",
        files.len(),
        root.display()
    );
    for path in &files {
        let loaded =
            load_experiment(path, &[], None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let written = loaded.as_run["target"]["kind"].as_str().unwrap_or_default();
        assert_eq!(
            loaded.experiment.target.kind.name,
            written,
            "{}",
            path.display()
        );
    }
}
