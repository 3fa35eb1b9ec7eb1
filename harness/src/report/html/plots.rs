//! The three SVG plots of `report.html` on one time axis: the per-node role and fault
//! timeline, throughput by outcome, and per-operation latency (sampled down past
//! [`MAX_POINTS`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use faultline_protocol::OpKind;

use super::{fmt_us, MAX_POINTS};
use crate::check::html_escape as esc;
use crate::history::{Event, EventKind, History, OpRecord, Outcome};
use crate::report::Report;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const LANE: f64 = 24.0;
const FAULT_ROW: f64 = 18.0;

/// The shared time axis of the three plots, in ms since the run started.
pub(super) struct Axis {
    t1: f64,
}

impl Axis {
    pub(super) fn new(r: &Report, h: &History, events: &[Event]) -> Axis {
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

pub(super) fn trim_num(v: f64) -> String {
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

pub(super) fn timeline_svg(r: &Report, events: &[Event], axis: &Axis) -> String {
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

pub(super) fn throughput_svg(r: &Report, axis: &Axis) -> String {
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
pub(super) fn latency_svg(r: &Report, h: &History, axis: &Axis) -> (String, String) {
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
