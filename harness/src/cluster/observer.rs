//! The observer (polls every node's status, keeps the [`ClusterView`] current and journals
//! role, term and leader changes) and the active health checks balancers rely on.

use std::sync::Arc;
use std::time::Duration;

use faultline_protocol::Op;
use tokio::task::JoinHandle;

use super::client::NodeClient;
use super::launch::NodeHandle;
use super::view::SharedView;
use crate::history::{EventKind, RunClock};

/// Something that journals events (the run's `events.jsonl`).
pub trait EventSink: Send + Sync + 'static {
    fn event(&self, kind: EventKind);
}

impl EventSink for (crate::history::Recorder, RunClock) {
    fn event(&self, kind: EventKind) {
        self.0.record(&crate::history::Event {
            t: self.1.ns(),
            kind,
        });
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
            let client =
                NodeClient::new(node.client_addr, 1, interval.max(Duration::from_millis(50)));
            let view = view.clone();
            let sink = sink.clone();
            let id = node.id.clone();
            tokio::spawn(async move {
                let mut last: Option<(faultline_protocol::Role, u64, Option<String>)> = None;
                let mut was_reachable = false;
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let timeout = interval.max(Duration::from_millis(50));
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
                            if last.as_ref() != Some(&now) {
                                sink.event(EventKind::Role {
                                    node: id.clone(),
                                    role: s.role,
                                    term: s.term,
                                    leader: s.leader,
                                });
                                last = Some(now);
                            }
                        }
                        None => {
                            view.write().expect("view lock").nodes[idx].reachable = false;
                            if was_reachable {
                                sink.event(EventKind::Unreachable { node: id.clone() });
                                was_reachable = false;
                                // A node that comes back reports its role afresh.
                                last = None;
                            }
                        }
                    }
                }
            })
        })
        .collect()
}

/// Active health checks: a status call every `interval` with `timeout`; `unhealthy_after`
/// consecutive failures mark a node down, `healthy_after` consecutive successes mark it up.
pub fn spawn_health_checks(
    nodes: &[Arc<NodeHandle>],
    view: SharedView,
    cfg: &crate::experiment::HealthCfg,
) -> Vec<JoinHandle<()>> {
    let interval = cfg.interval.0.max(Duration::from_millis(1));
    let timeout = cfg.timeout.0.max(Duration::from_millis(1));
    let (down_after, up_after) = (cfg.unhealthy_after.max(1), cfg.healthy_after.max(1));
    nodes
        .iter()
        .enumerate()
        .map(|(idx, node)| {
            let client = NodeClient::new(node.client_via, 1, timeout);
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
