//! `report.html` rendered from a small hand-made run: three nodes, the leader killed and
//! restarted, ops of every outcome, a never-written read on a key that needs escaping.

use super::*;
use crate::check::{self, CheckOptions, Verdict};
use crate::experiment::BalancerCfg;
use crate::history::HistoryLine;
use crate::metrics::{self, MetricsOptions};
use crate::report::{
    balancer, fault_records, ExperimentInfo, FaultTiming, Report, RunInfo, SloResult, SCHEMA,
};

const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

fn events() -> Vec<Event> {
    let lines = [
        r#"{"t":0,"event":"phase","name":"load"}"#.to_string(),
        format!(r#"{{"t":{},"event":"node_start","node":"n1","pid":11}}"#, 1),
        format!(r#"{{"t":{},"event":"node_start","node":"n2","pid":12}}"#, 1),
        format!(r#"{{"t":{},"event":"node_start","node":"n3","pid":13}}"#, 1),
        format!(
            r#"{{"t":{},"event":"role","node":"n1","role":"leader","term":1,"leader":"n1"}}"#,
            10 * MS
        ),
        format!(
            r#"{{"t":{},"event":"role","node":"n2","role":"follower","term":1,"leader":"n1"}}"#,
            10 * MS
        ),
        format!(
            r#"{{"t":{},"event":"role","node":"n3","role":"follower","term":1,"leader":"n1"}}"#,
            10 * MS
        ),
        format!(
            r#"{{"t":{},"event":"fault_start","id":1,"fault":"kill","selector":"leader","nodes":["n1"]}}"#,
            S
        ),
        format!(
            r#"{{"t":{},"event":"fault_applied","id":1,"late_us":120}}"#,
            S + MS
        ),
        format!(
            r#"{{"t":{},"event":"node_exit","node":"n1","status":"signal 9","expected":true}}"#,
            S + MS
        ),
        format!(
            r#"{{"t":{},"event":"role","node":"n2","role":"candidate","term":2,"leader":null}}"#,
            S + 150 * MS
        ),
        format!(
            r#"{{"t":{},"event":"role","node":"n2","role":"leader","term":2,"leader":"n2"}}"#,
            S + 200 * MS
        ),
        format!(
            r#"{{"t":{},"event":"fault_end","id":1,"fault":"kill","nodes":["n1"]}}"#,
            S + 500 * MS
        ),
        // A restart by the fault's healing journals no `node_start`.
        format!(
            r#"{{"t":{},"event":"role","node":"n1","role":"follower","term":2,"leader":"n2"}}"#,
            S + 600 * MS
        ),
        format!(r#"{{"t":{},"event":"phase","name":"stop"}}"#, 2 * S),
    ];
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A history line: `(type, id, f, key, value, t)`.
type Line<'a> = (&'a str, u64, &'a str, &'a str, Option<i64>, u64);

/// Lines paired into a history.
fn history(lines: &[Line]) -> History {
    let parsed = lines.iter().enumerate().map(|(i, (ty, id, f, key, v, t))| {
        let mut j = serde_json::json!({
            "type": ty, "id": id, "client": id % 3, "f": f, "key": key, "t": t,
        });
        if let Some(v) = v {
            j["value"] = (*v).into();
        }
        (i + 1, serde_json::from_value::<HistoryLine>(j).unwrap())
    });
    History::from_lines(parsed, "test").unwrap()
}

fn small_history() -> History {
    history(&[
        ("invoke", 1, "write", "k1", Some(1), 100 * MS),
        ("ok", 1, "write", "k1", Some(1), 102 * MS),
        ("invoke", 2, "read", "k1", None, 300 * MS),
        ("ok", 2, "read", "k1", Some(1), 301 * MS),
        ("invoke", 3, "write", "k1", Some(2), S + 10 * MS),
        ("fail", 3, "write", "k1", Some(2), S + 20 * MS),
        ("invoke", 4, "write", "k1", Some(3), S + 30 * MS),
        ("info", 4, "write", "k1", Some(3), S + 530 * MS),
        ("invoke", 5, "read", "<k&1>", None, S + 700 * MS),
        ("ok", 5, "read", "<k&1>", Some(99), S + 705 * MS),
        ("invoke", 6, "write", "k1", Some(4), S + 800 * MS),
        ("ok", 6, "write", "k1", Some(4), S + 805 * MS),
    ])
}

fn report_of(name: &str, h: &History, events: &[Event]) -> Report {
    let metrics = metrics::compute(h, events, &MetricsOptions::from_events(events, h));
    let consistency = check::check(h, &CheckOptions::default());
    let counterexamples = check::counterexample_pages(&consistency)
        .into_iter()
        .map(|(n, _)| format!("counterexamples/{n}"))
        .collect();
    let faults = fault_records(events);
    Report {
        schema: SCHEMA,
        experiment: ExperimentInfo {
            name: name.into(),
            seed: 7,
            target: "primary-backup".into(),
            nodes: 3,
            duration_s: 2.0,
            settings: Default::default(),
            bugs: vec![],
            backend: "process".into(),
            network: "proxy".into(),
            workload: "register".into(),
            balancer: "leader-aware".into(),
        },
        verdict: consistency.verdict(),
        passed: false,
        expect: None,
        aborted: false,
        abort_reason: None,
        run: RunInfo {
            dir: "/tmp/run".into(),
            started_utc: Some("2026-12-03T00:00:00Z".into()),
            reproduce: Some("faultline run x.yaml --seed 7 --set 'a=<b>'".into()),
            ready_ms: Some(12.0),
            recovered: Some(true),
            complete: true,
        },
        metrics,
        consistency,
        counterexamples,
        slo: vec![SloResult {
            name: "violations".into(),
            limit: "<= 0".into(),
            actual: "1".into(),
            ok: false,
        }],
        fault_timing: FaultTiming::of(&faults),
        faults,
        load: None,
        unexpected_exits: vec![],
        balancer: balancer::analyze(&BalancerCfg::default(), events),
    }
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn page_has_the_timeline_plots_and_tables_with_their_ids() {
    let (h, ev) = (small_history(), events());
    let r = report_of("small", &h, &ev);
    let html = render_html(&r, &h, &ev);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.ends_with("</html>\n"));
    assert!(!html.contains("<script"), "no scripts");
    // Nothing fetched: the only URLs are the SVG namespace.
    assert!(!html.contains("https://"));
    assert_eq!(
        count(&html, "http://"),
        count(&html, "http://www.w3.org/2000/svg")
    );
    for id in [
        "id=\"timeline\"",
        "id=\"throughput\"",
        "id=\"latency\"",
        "id=\"failover\"",
        "id=\"availability\"",
        "id=\"latency-phases\"",
        "id=\"slo\"",
        "id=\"faults\"",
        "id=\"violations\"",
        "id=\"reproduce\"",
    ] {
        assert_eq!(count(&html, id), 1, "{id}");
    }
    assert_eq!(count(&html, "<svg"), 3);
    assert_eq!(count(&html, "</svg>"), 3);
    // One lane per node, with the roles the journal gave and the down period of n1.
    for n in ["n1", "n2", "n3"] {
        assert!(html.contains(&format!("data-node=\"{n}\"")), "{n}");
    }
    assert!(html.contains("class=\"role-leader\""));
    assert!(html.contains("class=\"role-candidate\""));
    assert!(html.contains("class=\"role-follower\""));
    for lane in [
        "<title>n1 down: 1001-1500 ms</title>",
        "<title>n1 starting: 1500-1600 ms</title>",
        "<title>n1 follower: 1600-2000 ms</title>",
    ] {
        assert!(html.contains(lane), "{lane}");
    }
    // The fault: a bar in the fault row, over n1's lane, and shaded in both plots.
    assert_eq!(count(&html, "<rect class=\"fault\""), 1);
    assert!(html.contains(">kill n1</text>"));
    assert_eq!(count(&html, "<rect class=\"fault-hit\""), 1);
    assert_eq!(count(&html, "<rect class=\"fault-shade\""), 2);
    // Every completed op is a point coloured by outcome.
    assert_eq!(count(&html, "<circle class=\"ok\""), 4);
    assert_eq!(count(&html, "<circle class=\"fail\""), 1);
    assert_eq!(count(&html, "<circle class=\"info\""), 1);
    assert!(html.contains("All 6 completed operations drawn."));
    // Throughput bars per outcome.
    assert!(html.contains("<rect class=\"ok\""));
    assert!(html.contains("<rect class=\"fail\""));
    // The failover row with numbers.
    let failover = &html[html.find("id=\"failover\"").unwrap()..];
    let row = &failover[failover.find("<tr><td>1</td>").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("<td class=\"l\">kill</td><td class=\"l\">n1</td><td>1001 ms</td>"),
        "{row}"
    );
    assert!(
        row.contains("<td>199 ms</td>"),
        "election 1.2 s - 1.001 s: {row}"
    );
    // Verdict coloured, not passed.
    assert!(html.contains("<span class=\"verdict invalid\" id=\"verdict\">invalid</span>"));
    assert!(html.contains("FAIL"));
    assert!(!html.contains("id=\"aborted\""));
    // Same inputs, same bytes.
    assert_eq!(html, render_html(&r, &h, &ev));
}

#[test]
fn user_strings_are_escaped_and_violations_link_their_counterexample() {
    let (h, ev) = (small_history(), events());
    let r = report_of("<script>alert('x')</script>", &h, &ev);
    assert_eq!(r.verdict, Verdict::Invalid);
    let html = render_html(&r, &h, &ev);
    assert!(!html.contains("<script>"));
    assert!(html.contains("<h1>faultline: &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</h1>"));
    assert!(html.contains("--set &#39;a=&lt;b&gt;&#39;</pre>"));
    assert!(html.contains("<td class=\"l\">&lt;= 0</td>"));
    let violations = &html[html.find("id=\"violations\"").unwrap()..];
    assert!(
        violations
            .contains("<td class=\"l\">never-written</td><td class=\"l\">&lt;k&amp;1&gt;</td>"),
        "{violations}"
    );
    assert!(
        violations.contains("<a href=\"counterexamples/_k_1_.html\">counterexample</a>"),
        "{violations}"
    );
}

#[test]
fn an_unfinished_run_shows_a_banner_and_no_reproduce_command() {
    let (h, ev) = (small_history(), events());
    let mut r = report_of("killed", &h, &ev);
    r.aborted = true;
    r.run.complete = false;
    r.run.reproduce = None;
    r.abort_reason = Some("the harness did not finish <this> run".into());
    let html = render_html(&r, &h, &ev);
    assert!(html.contains(
        "<div class=\"banner\" id=\"aborted\">Incomplete: the harness did not finish this run. \
         the harness did not finish &lt;this&gt; run"
    ));
    assert!(html.contains("(not recorded: the harness did not finish the run)"));
    r.run.complete = true;
    let html = render_html(&r, &h, &ev);
    assert!(html.contains("id=\"aborted\">Aborted: the run was interrupted."));
}

#[test]
fn a_large_history_is_sampled_down_and_the_caption_says_so() {
    let n = 3 * MAX_POINTS as u64;
    let mut lines = Vec::new();
    for i in 0..n {
        let t = i * 100_000;
        lines.push(("invoke", i, "read", "k", None, t));
        let ty = if i % 100 == 0 { "info" } else { "ok" };
        lines.push((ty, i, "read", "k", None, t + 50_000 + i % 7 * 10_000));
    }
    let h = history(&lines);
    let ev = events();
    let r = report_of("big", &h, &ev);
    let html = render_html(&r, &h, &ev);
    let points = count(&html, "<circle ");
    assert!(points <= MAX_POINTS && points > MAX_POINTS / 2, "{points}");
    // Every indeterminate op is kept: there are few.
    assert_eq!(count(&html, "<circle class=\"info\""), (n / 100) as usize);
    assert!(html.contains(&format!(
        "Sampled: {points} of {n} completed operations drawn"
    )));
    assert!(html.len() < 2_000_000, "{} bytes", html.len());
}
