//! The summary of a suite run: one line per experiment lining up verdict, availability,
//! recovery and latency (with the target and balancer each used), then recovery and latency per
//! fault, so that experiments differing in one setting (a balancer strategy, say) compare at
//! a glance. `faultline run <suite-dir>` prints it and writes it to `<out>/suite-summary.md`.
//! The last column, the share of open-loop operations that started late, says how much the
//! machine got in the way of the load generator.

use std::fmt::Write;

use super::Report;

/// One experiment of the suite: its report, or why it has none.
pub type SuiteRun = (String, Result<Report, String>);

fn ms(us: Option<f64>) -> String {
    us.map_or("-".into(), |v| format!("{:.1}", v / 1000.0))
}

fn ms0(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2}%", v * 100.0))
}

/// The Markdown summary of a suite's runs, in the order they ran.
pub fn render_suite_summary(suite: &str, runs: &[SuiteRun]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Suite {suite}\n");
    let _ = writeln!(
        s,
        "| experiment | target | balancer | verdict | exit | availability | while faulted | recovery_ms p50 / p99 / max | p50 ms | p99 ms | p99.9 ms | wasted tries | ejections | retries denied | ops late > 1 ms |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (name, run) in runs {
        let r = match run {
            Ok(r) => r,
            Err(_) => {
                let _ = writeln!(
                    s,
                    "| {name} | - | - | error | 255 | - | - | - | - | - | - | - | - | - | - |"
                );
                continue;
            }
        };
        let m = &r.metrics;
        let all = m.latency_all_us;
        let b = &r.balancer;
        let _ = writeln!(
            s,
            "| {} | {} x{} | {} | {} | {} | {} | {} | {} / {} / {} | {} | {} | {} | {} | {} | {} | {} |",
            name,
            r.experiment.target,
            r.experiment.nodes,
            b.strategy,
            r.verdict.as_str(),
            r.exit_code(),
            pct(m.availability.overall),
            pct(m.availability.faulted),
            ms0(m.failover.recovery_ms.p50),
            ms0(m.failover.recovery_ms.p99),
            ms0(m.failover.recovery_ms.max),
            ms(all.map(|l| l.p50)),
            ms(all.map(|l| l.p99)),
            ms(all.map(|l| l.p999)),
            if b.recorded {
                b.totals.tries.wasted.to_string()
            } else {
                "-".into()
            },
            b.ejections.len(),
            b.retries_denied,
            r.load
                .as_ref()
                .filter(|l| l.mode == "open")
                .map_or("-".into(), |l| pct(Some(l.late_share)))
        );
    }
    for (name, run) in runs {
        if let Err(e) = run {
            let _ = writeln!(s, "\n{name} did not run to a report: {e}");
        }
    }
    let faulted: Vec<(&String, &Report)> = runs
        .iter()
        .filter_map(|(n, r)| r.as_ref().ok().map(|r| (n, r)))
        .filter(|(_, r)| !r.metrics.failover.events.is_empty())
        .collect();
    if !faulted.is_empty() {
        let _ = writeln!(
            s,
            "\nPer fault: recovery_ms, then p99 / p99.9 (ms) of the operations that succeeded \
             while it was active.\n"
        );
        let most = faulted
            .iter()
            .map(|(_, r)| r.metrics.failover.events.len())
            .max()
            .unwrap_or(0);
        let first = &faulted[0].1.metrics.failover.events;
        let heads: Vec<String> = (0..most)
            .map(|i| {
                first.get(i).map_or(format!("#{}", i + 1), |e| {
                    format!("#{} {} at {:.1}s", i + 1, e.fault, e.at_ms / 1000.0)
                })
            })
            .collect();
        let _ = writeln!(s, "| experiment | {} |", heads.join(" | "));
        let _ = writeln!(s, "|---|{}", "---|".repeat(most));
        for (name, r) in faulted {
            let cells: Vec<String> = (0..most)
                .map(|i| {
                    r.metrics.failover.events.get(i).map_or("".into(), |e| {
                        format!(
                            "{} ({}): {} ms; {} / {}",
                            e.fault,
                            e.target,
                            ms0(e.recovery_ms),
                            ms(e.latency_us.map(|l| l.p99)),
                            ms(e.latency_us.map(|l| l.p999))
                        )
                    })
                })
                .collect();
            let _ = writeln!(s, "| {name} | {} |", cells.join(" | "));
        }
    }
    s
}
