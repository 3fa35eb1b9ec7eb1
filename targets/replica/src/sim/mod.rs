//! One deterministic in-process simulator for every protocol [`Core`] (feature `sim`): a
//! message queue with seeded delay (reordering), loss and duplication, blocked links
//! (partitions), paused nodes, crashes and restarts over an in-memory disk that survives them,
//! clients with request tokens, and virtual time with ticks. After every step it checks that at
//! most one node leads a term and, through the protocol's [`Protocol::check`], the protocol's own
//! safety properties; every successful read is checked against the writes acknowledged before it
//! began ([`Reads`]).
//!
//! A protocol supplies a [`Protocol`]: how to boot a core from its data directory's image
//! ([`DiskImage`], kept in a [`Disk`], which also models the planted bug `ack-before-persist`),
//! its invariants and its fault hooks. [`random_run`] is the randomized workload the protocols'
//! safety tests share.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use faultline_protocol::{Op, Request, Response, Role};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::driver::{ClientToken, Core, Input, Millis, Outbox};
pub use crate::log::BUG_ACK_BEFORE_PERSIST;
use crate::node::{NodeCore, OpenStorage, Start};

/// Interval between two [`Input::Tick`]s of every node, in simulated ms.
pub const TICK: Millis = 5;

/// The outputs of one step of `P`'s core.
pub type StepOut<P> = Outbox<Msg<P>, <<P as Protocol>::Core as Core>::Persist>;
/// `P`'s peer message type.
pub type Msg<P> = <<P as Protocol>::Core as Core>::Msg;

/// How a protocol's errors name its properties and positions.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// The property "at most one leader per term" ("election safety").
    pub leader_safety: &'static str,
    /// A term ("term", "ballot", "view").
    pub term: &'static str,
    /// A position of the sequence of commands ("log index", "slot"), if the protocol's
    /// [`Protocol::check`] tells [`Reads`] where writes landed; `None` turns the read check (and
    /// its bookkeeping) off.
    pub position: Option<&'static str>,
}

impl Names {
    pub const fn new(
        leader_safety: &'static str,
        term: &'static str,
        position: Option<&'static str>,
    ) -> Self {
        Names {
            leader_safety,
            term,
            position,
        }
    }
}

/// What a booting core gets: who it is, its cluster, settings and bugs, and its disk's image.
pub struct Boot<'a, C: SimCore> {
    pub id: &'a str,
    pub nodes: &'a [String],
    pub settings: &'a C::Settings,
    pub bugs: &'a [String],
    pub recovered: &'a C::Image,
}

/// A node's core as the simulator starts it: as the node does ([`NodeCore::start`]), from
/// the image of its data directory in a [`Disk`] and with a seed from the simulation's rng
/// (drawn only for cores that take one).
pub trait SimCore: NodeCore {
    /// What a node recovers from its data directory.
    type Image: DiskImage<Persist = Self::Persist> + Clone;

    /// A core started (or restarted) as `b` says.
    fn boot(b: Boot<'_, Self>, rng: &mut ChaCha8Rng) -> Self;
}

impl<C> SimCore for C
where
    C: NodeCore,
    C::Settings: Clone,
    Recovered<C>: DiskImage<Persist = C::Persist> + Clone,
{
    type Image = Recovered<C>;

    fn boot(b: Boot<'_, Self>, rng: &mut ChaCha8Rng) -> Self {
        let seed = if C::SEEDED { rng.gen() } else { 0 };
        C::start(Start {
            id: b.id.to_owned(),
            nodes: b.nodes.to_vec(),
            settings: b.settings.clone(),
            bugs: b.bugs.to_vec(),
            recovered: b.recovered.clone(),
            seed,
        })
    }
}

/// What a node of core `C` recovers from its data directory.
pub type Recovered<C> = <<C as NodeCore>::Storage as OpenStorage>::Recovered;

/// A node that just took a step, for [`Protocol::check`].
pub struct Stepped<'a, C> {
    pub id: &'a str,
    pub core: &'a C,
    pub now: Millis,
    pub reads: &'a mut Reads,
}

/// `P`'s settings.
pub type Settings<P> = <<P as Protocol>::Core as NodeCore>::Settings;

/// What a protocol tells the simulator besides how its core boots: its invariants and fault
/// hooks. The value holds the invariants' bookkeeping.
pub trait Protocol: Default {
    type Core: SimCore;
    const NAMES: Names;

    /// The safety properties, checked after every step of a live node. Tell `s.reads` the
    /// position of every committed write ([`Reads::learned`]).
    fn check(&mut self, _s: Stepped<'_, Self::Core>) -> Result<(), String> {
        Ok(())
    }
    /// A fault injection point: should the node that produced `out` crash right after this step
    /// (with probability [`Sim::crash_at_points`])? E.g. Raft: it granted a vote.
    fn crash_point(&self, _out: &StepOut<Self>) -> bool {
        false
    }
    /// How far `core` executed its sequence of commands (for [`Workload::converge`]).
    fn applied(&self, _core: &Self::Core) -> u64 {
        0
    }
    /// One line about `core`'s state, for failure messages.
    fn describe(&self, _core: &Self::Core) -> String {
        String::new()
    }
}

mod checks;
mod disk;
mod runs;

pub use checks::{Carries, Committed, Reads, SameStates};
pub use disk::{Disk, DiskImage, Durability};
pub use runs::{assert_safe_runs, env, first_catch, print_catches, random_run, RunStats, Workload};

/// A simulated cluster of `P`'s cores.
pub struct Sim<P: Protocol> {
    pub rng: ChaCha8Rng,
    pub now: Millis,
    pub nodes: Vec<String>,
    /// Of every node, from its next start.
    pub settings: Settings<P>,
    pub bugs: Vec<String>,
    /// The protocol's invariant bookkeeping.
    pub proto: P,
    /// `None`: the node is down.
    pub cores: BTreeMap<String, Option<P::Core>>,
    pub disks: BTreeMap<String, Disk<<P::Core as SimCore>::Image>>,
    /// (deliver at, seq), a key of `in_flight`.
    queue: BinaryHeap<Reverse<(Millis, u64)>>,
    in_flight: BTreeMap<u64, (String, String, Msg<P>)>,
    seq: u64,
    pub loss: f64,
    /// Probability that a message is delivered twice; `None`: never (and draws nothing).
    pub dup: Option<f64>,
    pub max_delay: Millis,
    /// Directed links that drop everything.
    pub blocked: BTreeSet<(String, String)>,
    /// Paused nodes (SIGSTOP): they take no steps; messages to them wait in `held`.
    pub paused: BTreeSet<String>,
    held: Vec<(String, String, Msg<P>)>,
    /// Fault: probability that a node crashes right after a step that is a
    /// [`Protocol::crash_point`]. 0 disables it (and draws nothing from `rng`).
    pub crash_at_points: f64,
    /// Such a node restarts within `0..=restart_within` ms (0: at once).
    pub restart_within: Millis,
    /// How many crashes `crash_at_points` caused.
    pub point_crashes: usize,
    /// Nodes to restart, with their restart time.
    restarts: BTreeMap<String, Millis>,
    pub replies: BTreeMap<ClientToken, (String, Response)>,
    pub reads: Reads,
    next_token: u64,
    next_tick: Millis,
    /// term -> the node that led it.
    pub leaders: BTreeMap<u64, String>,
    /// Steps taken by live nodes.
    pub steps: u64,
}

impl<P: Protocol> Sim<P>
where
    Msg<P>: Clone,
{
    /// `n` nodes `n1..` with these settings and planted bugs, all started, with no loss, no
    /// duplication and delays up to 3 ms.
    pub fn new(seed: u64, n: usize, settings: Settings<P>, bugs: &[&str]) -> Self {
        let nodes: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let bugs: Vec<String> = bugs.iter().map(|b| b.to_string()).collect();
        let lazy = bugs.iter().any(|b| b == BUG_ACK_BEFORE_PERSIST);
        let disks = nodes.iter().map(|n| (n.clone(), Disk::new(lazy))).collect();
        let mut sim = Sim {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            nodes: nodes.clone(),
            settings,
            bugs,
            proto: P::default(),
            cores: BTreeMap::new(),
            disks,
            queue: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            loss: 0.0,
            dup: Some(0.0),
            max_delay: 3,
            blocked: BTreeSet::new(),
            paused: BTreeSet::new(),
            held: Vec::new(),
            crash_at_points: 0.0,
            restart_within: 0,
            point_crashes: 0,
            restarts: BTreeMap::new(),
            replies: BTreeMap::new(),
            reads: Reads::new(P::NAMES.position),
            next_token: 0,
            next_tick: TICK,
            leaders: BTreeMap::new(),
            steps: 0,
        };
        for id in nodes {
            sim.start(&id);
        }
        sim
    }

    /// Start (or restart) `id` from its disk.
    pub fn start(&mut self, id: &str) {
        self.restarts.remove(id);
        let boot = Boot {
            id,
            nodes: &self.nodes,
            settings: &self.settings,
            bugs: &self.bugs,
            recovered: &self.disks[id].recovered,
        };
        let core = P::Core::boot(boot, &mut self.rng);
        self.cores.insert(id.to_owned(), Some(core));
    }

    /// kill -9: the core and whatever only lived in its memory are gone.
    pub fn crash(&mut self, id: &str) {
        self.restarts.remove(id);
        self.cores.insert(id.to_owned(), None);
        if let Some(d) = self.disks.get_mut(id) {
            d.crash();
        }
    }

    /// The disk of `id` is lost: it restarts empty.
    pub fn wipe(&mut self, id: &str) {
        self.disks.insert(id.to_owned(), Disk::default());
    }

    pub fn core(&self, id: &str) -> Option<&P::Core> {
        self.cores.get(id).and_then(|c| c.as_ref())
    }

    /// The live leader with the highest term.
    pub fn leader(&self) -> Option<String> {
        self.nodes
            .iter()
            .filter_map(|n| match self.core(n)?.role_term()? {
                (Role::Leader, term) => Some((term, n)),
                _ => None,
            })
            .max_by_key(|(term, _)| *term)
            .map(|(_, n)| n.clone())
    }

    /// Cut both directions of the link between `a` and `b`.
    pub fn block(&mut self, a: &str, b: &str) {
        self.blocked.insert((a.to_owned(), b.to_owned()));
        self.blocked.insert((b.to_owned(), a.to_owned()));
    }

    /// Cut `a` off from every other node, both ways.
    pub fn isolate(&mut self, a: &str) {
        for n in self.nodes.clone() {
            if n != a {
                self.block(a, &n);
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    pub fn pause(&mut self, id: &str) {
        self.paused.insert(id.to_owned());
    }

    /// Resume a paused node: what was sent to it meanwhile arrives from now on.
    pub fn resume(&mut self, id: &str) {
        self.paused.remove(id);
        for (from, to, msg) in std::mem::take(&mut self.held) {
            if to == id {
                self.enqueue(from, to, msg);
            } else {
                self.held.push((from, to, msg));
            }
        }
    }

    fn enqueue(&mut self, from: String, to: String, msg: Msg<P>) {
        let copies = match self.dup {
            Some(p) if self.rng.gen_bool(p) => 2,
            _ => 1,
        };
        for _ in 0..copies {
            let at = self.now + self.rng.gen_range(0..=self.max_delay);
            self.seq += 1;
            self.queue.push(Reverse((at, self.seq)));
            self.in_flight
                .insert(self.seq, (from.clone(), to.clone(), msg.clone()));
        }
    }

    /// Feed one input to `id` (if it is up and not paused), perform its outputs, check every
    /// invariant.
    pub fn step(&mut self, id: &str, input: Input<Msg<P>>) -> Result<(), String> {
        let now = self.now;
        if self.paused.contains(id) {
            if let Input::Peer { from, msg } = input {
                self.held.push((from, id.to_owned(), msg));
            }
            return Ok(());
        }
        let Some(Some(core)) = self.cores.get_mut(id) else {
            return Ok(());
        };
        let mut out: StepOut<P> = Outbox::default();
        core.step(now, input, &mut out);
        core.flush(now, &mut out);
        self.steps += 1;
        self.disks
            .get_mut(id)
            .expect("every node has a disk")
            .persist(now, &out.persist);
        let core = self.cores[id].as_ref().expect("it just stepped");
        if let Some((Role::Leader, term)) = core.role_term() {
            let first = self.leaders.entry(term).or_insert_with(|| id.to_owned());
            if first != id {
                return Err(format!(
                    "{}: {first} and {id} both lead {} {term} ({now}ms)",
                    P::NAMES.leader_safety,
                    P::NAMES.term
                ));
            }
        }
        let reads = &mut self.reads;
        self.proto.check(Stepped {
            id,
            core,
            now,
            reads,
        })?;
        if !self.reads.pending.is_empty() {
            self.reads.settle();
        }
        let crash_point = self.proto.crash_point(&out);
        for (to, msg) in out.messages {
            if self.blocked.contains(&(id.to_owned(), to.clone())) || self.rng.gen_bool(self.loss) {
                continue;
            }
            self.enqueue(id.to_owned(), to, msg);
        }
        for (token, resp) in out.replies {
            self.reads.on_reply(token, id, &resp, now)?;
            self.replies.insert(token, (id.to_owned(), resp));
        }
        if crash_point && self.crash_at_points > 0.0 && self.rng.gen_bool(self.crash_at_points) {
            self.point_crashes += 1;
            let back = self.now + self.rng.gen_range(0..=self.restart_within);
            self.crash(id);
            if back <= self.now {
                self.start(id);
            } else {
                self.restarts.insert(id.to_owned(), back);
            }
        }
        Ok(())
    }

    /// The in-flight messages in delivery order.
    fn ordered(&self) -> Vec<u64> {
        let mut q: Vec<_> = self.queue.iter().map(|Reverse(k)| *k).collect();
        q.sort_unstable();
        q.into_iter().map(|(_, seq)| seq).collect()
    }

    /// Messages in flight, in the order they would be delivered: (from, to, message).
    pub fn in_flight(&self) -> Vec<(String, String, Msg<P>)> {
        self.ordered()
            .iter()
            .filter_map(|seq| self.in_flight.get(seq).cloned())
            .collect()
    }

    /// Deliver now, in delivery order and regardless of their delays, the in-flight messages
    /// that `pick(from, to, msg)` selects (blocked links still drop them; others stay in
    /// flight). For scenarios driven step by step. Returns how many were taken.
    pub fn deliver(&mut self, pick: impl Fn(&str, &str, &Msg<P>) -> bool) -> Result<usize, String> {
        let mut taken = 0;
        for seq in self.ordered() {
            let Some((from, to, msg)) = self.in_flight.get(&seq) else {
                continue;
            };
            if !pick(from, to, msg) {
                continue;
            }
            let (from, to, msg) = self.in_flight.remove(&seq).expect("just seen");
            taken += 1;
            if !self.blocked.contains(&(from.clone(), to.clone())) {
                self.step(&to, Input::Peer { from, msg })?;
            }
        }
        // Delivered entries stay in `queue`; `run_until` skips sequence numbers no longer
        // in flight.
        Ok(taken)
    }

    /// Submit a client request to `id` now; the answer lands in `replies` under the token.
    pub fn request(&mut self, id: &str, op: Op) -> Result<ClientToken, String> {
        self.next_token += 1;
        let token = ClientToken(self.next_token);
        self.reads.ask(token, &op);
        let request = Request {
            id: self.next_token,
            op,
        };
        self.step(id, Input::Client { token, request })?;
        Ok(token)
    }

    pub fn reply(&self, token: ClientToken) -> Option<&Response> {
        self.replies.get(&token).map(|(_, r)| r)
    }

    /// Advance virtual time to `until`, restarting nodes due, delivering messages and ticking
    /// every node.
    pub fn run_until(&mut self, until: Millis) -> Result<(), String> {
        while self.now < until {
            self.now += 1;
            let due: Vec<String> = self
                .restarts
                .iter()
                .filter(|(_, at)| **at <= self.now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in due {
                self.start(&id);
            }
            while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
                if at > self.now {
                    break;
                }
                self.queue.pop();
                if let Some((from, to, msg)) = self.in_flight.remove(&seq) {
                    if !self.blocked.contains(&(from.clone(), to.clone())) {
                        self.step(&to, Input::Peer { from, msg })?;
                    }
                }
            }
            if self.now >= self.next_tick {
                self.next_tick = self.now + TICK;
                for id in self.nodes.clone() {
                    self.step(&id, Input::Tick)?;
                }
            }
        }
        Ok(())
    }

    pub fn run_for(&mut self, d: Millis) -> Result<(), String> {
        self.run_until(self.now + d)
    }

    /// `e` with where the run was: for reproducing and comparing catches.
    pub fn at(&self, e: String) -> String {
        format!("{e} [step {}, {} simulated ms]", self.steps, self.now)
    }
}
