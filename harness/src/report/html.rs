//! `report.html`: one self-contained page per run (inline CSS and hand-written SVG, no
//! scripts, nothing fetched), with the verdict, a per-node role and fault timeline,
//! throughput and per-operation latency over time, the tables of `report.json`, and links to
//! the counterexample pages.
//!
//! The SVG is written by hand rather than with a plotting crate: a few rects, circles and
//! `<text>` elements need no font stack, and the output depends only on the inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use faultline_protocol::OpKind;

use super::Report;
use crate::check::html_escape as esc;
use crate::history::{Event, EventKind, History, OpRecord, Outcome};
use crate::metrics::{LatencyByKind, LatencySummary, Percentiles};

/// At most this many operations are drawn in the latency plot; beyond it they are sampled
/// evenly (failed and indeterminate ones kept preferentially), and the caption says so.
pub const MAX_POINTS: usize = 20_000;

/// At most this many violations are listed (the counts above the list stay exact).
const MAX_VIOLATIONS: usize = 200;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const LANE: f64 = 24.0;
const FAULT_ROW: f64 = 18.0;

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

/// The shared time axis of the three plots, in ms since the run started.
struct Axis {
    t1: f64,
}

impl Axis {
    fn new(r: &Report, h: &History, events: &[Event]) -> Axis {
        let ops = h
            .ops
            .iter()
            .map(|o| o.complete_ns.unwrap_or(o.invoke_ns).max(o.invoke_ns))
            .max()
            .unwrap_or(0);
        let ev = events.iter().map(|e| e.t).max().unwrap_or(0);
        let faults = r
            .faults
            .iter()
            .map(|f| f.end_ms.unwrap_or(f.start_ms))
            .fold(0.0, f64::max);
        let buckets = r.metrics.timeline.last().map_or(0, |b| b.t_s + 1) as f64 * 1000.0;
        let t1 = (ops.max(ev) as f64 / 1e6).max(faults).max(buckets);
        Axis { t1: t1.max(1.0) }
    }

    fn x(&self, ms: f64) -> f64 {
        LEFT + (ms / self.t1).clamp(0.0, 1.0) * PLOT_W
    }

    /// Vertical grid lines and second labels below `y1`.
    fn ticks(&self, s: &mut String, y0: f64, y1: f64) {
        let span = self.t1 / 1000.0;
        let step = [
            0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            3600.0,
        ]
        .into_iter()
        .find(|st| span / st <= 12.0)
        .unwrap_or(span / 10.0);
        let mut t = 0.0;
        while t <= span + 1e-9 {
            let x = self.x(t * 1000.0);
            let _ = writeln!(
                s,
                "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{y0:.1}\" x2=\"{x:.1}\" y2=\"{y1:.1}\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}s</text>",
                y1 + 13.0,
                trim_num(t)
            );
            t += step;
        }
    }
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_string)
}

/// Fault periods as `(start_ms, end_ms, label, nodes)`; an unhealed fault lasts to the end.
fn fault_periods(r: &Report, axis: &Axis) -> Vec<(f64, f64, String, Vec<String>)> {
    r.faults
        .iter()
        .map(|f| {
            let mut label = f.fault.clone();
            if !f.nodes.is_empty() {
                label.push(' ');
                label.push_str(&f.nodes.join(","));
            } else if !f.selector.is_empty() {
                label.push(' ');
                label.push_str(&f.selector);
            }
            (
                f.start_ms,
                f.end_ms.unwrap_or(axis.t1).max(f.start_ms),
                label,
                f.nodes.clone(),
            )
        })
        .collect()
}

/// The nodes to draw a lane for: `n1..nN` from the experiment, plus any other name the
/// journal mentions, in natural order.
fn node_names(r: &Report, events: &[Event]) -> Vec<String> {
    let mut names: BTreeSet<(usize, String)> = (1..=r.experiment.nodes)
        .map(|i| format!("n{i}"))
        .map(|n| (n.len(), n))
        .collect();
    for e in events {
        let node = match &e.kind {
            EventKind::Role { node, .. }
            | EventKind::NodeStart { node, .. }
            | EventKind::NodeExit { node, .. } => node,
            _ => continue,
        };
        names.insert((node.len(), node.clone()));
    }
    names.into_iter().map(|(_, n)| n).collect()
}

/// Each node's states over time as `(class, start_ms, end_ms)`, from the journal's role,
/// start, exit, unreachable and fault-end events.
fn node_states(
    nodes: &[String],
    events: &[Event],
    t1: f64,
) -> BTreeMap<String, Vec<(&'static str, f64, f64)>> {
    let mut lanes: BTreeMap<String, Lane> =
        nodes.iter().map(|n| (n.clone(), Lane::default())).collect();
    for e in events {
        let t = e.t as f64 / 1e6;
        let changes: Vec<(&String, &'static str)> = match &e.kind {
            // A node that reports a role is up, whatever was seen of it before.
            EventKind::Role { node, role, .. } => vec![(
                node,
                match role.as_str() {
                    "leader" => "role-leader",
                    "follower" => "role-follower",
                    "candidate" => "role-candidate",
                    "recovering" => "role-recovering",
                    _ => "role-unknown",
                },
            )],
            EventKind::NodeStart { node, .. } => vec![(node, "role-starting")],
            EventKind::NodeExit { node, .. } => vec![(node, "down")],
            EventKind::Unreachable { node } => vec![(node, "role-unreachable")],
            // Healing a kill restarts its nodes (no `node_start` is journaled for that).
            EventKind::FaultEnd { nodes, .. } => {
                nodes.iter().map(|n| (n, "role-starting")).collect()
            }
            _ => continue,
        };
        for (node, class) in changes {
            let Some(lane) = lanes.get_mut(node) else {
                continue;
            };
            let down = lane.cur.is_some_and(|(c, _)| c == "down");
            let heal = matches!(e.kind, EventKind::FaultEnd { .. });
            // The observer losing a dead node says nothing new; healing a live one neither.
            if (down && class == "role-unreachable") || (heal && !down) {
                continue;
            }
            lane.set(class, t);
        }
    }
    lanes
        .into_iter()
        .map(|(node, mut lane)| {
            if let Some((class, since)) = lane.cur {
                if t1 > since {
                    lane.done.push((class, since, t1));
                }
            }
            (node, lane.done)
        })
        .collect()
}

/// One node's states so far, and the one it is in since when.
#[derive(Default)]
struct Lane {
    done: Vec<(&'static str, f64, f64)>,
    cur: Option<(&'static str, f64)>,
}

impl Lane {
    fn set(&mut self, class: &'static str, t: f64) {
        match self.cur {
            Some((c, _)) if c == class => return,
            Some((c, since)) if t > since => self.done.push((c, since, t)),
            _ => {}
        }
        self.cur = Some((class, t));
    }
}

fn timeline_svg(r: &Report, events: &[Event], axis: &Axis) -> String {
    let nodes = node_names(r, events);
    let faults = fault_periods(r, axis);
    // Overlapping faults go on separate rows.
    let mut row_end: Vec<f64> = Vec::new();
    let rows: Vec<usize> = faults
        .iter()
        .map(|(a, b, _, _)| {
            let i = row_end
                .iter()
                .position(|&end| end <= *a)
                .unwrap_or_else(|| {
                    row_end.push(f64::MIN);
                    row_end.len() - 1
                });
            row_end[i] = *b;
            i
        })
        .collect();
    let top = 8.0;
    let fault_rows = row_end.len().max(1) as f64;
    let lanes_y = top + fault_rows * FAULT_ROW + 6.0;
    let bottom = lanes_y + nodes.len() as f64 * LANE;
    let height = bottom + 22.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\">"
    );
    axis.ticks(&mut s, top, bottom);
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">faults</text>",
        LEFT - 6.0,
        top + 12.0
    );
    for ((a, b, label, _), row) in faults.iter().zip(&rows) {
        let (x0, x1) = (axis.x(*a), axis.x(*b));
        let y = top + *row as f64 * FAULT_ROW;
        let _ = writeln!(
            s,
            "<g class=\"fault-bar\"><rect class=\"fault\" x=\"{x0:.1}\" y=\"{y:.1}\" \
             width=\"{:.1}\" height=\"{:.1}\"><title>{} {:.0}-{:.0} ms</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" style=\"fill:#fff\">{}</text></g>",
            (x1 - x0).max(2.0),
            FAULT_ROW - 3.0,
            esc(label),
            a,
            b,
            x0 + 3.0,
            y + 11.5,
            esc(label)
        );
    }
    let states = node_states(&nodes, events, axis.t1);
    for (i, node) in nodes.iter().enumerate() {
        let y = lanes_y + i as f64 * LANE;
        let h = LANE - 6.0;
        let _ = writeln!(
            s,
            "<g class=\"node-lane\" data-node=\"{n}\"><text x=\"{:.1}\" y=\"{:.1}\" \
             text-anchor=\"end\">{n}</text><rect class=\"lane\" x=\"{LEFT}\" y=\"{y:.1}\" \
             width=\"{PLOT_W}\" height=\"{h:.1}\"/>",
            LEFT - 6.0,
            y + 13.0,
            n = esc(node)
        );
        for (class, a, b) in states.get(node).into_iter().flatten() {
            let (x0, x1) = (axis.x(*a), axis.x(*b));
            let _ = writeln!(
                s,
                "<rect class=\"{class}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" \
                 height=\"{h:.1}\"><title>{} {}: {a:.0}-{b:.0} ms</title></rect>",
                (x1 - x0).max(0.5),
                esc(node),
                class.trim_start_matches("role-"),
            );
        }
        for (a, b, label, hit) in &faults {
            if hit.iter().any(|n| n == node) {
                let (x0, x1) = (axis.x(*a), axis.x(*b));
                let _ = writeln!(
                    s,
                    "<rect class=\"fault-hit\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
                     height=\"{:.1}\"><title>{}</title></rect>",
                    y - 1.0,
                    (x1 - x0).max(2.0),
                    h + 2.0,
                    esc(label)
                );
            }
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    s
}

/// Fault periods shaded between `y0` and `y1`.
fn shade_faults(s: &mut String, r: &Report, axis: &Axis, y0: f64, y1: f64) {
    for (a, b, label, _) in fault_periods(r, axis) {
        let (x0, x1) = (axis.x(a), axis.x(b));
        let _ = writeln!(
            s,
            "<rect class=\"fault-shade\" x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{:.1}\" \
             height=\"{:.1}\"><title>{}</title></rect>",
            (x1 - x0).max(1.0),
            y1 - y0,
            esc(&label)
        );
    }
}

fn throughput_svg(r: &Report, axis: &Axis) -> String {
    let (top, plot_h) = (10.0, 160.0);
    let bottom = top + plot_h;
    let height = bottom + 22.0;
    let max = r
        .metrics
        .timeline
        .iter()
        .map(|b| b.ok + b.fail + b.info)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let y = |v: f64| bottom - v / max * plot_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg id=\"throughput\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\">"
    );
    axis.ticks(&mut s, top, bottom);
    for v in [0.0, max / 2.0, max] {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}/s</text>",
            LEFT - 6.0,
            y(v) + 4.0
        );
    }
    for b in &r.metrics.timeline {
        let x0 = axis.x(b.t_s as f64 * 1000.0) + 0.5;
        let w = (axis.x((b.t_s + 1) as f64 * 1000.0) - x0 - 0.5).max(0.5);
        let mut base = 0.0;
        for (class, n) in [("ok", b.ok), ("fail", b.fail), ("info", b.info)] {
            if n == 0 {
                continue;
            }
            let top_v = base + n as f64;
            let _ = writeln!(
                s,
                "<rect class=\"{class}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" \
                 height=\"{:.1}\"><title>{}s: {n} {class}</title></rect>",
                y(top_v),
                y(base) - y(top_v),
                b.t_s
            );
            base = top_v;
        }
    }
    // Over the bars, which would hide it.
    shade_faults(&mut s, r, axis, top, bottom);
    let _ = writeln!(
        s,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\"/>",
        LEFT + PLOT_W
    );
    s.push_str("</svg>\n");
    s
}

/// Keep at most `cap` of `v`, evenly spaced; returns the kept items and the stride.
fn sample(v: Vec<&OpRecord>, cap: usize) -> (Vec<&OpRecord>, usize) {
    if v.len() <= cap {
        return (v, 1);
    }
    let stride = v.len().div_ceil(cap.max(1));
    (v.into_iter().step_by(stride).collect(), stride)
}

/// The latency scatter and its caption.
fn latency_svg(r: &Report, h: &History, axis: &Axis) -> (String, String) {
    let done: Vec<&OpRecord> = h
        .ops
        .iter()
        .filter(|o| o.f != OpKind::Status && o.complete_ns.is_some())
        .collect();
    let total = done.len();
    let (ok, other): (Vec<&OpRecord>, Vec<&OpRecord>) =
        done.into_iter().partition(|o| o.outcome == Outcome::Ok);
    let (other, other_stride) = sample(
        other,
        (MAX_POINTS / 2).max(MAX_POINTS - ok.len().min(MAX_POINTS)),
    );
    let (ok, ok_stride) = sample(ok, MAX_POINTS - other.len());

    let lat_us = |o: &OpRecord| (o.latency_ns().unwrap_or(0) as f64 / 1e3).max(1.0);
    let (mut lo, mut hi) = (f64::MAX, 1.0f64);
    for o in ok.iter().chain(&other) {
        lo = lo.min(lat_us(o));
        hi = hi.max(lat_us(o));
    }
    if lo > hi {
        lo = 1.0;
    }
    let d0 = lo.log10().floor();
    let d1 = hi.log10().ceil().max(d0 + 1.0);
    let (top, plot_h) = (10.0, 220.0);
    let bottom = top + plot_h;
    let height = bottom + 22.0;
    let y = |us: f64| bottom - (us.log10() - d0) / (d1 - d0) * plot_h;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg id=\"latency\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\">"
    );
    axis.ticks(&mut s, top, bottom);
    shade_faults(&mut s, r, axis, top, bottom);
    let mut d = d0;
    while d <= d1 + 1e-9 {
        let yy = y(10f64.powf(d));
        let _ = writeln!(
            s,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + PLOT_W,
            LEFT - 6.0,
            yy + 4.0,
            fmt_us(10f64.powf(d))
        );
        d += 1.0;
    }
    s.push_str("<g class=\"points\">\n");
    // Successes first, so that failures are drawn on top.
    let mut drawn = [0usize; 3];
    for o in ok
        .iter()
        .chain(other.iter().filter(|o| o.outcome == Outcome::Info))
        .chain(other.iter().filter(|o| o.outcome == Outcome::Fail))
    {
        let (class, i) = match o.outcome {
            Outcome::Ok => ("ok", 0),
            Outcome::Fail => ("fail", 1),
            Outcome::Info => ("info", 2),
        };
        drawn[i] += 1;
        let _ = writeln!(
            s,
            "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.6\"/>",
            axis.x(o.invoke_ns as f64 / 1e6),
            y(lat_us(o))
        );
    }
    s.push_str("</g>\n</svg>\n");
    let shown = drawn.iter().sum::<usize>();
    let mut caption = format!(
        "Latency of each completed operation (log scale) against its invocation time: \
         <span class=\"k\" style=\"background:#2e7d32\"></span>ok ({})\
         <span class=\"k\" style=\"background:#c62828\"></span>fail ({})\
         <span class=\"k\" style=\"background:#ef8f00\"></span>info ({}); fault periods shaded.",
        drawn[0], drawn[1], drawn[2]
    );
    if shown < total {
        let _ = write!(
            caption,
            " Sampled: {shown} of {total} completed operations drawn (every {ok_stride}th ok \
             operation, every {other_stride}th failed or indeterminate one)."
        );
    } else {
        let _ = write!(caption, " All {total} completed operations drawn.");
    }
    (s, caption)
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

#[cfg(test)]
mod tests;
