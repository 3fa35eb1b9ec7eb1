//! `summary.md`: the report for people and CI logs (also printed at the end of a run).

use std::fmt::Write;

use super::Report;

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0} ms"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2}%", v * 100.0))
}

/// Render the Markdown summary of a report.
pub fn render_summary(r: &Report) -> String {
    let mut s = String::new();
    let e = &r.experiment;
    let status = if r.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(
        s,
        "# {}: {} ({}{})\n",
        e.name,
        status,
        r.verdict.as_str(),
        r.expect
            .map(|x| format!(
                ", expected {}",
                if x == crate::experiment::Expect::Valid {
                    "valid"
                } else {
                    "invalid"
                }
            ))
            .unwrap_or_default()
    );
    if r.aborted {
        let _ = writeln!(
            s,
            "**Aborted**: {}. Figures cover what was recorded.\n",
            r.abort_reason.as_deref().unwrap_or("interrupted")
        );
    }
    let _ = writeln!(
        s,
        "- target: {} x{} {}{}",
        e.target,
        e.nodes,
        if e.settings.is_empty() {
            String::new()
        } else {
            serde_json::Value::Object(e.settings.clone()).to_string()
        },
        if e.bugs.is_empty() {
            String::new()
        } else {
            format!(" bugs: {}", e.bugs.join(", "))
        }
    );
    let _ = writeln!(s, "- workload: {}; balancer: {}", e.workload, e.balancer);
    let _ = writeln!(s, "- duration: {}s, seed {}", e.duration_s, e.seed);
    if let Some(cmd) = &r.run.reproduce {
        let _ = writeln!(s, "- reproduce: `{cmd}`");
    }
    if let Some(ready) = r.run.ready_ms {
        let _ = writeln!(s, "- cluster ready in {ready:.0} ms");
    }
    if r.run.recovered == Some(false) {
        let _ = writeln!(s, "- **the cluster did not recover** after the load: no write or final read succeeded in time");
    }

    let m = &r.metrics;
    let _ = writeln!(s, "\n## Operations and availability\n");
    let _ = writeln!(
        s,
        "{} invoked: {} ok, {} fail, {} info; {:.0} ok/s",
        m.ops.invoked, m.ops.ok, m.ops.fail, m.ops.info, m.throughput.ok_per_s
    );
    let a = &m.availability;
    let _ = writeln!(
        s,
        "\n| overall | steady | faulted | after heal | 100 ms windows with a write |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} |",
        pct(a.overall),
        pct(a.steady),
        pct(a.faulted),
        pct(a.after_heal),
        pct(a.windows)
    );

    let f = &m.failover;
    let _ = writeln!(s, "\n## Failover\n");
    if f.events.is_empty() {
        let _ = writeln!(s, "No faults fired.");
    } else {
        let _ = writeln!(s, "| # | fault | nodes | at | election | recovery | gap |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for (i, ev) in f.events.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1}s | {} | {} | {} |",
                i + 1,
                ev.fault,
                ev.target,
                ev.at_ms / 1000.0,
                ms(ev.election_ms),
                ms(ev.recovery_ms),
                ms(ev.gap_ms)
            );
        }
        let _ = writeln!(
            s,
            "\nrecovery: p50 {}, p99 {}, max {}",
            ms(f.recovery_ms.p50),
            ms(f.recovery_ms.p99),
            ms(f.recovery_ms.max)
        );
        if f.client_lag_ms.p50.is_some() {
            let _ = writeln!(
                s,
                "election (server side): p50 {}, max {}; clients succeeded after the new leader \
                 by p50 {}, max {}",
                ms(f.election_ms.p50),
                ms(f.election_ms.max),
                ms(f.client_lag_ms.p50),
                ms(f.client_lag_ms.max)
            );
        }
    }

    let _ = writeln!(s, "\n## Latency (ok operations, µs)\n");
    let _ = writeln!(s, "| op | count | p50 | p90 | p99 | p99.9 | max |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for (name, l) in &m.latency_us {
        let _ = writeln!(
            s,
            "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            l.count, l.p50, l.p90, l.p99, l.p999, l.max
        );
    }

    if r.balancer.recorded {
        balancer_section(&mut s, &r.balancer);
    }

    let c = &r.consistency;
    let _ = writeln!(s, "\n## Consistency\n");
    let _ = writeln!(
        s,
        "linearizable: **{}**; lost acknowledged writes: **{}**; stale reads: **{}**; reads of values never written: **{}**",
        c.linearizable.as_str(),
        c.lost_writes,
        c.stale_reads,
        c.never_written
    );
    if !c.two_leaders.is_empty() {
        let _ = writeln!(
            s,
            "\nElection safety broken: {} term(s) with more than one leader.\n",
            c.two_leaders.len()
        );
        for t in c.two_leaders.iter().take(10) {
            let claims: Vec<String> = t
                .leaders
                .iter()
                .map(|l| format!("{} (seen at {:.0} ms)", l.node, l.first_seen_ms))
                .collect();
            let _ = writeln!(s, "- term {}: {}", t.term, claims.join(", "));
        }
    }
    for v in c.violations.iter().take(10) {
        let _ = writeln!(s, "\n- {} on `{}`: {}", v.kind.as_str(), v.key, v.message);
        if let Some(ce) = &v.counterexample {
            let _ = writeln!(s, "\n  ```");
            for op in ce.concurrent.iter().take(12) {
                let mark = if op.id == ce.offender.id { ">>" } else { "  " };
                let _ = writeln!(s, "  {mark} {}", describe_op(op, &v.key));
            }
            let _ = writeln!(s, "  ```");
        }
    }
    if !r.counterexamples.is_empty() {
        let _ = writeln!(
            s,
            "\nCounterexample views (open in a browser, from the run directory):\n"
        );
        for page in &r.counterexamples {
            let _ = writeln!(s, "- [{page}]({page})");
        }
    }
    if c.violations.len() > 10 {
        let _ = writeln!(
            s,
            "\n... and {} more in report.json",
            c.violations.len() - 10
        );
    }

    if !r.slo.is_empty() {
        let _ = writeln!(s, "\n## SLO\n");
        for slo in &r.slo {
            let _ = writeln!(
                s,
                "- {} {}: {} {}",
                slo.name,
                slo.limit,
                slo.actual,
                if slo.ok { "ok" } else { "**BROKEN**" }
            );
        }
    }
    if let Some(load) = &r.load {
        if load.mode == "open" {
            let _ = writeln!(
                s,
                "\nOpen-loop schedule: {} ops due, {} ({:.2}%) started more than 1 ms late, worst {:.1} ms.",
                load.scheduled,
                load.late_1ms,
                load.late_share * 100.0,
                load.max_late_ms
            );
            let at_limit = load.at_limit.unwrap_or(0);
            if at_limit > 0 {
                let _ = writeln!(
                    s,
                    "**{at_limit} ops due were never sent because {} were already in flight** \
                     (`workload.max_in_flight`): the cluster fell behind the rate; they are not \
                     in the history.",
                    load.max_in_flight.unwrap_or(0)
                );
            }
            let late = load.not_started.saturating_sub(at_limit);
            if late > 0 {
                let _ = writeln!(
                    s,
                    "**{late} ops due before the end never started**: the load generator fell \
                     behind (harness or machine overloaded); they are not in the history."
                );
            }
        }
    }
    for x in &r.unexpected_exits {
        let _ = writeln!(
            s,
            "\n**Node {} exited unexpectedly** at {:.1}s ({}). Last log lines:\n\n```\n{}\n```",
            x.node,
            x.at_ms / 1000.0,
            x.status,
            x.log_tail
        );
    }
    s
}

/// The most per-second share columns the summary shows.
const SHARE_WINDOWS: usize = 60;

/// What the balancer did, briefly: its settings, per-node counters, shares per second and
/// ejections.
fn balancer_section(s: &mut String, b: &super::BalancerReport) {
    let _ = writeln!(s, "\n## Balancer\n");
    let mut settings = b.config.clone();
    if let Some(m) = settings.as_object_mut() {
        for k in ["kind", "health", "connections_per_node"] {
            m.remove(k);
        }
    }
    let _ = writeln!(s, "{} {}", b.strategy, settings);
    let _ = writeln!(
        s,
        "\n{} operations, {} retries ({} refused by the retry budget); {} of {} tries wasted on \
         dead or non-leader nodes; {} ejection(s).",
        b.ops,
        b.retries,
        b.retries_denied,
        b.totals.tries.wasted,
        b.totals.tries.sent,
        b.totals.ejections
    );
    let _ = writeln!(
        s,
        "\n| node | sent | share | served | not leader | refused | unavailable | timeout/lost | ejections | mean served |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for n in &b.nodes {
        let share = if b.totals.tries.sent == 0 {
            0.0
        } else {
            n.tries.sent as f64 / b.totals.tries.sent as f64
        };
        let _ = writeln!(
            s,
            "| {} | {} | {:.1}% | {} | {} | {} | {} | {} | {} | {:.2} ms |",
            n.node,
            n.tries.sent,
            share * 100.0,
            n.tries.served,
            n.tries.not_leader,
            n.tries.refused,
            n.tries.unavailable,
            n.tries.indefinite,
            n.ejections,
            n.mean_served_ms
        );
    }
    if !b.share.is_empty() {
        let shown = b.share.len().min(SHARE_WINDOWS);
        let _ = writeln!(
            s,
            "\nShare of tries per second, % ({} window(s){}):\n",
            b.share.len(),
            if shown < b.share.len() {
                format!(", first {shown} shown")
            } else {
                String::new()
            }
        );
        let _ = writeln!(s, "```");
        for (i, n) in b.nodes.iter().enumerate() {
            let row: Vec<String> = b.share[..shown]
                .iter()
                .map(|w| format!("{:>3.0}", w.share.get(i).copied().unwrap_or(0.0) * 100.0))
                .collect();
            let _ = writeln!(s, "{:<4} {}", n.node, row.join(""));
        }
        let _ = writeln!(s, "```");
    }
    if !b.ejections.is_empty() {
        let _ = writeln!(s, "\nEjections:\n");
        for e in b.ejections.iter().take(20) {
            let _ = writeln!(
                s,
                "- {} at {:.2}s for {:.0} ms (#{}), {}",
                e.node,
                e.at_ms / 1000.0,
                e.duration_ms,
                e.count,
                e.readmitted_ms
                    .map_or("not re-admitted before the end".into(), |t| format!(
                        "back at {:.2}s",
                        t / 1000.0
                    ))
            );
        }
        if b.ejections.len() > 20 {
            let _ = writeln!(
                s,
                "- ... and {} more in report.json",
                b.ejections.len() - 20
            );
        }
    }
}

/// One operation as a timeline line: `+1234.5ms..+1236.0ms client 7 write k1 = 12 -> ok (n2)`.
fn describe_op(op: &crate::check::OpSummary, key: &str) -> String {
    let t = |ns: u64| format!("{:.1}ms", ns as f64 / 1e6);
    let end = op.complete_ns.map_or("?".into(), t);
    let what = match (&op.text, op.f) {
        (Some(text), _) => format!("{text} on {key}"),
        (None, f) => match f {
            faultline_protocol::OpKind::Read => format!(
                "read {} -> {}",
                key,
                op.value.map_or("nil".into(), |v| v.to_string())
            ),
            faultline_protocol::OpKind::Write => format!(
                "write {} = {}",
                key,
                op.value.map_or("?".into(), |v| v.to_string())
            ),
            faultline_protocol::OpKind::Cas => format!(
                "cas {} {} -> {}",
                key,
                op.from.flatten().map_or("nil".into(), |v| v.to_string()),
                op.value.map_or("?".into(), |v| v.to_string())
            ),
            faultline_protocol::OpKind::Status => "status".into(),
        },
    };
    format!(
        "{}..{} client {} {} : {:?}{}",
        t(op.invoke_ns),
        end,
        op.client,
        what,
        op.outcome,
        op.node
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    )
}
