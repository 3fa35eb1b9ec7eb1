//! Network faults resolved against the cluster: partition topologies and link faults become
//! lists of directed flows ("bytes from a to b") and the link settings to put on them.

use std::collections::BTreeSet;

use faultline_faults::netns::{Host, NetCut, NetRule};
use faultline_faults::proxy::{Cut, LinkFault, Slice};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::resolve;
use crate::cluster::{ClusterView, End, Flow};
use crate::experiment::{CutMode, Direction, Endpoint, LinkSpec, NetFault, Topology};

/// A resolved network fault: the flows it cuts or degrades, and the nodes it is aimed at (the
/// isolated side), which failover measures treat as the fault's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub flows: Vec<Flow>,
    pub hit: Vec<String>,
}

fn node(id: &str) -> End {
    End::Node(id.to_string())
}

/// Every flow between nodes of different groups, both ways. Nodes in no group talk to all.
fn across(groups: &[Vec<String>]) -> Vec<Flow> {
    let mut flows = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        for (j, h) in groups.iter().enumerate() {
            if i != j {
                for a in g {
                    for b in h {
                        if a != b {
                            flows.push((node(a), node(b)));
                        }
                    }
                }
            }
        }
    }
    flows.sort();
    flows.dedup();
    flows
}

fn ids(view: &ClusterView) -> Vec<String> {
    view.nodes.iter().map(|n| n.id.clone()).collect()
}

fn check_known(view: &ClusterView, names: &[&String]) -> Result<(), String> {
    match names.iter().find(|id| view.index(id).is_none()) {
        Some(id) => Err(format!("no node {id} in this cluster")),
        None => Ok(()),
    }
}

/// Turn a topology into flows against the current view.
pub fn partition(
    topology: &Topology,
    view: &ClusterView,
    rng: &mut ChaCha8Rng,
) -> Result<Resolved, String> {
    let all = ids(view);
    let n = all.len();
    let split = |order: Vec<String>| -> Resolved {
        let (a, b) = order.split_at(n / 2);
        Resolved {
            flows: across(&[a.to_vec(), b.to_vec()]),
            hit: {
                let mut h = a.to_vec();
                h.sort();
                h
            },
        }
    };
    let r = match topology {
        Topology::Isolate { who, direction } => {
            let hit = resolve(who, view, rng)?;
            let rest: Vec<&String> = all.iter().filter(|id| !hit.contains(id)).collect();
            if rest.is_empty() {
                return Err("isolating every node leaves nobody to cut off".into());
            }
            let mut flows = Vec::new();
            for h in &hit {
                for o in &rest {
                    if *direction != Direction::Out {
                        flows.push((node(o), node(h)));
                    }
                    if *direction != Direction::In {
                        flows.push((node(h), node(o)));
                    }
                }
            }
            flows.sort();
            Resolved { flows, hit }
        }
        Topology::Halves => split(all.clone()),
        Topology::RandomHalves => {
            let mut order = all.clone();
            order.shuffle(rng);
            split(order)
        }
        Topology::LeaderMinority => {
            let leader = resolve(&crate::experiment::Selector::Leader, view, rng)?;
            let size = ((n.saturating_sub(1)) / 2).max(1);
            let mut others: Vec<String> = all
                .iter()
                .filter(|id| !leader.contains(id))
                .cloned()
                .collect();
            others.shuffle(rng);
            let mut minority = leader;
            minority.extend(others.drain(..size - 1));
            minority.sort();
            Resolved {
                flows: across(&[minority.clone(), others]),
                hit: minority,
            }
        }
        Topology::Bridge => {
            if n < 3 {
                return Err(format!(
                    "a bridge needs 3 nodes or more, the cluster has {n}"
                ));
            }
            let mut order = all.clone();
            order.shuffle(rng);
            let mid = n / 2;
            Resolved {
                flows: across(&[order[..mid].to_vec(), order[mid + 1..].to_vec()]),
                hit: vec![],
            }
        }
        Topology::MajoritiesRing => {
            let mut order = all.clone();
            order.shuffle(rng);
            let majority = n / 2 + 1;
            // Each node sees itself and its k nearest on each side: 2k + 1 >= majority.
            let k = majority / 2;
            let mut flows = Vec::new();
            for i in 0..n {
                for j in 0..n {
                    let d = (i + n - j) % n;
                    let d = d.min(n - d);
                    if d > k {
                        flows.push((node(&order[i]), node(&order[j])));
                    }
                }
            }
            flows.sort();
            Resolved { flows, hit: vec![] }
        }
        Topology::Groups(groups) => {
            check_known(view, &groups.iter().flatten().collect::<Vec<_>>())?;
            let largest = groups.iter().map(Vec::len).max().unwrap_or(0);
            let mut hit: Vec<String> = groups
                .iter()
                .filter(|g| g.len() < largest)
                .flatten()
                .cloned()
                .collect();
            hit.sort();
            Resolved {
                flows: across(groups),
                hit,
            }
        }
        Topology::Grudge(g) => {
            let named: Vec<&String> = g.keys().chain(g.values().flatten()).collect();
            check_known(view, &named)?;
            let mut flows: Vec<Flow> = g
                .iter()
                .flat_map(|(k, from)| {
                    from.iter()
                        .filter(move |f| *f != k)
                        .map(move |f| (node(f), node(k)))
                })
                .collect();
            flows.sort();
            flows.dedup();
            Resolved {
                flows,
                hit: g.keys().cloned().collect(),
            }
        }
    };
    if r.flows.is_empty() {
        return Err(format!(
            "`{topology}` cuts no link in a cluster of {n} node(s)"
        ));
    }
    Ok(r)
}

/// The nodes (or clients) on one end of a link fault.
fn endpoint(e: &Endpoint, view: &ClusterView, rng: &mut ChaCha8Rng) -> Result<Vec<End>, String> {
    Ok(match e {
        Endpoint::Clients => vec![End::Clients],
        Endpoint::Nodes(s) => resolve(s, view, rng)?.iter().map(|n| node(n)).collect(),
        Endpoint::List(l) => {
            check_known(view, &l.iter().collect::<Vec<_>>())?;
            l.iter().map(|n| node(n)).collect()
        }
        Endpoint::Followers => {
            let leader = view
                .leader()
                .map(|i| view.nodes[i].id.clone())
                .ok_or("no node is known to lead, so no followers either")?;
            ids(view)
                .iter()
                .filter(|id| **id != leader)
                .map(|id| node(id))
                .collect()
        }
        // Every node; a flow never joins a node to itself, so `from: n1, to: others` is n1 to
        // the rest and `from: all, to: others` is every link.
        Endpoint::Others => ids(view).iter().map(|id| node(id)).collect(),
    })
}

/// Turn a link fault's ends into flows against the current view.
pub fn link(spec: &LinkSpec, view: &ClusterView, rng: &mut ChaCha8Rng) -> Result<Resolved, String> {
    let from = endpoint(&spec.from, view, rng)?;
    let to = endpoint(&spec.to, view, rng)?;
    let mut flows = BTreeSet::new();
    for f in &from {
        for t in &to {
            if f == t || (*f == End::Clients && *t == End::Clients) {
                continue;
            }
            flows.insert((f.clone(), t.clone()));
            if spec.both {
                flows.insert((t.clone(), f.clone()));
            }
        }
    }
    if flows.is_empty() {
        return Err(format!("`{}` and `{}` share no link", spec.from, spec.to));
    }
    let mut hit: Vec<String> = to
        .iter()
        .chain(&from)
        .filter_map(|e| match e {
            End::Node(n) => Some(n.clone()),
            End::Clients => None,
        })
        .collect();
    hit.sort();
    hit.dedup();
    Ok(Resolved {
        flows: flows.into_iter().collect(),
        hit,
    })
}

pub fn cut(mode: CutMode) -> LinkFault {
    match mode {
        CutMode::Blackhole => LinkFault::blackhole(),
        CutMode::Reset => LinkFault::reset(),
    }
}

/// The proxy settings a link fault asks for.
pub fn link_fault(spec: &LinkSpec) -> LinkFault {
    LinkFault {
        cut: spec.cut.map(|c| match c {
            CutMode::Blackhole => Cut::Blackhole,
            CutMode::Reset => Cut::Reset,
        }),
        delay: spec.delay.map(|d| d.0).unwrap_or_default(),
        jitter: spec.jitter.map(|d| d.0).unwrap_or_default(),
        bandwidth: spec.bandwidth.map(|b| b.0),
        slice: spec.slice.map(|s| Slice {
            avg_size: s.avg_size,
            size_variation: s.size_variation,
            delay: s.delay.0,
        }),
        limit_data: spec.limit_data,
        reset_after: spec.reset_after.map(|d| d.0),
        slow_close: spec.slow_close.map(|d| d.0),
    }
}

/// The packet rule a network fault asks for in `netns` mode (the schema refuses the proxy-only
/// parts there).
pub fn net_rule(net: &NetFault) -> NetRule {
    let cut = |c: CutMode| match c {
        CutMode::Blackhole => NetCut::Drop,
        CutMode::Reset => NetCut::Reset,
    };
    match net {
        NetFault::Partition { cut: c, .. } => NetRule {
            cut: Some(cut(*c)),
            ..NetRule::default()
        },
        NetFault::Link(l) => NetRule {
            cut: l.cut.map(cut),
            loss_percent: l.loss.unwrap_or(0.0),
            bandwidth: l.bandwidth.map(|b| b.0),
        },
    }
}

/// Flows as packet ends: the harness's clients are the harness's own address.
pub fn hosts(flows: &[Flow]) -> Vec<(Host, Host)> {
    let host = |e: &End| match e {
        End::Node(n) => Host::Node(n.clone()),
        End::Clients => Host::Harness,
    };
    flows.iter().map(|(a, b)| (host(a), host(b))).collect()
}

/// `a->b` for the journal.
pub fn describe(flows: &[Flow]) -> Vec<String> {
    flows.iter().map(|(a, b)| format!("{a}->{b}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Selector;
    use faultline_protocol::Role;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    fn view(n: usize, leader: Option<usize>) -> ClusterView {
        let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let mut v = ClusterView::new(&ids);
        for (i, node) in v.nodes.iter_mut().enumerate() {
            node.reachable = true;
            node.role = if Some(i) == leader {
                Role::Leader
            } else {
                Role::Follower
            };
            node.term = 1;
        }
        v
    }

    /// Who can send to whom after the cut.
    fn connected(v: &ClusterView, flows: &[Flow], a: &str, b: &str) -> bool {
        let _ = v;
        !flows.contains(&(node(a), node(b)))
    }

    #[test]
    fn isolate_leader_cuts_it_both_ways_and_one_way_one_way() {
        let v = view(5, Some(2));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let t = Topology::Isolate {
            who: Selector::Leader,
            direction: Direction::Both,
        };
        let r = partition(&t, &v, &mut rng).unwrap();
        assert_eq!(r.hit, ["n3"]);
        assert_eq!(r.flows.len(), 8);
        assert!(!connected(&v, &r.flows, "n3", "n1") && !connected(&v, &r.flows, "n1", "n3"));
        assert!(connected(&v, &r.flows, "n1", "n2"));
        let t = Topology::Isolate {
            who: Selector::Leader,
            direction: Direction::In,
        };
        let r = partition(&t, &v, &mut rng).unwrap();
        assert!(
            connected(&v, &r.flows, "n3", "n1"),
            "the leader still sends"
        );
        assert!(!connected(&v, &r.flows, "n1", "n3"), "but hears nothing");
        assert!(partition(&t, &view(5, None), &mut rng).is_err());
    }

    #[test]
    fn halves_and_leader_minority_leave_a_majority_side() {
        let v = view(5, Some(4));
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let r = partition(&Topology::Halves, &v, &mut rng).unwrap();
        assert_eq!(r.hit, ["n1", "n2"]);
        assert_eq!(r.flows.len(), 2 * 2 * 3);
        let r = partition(&Topology::LeaderMinority, &v, &mut rng).unwrap();
        assert_eq!(r.hit.len(), 2);
        assert!(r.hit.contains(&"n5".to_string()));
        let r = partition(&Topology::RandomHalves, &v, &mut rng).unwrap();
        assert_eq!(r.hit.len(), 2);
        assert_eq!(r.flows.len(), 12);
    }

    #[test]
    fn bridge_node_sees_both_sides() {
        let v = view(5, Some(0));
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let r = partition(&Topology::Bridge, &v, &mut rng).unwrap();
        assert_eq!(r.flows.len(), 2 * 2 * 2);
        let touched: BTreeSet<&End> = r.flows.iter().map(|f| &f.0).collect();
        assert_eq!(touched.len(), 4, "exactly one node keeps every link");
    }

    #[test]
    fn majorities_ring_gives_every_node_a_different_majority() {
        let v = view(5, Some(0));
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let r = partition(&Topology::MajoritiesRing, &v, &mut rng).unwrap();
        let mut seen = BTreeSet::new();
        for a in ids(&v) {
            let sees: BTreeSet<String> = ids(&v)
                .into_iter()
                .filter(|b| *b == a || connected(&v, &r.flows, b, &a))
                .collect();
            assert_eq!(sees.len(), 3, "{a} sees a majority: {sees:?}");
            assert!(seen.insert(sees), "no two nodes see the same majority");
        }
        assert!(partition(&Topology::MajoritiesRing, &view(3, Some(0)), &mut rng).is_err());
    }

    #[test]
    fn grudges_are_one_way_and_checked() {
        let v = view(3, Some(0));
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut g = BTreeMap::new();
        g.insert("n1".to_string(), vec!["n2".to_string(), "n3".to_string()]);
        let r = partition(&Topology::Grudge(g.clone()), &v, &mut rng).unwrap();
        assert_eq!(
            r.flows,
            vec![(node("n2"), node("n1")), (node("n3"), node("n1"))]
        );
        g.insert("n9".to_string(), vec!["n1".to_string()]);
        assert!(partition(&Topology::Grudge(g), &v, &mut rng).is_err());
    }

    #[test]
    fn link_ends_resolve_to_flows() {
        let v = view(3, Some(0));
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let spec: LinkSpec =
            serde_yaml::from_str("{from: leader, to: followers, delay: 10ms, both: true}").unwrap();
        let r = link(&spec, &v, &mut rng).unwrap();
        assert_eq!(r.flows.len(), 4);
        let spec: LinkSpec = serde_yaml::from_str("{from: clients, to: n2, cut: reset}").unwrap();
        let r = link(&spec, &v, &mut rng).unwrap();
        assert_eq!(r.flows, vec![(End::Clients, node("n2"))]);
        assert_eq!(link_fault(&spec).cut, Some(Cut::Reset));
        let spec: LinkSpec = serde_yaml::from_str("{from: n1, to: others, delay: 1ms}").unwrap();
        assert_eq!(link(&spec, &v, &mut rng).unwrap().flows.len(), 2);
        let spec: LinkSpec = serde_yaml::from_str("{from: all, to: others, delay: 1ms}").unwrap();
        assert_eq!(
            link(&spec, &v, &mut rng).unwrap().flows.len(),
            6,
            "every link"
        );
    }
}
