//! The proxy mesh of `network.mode: proxy`: one link proxy per directed node-to-node link and
//! one per client-to-node link, and the bookkeeping that turns "bytes from a to b suffer this"
//! into settings on the right proxy and direction, with overlapping faults merged and each
//! fault healed on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;

use faultline_faults::proxy::{Cut, Direction, LinkFault, LinkProxy, Namespace};

/// One end of a flow of bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum End {
    Node(String),
    /// The harness's clients (load, health checks, observer).
    Clients,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Node(n) => f.write_str(n),
            End::Clients => f.write_str("clients"),
        }
    }
}

/// A directed flow: bytes sent by `.0` towards `.1`.
pub type Flow = (End, End);

/// Which proxy: the link `a` dials to reach `b`, or the clients' link to a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LinkKey {
    Peer(String, String),
    Client(String),
}

#[derive(Default)]
struct Active {
    /// Fault id -> the (link, direction, fault) settings it made.
    by_fault: BTreeMap<u64, Vec<(LinkKey, Dir, LinkFault)>>,
}

/// `Direction` with an order, for the maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dir {
    Forward,
    Backward,
}

impl From<Dir> for Direction {
    fn from(d: Dir) -> Direction {
        match d {
            Dir::Forward => Direction::Forward,
            Dir::Backward => Direction::Backward,
        }
    }
}

/// Every proxy of a run. Dropping it closes them all.
pub struct Mesh {
    peer: BTreeMap<(String, String), LinkProxy>,
    client: BTreeMap<String, LinkProxy>,
    active: Mutex<Active>,
}

impl Mesh {
    /// Start the proxies: for each ordered pair of nodes (a, b) a relay on `ip` to b's peer
    /// address, and for each node a relay to its client address.
    pub async fn start(
        ip: std::net::IpAddr,
        nodes: &[(String, SocketAddr, SocketAddr)],
    ) -> std::io::Result<Mesh> {
        Self::start_in(nodes, |_| (ip, None), ip).await
    }

    /// As [`Mesh::start`], with each node's outgoing peer proxies listening where `peer_side`
    /// says (an address, and the namespace their sockets live in), and the client proxies on
    /// `client_ip` in the harness's namespace.
    pub async fn start_in(
        nodes: &[(String, SocketAddr, SocketAddr)],
        peer_side: impl Fn(&str) -> (std::net::IpAddr, Option<Namespace>),
        client_ip: std::net::IpAddr,
    ) -> std::io::Result<Mesh> {
        let mut peer = BTreeMap::new();
        let mut client = BTreeMap::new();
        for (b, client_addr, peer_addr) in nodes {
            for (a, _, _) in nodes {
                if a != b {
                    let (ip, ns) = peer_side(a);
                    let p = LinkProxy::bind_in(
                        format!("{a}->{b}"),
                        SocketAddr::new(ip, 0),
                        *peer_addr,
                        ns,
                    )
                    .await?;
                    peer.insert((a.clone(), b.clone()), p);
                }
            }
            let p = LinkProxy::bind(
                format!("clients->{b}"),
                SocketAddr::new(client_ip, 0),
                *client_addr,
            )
            .await?;
            client.insert(b.clone(), p);
        }
        Ok(Mesh {
            peer,
            client,
            active: Mutex::new(Active::default()),
        })
    }

    /// The address `from` dials to reach `to`'s peer port.
    pub fn peer_addr(&self, from: &str, to: &str) -> Option<SocketAddr> {
        self.peer
            .get(&(from.to_string(), to.to_string()))
            .map(|p| p.local_addr())
    }

    /// The address clients dial to reach `node`.
    pub fn client_addr(&self, node: &str) -> Option<SocketAddr> {
        self.client.get(node).map(|p| p.local_addr())
    }

    /// Where the bytes of a flow pass: the proxy and the direction in it.
    fn places(flow: &Flow) -> Vec<(LinkKey, Dir)> {
        match flow {
            (End::Node(a), End::Node(b)) if a != b => vec![
                // a's own connection to b carries a's bytes forward...
                (LinkKey::Peer(a.clone(), b.clone()), Dir::Forward),
                // ...and b's connection to a carries them back.
                (LinkKey::Peer(b.clone(), a.clone()), Dir::Backward),
            ],
            (End::Clients, End::Node(b)) => vec![(LinkKey::Client(b.clone()), Dir::Forward)],
            (End::Node(a), End::Clients) => vec![(LinkKey::Client(a.clone()), Dir::Backward)],
            _ => vec![],
        }
    }

    fn proxy(&self, key: &LinkKey) -> Option<&LinkProxy> {
        match key {
            LinkKey::Peer(a, b) => self.peer.get(&(a.clone(), b.clone())),
            LinkKey::Client(n) => self.client.get(n),
        }
    }

    /// Apply `fault` to every flow, as fault `id`. Returns how many proxy directions changed.
    pub fn apply(&self, id: u64, flows: &[Flow], fault: &LinkFault) -> usize {
        let mut active = self.active.lock().expect("mesh faults");
        let mut touched = BTreeSet::new();
        let entry = active.by_fault.entry(id).or_default();
        for flow in flows {
            for (key, dir) in Self::places(flow) {
                if self.proxy(&key).is_some() && touched.insert((key.clone(), dir)) {
                    entry.push((key, dir, fault.clone()));
                }
            }
        }
        for (key, dir) in &touched {
            self.refresh(&active, key, *dir);
        }
        touched.len()
    }

    /// Undo fault `id`; links it shared with other faults keep theirs.
    pub fn heal(&self, id: u64) {
        let mut active = self.active.lock().expect("mesh faults");
        if let Some(settings) = active.by_fault.remove(&id) {
            for (key, dir, _) in settings {
                self.refresh(&active, &key, dir);
            }
        }
    }

    /// Undo every fault and set every link back to pass-through.
    pub fn heal_all(&self) {
        let mut active = self.active.lock().expect("mesh faults");
        active.by_fault.clear();
        for p in self.peer.values().chain(self.client.values()) {
            p.heal();
        }
    }

    /// Set one proxy direction to the merge of every active fault on it.
    fn refresh(&self, active: &Active, key: &LinkKey, dir: Dir) {
        let Some(p) = self.proxy(key) else { return };
        let on: Vec<&LinkFault> = active
            .by_fault
            .values()
            .flatten()
            .filter(|(k, d, _)| k == key && *d == dir)
            .map(|(_, _, f)| f)
            .collect();
        p.set(dir.into(), merge(&on));
    }

    /// Bytes relayed so far, per proxy (name -> forward, backward), for the run files.
    pub fn stats(&self) -> Vec<(String, u64, u64)> {
        self.peer
            .values()
            .chain(self.client.values())
            .map(|p| {
                let s = p.stats();
                (p.name().to_string(), s.bytes_forward, s.bytes_backward)
            })
            .collect()
    }
}

/// The effect of several faults on one link direction: any cut wins (a reset over a
/// blackhole), the longest delay and jitter, the narrowest bandwidth, the first of the rest.
pub fn merge(faults: &[&LinkFault]) -> LinkFault {
    let mut m = LinkFault::default();
    for f in faults {
        m.cut = match (m.cut, f.cut) {
            (Some(Cut::Reset), _) | (_, Some(Cut::Reset)) => Some(Cut::Reset),
            (a, b) => a.or(b),
        };
        m.delay = m.delay.max(f.delay);
        m.jitter = m.jitter.max(f.jitter);
        m.bandwidth = match (m.bandwidth, f.bandwidth) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        m.slice = m.slice.or(f.slice);
        m.limit_data = m.limit_data.or(f.limit_data);
        m.reset_after = m.reset_after.or(f.reset_after);
        m.slow_close = m.slow_close.or(f.slow_close);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn flows_map_to_both_connections_of_a_node_pair() {
        let p = Mesh::places(&(End::Node("n1".into()), End::Node("n2".into())));
        assert_eq!(
            p,
            vec![
                (LinkKey::Peer("n1".into(), "n2".into()), Dir::Forward),
                (LinkKey::Peer("n2".into(), "n1".into()), Dir::Backward),
            ]
        );
        let c = Mesh::places(&(End::Node("n3".into()), End::Clients));
        assert_eq!(c, vec![(LinkKey::Client("n3".into()), Dir::Backward)]);
        assert!(Mesh::places(&(End::Node("n1".into()), End::Node("n1".into()))).is_empty());
    }

    #[test]
    fn merged_faults_take_the_worst_of_each() {
        let a = LinkFault {
            delay: Duration::from_millis(10),
            bandwidth: Some(1000),
            ..LinkFault::default()
        };
        let b = LinkFault {
            cut: Some(Cut::Blackhole),
            delay: Duration::from_millis(5),
            bandwidth: Some(500),
            ..LinkFault::default()
        };
        let r = LinkFault::reset();
        let m = merge(&[&a, &b]);
        assert_eq!(m.cut, Some(Cut::Blackhole));
        assert_eq!(m.delay, Duration::from_millis(10));
        assert_eq!(m.bandwidth, Some(500));
        assert_eq!(merge(&[&b, &r]).cut, Some(Cut::Reset));
        assert!(merge(&[]).is_clear());
    }

    #[tokio::test]
    async fn overlapping_faults_heal_one_at_a_time() {
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let up = |port| SocketAddr::new(ip, port);
        let nodes = vec![
            ("n1".to_string(), up(1), up(2)),
            ("n2".to_string(), up(3), up(4)),
        ];
        let mesh = Mesh::start(ip, &nodes).await.unwrap();
        let flow = (End::Node("n1".into()), End::Node("n2".into()));
        let delay = LinkFault {
            delay: Duration::from_millis(20),
            ..LinkFault::default()
        };
        assert_eq!(
            mesh.apply(1, std::slice::from_ref(&flow), &LinkFault::blackhole()),
            2
        );
        assert_eq!(mesh.apply(2, std::slice::from_ref(&flow), &delay), 2);
        let link = &mesh.peer[&("n1".to_string(), "n2".to_string())];
        assert_eq!(link.get(Direction::Forward).cut, Some(Cut::Blackhole));
        assert!(link.get(Direction::Backward).is_clear());
        mesh.heal(1);
        assert_eq!(link.get(Direction::Forward), delay);
        mesh.heal(2);
        assert!(link.get(Direction::Forward).is_clear());
        let back = &mesh.peer[&("n2".to_string(), "n1".to_string())];
        assert!(back.get(Direction::Backward).is_clear());
    }
}
