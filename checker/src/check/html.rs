//! A self-contained HTML page (inline CSS and SVG, no scripts, nothing fetched) showing one
//! violation's window of operations: one lane per client on a time axis, the offending
//! operation marked, and the longest linearizable prefix the search found, in order.

use std::collections::BTreeMap;
use std::fmt::Write;

use faultline_protocol::OpKind;

use super::violation::{OpSummary, Violation, ViolationKind};
use super::ConsistencyReport;
use crate::history::Outcome;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const LANE: f64 = 34.0;
const BAR: f64 = 22.0;

/// Render `v` as a standalone HTML page. For a non-linearizable key the window is the
/// counterexample's offender and its concurrent operations; for an anomaly it is the
/// operations that show it (the read is marked). The output depends only on `v`.
pub fn render_counterexample_html(v: &Violation) -> String {
    let ce = v.counterexample.as_ref();
    // The window: the offender, the ops concurrent with it, and the shown end of the prefix.
    let mut ops: Vec<OpSummary> = ce.map_or_else(|| v.ops.clone(), |c| c.concurrent.clone());
    if let Some(c) = ce {
        for p in &c.prefix {
            if !ops.iter().any(|o| o.id == p.id) {
                ops.push(p.clone());
            }
        }
    }
    ops.sort_by_key(|o| (o.invoke_ns, o.id));
    let events = is_event_time(&ops);
    let ops = &ops[..];
    let marked = ce.map(|c| c.offender.id).or(v.read);
    // Position in the linearizable prefix (1-based, counting from the start of the prefix).
    let mut prefix_pos: BTreeMap<u64, usize> = BTreeMap::new();
    if let Some(c) = ce {
        let first = c.prefix_len - c.prefix.len() + 1;
        for (i, o) in c.prefix.iter().enumerate() {
            prefix_pos.insert(o.id, first + i);
        }
    }

    let mut s = String::new();
    let title = format!("{} on key {}", v.kind.as_str(), v.key);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>faultline: {}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n\
         <h1>{}</h1>\n<p class=\"message\">{}</p>\n",
        esc(&title),
        esc(&title),
        esc(&v.message)
    );
    s.push_str(&timeline(ops, marked, &prefix_pos, events));
    s.push_str(
        "<p class=\"legend\"><span class=\"k ok\"></span>ok <span class=\"k info\"></span>\
         indeterminate (may take effect any time after its call, or never) \
         <span class=\"k fail\"></span>failed <span class=\"k offender\"></span>offending \
         operation; #n: position in the longest linearizable prefix</p>\n",
    );

    if let Some(c) = ce {
        let _ = writeln!(
            s,
            "<h2>Longest linearizable prefix ({} operations)</h2>",
            c.prefix_len
        );
        if c.prefix_len > c.prefix.len() {
            let _ = writeln!(
                s,
                "<p>&hellip; {} earlier operations, then:</p>",
                c.prefix_len - c.prefix.len()
            );
        }
        let _ = writeln!(
            s,
            "<ol class=\"prefix\" start=\"{}\">",
            c.prefix_len - c.prefix.len() + 1
        );
        for o in &c.prefix {
            let _ = writeln!(s, "<li>{}</li>", esc(&describe(o)));
        }
        let _ = writeln!(
            s,
            "</ol>\n<p>State after the prefix: <code>{}</code></p>\n\
             <p class=\"offender\">Cannot be linearized next: {}</p>",
            esc(&c.state),
            esc(&describe(&c.offender))
        );
    }

    s.push_str(
        "<h2>Operations in the window</h2>\n<table>\n<tr><th>id</th><th>client</th>\
         <th>operation</th><th>outcome</th><th>invoked</th><th>completed</th></tr>\n",
    );
    for o in ops {
        let class = if Some(o.id) == marked {
            " class=\"offender\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            o.id,
            o.client,
            esc(&label(o)),
            outcome(o.outcome),
            when(events, o.invoke_ns),
            o.complete_ns
                .map_or_else(|| "never".into(), |c| when(events, c)),
        );
    }
    s.push_str("</table>\n</body>\n</html>\n");
    s
}

/// Longest key part of a page's file name, in bytes (file systems allow 255).
const MAX_FILE_STEM: usize = 100;

/// The file name of a key's page: the key with every character other than an ASCII letter,
/// digit, `-` or `_` replaced by `_`, then `.html` (`k1.html`, `user_42.html`). A key longer
/// than 100 characters keeps its first 83 and a hash of the whole key, so the name stays one
/// short path component whatever the history holds.
pub fn counterexample_file_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        name.push('_');
    }
    if name.len() > MAX_FILE_STEM {
        // FNV-1a: stable across runs and platforms, unlike the std hasher.
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        name.truncate(MAX_FILE_STEM - 17);
        name.push_str(&format!("-{hash:016x}"));
    }
    name.push_str(".html");
    name
}

/// One page per invalid key, as `(file name, html)` in key order: the key's counterexample,
/// or, when the search could not decide the key but an anomaly proved it invalid, the first
/// anomaly. Keys whose names collide after [`counterexample_file_name`] get `-2`, `-3`...
pub fn counterexample_pages(report: &ConsistencyReport) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Violation> = BTreeMap::new();
    for v in &report.violations {
        let better = match chosen.get(v.key.as_str()) {
            None => true,
            Some(c) => {
                c.kind != ViolationKind::Nonlinearizable && v.kind == ViolationKind::Nonlinearizable
            }
        };
        if better {
            chosen.insert(&v.key, v);
        }
    }
    let mut used = std::collections::HashSet::new();
    chosen
        .into_values()
        .map(|v| {
            let mut name = counterexample_file_name(&v.key);
            let stem = name.trim_end_matches(".html").to_string();
            let mut n = 1;
            while !used.insert(name.clone()) {
                n += 1;
                name = format!("{stem}-{n}.html");
            }
            (name, render_counterexample_html(v))
        })
        .collect()
}

const CSS: &str = "body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
.message { max-width: 960px; }
svg { border: 1px solid #ddd; background: #fcfcfc; }
svg text { font: 11px monospace; }
rect.ok { fill: #cfe3f7; stroke: #3b78b8; }
rect.info { fill: #eee; stroke: #888; stroke-dasharray: 4 3; }
rect.fail { fill: #f6dada; stroke: #c99; }
rect.offender { stroke: #d00; stroke-width: 3; }
rect.prefix { fill: #d5efd5; stroke: #3a8a3a; }
.axis { stroke: #999; } .tick { stroke: #ddd; }
.legend .k { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 12px; border: 1px solid #888; }
.legend .ok { background: #cfe3f7; } .legend .info { background: #eee; border-style: dashed; }
.legend .fail { background: #f6dada; } .legend .offender { border: 3px solid #d00; }
.offender { color: #b00; font-weight: bold; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
tr.offender td { background: #fdeaea; }
";

/// The SVG timeline: one lane per client, one bar per operation.
fn timeline(
    ops: &[OpSummary],
    marked: Option<u64>,
    prefix_pos: &BTreeMap<u64, usize>,
    events: bool,
) -> String {
    let mut s = String::new();
    let clients: Vec<u32> = {
        let mut c: Vec<u32> = ops.iter().map(|o| o.client).collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let lo = ops.iter().map(|o| o.invoke_ns).min().unwrap_or(0);
    let known_hi = ops
        .iter()
        .flat_map(|o| [Some(o.invoke_ns), o.complete_ns])
        .flatten()
        .max()
        .unwrap_or(lo);
    // Ops that never completed run a little past the last known time.
    let span = (known_hi - lo).max(1);
    let hi = known_hi + span / 10 + 1;
    let x = |t: u64| LEFT + (t - lo) as f64 / (hi - lo) as f64 * (WIDTH - LEFT - RIGHT);
    let height = TOP + LANE * clients.len() as f64 + 30.0;
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\">"
    );
    // Axis with five ticks.
    let axis_y = TOP + LANE * clients.len() as f64 + 4.0;
    let _ = writeln!(
        s,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\"/>",
        WIDTH - RIGHT
    );
    for i in 0..=4u64 {
        let t = lo + (known_hi - lo) * i / 4;
        let tx = x(t);
        let label = if events {
            format!("event {t}")
        } else {
            format!("+{}", duration(t - lo))
        };
        let _ = writeln!(
            s,
            "<line class=\"tick\" x1=\"{tx:.1}\" y1=\"{TOP}\" x2=\"{tx:.1}\" y2=\"{axis_y}\"/>\
             <text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            axis_y + 16.0
        );
    }
    for (lane, c) in clients.iter().enumerate() {
        let y = TOP + LANE * lane as f64;
        let _ = writeln!(
            s,
            "<text x=\"8\" y=\"{:.1}\">client {c}</text>",
            y + BAR / 2.0 + 4.0
        );
        for o in ops.iter().filter(|o| o.client == *c) {
            let x0 = x(o.invoke_ns);
            let x1 = x(o.complete_ns.unwrap_or(hi)).max(x0 + 3.0);
            let mut class = match o.outcome {
                Outcome::Ok => "ok",
                Outcome::Info => "info",
                Outcome::Fail => "fail",
            }
            .to_string();
            let pos = prefix_pos.get(&o.id);
            if pos.is_some() && o.outcome != Outcome::Fail {
                class.push_str(" prefix");
            }
            if Some(o.id) == marked {
                class.push_str(" offender");
            }
            let mut text = label(o);
            if let Some(p) = pos {
                text = format!("#{p} {text}");
            }
            if Some(o.id) == marked {
                text = format!("\u{2717} {text}");
            }
            // Roughly 6.6 px per monospace character at 11 px.
            let room = ((x1 - x0 - 6.0) / 6.6).max(0.0) as usize;
            let _ = writeln!(
                s,
                "<g><title>{}</title><rect class=\"{class}\" x=\"{x0:.1}\" y=\"{y:.1}\" \
                 width=\"{:.1}\" height=\"{BAR}\" rx=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
                esc(&describe(o)),
                x1 - x0,
                x0 + 3.0,
                y + BAR / 2.0 + 4.0,
                esc(&truncate(&text, room))
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// The op in a few characters: `write 5`, `read -> nil`, `cas 4 -> 5`, or its foreign text.
fn label(o: &OpSummary) -> String {
    if let Some(t) = &o.text {
        return t.clone();
    }
    let v = |v: Option<i64>| v.map_or_else(|| "nil".to_string(), |v| v.to_string());
    match o.f {
        OpKind::Read if o.outcome == Outcome::Ok => format!("read -> {}", v(o.value)),
        OpKind::Read => "read".into(),
        OpKind::Write => format!("write {}", v(o.value)),
        OpKind::Cas => format!("cas {} -> {}", v(o.from.flatten()), v(o.value)),
        OpKind::Status => "status".into(),
    }
}

fn describe(o: &OpSummary) -> String {
    let line = o.line.map_or_else(String::new, |l| format!(", line {l}"));
    format!(
        "op {} (client {}{line}): {}, {}",
        o.id,
        o.client,
        label(o),
        outcome(o.outcome)
    )
}

fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Info => "indeterminate",
        Outcome::Fail => "failed",
    }
}

/// True when times are event positions (foreign histories, whose n-th event happens at time
/// n) rather than nanoseconds: the ops carry source lines, or the whole window spans less
/// than 10 us from the start of the run, which no real networked run does.
fn is_event_time(ops: &[OpSummary]) -> bool {
    ops.iter().any(|o| o.line.is_some())
        || ops
            .iter()
            .all(|o| o.invoke_ns < 10_000 && o.complete_ns.is_none_or(|c| c < 10_000))
}

/// A time for the table: an event position for foreign histories, else seconds.
fn when(events: bool, t: u64) -> String {
    if events {
        format!("event {t}")
    } else {
        format!("{:.6} s", t as f64 / 1e9)
    }
}

fn duration(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{:.2}s", ns as f64 / 1e9)
    } else if ns >= 1_000_000 {
        format!("{:.2}ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.1}us", ns as f64 / 1e3)
    } else {
        format!("{ns}ns")
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max <= 1 {
        return String::new();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('\u{2026}');
    t
}

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
