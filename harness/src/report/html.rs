//! `report.html`: one self-contained page per run (inline CSS and hand-written SVG, no
//! scripts, nothing fetched), with the verdict, a per-node role and fault timeline,
//! throughput and per-operation latency over time, the tables of `report.json`, and links to
//! the counterexample pages.
//!
//! The SVG is written by hand rather than with a plotting crate: a few rects, circles and
//! `<text>` elements need no font stack, and the output depends only on the inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use self::plots::{latency_svg, throughput_svg, timeline_svg, trim_num, Axis};
use super::Report;
use crate::check::html_escape as esc;
use crate::history::{Event, History};
use crate::metrics::{LatencyByKind, LatencySummary, Percentiles};

/// At most this many operations are drawn in the latency plot; beyond it they are sampled
/// evenly (failed and indeterminate ones kept preferentially), and the caption says so.
pub const MAX_POINTS: usize = 20_000;

/// At most this many violations are listed (the counts above the list stay exact).
const MAX_VIOLATIONS: usize = 200;

const CSS: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1040px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
.verdict{display:inline-block;padding:.1em .6em;border-radius:4px;color:#fff;font-weight:bold}
.verdict.valid{background:#2e7d32}.verdict.invalid{background:#c62828}.verdict.unknown{background:#ef8f00}
.pass{color:#2e7d32;font-weight:bold}.failed{color:#c62828;font-weight:bold}
.banner{background:#fff3cd;border:2px solid #ef8f00;padding:.6em 1em;margin:1em 0;font-weight:bold}
pre{background:#f5f5f5;padding:.5em;overflow-x:auto;white-space:pre-wrap}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em}dt{font-weight:bold}dd{margin:0}
svg{display:block;margin:.5em 0;background:#fff}svg text{font:11px sans-serif;fill:#333}
.caption{color:#555;font-size:.9em}
.lane{fill:#f7f7f7}.grid{stroke:#e3e3e3}.axis{stroke:#888}
.role-leader{fill:#2e7d32;background:#2e7d32}.role-follower{fill:#90caf9;background:#90caf9}
.role-candidate{fill:#ffb74d;background:#ffb74d}.role-recovering{fill:#ce93d8;background:#ce93d8}
.role-unknown,.role-starting{fill:#ccc;background:#ccc}
.role-unreachable{fill:#fff;stroke:#999;stroke-dasharray:3 2;border:1px dashed #999}
.down{fill:#424242;background:#424242}.fault{fill:#e53935;fill-opacity:.85;background:#e53935}.fault-hit{fill:#e53935;fill-opacity:.25;stroke:#e53935}
.fault-shade{fill:#e53935;fill-opacity:.12}
circle.ok{fill:#2e7d32;fill-opacity:.5}circle.info{fill:#ef8f00}circle.fail{fill:#c62828}
rect.ok{fill:#66bb6a}rect.fail{fill:#e53935}rect.info{fill:#ffa726}
.k{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 .8em;vertical-align:middle}
";

/// Render the run's page. The output depends only on the arguments.
pub fn render_html(report: &Report, history: &History, events: &[Event]) -> String {
    let e = &report.experiment;
    let axis = Axis::new(report, history, events);
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>faultline: {name}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n\
         <h1>faultline: {name}</h1>\n",
        name = esc(&e.name)
    );
    header(&mut s, report);
    s.push_str("<h2>Timeline</h2>\n");
    s.push_str(&timeline_svg(report, events, &axis));
    s.push_str(
        "<p class=\"caption\">One lane per node: its role as the observer saw it \
         <span class=\"k role-leader\"></span>leader<span class=\"k role-follower\"></span>\
         follower<span class=\"k role-candidate\"></span>candidate\
         <span class=\"k role-recovering\"></span>recovering<span class=\"k role-starting\"></span>\
         started, role not yet seen<span class=\"k down\"></span>process down\
         <span class=\"k role-unreachable\"></span>unreachable. Top rows: the faults \
         (<span class=\"k fault\"></span>), also shaded over the lanes of the nodes they hit.</p>\n",
    );
    s.push_str("<h2>Throughput</h2>\n");
    s.push_str(&throughput_svg(report, &axis));
    s.push_str(
        "<p class=\"caption\">Operations invoked per second of the load, by outcome \
         <span class=\"k ok\" style=\"background:#66bb6a\"></span>ok\
         <span class=\"k\" style=\"background:#e53935\"></span>fail\
         <span class=\"k\" style=\"background:#ffa726\"></span>info (indeterminate); \
         fault periods shaded.</p>\n",
    );
    s.push_str("<h2>Latency</h2>\n");
    let (svg, caption) = latency_svg(report, history, &axis);
    s.push_str(&svg);
    let _ = writeln!(s, "<p class=\"caption\">{caption}</p>");
    tables(&mut s, report);
    violations(&mut s, report);
    s.push_str("</body>\n</html>\n");
    s
}

fn header(s: &mut String, r: &Report) {
    let e = &r.experiment;
    let v = r.verdict.as_str();
    let _ = writeln!(
        s,
        "<p><span class=\"verdict {v}\" id=\"verdict\">{v}</span> {}{}</p>",
        if r.passed {
            "<span class=\"pass\">PASS</span>"
        } else {
            "<span class=\"failed\">FAIL</span>"
        },
        r.expect.map_or(String::new(), |x| format!(
            " (expected {})",
            match x {
                crate::experiment::Expect::Valid => "valid",
                crate::experiment::Expect::Invalid => "invalid",
            }
        ))
    );
    if r.aborted || !r.run.complete {
        let what = if r.run.complete {
            "Aborted: the run was interrupted."
        } else {
            "Incomplete: the harness did not finish this run."
        };
        let _ = writeln!(
            s,
            "<div class=\"banner\" id=\"aborted\">{what} {} Figures cover what was recorded.</div>",
            esc(r.abort_reason.as_deref().unwrap_or(""))
        );
    }
    let settings = if e.settings.is_empty() {
        String::new()
    } else {
        format!(" {}", serde_json::Value::Object(e.settings.clone()))
    };
    let mut dl: Vec<(&str, String)> = vec![
        (
            "target",
            format!("{} &times;{}{}", esc(&e.target), e.nodes, esc(&settings)),
        ),
        ("seed", e.seed.to_string()),
        ("duration", format!("{} s", e.duration_s)),
        ("workload", esc(&e.workload)),
        ("balancer", esc(&e.balancer)),
        ("network", esc(&e.network)),
    ];
    if !e.bugs.is_empty() {
        dl.push(("bugs", esc(&e.bugs.join(", "))));
    }
    if let Some(t) = &r.run.started_utc {
        dl.push(("started", esc(t)));
    }
    let o = &r.metrics.ops;
    dl.push((
        "operations",
        format!(
            "{} invoked: {} ok, {} fail, {} info; {:.0} ok/s",
            o.invoked, o.ok, o.fail, o.info, r.metrics.throughput.ok_per_s
        ),
    ));
    dl.push(("ready", fmt_ms(r.run.ready_ms)));
    dl.push((
        "recovered",
        r.run
            .recovered
            .map_or("-".into(), |b| if b { "yes" } else { "no" }.into()),
    ));
    dl.push(("run directory", esc(&r.run.dir)));
    s.push_str("<dl>\n");
    for (k, v) in dl {
        let _ = writeln!(s, "<dt>{k}</dt><dd>{v}</dd>");
    }
    s.push_str("</dl>\n");
    let _ = writeln!(
        s,
        "<p>Reproduce:</p>\n<pre id=\"reproduce\">{}</pre>",
        r.run.reproduce.as_deref().map_or_else(
            || "(not recorded: the harness did not finish the run)".into(),
            esc
        )
    );
}

fn tables(s: &mut String, r: &Report) {
    let m = &r.metrics;
    s.push_str("<h2>Availability</h2>\n<table id=\"availability\">\n<tr><th class=\"l\">phase</th><th>availability</th></tr>\n");
    for (name, v) in [
        ("overall", m.availability.overall),
        ("steady", m.availability.steady),
        ("under faults", m.availability.faulted),
        ("after heal", m.availability.after_heal),
        ("windows with a successful write", m.availability.windows),
    ] {
        let _ = writeln!(s, "<tr><td class=\"l\">{name}</td><td>{}</td></tr>", pct(v));
    }
    s.push_str("</table>\n");

    s.push_str(
        "<h2>Latency by phase</h2>\n<table id=\"latency-phases\">\n<tr><th class=\"l\">phase</th>\
         <th class=\"l\">op</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th>\
         <th>max</th></tr>\n",
    );
    let mut row = |phase: &str, kind: &str, l: &LatencySummary| {
        let _ = writeln!(
            s,
            "<tr><td class=\"l\">{phase}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(kind),
            l.count,
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p999),
            fmt_us(l.max)
        );
    };
    if let Some(all) = &m.latency_all_us {
        row("all", "all", all);
    }
    let phases: [(&str, &LatencyByKind); 3] = [
        ("steady", &m.latency_by_phase_us.steady),
        ("under faults", &m.latency_by_phase_us.faulted),
        ("after heal", &m.latency_by_phase_us.after_heal),
    ];
    for (phase, by_kind) in phases {
        for (kind, l) in by_kind {
            row(phase, kind, l);
        }
    }
    s.push_str("</table>\n");

    s.push_str(
        "<h2>Failover</h2>\n<table id=\"failover\">\n<tr><th>#</th><th class=\"l\">fault</th>\
         <th class=\"l\">target</th><th>at</th><th>healed</th><th>election</th><th>recovery</th>\
         <th>gap</th><th>client lag</th><th>p99 under fault</th></tr>\n",
    );
    for e in &m.failover.events {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.id,
            esc(&e.fault),
            esc(&e.target),
            fmt_ms(Some(e.at_ms)),
            fmt_ms(e.end_ms),
            fmt_ms(e.election_ms),
            fmt_ms(e.recovery_ms),
            fmt_ms(e.gap_ms),
            fmt_ms(e.client_lag_ms),
            e.latency_us.map_or("-".into(), |l| fmt_us(l.p99))
        );
    }
    s.push_str("</table>\n");
    if m.failover.events.is_empty() {
        s.push_str("<p>No fault was injected.</p>\n");
    } else {
        s.push_str("<table id=\"failover-summary\">\n<tr><th class=\"l\"></th><th>p50</th><th>p99</th><th>max</th></tr>\n");
        for (name, p) in [
            ("election", &m.failover.election_ms),
            ("recovery", &m.failover.recovery_ms),
            ("client lag", &m.failover.client_lag_ms),
        ] {
            let _ = writeln!(
                s,
                "<tr><td class=\"l\">{name}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                fmt_ms(p.p50),
                fmt_ms(p.p99),
                fmt_ms(p.max)
            );
        }
        s.push_str("</table>\n");
    }

    s.push_str("<h2>SLO</h2>\n");
    if r.slo.is_empty() {
        s.push_str("<p>No service-level objective set.</p>\n");
    } else {
        s.push_str("<table id=\"slo\">\n<tr><th class=\"l\">objective</th><th class=\"l\">limit</th><th class=\"l\">actual</th><th class=\"l\">ok</th></tr>\n");
        for o in &r.slo {
            let _ = writeln!(
                s,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
                 <td class=\"l {}\">{}</td></tr>",
                esc(&o.name),
                esc(&o.limit),
                esc(&o.actual),
                if o.ok { "pass" } else { "failed" },
                if o.ok { "yes" } else { "NO" }
            );
        }
        s.push_str("</table>\n");
    }

    s.push_str("<h2>Faults</h2>\n");
    let late = |p: &Percentiles| {
        [p.p50, p.p99, p.max]
            .map(|v| v.map_or("-".into(), |v| format!("{v:.0} &micro;s")))
            .join(" / ")
    };
    let _ = writeln!(
        s,
        "<p>Applied after their scheduled time (p50 / p99 / max over {} scheduled faults): {}</p>",
        r.fault_timing.faults,
        late(&r.fault_timing.late_us)
    );
    s.push_str(
        "<table id=\"faults\">\n<tr><th>#</th><th class=\"l\">fault</th><th class=\"l\">selector</th>\
         <th class=\"l\">nodes</th><th class=\"l\">links</th><th>start</th><th>end</th><th>late</th></tr>\n",
    );
    for f in &r.faults {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f.id,
            esc(&f.fault),
            esc(&f.selector),
            esc(&f.nodes.join(", ")),
            esc(&f.links.join(", ")),
            fmt_ms(Some(f.start_ms)),
            fmt_ms(f.end_ms),
            f.late_us.map_or("-".into(), |u| format!("{u} &micro;s"))
        );
    }
    s.push_str("</table>\n");

    if !r.unexpected_exits.is_empty() {
        s.push_str("<h2>Unexpected exits</h2>\n");
        for x in &r.unexpected_exits {
            let _ = writeln!(
                s,
                "<p><b>{}</b> at {}: {}</p>\n<pre>{}</pre>",
                esc(&x.node),
                fmt_ms(Some(x.at_ms)),
                esc(&x.status),
                esc(&x.log_tail)
            );
        }
    }
}

fn violations(s: &mut String, r: &Report) {
    let c = &r.consistency;
    s.push_str("<h2>Consistency</h2>\n");
    let _ = writeln!(
        s,
        "<p>Model {}: linearizable <span class=\"verdict {l}\">{l}</span>; keys checked {}, \
         valid {}, invalid {}, unknown {}; lost writes {}, stale reads {}, never-written \
         values {}; checked in {} ms.</p>",
        esc(&c.model),
        c.keys.checked,
        c.keys.valid,
        c.keys.invalid,
        c.keys.unknown,
        c.lost_writes,
        c.stale_reads,
        c.never_written,
        c.elapsed_ms,
        l = c.linearizable.as_str()
    );
    for n in &c.notes {
        let _ = writeln!(s, "<p class=\"caption\">{}</p>", esc(n));
    }
    // One page per invalid key, in key order (see `check::counterexample_pages`).
    let keys: BTreeSet<&str> = c.violations.iter().map(|v| v.key.as_str()).collect();
    let links: BTreeMap<&str, &str> = if keys.len() == r.counterexamples.len() {
        keys.into_iter()
            .zip(r.counterexamples.iter().map(String::as_str))
            .collect()
    } else {
        BTreeMap::new()
    };
    if c.violations.is_empty() && c.two_leaders.is_empty() {
        s.push_str("<p id=\"violations\">No violation found.</p>\n");
        return;
    }
    s.push_str(
        "<table id=\"violations\">\n<tr><th class=\"l\">kind</th><th class=\"l\">key</th>\
         <th class=\"l\">what</th><th class=\"l\">view</th></tr>\n",
    );
    for v in c.violations.iter().take(MAX_VIOLATIONS) {
        let link = links.get(v.key.as_str()).map_or(String::new(), |p| {
            format!("<a href=\"{}\">counterexample</a>", esc(p))
        });
        let _ = writeln!(
            s,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{link}</td></tr>",
            v.kind.as_str(),
            esc(&v.key),
            esc(&v.message)
        );
    }
    for t in &c.two_leaders {
        let who: Vec<String> = t
            .leaders
            .iter()
            .map(|l| {
                format!(
                    "{} (seen at {})",
                    esc(&l.node),
                    fmt_ms(Some(l.first_seen_ms))
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "<tr><td class=\"l\">two-leaders</td><td class=\"l\">term {}</td>\
             <td class=\"l\">{}</td><td></td></tr>",
            t.term,
            who.join(", ")
        );
    }
    s.push_str("</table>\n");
    let more = c.violations.len().saturating_sub(MAX_VIOLATIONS) + c.violations_omitted;
    if more > 0 {
        let _ = writeln!(s, "<p>&hellip; and {more} more, not listed.</p>");
    }
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0} ms"))
}

fn fmt_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} &micro;s")
    } else if us < 1_000_000.0 {
        format!("{} ms", trim_num(us / 1_000.0))
    } else {
        format!("{} s", trim_num(us / 1_000_000.0))
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2}%", v * 100.0))
}

mod plots;
#[cfg(test)]
mod tests;
