//! The `balancer` section of the report: the strategy and its parameters as run, each node's
//! counters at the end of the load, each node's share of the tries per second, the outlier
//! ejections with their re-admissions, and the retries the budget refused. Everything comes
//! from `experiment.yaml` and the `balancer_stats`, `ejected` and `readmitted` lines of
//! `events.jsonl`, so `faultline report` rebuilds it from the run directory.

use serde::Serialize;

use crate::experiment::BalancerCfg;
use crate::history::{Event, EventKind};
use crate::history::{NodeStats, TryCounts};

/// `report.json`'s `balancer`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BalancerReport {
    /// The strategy (`round-robin`, `p2c`, ...).
    pub strategy: String,
    /// The `balancer:` block as run: the strategy's parameters, health checks, tries per
    /// operation, outlier ejection and retry budget (absent when off).
    pub config: serde_json::Value,
    /// Whether the run journaled the balancer's counters (runs before they did, or a harness
    /// killed before the load, have only `strategy` and `config`).
    pub recorded: bool,
    /// Each node's counters at the end of the load (or at the last snapshot), in view order.
    pub nodes: Vec<NodeStats>,
    /// The same, summed over the nodes.
    pub totals: Totals,
    /// Operations started during the load (first tries).
    pub ops: u64,
    /// Tries after an operation's first.
    pub retries: u64,
    /// Retries the retry budget refused.
    pub retries_denied: u64,
    /// Each node's share of the tries sent between consecutive snapshots (about a second
    /// each), in the order of `nodes`.
    pub share: Vec<ShareWindow>,
    /// Outlier ejections in time order, each with its re-admission.
    pub ejections: Vec<Ejection>,
}

/// Counters summed over the nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    #[serde(flatten)]
    pub tries: TryCounts,
    pub ejections: u64,
}

/// The tries of one window between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShareWindow {
    /// Start and end of the window, seconds since run start.
    pub t_s: f64,
    pub end_s: f64,
    /// Tries sent to each node in the window.
    pub sent: Vec<u64>,
    /// Each node's share of them (0 for every node when nothing was sent).
    pub share: Vec<f64>,
}

/// One ejection of a node by outlier detection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ejection {
    pub node: String,
    /// When it was ejected, ms since run start.
    pub at_ms: f64,
    /// For how long.
    pub duration_ms: f64,
    /// The node's how-manyth ejection this was.
    pub count: u32,
    /// When it was re-admitted, ms since run start (`null`: not before the journal ends).
    pub readmitted_ms: Option<f64>,
}

/// The balancer section from the run's configuration and journal. Counters are taken up to the
/// `last: true` snapshot (the end of the load), or up to the last one there is.
pub fn analyze(cfg: &BalancerCfg, events: &[Event]) -> BalancerReport {
    let snapshots: Vec<Snapshot<'_>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::BalancerStats {
                nodes,
                ops,
                retries,
                retries_denied,
                last,
            } => Some(Snapshot {
                t: e.t,
                nodes,
                ops: *ops,
                retries: *retries,
                retries_denied: *retries_denied,
                last: *last,
            }),
            _ => None,
        })
        .collect();
    let upto = snapshots
        .iter()
        .position(|s| s.last)
        .map_or(snapshots.len(), |i| i + 1);
    let snapshots = &snapshots[..upto];
    let (nodes, ops, retries, retries_denied) =
        snapshots.last().map_or((Vec::new(), 0, 0, 0), |s| {
            (s.nodes.to_vec(), s.ops, s.retries, s.retries_denied)
        });
    let mut totals = Totals::default();
    for n in &nodes {
        totals.tries += n.tries;
        totals.ejections += u64::from(n.ejections);
    }
    let share = snapshots
        .windows(2)
        .map(|w| {
            let (before, after) = (w[0].nodes, w[1].nodes);
            let sent: Vec<u64> = after
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    a.tries
                        .sent
                        .saturating_sub(before.get(i).map_or(0, |b| b.tries.sent))
                })
                .collect();
            let total: u64 = sent.iter().sum();
            ShareWindow {
                t_s: secs(w[0].t),
                end_s: secs(w[1].t),
                share: sent
                    .iter()
                    .map(|&s| {
                        if total == 0 {
                            0.0
                        } else {
                            (s as f64 / total as f64 * 1e4).round() / 1e4
                        }
                    })
                    .collect(),
                sent,
            }
        })
        .collect();
    BalancerReport {
        strategy: cfg.kind.as_str().into(),
        config: serde_json::to_value(cfg).unwrap_or(serde_json::Value::Null),
        recorded: !snapshots.is_empty(),
        nodes,
        totals,
        ops,
        retries,
        retries_denied,
        share,
        ejections: ejections(events),
    }
}

/// One `balancer_stats` line of the journal.
struct Snapshot<'a> {
    t: u64,
    nodes: &'a [NodeStats],
    ops: u64,
    retries: u64,
    retries_denied: u64,
    last: bool,
}

/// Ejections paired with the next re-admission of the same node.
fn ejections(events: &[Event]) -> Vec<Ejection> {
    let mut out: Vec<Ejection> = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::Ejected {
                node,
                duration_ms,
                count,
            } => out.push(Ejection {
                node: node.clone(),
                at_ms: ms(e.t),
                duration_ms: *duration_ms,
                count: *count,
                readmitted_ms: None,
            }),
            EventKind::Readmitted { node } => {
                if let Some(open) = out
                    .iter_mut()
                    .rev()
                    .find(|x| &x.node == node && x.readmitted_ms.is_none())
                {
                    open.readmitted_ms = Some(ms(e.t));
                }
            }
            _ => {}
        }
    }
    out
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

fn secs(ns: u64) -> f64 {
    (ns as f64 / 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(sent: &[u64]) -> Vec<NodeStats> {
        sent.iter()
            .enumerate()
            .map(|(i, &s)| NodeStats {
                node: format!("n{}", i + 1),
                tries: TryCounts {
                    sent: s,
                    served: s,
                    ..TryCounts::default()
                },
                ..NodeStats::default()
            })
            .collect()
    }

    fn snap(t_ms: u64, sent: &[u64], last: bool) -> Event {
        Event {
            t: t_ms * 1_000_000,
            kind: EventKind::BalancerStats {
                nodes: stats(sent),
                ops: sent.iter().sum(),
                retries: 0,
                retries_denied: 0,
                last,
            },
        }
    }

    #[test]
    fn shares_are_diffs_of_snapshots_and_ejections_pair_with_readmissions() {
        let ev = |t_ms: u64, kind| Event {
            t: t_ms * 1_000_000,
            kind,
        };
        let events = vec![
            snap(1000, &[0, 0, 0], false),
            snap(2000, &[10, 10, 20], false),
            ev(
                2500,
                EventKind::Ejected {
                    node: "n2".into(),
                    duration_ms: 300.0,
                    count: 1,
                },
            ),
            ev(2800, EventKind::Readmitted { node: "n2".into() }),
            snap(3000, &[30, 10, 40], false),
            ev(
                3100,
                EventKind::Ejected {
                    node: "n2".into(),
                    duration_ms: 600.0,
                    count: 2,
                },
            ),
            snap(3200, &[30, 10, 40], true),
            // After the load: ignored for counters.
            snap(4000, &[99, 99, 99], false),
        ];
        let cfg: BalancerCfg = serde_yaml::from_str("{kind: p2c, choice_count: 3}").unwrap();
        let r = analyze(&cfg, &events);
        assert_eq!(r.strategy, "p2c");
        assert_eq!(r.config["choice_count"], 3);
        assert!(r.recorded);
        assert_eq!(r.totals.tries.sent, 80);
        assert_eq!(r.ops, 80);
        assert_eq!(r.share.len(), 3);
        assert_eq!(r.share[0].sent, [10, 10, 20]);
        assert_eq!(r.share[0].share, [0.25, 0.25, 0.5]);
        assert_eq!(r.share[1].sent, [20, 0, 20]);
        assert_eq!((r.share[1].t_s, r.share[1].end_s), (2.0, 3.0));
        assert_eq!(r.share[2].share, [0.0, 0.0, 0.0]);
        assert_eq!(r.ejections.len(), 2);
        assert_eq!(r.ejections[0].readmitted_ms, Some(2800.0));
        assert_eq!(r.ejections[1].readmitted_ms, None);
        assert_eq!(r.ejections[1].count, 2);

        let none = analyze(&BalancerCfg::default(), &[]);
        assert!(!none.recorded && none.nodes.is_empty() && none.share.is_empty());
        assert_eq!(none.strategy, "leader-aware");
    }
}
