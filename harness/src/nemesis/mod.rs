//! The nemesis: turns the experiment's fault schedule into concrete fault operations at the
//! right times, resolves selectors against the [`ClusterView`] when each fault fires, journals
//! every fault before applying it, and heals everything on demand.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_faults::netns::NetRule;
use faultline_faults::proxy::LinkFault;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::cluster::{Cluster, ClusterView, EventSink, SharedView};
use crate::experiment::{FaultAction, FaultSpec, NetFault, Selector, When};

pub mod network;
use crate::history::EventKind;

/// Grace period for SIGTERM before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

/// One firing of a schedule entry.
#[derive(Debug, Clone)]
pub struct Firing {
    pub at: Duration,
    pub spec: FaultSpec,
}

/// Expand the schedule into firings within `[0, duration)`, in time order. A `one-of` entry
/// fires one of its alternatives each time, chosen from `seed`, so the same seed gives the
/// same schedule.
pub fn expand(faults: &[FaultSpec], duration: Duration, seed: u64) -> Vec<Firing> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6f6e_652d_6f66_2121);
    let mut out = Vec::new();
    for spec in faults {
        match spec.when {
            When::At(at) => {
                if at.0 < duration {
                    out.push(Firing {
                        at: at.0,
                        spec: spec.clone(),
                    });
                }
            }
            When::Every { every, from, until } => {
                let end = until.map_or(duration, |u| u.0.min(duration));
                let mut t = from.0;
                while t < end {
                    out.push(Firing {
                        at: t,
                        spec: spec.clone(),
                    });
                    t += every.0;
                }
            }
        }
    }
    out.sort_by_key(|f| f.at);
    for f in &mut out {
        if let Some(choice) = f.spec.choices.choose(&mut rng) {
            let mut chosen = choice.clone();
            chosen.choices.clear();
            f.spec = chosen;
        }
    }
    out
}

/// Resolve a selector against the view, among nodes that are up (not taken down by the
/// harness). `Err` says why nothing matched.
pub fn resolve(
    selector: &Selector,
    view: &ClusterView,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<String>, String> {
    let up: Vec<&str> = view
        .nodes
        .iter()
        .filter(|n| !n.down)
        .map(|n| n.id.as_str())
        .collect();
    let n = view.nodes.len();
    let pick = |k: usize, rng: &mut ChaCha8Rng| -> Result<Vec<String>, String> {
        if up.len() < k || k == 0 {
            return Err(format!("needs {k} running node(s), {} running", up.len()));
        }
        let mut v: Vec<String> = up.choose_multiple(rng, k).map(|s| s.to_string()).collect();
        v.sort();
        Ok(v)
    };
    match selector {
        Selector::Leader => view
            .leader()
            .map(|i| vec![view.nodes[i].id.clone()])
            .ok_or_else(|| "no node is known to lead".to_string()),
        Selector::Follower => {
            let leader = view.leader().map(|i| view.nodes[i].id.as_str());
            let followers: Vec<&str> = up
                .iter()
                .copied()
                .filter(|id| Some(*id) != leader)
                .collect();
            followers
                .choose(rng)
                .map(|id| vec![id.to_string()])
                .ok_or_else(|| "no running follower".to_string())
        }
        Selector::Random => pick(1, rng),
        Selector::Minority => pick((n - 1) / 2, rng),
        Selector::Majority => pick(n / 2 + 1, rng),
        Selector::All => pick(up.len(), rng),
        Selector::Node(id) => {
            if view.index(id).is_none() {
                Err(format!("no node {id} in this cluster"))
            } else if up.contains(&id.as_str()) {
                Ok(vec![id.clone()])
            } else {
                Err(format!("{id} is already down"))
            }
        }
    }
}

/// Applies faults and remembers what is still broken, so [`Nemesis::heal_all`] can undo it.
pub struct Nemesis {
    cluster: Arc<Cluster>,
    view: SharedView,
    sink: Arc<dyn EventSink>,
    rng: Mutex<ChaCha8Rng>,
    next_id: AtomicU64,
    /// Faults applied and not yet healed: id -> (verb, nodes).
    active: Mutex<BTreeMap<u64, (FaultAction, Vec<String>)>>,
    /// Verb of the most recent active fault, for the progress display.
    pub describe: Mutex<Option<String>>,
}

impl Nemesis {
    pub fn new(
        cluster: Arc<Cluster>,
        view: SharedView,
        sink: Arc<dyn EventSink>,
        seed: u64,
    ) -> Arc<Self> {
        Arc::new(Nemesis {
            cluster,
            view,
            sink,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321)),
            next_id: AtomicU64::new(1),
            active: Mutex::new(BTreeMap::new()),
            describe: Mutex::new(None),
        })
    }

    /// Spawn the schedule: each firing runs as its own task at `start + at`.
    pub fn spawn_schedule(
        self: &Arc<Self>,
        firings: Vec<Firing>,
        start: Instant,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        firings
            .into_iter()
            .map(|f| {
                let me = self.clone();
                tokio::spawn(async move {
                    let due = start + f.at;
                    if f.spec.net.is_some() {
                        // A network fault waits out its last 2 ms on the blocking thread that
                        // applies it (`fire_net`): no hop back to the runtime in between.
                        if let Some(early) = due.checked_sub(SHARP) {
                            tokio::time::sleep_until(early.into()).await;
                        }
                    } else {
                        sleep_until_sharp(due).await;
                    }
                    me.fire_due(&f.spec, Some(due)).await;
                })
            })
            .collect()
    }

    fn set_down(&self, nodes: &[String], down: bool) {
        let mut v = self.view.write().expect("view lock");
        for id in nodes {
            if let Some(i) = v.index(id) {
                v.nodes[i].down = down;
                if down {
                    v.nodes[i].reachable = false;
                }
            }
        }
    }

    fn begin(
        &self,
        action: FaultAction,
        selector: String,
        nodes: &[String],
        links: Vec<String>,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Journaled before it is applied.
        self.sink.event(EventKind::FaultStart {
            id,
            fault: action.as_str().into(),
            selector,
            nodes: nodes.to_vec(),
            links,
        });
        self.active
            .lock()
            .expect("active faults")
            .insert(id, (action, nodes.to_vec()));
        *self.describe.lock().expect("describe") =
            Some(format!("{} {}", action.as_str(), nodes.join(",")));
        id
    }

    fn end(&self, id: u64) {
        let removed = self.active.lock().expect("active faults").remove(&id);
        if let Some((action, nodes)) = removed {
            self.sink.event(EventKind::FaultEnd {
                id,
                fault: action.as_str().into(),
                nodes,
            });
        }
        let active = self.active.lock().expect("active faults");
        *self.describe.lock().expect("describe") = active
            .values()
            .next_back()
            .map(|(a, n)| format!("{} {}", a.as_str(), n.join(",")));
    }

    fn is_active(&self, id: u64) -> bool {
        self.active.lock().expect("active faults").contains_key(&id)
    }

    fn nodes_op(
        &self,
        nodes: &[String],
        f: impl Fn(&Cluster, &crate::cluster::NodeHandle) -> Result<(), crate::cluster::ClusterError>,
    ) {
        for id in nodes {
            if let Some(n) = self.cluster.node(id) {
                if let Err(e) = f(&self.cluster, n) {
                    tracing::warn!("fault on {id}: {e}");
                }
            }
        }
    }

    async fn blocking(
        self: &Arc<Self>,
        nodes: Vec<String>,
        f: fn(&Cluster, &crate::cluster::NodeHandle) -> Result<(), crate::cluster::ClusterError>,
    ) {
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || me.nodes_op(&nodes, f)).await;
    }

    /// Apply one fault now, and heal it when its time comes.
    pub async fn fire(self: &Arc<Self>, spec: &FaultSpec) {
        self.fire_due(spec, None).await
    }

    /// Apply one fault that was due at `due` (journaled with how late it took effect).
    pub async fn fire_due(self: &Arc<Self>, spec: &FaultSpec, due: Option<Instant>) {
        if let Some(net) = &spec.net {
            return self.fire_net(spec, net, due).await;
        }
        let resolved = {
            let view = self.view.read().expect("view lock");
            let mut rng = self.rng.lock().expect("rng");
            resolve(&spec.selector, &view, &mut rng)
        };
        let nodes = match resolved {
            Ok(n) => n,
            Err(reason) => {
                self.sink.event(EventKind::FaultSkipped {
                    fault: spec.action.as_str().into(),
                    selector: spec.selector.to_string(),
                    reason,
                });
                return;
            }
        };
        let id = self.begin(spec.action, spec.selector.to_string(), &nodes, vec![]);
        let applied = || {
            self.sink.event(EventKind::FaultApplied {
                id,
                late_us: late_us(due),
            })
        };
        match spec.action {
            FaultAction::Kill | FaultAction::Terminate | FaultAction::Amnesia => {
                self.set_down(&nodes, true);
                match spec.action {
                    FaultAction::Kill => self.blocking(nodes.clone(), |c, n| c.kill(n)).await,
                    FaultAction::Terminate => {
                        self.blocking(nodes.clone(), |c, n| c.terminate(n, TERM_GRACE))
                            .await
                    }
                    _ => {
                        self.blocking(nodes.clone(), |c, n| {
                            c.kill(n)?;
                            c.wipe(n)
                        })
                        .await
                    }
                }
                applied();
                let restart = match (spec.action, spec.restart_after) {
                    (_, Some(d)) => Some(d.0),
                    (FaultAction::Amnesia, None) => Some(Duration::ZERO),
                    _ => None,
                };
                if let Some(after) = restart {
                    tokio::time::sleep(after).await;
                    if self.is_active(id) {
                        self.restart(id, &nodes).await;
                    }
                }
            }
            FaultAction::Restart => {
                self.set_down(&nodes, true);
                self.blocking(nodes.clone(), |c, n| c.terminate(n, TERM_GRACE))
                    .await;
                applied();
                self.restart(id, &nodes).await;
            }
            FaultAction::Pause => {
                self.nodes_op(&nodes, |c, n| c.pause(n, id));
                applied();
                tokio::time::sleep(spec.duration.map_or(Duration::ZERO, |d| d.0)).await;
                if self.is_active(id) {
                    self.nodes_op(&nodes, |c, n| c.resume(n, id));
                    self.end(id);
                }
            }
            FaultAction::CrashLoop => {
                let until = Instant::now() + spec.duration.map_or(Duration::ZERO, |d| d.0);
                let period = spec.period.map_or(Duration::from_millis(500), |p| p.0);
                self.set_down(&nodes, true);
                let mut first = true;
                while Instant::now() < until && self.is_active(id) {
                    self.blocking(nodes.clone(), |c, n| c.kill(n)).await;
                    if std::mem::take(&mut first) {
                        applied();
                    }
                    tokio::time::sleep(period).await;
                    if !self.is_active(id) {
                        return;
                    }
                    self.start_nodes(nodes.clone()).await;
                    tokio::time::sleep(period).await;
                }
                if self.is_active(id) {
                    self.restart(id, &nodes).await;
                }
            }
            FaultAction::Slow => {
                let until = Instant::now() + spec.duration.map_or(Duration::ZERO, |d| d.0);
                let period = spec
                    .period
                    .map_or(crate::experiment::DEFAULT_SLOW_PERIOD, |p| p.0);
                let burst = spec.burst.map_or(Duration::ZERO, |b| b.0).min(period);
                let mut first = true;
                let mut next = Instant::now();
                // Every stop is followed by its resume, also when the fault is healed in
                // between (heal_all resumes every node anyway).
                while next < until && self.is_active(id) {
                    self.nodes_op(&nodes, |c, n| c.pause(n, id));
                    if std::mem::take(&mut first) {
                        applied();
                    }
                    tokio::time::sleep_until((next + burst).into()).await;
                    self.nodes_op(&nodes, |c, n| c.resume(n, id));
                    next += period;
                    tokio::time::sleep_until(next.min(until).into()).await;
                }
                if self.is_active(id) {
                    self.end(id);
                }
            }
            FaultAction::Partition | FaultAction::Link => {
                // The schema gives every network fault its `net`; nothing to undo without it.
                tracing::warn!("{} fault without a network part", spec.action.as_str());
                self.end(id);
            }
        }
    }

    /// A partition or link fault: resolve the flows, set the proxies, heal after `duration`.
    async fn fire_net(self: &Arc<Self>, spec: &FaultSpec, net: &NetFault, due: Option<Instant>) {
        let skip = |reason: String| {
            self.sink.event(EventKind::FaultSkipped {
                fault: spec.action.as_str().into(),
                selector: describe_net(net),
                reason,
            })
        };
        let mesh = self.cluster.mesh.clone();
        let netns = self.cluster.netns.clone();
        if mesh.is_none() && netns.is_none() {
            return skip("network faults need `network: {mode: proxy}` or `{mode: netns}`".into());
        }
        let resolved = {
            let view = self.view.read().expect("view lock");
            let mut rng = self.rng.lock().expect("rng");
            match net {
                NetFault::Partition { topology, .. } => {
                    network::partition(topology, &view, &mut rng)
                }
                NetFault::Link(l) => network::link(l, &view, &mut rng),
            }
        };
        let r = match resolved {
            Ok(r) => r,
            Err(reason) => return skip(reason),
        };
        let id = self.begin(
            spec.action,
            describe_net(net),
            &r.hit,
            network::describe(&r.flows),
        );
        let full = match net {
            NetFault::Partition { cut, .. } => network::cut(*cut),
            NetFault::Link(l) => network::link_fault(l),
        };
        let fail = |e: String| {
            tracing::warn!("network fault {id}: {e}");
            self.end(id);
            skip(e)
        };
        // netns: packets (cuts, loss, bandwidth) at the bridge, and what only a proxy does
        // (delays, TCP-level faults) on the proxies, when the run has them. proxy: all of it
        // on the proxies.
        let bridge = netns
            .clone()
            .map(|ns| (ns, network::net_rule(net)))
            .filter(|(_, rule)| *rule != NetRule::default());
        let proxied = if netns.is_some() {
            LinkFault {
                cut: None,
                bandwidth: None,
                ..full
            }
        } else {
            full
        };
        let proxies = mesh
            .clone()
            .filter(|_| !proxied.is_clear())
            .map(|m| (m, r.flows.clone(), proxied));
        let hosts = network::hosts(&r.flows);
        // A blocking thread waits out the last moment before `due` (the schedule woke this
        // task up to 2 ms early), applies, and notes when the rules were in place: that is
        // when the fault took effect, with no hop back to the runtime in between.
        let applied = tokio::task::spawn_blocking(move || {
            if let Some(d) = due {
                std::thread::sleep(d.saturating_duration_since(Instant::now()));
            }
            if let Some((ns, rule)) = bridge {
                ns.apply(id, &hosts, rule)?;
            }
            if let Some((m, flows, fault)) = proxies {
                m.apply(id, &flows, &fault);
            }
            Ok::<_, faultline_faults::netns::NetnsError>(Instant::now())
        })
        .await;
        let applied_at = match applied {
            Ok(Ok(at)) => at,
            Ok(Err(e)) => return fail(e.to_string()),
            Err(e) => return fail(e.to_string()),
        };
        self.sink.event(EventKind::FaultApplied {
            id,
            late_us: due.map(|d| applied_at.saturating_duration_since(d).as_micros() as u64),
        });
        tokio::time::sleep(spec.duration.map_or(Duration::ZERO, |d| d.0)).await;
        if self.is_active(id) {
            if let Some(mesh) = &mesh {
                mesh.heal(id);
            }
            if let Some(ns) = netns {
                let healed = tokio::task::spawn_blocking(move || ns.heal(id)).await;
                if let Ok(Err(e)) = healed {
                    tracing::warn!("heal network fault {id}: {e}");
                }
            }
            self.end(id);
        }
    }

    async fn restart(self: &Arc<Self>, id: u64, nodes: &[String]) {
        self.start_nodes(nodes.to_vec()).await;
        self.set_down(nodes, false);
        self.end(id);
    }

    /// Start every node of `nodes` that is not running, journaling each new process as
    /// `node_start` (with its pid), as the launch does.
    async fn start_nodes(self: &Arc<Self>, nodes: Vec<String>) {
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for id in &nodes {
                me.start_node(id);
            }
        })
        .await;
    }

    fn start_node(&self, id: &str) {
        let Some(n) = self.cluster.node(id) else {
            return;
        };
        if n.is_running() {
            return;
        }
        match self.cluster.start(n) {
            Ok(pid) => self.sink.event(EventKind::NodeStart {
                node: id.to_string(),
                pid,
            }),
            Err(e) => tracing::warn!("cannot start {id}: {e}"),
        }
    }

    /// Undo every active fault: resume paused nodes, start stopped ones, journal each end.
    /// Call after aborting the schedule's tasks.
    pub async fn heal_all(self: &Arc<Self>) {
        let ids: Vec<u64> = self
            .active
            .lock()
            .expect("active faults")
            .keys()
            .copied()
            .collect();
        if let Some(mesh) = &self.cluster.mesh {
            mesh.heal_all();
        }
        if let Some(ns) = self.cluster.netns.clone() {
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || ns.heal_all()).await {
                tracing::warn!("heal the netns network: {e}");
            }
        }
        let all = self.cluster.ids();
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for id in &all {
                if let Some(n) = me.cluster.node(id) {
                    me.cluster.resume_all(n);
                }
                me.start_node(id);
            }
        })
        .await;
        self.set_down(&self.cluster.ids(), false);
        for id in ids {
            self.end(id);
        }
    }
}

/// How a network fault is journaled in `selector`.
fn describe_net(net: &NetFault) -> String {
    match net {
        NetFault::Partition { topology, cut } => match cut {
            crate::experiment::CutMode::Blackhole => topology.to_string(),
            crate::experiment::CutMode::Reset => format!("{topology} (reset)"),
        },
        NetFault::Link(l) => l.to_string(),
    }
}

/// How long before a fault's time the runtime hands it to a blocking thread.
const SHARP: Duration = Duration::from_millis(2);

/// Sleep until `due` to within tens of microseconds: tokio's timer wheel has millisecond
/// ticks and wakes up to a tick late, so the last 2 ms are slept on a blocking thread (a
/// high-resolution `nanosleep`), not on a runtime worker.
async fn sleep_until_sharp(due: Instant) {
    if let Some(early) = due.checked_sub(SHARP) {
        tokio::time::sleep_until(early.into()).await;
    }
    let rest = due.saturating_duration_since(Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// Microseconds from `due` to now.
fn late_us(due: Option<Instant>) -> Option<u64> {
    due.map(|d| Instant::now().saturating_duration_since(d).as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Dur;
    use faultline_protocol::Role;

    fn spec(when: When, action: FaultAction, selector: Selector) -> FaultSpec {
        FaultSpec {
            when,
            action,
            selector,
            net: None,
            duration: None,
            restart_after: None,
            period: None,
            burst: None,
            choices: Vec::new(),
        }
    }

    #[test]
    fn one_of_picks_an_alternative_per_firing_from_the_seed() {
        let s = |ms| Dur(Duration::from_millis(ms));
        let when = When::Every {
            every: s(1000),
            from: s(1000),
            until: None,
        };
        let mut mix = spec(when, FaultAction::Kill, Selector::Leader);
        mix.choices = vec![
            spec(when, FaultAction::Kill, Selector::Leader),
            spec(when, FaultAction::Pause, Selector::Random),
            spec(when, FaultAction::Restart, Selector::Follower),
        ];
        let verbs = |seed| -> Vec<FaultAction> {
            expand(std::slice::from_ref(&mix), Duration::from_secs(61), seed)
                .iter()
                .map(|f| {
                    assert!(f.spec.choices.is_empty());
                    f.spec.action
                })
                .collect()
        };
        let a = verbs(7);
        assert_eq!(a.len(), 60);
        assert_eq!(a, verbs(7), "the same seed gives the same schedule");
        assert_ne!(a, verbs(8), "another seed, another mix");
        for v in [FaultAction::Kill, FaultAction::Pause, FaultAction::Restart] {
            let n = a.iter().filter(|&&x| x == v).count();
            assert!((10..=30).contains(&n), "{v:?} chosen {n} of 60 times");
        }
    }

    #[test]
    fn schedule_expands_at_and_every_within_the_run() {
        let s = |ms| Dur(Duration::from_millis(ms));
        let faults = vec![
            spec(When::At(s(5000)), FaultAction::Kill, Selector::Leader),
            spec(
                When::Every {
                    every: s(8000),
                    from: s(12000),
                    until: None,
                },
                FaultAction::Pause,
                Selector::Random,
            ),
            spec(When::At(s(40000)), FaultAction::Kill, Selector::Leader),
        ];
        let f = expand(&faults, Duration::from_secs(30), 1);
        let at: Vec<u64> = f.iter().map(|f| f.at.as_millis() as u64).collect();
        assert_eq!(at, [5000, 12000, 20000, 28000]);
    }

    #[test]
    fn selectors_resolve_against_the_view() {
        let ids: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let mut v = ClusterView::new(&ids);
        for n in &mut v.nodes {
            n.reachable = true;
            n.role = Role::Follower;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(resolve(&Selector::Leader, &v, &mut rng).is_err());
        v.nodes[2].role = Role::Leader;
        v.nodes[2].term = 3;
        assert_eq!(resolve(&Selector::Leader, &v, &mut rng).unwrap(), ["n3"]);
        for _ in 0..20 {
            let f = resolve(&Selector::Follower, &v, &mut rng).unwrap();
            assert_ne!(f, ["n3"]);
        }
        assert_eq!(resolve(&Selector::Minority, &v, &mut rng).unwrap().len(), 2);
        assert_eq!(resolve(&Selector::Majority, &v, &mut rng).unwrap().len(), 3);
        v.nodes[1].down = true;
        assert!(resolve(&Selector::Node("n2".into()), &v, &mut rng).is_err());
        assert_eq!(resolve(&Selector::All, &v, &mut rng).unwrap().len(), 4);
        assert!(resolve(&Selector::Node("n9".into()), &v, &mut rng).is_err());
    }
}
