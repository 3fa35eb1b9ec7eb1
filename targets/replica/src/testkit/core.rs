//! Helpers for the protocol crates' scenario tests of their pure cores: client operations
//! and node lists as the tests write them, and the scenarios every leader-based core must
//! pass, run on a protocol's simulator through [`ScenarioSim`].

use faultline_protocol::{Op, Response};

use crate::driver::{ClientToken, Millis};
use crate::kv::KvState;

/// A client write of `value` to `key`.
pub fn write(key: &str, value: i64) -> Op {
    Op::Write {
        key: key.into(),
        value,
    }
}

/// A client read of `key`.
pub fn read(key: &str) -> Op {
    Op::Read { key: key.into() }
}

/// A client compare-and-set of `key` from `from` to `to`.
pub fn cas(key: &str, from: Option<i64>, to: i64) -> Op {
    Op::Cas {
        key: key.into(),
        from,
        to,
    }
}

/// Every node of `nodes` but `id`, in order.
pub fn others(nodes: &[String], id: &str) -> Vec<String> {
    nodes.iter().filter(|n| *n != id).cloned().collect()
}

/// What the shared scenarios ask of a protocol crate's simulator of its pure cores
/// (the shared simulator, [`crate::sim::Sim`], implements it for a core that implements
/// [`ScenarioCore`]).
pub trait ScenarioSim: Sized {
    type Settings: Default;
    /// A cluster of `n` fresh nodes, all started, with planted `bugs`, seeded with `seed`.
    fn new(seed: u64, n: usize, settings: Self::Settings, bugs: &[&str]) -> Self;
    /// Every node of the cluster.
    fn nodes(&self) -> Vec<String>;
    /// Messages take at most `max` ms.
    fn set_max_delay(&mut self, max: Millis);
    /// Drop every message from `from` to `to` until [`ScenarioSim::heal`].
    fn block(&mut self, from: &str, to: &str);
    /// Deliver every message again.
    fn heal(&mut self);
    fn crash(&mut self, id: &str);
    fn start(&mut self, id: &str);
    /// Crash node `id`, give it an empty disk and start it again.
    fn wipe(&mut self, id: &str);
    /// Run the cluster for `ms` (an error: a safety check failed).
    fn run_for(&mut self, ms: Millis) -> Result<(), String>;
    /// The node that leads now, if exactly one does.
    fn leader(&self) -> Option<String>;
    /// The leader node `id` follows, if it is up and knows one.
    fn leader_of(&self, id: &str) -> Option<String>;
    /// The last index (slot) folded into node `id`'s snapshot, and how far it applied.
    fn snapshot_and_applied(&self, id: &str) -> (u64, u64);
    /// Node `id`'s state machine.
    fn state(&self, id: &str) -> KvState;
    /// A client request of `op` at node `id`.
    fn request(&mut self, id: &str, op: Op) -> Result<ClientToken, String>;
    /// The answer to request `token`, once there is one.
    fn reply(&self, token: ClientToken) -> Option<&Response>;
}

/// What the shared scenarios read from a core: whom it follows, its snapshot and its state.
/// [`scenario_core!`](crate::scenario_core) implements it for a leader-based core.
pub trait ScenarioCore {
    /// The leader this node follows, if it knows one.
    fn leader_known(&self) -> Option<String>;
    /// The last index (slot) folded into its snapshot, and how far it applied.
    fn snapshot_and_applied(&self) -> (u64, u64);
    /// Its state machine.
    fn state(&self) -> KvState;
}

/// Implements [`ScenarioCore`] for a [`ForwardingCore`](crate::forward::ForwardingCore) `$core`
/// whose `inspect()` names the snapshot's last index `$snapshot`.
#[macro_export]
macro_rules! scenario_core {
    ($core:ty, $snapshot:ident) => {
        impl $crate::testkit::core::ScenarioCore for $core {
            fn leader_known(&self) -> Option<String> {
                use $crate::forward::ForwardingCore as _;
                self.status().leader
            }
            fn snapshot_and_applied(&self) -> (u64, u64) {
                let inspect = self.inspect();
                (inspect.$snapshot, inspect.applied)
            }
            fn state(&self) -> $crate::KvState {
                self.inspect().kv
            }
        }
    };
}

/// The shared simulator runs the shared scenarios of any protocol whose core answers them.
#[cfg(feature = "sim")]
impl<P> ScenarioSim for crate::sim::Sim<P>
where
    P: crate::sim::Protocol,
    P::Core: ScenarioCore,
    crate::sim::Settings<P>: Default,
    crate::sim::Msg<P>: Clone,
{
    type Settings = crate::sim::Settings<P>;

    fn new(seed: u64, n: usize, settings: Self::Settings, bugs: &[&str]) -> Self {
        crate::sim::Sim::new(seed, n, settings, bugs)
    }
    fn nodes(&self) -> Vec<String> {
        self.nodes.clone()
    }
    fn set_max_delay(&mut self, max: Millis) {
        self.max_delay = max;
    }
    fn block(&mut self, from: &str, to: &str) {
        self.blocked.insert((from.to_owned(), to.to_owned()));
    }
    fn heal(&mut self) {
        crate::sim::Sim::heal(self)
    }
    fn crash(&mut self, id: &str) {
        crate::sim::Sim::crash(self, id)
    }
    fn start(&mut self, id: &str) {
        crate::sim::Sim::start(self, id)
    }
    fn wipe(&mut self, id: &str) {
        crate::sim::Sim::crash(self, id);
        crate::sim::Sim::wipe(self, id);
        crate::sim::Sim::start(self, id)
    }
    fn run_for(&mut self, ms: Millis) -> Result<(), String> {
        crate::sim::Sim::run_for(self, ms)
    }
    fn leader(&self) -> Option<String> {
        crate::sim::Sim::leader(self)
    }
    fn leader_of(&self, id: &str) -> Option<String> {
        self.core(id).and_then(|c| c.leader_known())
    }
    fn snapshot_and_applied(&self, id: &str) -> (u64, u64) {
        self.core(id).expect("node is up").snapshot_and_applied()
    }
    fn state(&self, id: &str) -> KvState {
        self.core(id).expect("node is up").state()
    }
    fn request(&mut self, id: &str, op: Op) -> Result<ClientToken, String> {
        crate::sim::Sim::request(self, id, op)
    }
    fn reply(&self, token: ClientToken) -> Option<&Response> {
        crate::sim::Sim::reply(self, token)
    }
}

/// The shared scenarios as tests (module `shared`) of a protocol crate's simulator `$sim`,
/// which implements [`ScenarioSim`].
#[macro_export]
macro_rules! shared_scenarios {
    ($sim:ty) => {
        mod shared {
            #[test]
            fn fresh_cluster_waits_for_every_node() {
                $crate::testkit::core::fresh_cluster_waits_for_every_node::<$sim>();
            }

            #[test]
            fn write_is_acknowledged_only_once_a_quorum_has_it() {
                $crate::testkit::core::write_is_acknowledged_only_once_a_quorum_has_it::<$sim>();
            }
        }
    };
}

/// Three nodes, messages taking at most 1 ms, run until they settled: every node follows
/// the same leader, which is returned.
pub fn settled<S: ScenarioSim>(settings: S::Settings, bugs: &[&str]) -> (S, String) {
    let mut sim = S::new(7, 3, settings, bugs);
    sim.set_max_delay(1);
    sim.run_for(600).unwrap();
    let leader = sim.leader().expect("a leader within 600ms");
    for n in sim.nodes() {
        assert_eq!(sim.leader_of(&n), Some(leader.clone()), "{n}");
    }
    (sim, leader)
}

/// Read `key` at the current leader (after letting one settle).
pub fn read_at_leader<S: ScenarioSim>(sim: &mut S, key: &str) -> Option<i64> {
    let leader = sim.leader().expect("a leader");
    let t = sim.request(&leader, read(key)).unwrap();
    sim.run_for(100).unwrap();
    let r = sim.reply(t).expect("read answered").clone();
    assert!(r.ok, "{r:?}");
    r.value.flatten()
}

/// Request `op` at `node` and run the cluster for `ms`: by then it is acknowledged (`ok`).
pub fn acknowledged<S: ScenarioSim>(sim: &mut S, node: &str, op: Op, ms: Millis) {
    let t = sim.request(node, op).unwrap();
    sim.run_for(ms).unwrap();
    assert!(sim.reply(t).is_some_and(|r| r.ok), "{:?}", sim.reply(t));
}

/// Request `op` at `node` and run the cluster for `ms`: by then it is answered (the answer).
pub fn answer_after<S: ScenarioSim>(sim: &mut S, node: &str, op: Op, ms: Millis) -> Response {
    let t = sim.request(node, op).unwrap();
    sim.run_for(ms).unwrap();
    sim.reply(t).expect("answered").clone()
}

/// Request `op` at `node`: it is answered at once, with no message round trip.
pub fn answered_at_once<S: ScenarioSim>(sim: &mut S, node: &str, op: Op) -> Response {
    let t = sim.request(node, op).unwrap();
    sim.reply(t).expect("answered at once").clone()
}

/// Write `a` = 1, 2, ... `writes` at the leader, run for `ms`, then wipe the first other
/// node's disk ([`ScenarioSim::wipe`]); returns that node.
pub fn wipe_a_follower<S: ScenarioSim>(
    sim: &mut S,
    leader: &str,
    writes: i64,
    ms: Millis,
) -> String {
    for i in 1..=writes {
        sim.request(leader, write("a", i)).unwrap();
    }
    sim.run_for(ms).unwrap();
    let wiped = others(&sim.nodes(), leader)[0].clone();
    sim.wipe(&wiped);
    wiped
}

/// A node down while the leader writes `k{i % keys}` = `i` for `i` in 1..=`writes`, 2 ms
/// apart, and compacts (`settings` make it compact at least every 20 entries), catches up
/// from a snapshot within `catch_up` ms of its restart: it applied as far as the leader, to
/// the same state. Returns the cluster, the leader and that node.
pub fn lagging_node_catches_up_from_a_snapshot<S: ScenarioSim>(
    settings: S::Settings,
    (writes, keys): (i64, i64),
    catch_up: Millis,
) -> (S, String, String) {
    let (mut sim, leader) = settled::<S>(settings, &[]);
    let lagging = others(&sim.nodes(), &leader)[0].clone();
    sim.crash(&lagging);
    for i in 1..=writes {
        sim.request(&leader, write(&format!("k{}", i % keys), i))
            .unwrap();
        sim.run_for(2).unwrap();
    }
    sim.run_for(100).unwrap();
    let (compacted, _) = sim.snapshot_and_applied(&leader);
    assert!(
        compacted + 20 >= writes as u64,
        "the leader compacted to {compacted}"
    );
    sim.start(&lagging);
    sim.run_for(catch_up).unwrap();
    let (snapshot, applied) = sim.snapshot_and_applied(&lagging);
    assert_eq!(applied, sim.snapshot_and_applied(&leader).1);
    assert_eq!(sim.state(&lagging), sim.state(&leader));
    assert!(snapshot > 0, "caught up without a snapshot");
    (sim, leader, lagging)
}

/// A fresh cluster with one node down elects no leader: a fresh node takes part only once
/// every peer said it holds nothing. Once the node is up, the cluster elects one.
pub fn fresh_cluster_waits_for_every_node<S: ScenarioSim>() {
    let mut sim = S::new(3, 3, S::Settings::default(), &[]);
    sim.crash("n3");
    sim.run_for(1_000).unwrap();
    assert_eq!(
        sim.leader(),
        None,
        "a fresh node took part without hearing every peer"
    );
    sim.start("n3");
    sim.run_for(600).unwrap();
    assert!(sim.leader().is_some());
}

/// A leader cut off from every follower does not acknowledge a write; once healed it does,
/// and a read sees it.
pub fn write_is_acknowledged_only_once_a_quorum_has_it<S: ScenarioSim>() {
    let (mut sim, leader) = settled::<S>(S::Settings::default(), &[]);
    for f in others(&sim.nodes(), &leader) {
        sim.block(&leader, &f);
    }
    let t = sim.request(&leader, write("a", 1)).unwrap();
    sim.run_for(100).unwrap();
    assert_eq!(sim.reply(t), None, "acknowledged without a quorum");
    sim.heal();
    sim.run_for(100).unwrap();
    assert!(sim.reply(t).is_some_and(|r| r.ok), "{:?}", sim.reply(t));
    assert_eq!(read_at_leader(&mut sim, "a"), Some(1));
}
