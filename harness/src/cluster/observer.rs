//! The observer (polls every node's status, keeps the [`ClusterView`] current and journals
//! role, term and leader changes) and the active health checks balancers rely on.

use std::sync::Arc;
use std::time::Duration;

use faultline_protocol::Op;
use tokio::task::JoinHandle;

use super::launch::NodeHandle;
use super::view::SharedView;
use crate::history::{EventKind, RunClock};

/// Something that journals events (the run's `events.jsonl`).
pub trait EventSink: Send + Sync + 'static {
    /// Journal `kind` as happening now.
    fn event(&self, kind: EventKind) {
        self.event_at(self.now_ns(), kind);
    }
    /// Journal `kind` as having happened at `t` (ns on the run clock), which may be earlier
    /// than events already journaled: readers sort by time.
    fn event_at(&self, t: u64, kind: EventKind);
    /// The run clock now.
    fn now_ns(&self) -> u64;
}

impl EventSink for (crate::history::Recorder, RunClock) {
    fn event_at(&self, t: u64, kind: EventKind) {
        self.0.record(&crate::history::Event { t, kind });
    }
    fn now_ns(&self) -> u64 {
        self.1.ns()
    }
}

/// When a role change the observer just saw happened: `role_us` (the node's own age of its
/// role) before the reply arrived at `got`, but not before `seen_old` (when the poll that
/// still saw the old role was sent), since it had not happened then. Without `role_us`,
/// `got`.
fn changed_at(got: u64, role_us: Option<u64>, seen_old: Option<u64>) -> u64 {
    match role_us {
        Some(us) => got
            .saturating_sub(us.saturating_mul(1_000))
            .max(seen_old.unwrap_or(0))
            .min(got),
        None => got,
    }
}

/// Poll each node's status every `interval` on a connection of its own; update `view` and
/// journal changes. The observer dials each node directly, past any client link fault: it is
/// the harness's view of the cluster, not a client's. Returns the polling tasks; abort them to
/// stop.
pub fn spawn_observer(
    nodes: &[Arc<NodeHandle>],
    view: SharedView,
    interval: Duration,
    sink: Arc<dyn EventSink>,
) -> Vec<JoinHandle<()>> {
    nodes
        .iter()
        .enumerate()
        .map(|(idx, node)| {
            let client = node.driver.client(
                &node.id,
                node.client_addr,
                1,
                interval.max(Duration::from_millis(50)),
            );
            let view = view.clone();
            let sink = sink.clone();
            let id = node.id.clone();
            tokio::spawn(async move {
                let mut last: Option<(faultline_protocol::Role, u64, Option<String>)> = None;
                // When the last poll that saw `last` was sent.
                let mut seen_old: Option<u64> = None;
                let mut was_reachable = false;
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let timeout = interval.max(Duration::from_millis(50));
                    let asked = sink.now_ns();
                    match client
                        .call(Op::Status, timeout)
                        .await
                        .ok()
                        .and_then(|r| r.status)
                    {
                        Some(s) => {
                            let now = (s.role, s.term, s.leader.clone());
                            {
                                let mut v = view.write().expect("view lock");
                                let n = &mut v.nodes[idx];
                                n.role = s.role;
                                n.term = s.term;
                                n.leader = s.leader.clone();
                                n.reachable = true;
                            }
                            was_reachable = true;
                            let changed = last.as_ref() != Some(&now);
                            // Only a change of role or term is dated back by the node's own
                            // clock; a new leader hint alone is dated when seen.
                            let role_changed = last
                                .as_ref()
                                .is_none_or(|(r, t, _)| (*r, *t) != (s.role, s.term));
                            if changed {
                                let got = sink.now_ns();
                                let t = if role_changed {
                                    changed_at(got, s.role_us, seen_old)
                                } else {
                                    got
                                };
                                sink.event_at(
                                    t,
                                    EventKind::Role {
                                        node: id.clone(),
                                        role: s.role,
                                        term: s.term,
                                        leader: s.leader,
                                    },
                                );
                                last = Some(now);
                            }
                            seen_old = Some(asked);
                        }
                        None => {
                            view.write().expect("view lock").nodes[idx].reachable = false;
                            if was_reachable {
                                sink.event(EventKind::Unreachable { node: id.clone() });
                                was_reachable = false;
                                // A node that comes back reports its role afresh.
                                last = None;
                                seen_old = None;
                            }
                        }
                    }
                }
            })
        })
        .collect()
}

/// How active health checks run (the experiment's `balancer.health`).
#[derive(Debug, Clone, Copy)]
pub struct HealthChecks {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failed checks before a node is marked down.
    pub unhealthy_after: u32,
    /// Consecutive good checks before a down node is marked up again.
    pub healthy_after: u32,
}

/// Active health checks: a status call every `interval` with `timeout`; `unhealthy_after`
/// consecutive failures mark a node down, `healthy_after` consecutive successes mark it up.
pub fn spawn_health_checks(
    nodes: &[Arc<NodeHandle>],
    view: SharedView,
    cfg: HealthChecks,
) -> Vec<JoinHandle<()>> {
    let interval = cfg.interval.max(Duration::from_millis(1));
    let timeout = cfg.timeout.max(Duration::from_millis(1));
    let (down_after, up_after) = (cfg.unhealthy_after.max(1), cfg.healthy_after.max(1));
    nodes
        .iter()
        .enumerate()
        .map(|(idx, node)| {
            let client = node.driver.client(&node.id, node.client_via, 1, timeout);
            let view = view.clone();
            tokio::spawn(async move {
                let (mut fails, mut oks) = (0u32, 0u32);
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let good = client.call(Op::Status, timeout).await.is_ok_and(|r| r.ok);
                    if good {
                        oks += 1;
                        fails = 0;
                    } else {
                        fails += 1;
                        oks = 0;
                    }
                    let mut v = view.write().expect("view lock");
                    let n = &mut v.nodes[idx];
                    if n.healthy && fails >= down_after {
                        n.healthy = false;
                    } else if !n.healthy && oks >= up_after {
                        n.healthy = true;
                    }
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::changed_at;

    #[test]
    fn role_changes_are_dated_by_the_node_within_what_the_polls_allow() {
        const MS: u64 = 1_000_000;
        // Reply at 100 ms, the node says its role is 30 ms old: it changed at 70 ms.
        assert_eq!(changed_at(100 * MS, Some(30_000), Some(60 * MS)), 70 * MS);
        // A poll sent at 80 ms still saw the old role: not before 80 ms.
        assert_eq!(changed_at(100 * MS, Some(30_000), Some(80 * MS)), 80 * MS);
        // First sight of a node: as old as it says, but not before the run.
        assert_eq!(changed_at(10 * MS, Some(50_000), None), 0);
        // A node that does not say: when seen.
        assert_eq!(changed_at(100 * MS, None, Some(80 * MS)), 100 * MS);
    }
}
