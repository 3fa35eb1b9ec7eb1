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
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use faultline_protocol::{Op, Request, Response, Role};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::driver::{ClientToken, Core, Input, Millis, Outbox};
use crate::kv::{Command, KvState};
pub use crate::log::BUG_ACK_BEFORE_PERSIST;
use crate::log::LAZY_FLUSH_MS;
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

/// What a client asked, for the read check.
#[derive(Debug, Clone)]
enum Asked {
    Write { key: String, value: i64 },
    Read { key: String, floor: u64 },
    Other,
}

/// The read check: a successful read never returns a value older than a write acknowledged
/// before the read began. Values written are unique; the protocol tells where each landed.
#[derive(Debug, Default)]
pub struct Reads {
    /// What a position is called; `None`: reads are not checked.
    position: Option<&'static str>,
    asked: BTreeMap<ClientToken, Asked>,
    /// Written value -> position (first seen).
    value_at: HashMap<i64, u64>,
    /// key -> highest position of an acknowledged write.
    floor: HashMap<String, u64>,
    pending: Vec<(String, i64)>,
    pub acked_writes: usize,
    pub ok_reads: usize,
}

impl Reads {
    /// The command `cmd` was committed at `position`.
    pub fn learned(&mut self, cmd: &Command, position: u64) {
        let (Command::Write { value, .. } | Command::Cas { to: value, .. }) = cmd;
        self.value_at.entry(*value).or_insert(position);
    }

    fn ask(&mut self, token: ClientToken, op: &Op) {
        if self.position.is_none() {
            return;
        }
        let asked = match op {
            Op::Write { key, value } => Asked::Write {
                key: key.clone(),
                value: *value,
            },
            Op::Read { key } => Asked::Read {
                key: key.clone(),
                floor: self.floor.get(key).copied().unwrap_or(0),
            },
            _ => Asked::Other,
        };
        self.asked.insert(token, asked);
    }

    fn on_reply(
        &mut self,
        token: ClientToken,
        id: &str,
        resp: &Response,
        now: Millis,
    ) -> Result<(), String> {
        let (true, Some(position)) = (resp.ok, self.position) else {
            return Ok(());
        };
        match self.asked.get(&token).cloned() {
            Some(Asked::Write { key, value }) => {
                self.acked_writes += 1;
                self.pending.push((key, value));
                self.settle();
            }
            Some(Asked::Read { key, floor }) => {
                self.ok_reads += 1;
                let got = resp.value.flatten();
                let index = got.map_or(Some(0), |v| self.value_at.get(&v).copied());
                if let Some(index) = index.filter(|i| *i < floor) {
                    return Err(format!(
                        "stale read: {id} answered {key}={got:?} ({position} {index}) at {now}ms, \
                         but a write at {position} {floor} was acknowledged before the read began"
                    ));
                }
            }
            Some(Asked::Other) | None => {}
        }
        Ok(())
    }

    /// Raise the per-key floor for acknowledged writes whose position is known.
    fn settle(&mut self) {
        let mut keep = Vec::new();
        for (key, value) in std::mem::take(&mut self.pending) {
            match self.value_at.get(&value) {
                Some(&i) => {
                    let f = self.floor.entry(key).or_insert(0);
                    *f = (*f).max(i);
                }
                None => keep.push((key, value)),
            }
        }
        self.pending = keep;
    }
}

/// The sequence of values every node commits (log entries, chosen slot values): a position
/// never holds two different values, by any node's knowledge.
#[derive(Debug)]
pub struct Committed<V>(BTreeMap<u64, V>);

impl<V> Default for Committed<V> {
    fn default() -> Self {
        Committed(BTreeMap::new())
    }
}

/// A committed value that may carry a client command (a log entry, a slot's value).
pub trait Carries {
    fn command(&self) -> Option<&Command>;
}

impl<V: Clone + PartialEq + Carries> Committed<V> {
    /// A node committed each `(position, value)` of `values`: `Err((position, value, known))`
    /// at the first that differs from the value `known` committed there before. New commands'
    /// positions go to `reads`.
    pub fn commit_all<'v>(
        &mut self,
        values: impl IntoIterator<Item = (u64, &'v V)>,
        reads: &mut Reads,
    ) -> Result<(), (u64, &'v V, &V)>
    where
        V: 'v,
    {
        for (pos, v) in values {
            match self.0.get(&pos) {
                Some(known) if known != v => return Err((pos, v, &self.0[&pos])),
                Some(_) => {}
                None => {
                    self.0.insert(pos, v.clone());
                    if let Some(cmd) = v.command() {
                        reads.learned(cmd, pos);
                    }
                }
            }
        }
        Ok(())
    }

    /// The committed values from position `from` on.
    pub fn from(&self, from: u64) -> impl Iterator<Item = (&u64, &V)> {
        self.0.range(from..)
    }
}

/// "Every node executes the same sequence": the state machine after executing through a
/// position is the same on every node.
#[derive(Debug, Default)]
pub struct SameStates(HashMap<u64, KvState>);

impl SameStates {
    /// `kv` is `id`'s state after executing through `applied`: an error naming `property` if
    /// another node had a different one there (the first one seen is remembered).
    pub fn check(
        &mut self,
        property: &str,
        id: &str,
        applied: u64,
        kv: &KvState,
        now: Millis,
    ) -> Result<(), String> {
        match self.0.get(&applied) {
            Some(s) if s != kv => Err(format!(
                "{property}: {id}'s state after executing through {applied} differs from another node's ({now}ms)"
            )),
            Some(_) => Ok(()),
            None => {
                self.0.insert(applied, kv.clone());
                Ok(())
            }
        }
    }
}

/// Which persist actions a [`Disk`] buffers with the planted bug `ack-before-persist`.
pub enum Durability {
    /// Buffered under the bug (log records).
    Log,
    /// Written at once, after the buffered records (they precede it).
    AfterLog,
    /// Written at once; buffered records stay buffered.
    Direct,
    /// Replaces the log: buffered records are dropped.
    Snapshot,
}

/// What a [`Disk`] holds: the image of a data directory that persist actions update.
pub trait DiskImage: Default {
    type Persist: Clone;
    fn apply(&mut self, action: &Self::Persist);
    fn durability(_action: &Self::Persist) -> Durability {
        Durability::Direct
    }
}

/// A data directory in memory with the same semantics as the file storage; it survives
/// crashes. With `lazy` (the planted bug [`BUG_ACK_BEFORE_PERSIST`]) log records wait in a
/// buffer until it is written out, at most once per [`LAZY_FLUSH_MS`], and a crash loses them.
#[derive(Debug, Clone)]
pub struct Disk<R: DiskImage> {
    pub recovered: R,
    pub lazy: bool,
    buffer: Vec<R::Persist>,
    last_flush: Millis,
}

impl<R: DiskImage> Default for Disk<R> {
    fn default() -> Self {
        Disk::new(false)
    }
}

impl<R: DiskImage> Disk<R> {
    pub fn new(lazy: bool) -> Self {
        Disk {
            recovered: R::default(),
            lazy,
            buffer: Vec::new(),
            last_flush: 0,
        }
    }

    fn write_out(&mut self) {
        for b in std::mem::take(&mut self.buffer) {
            self.recovered.apply(&b);
        }
    }

    /// Perform `actions` at `now`.
    pub fn persist(&mut self, now: Millis, actions: &[R::Persist]) {
        for a in actions {
            match R::durability(a) {
                Durability::Log if self.lazy => self.buffer.push(a.clone()),
                Durability::Log | Durability::AfterLog => {
                    self.write_out();
                    self.recovered.apply(a);
                }
                Durability::Direct => self.recovered.apply(a),
                Durability::Snapshot => {
                    self.buffer.clear();
                    self.recovered.apply(a);
                }
            }
        }
        if now >= self.last_flush + LAZY_FLUSH_MS {
            self.last_flush = now;
            self.write_out();
        }
    }

    /// The process died (kill -9): what only lived in its memory is gone.
    pub fn crash(&mut self) {
        self.buffer.clear();
    }
}

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
            reads: Reads {
                position: P::NAMES.position,
                ..Reads::default()
            },
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

/// The faults of a [`random_run`].
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Simulated ms of traffic and faults before everything heals.
    pub ms: Millis,
    /// Isolate a node (both ways) instead of crashing it, with this probability.
    pub isolate: f64,
    /// Cut one link between two nodes both ways (a bridge: each still reaches the others).
    pub bridge: f64,
    /// Keep n1 and n2 from reaching each other for the whole run.
    pub fixed_bridge: bool,
    /// After healing, every live node must execute to the same position.
    pub converge: bool,
}

impl Workload {
    /// `ms` of traffic with crashes and isolated nodes (no bridges).
    pub const fn new(ms: Millis) -> Self {
        Workload {
            ms,
            isolate: 0.3,
            bridge: 0.0,
            fixed_bridge: false,
            converge: false,
        }
    }
}

/// What a [`random_run`] achieved.
#[derive(Debug, Clone, Copy)]
pub struct RunStats {
    pub acked_writes: usize,
    pub ok_reads: usize,
    /// Terms with a leader.
    pub leaderships: usize,
}

/// Read a number from the environment (a test knob), else `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

const KEYS: [&str; 3] = ["a", "b", "c"];

/// One randomized run of `proto`: 3 nodes (5 for seeds 4 mod 5), client traffic of writes,
/// reads and CAS on three keys, message loss, duplication and reordering (by the seed), and
/// faults (at most a minority down, at most one partition at a time). Then everything heals:
/// the cluster must elect a leader and acknowledge a write. `setup` adjusts the sim first.
/// Errors carry the step and simulated time ([`Sim::at`]).
pub fn random_run<P: Protocol>(
    seed: u64,
    settings: Settings<P>,
    bugs: &[&str],
    w: &Workload,
    setup: impl FnOnce(&mut Sim<P>),
) -> Result<RunStats, String>
where
    Msg<P>: Clone,
{
    let n = if seed % 5 == 4 { 5 } else { 3 };
    let mut sim = Sim::new(seed, n, settings, bugs);
    sim.max_delay = 1 + seed % 8;
    sim.loss = [0.0, 0.01, 0.05][(seed % 3) as usize];
    sim.dup = Some([0.0, 0.02][(seed % 2) as usize]);
    setup(&mut sim);
    chaos(&mut sim, w).map_err(|e| sim.at(e))?;
    Ok(RunStats {
        acked_writes: sim.reads.acked_writes,
        ok_reads: sim.reads.ok_reads,
        leaderships: sim.leaders.len(),
    })
}

fn chaos<P: Protocol>(sim: &mut Sim<P>, w: &Workload) -> Result<(), String>
where
    Msg<P>: Clone,
{
    let n = sim.nodes.len();
    let mut down: BTreeMap<String, Millis> = BTreeMap::new();
    let mut healed_at: Option<Millis> = None;
    let mut next_fault: Millis = 1_000;
    let mut value = 0i64;
    while sim.now < w.ms {
        sim.run_for(2)?;
        // Restarts and heals.
        for (id, at) in down.clone() {
            if sim.now >= at {
                sim.start(&id);
                down.remove(&id);
            }
        }
        if healed_at.is_some_and(|t| sim.now >= t) {
            sim.heal();
            healed_at = None;
        }
        if w.fixed_bridge {
            sim.block("n1", "n2");
        }
        if sim.now >= next_fault {
            next_fault = sim.now + sim.rng.gen_range(200..1_500);
            let victim = if sim.rng.gen_bool(0.5) {
                sim.leader()
            } else {
                Some(sim.nodes[sim.rng.gen_range(0..n)].clone())
            };
            if let Some(v) = victim {
                let roll: f64 = sim.rng.gen();
                if roll < w.bridge && healed_at.is_none() {
                    let other = sim.nodes.iter().find(|o| **o != v).cloned().unwrap();
                    sim.block(&v, &other);
                    healed_at = Some(sim.now + sim.rng.gen_range(300..1_500));
                } else if roll < w.bridge + w.isolate && healed_at.is_none() {
                    sim.isolate(&v);
                    healed_at = Some(sim.now + sim.rng.gen_range(100..1_000));
                } else if down.len() < (n - 1) / 2 && !down.contains_key(&v) {
                    sim.crash(&v);
                    let back = sim.now + sim.rng.gen_range(0..600);
                    down.insert(v, back);
                }
            }
        }
        // Client traffic: mostly to the leader, sometimes anywhere.
        let target = match sim.leader() {
            Some(l) if sim.rng.gen_bool(0.8) => l,
            _ => sim.nodes[sim.rng.gen_range(0..n)].clone(),
        };
        for _ in 0..sim.rng.gen_range(0..4) {
            let key = KEYS[sim.rng.gen_range(0..KEYS.len())].to_owned();
            value += 1;
            let op = match sim.rng.gen_range(0..10) {
                0..=4 => Op::Write { key, value },
                5..=8 => Op::Read { key },
                _ => Op::Cas {
                    key,
                    from: Some(value - sim.rng.gen_range(1..4)),
                    to: value,
                },
            };
            sim.request(&target, op)?;
        }
    }
    // Heal everything and let the cluster settle: it must make progress again.
    sim.heal();
    for id in down.keys().cloned().collect::<Vec<_>>() {
        sim.start(&id);
    }
    sim.loss = 0.0;
    sim.run_for(1_500)?;
    let leader = sim.leader().ok_or("no leader after healing every fault")?;
    value += 1;
    let t = sim.request(
        &leader,
        Op::Write {
            key: "a".into(),
            value,
        },
    )?;
    sim.run_for(500)?;
    if !sim.reply(t).is_some_and(|r| r.ok) {
        let states: Vec<String> = sim
            .nodes
            .iter()
            .map(|n| match sim.core(n) {
                Some(c) => format!("{n}: {}", sim.proto.describe(c)),
                None => format!("{n}: down"),
            })
            .collect();
        return Err(format!(
            "write after healing (to {leader}) not acknowledged: {:?}\n{}",
            sim.reply(t),
            states.join("\n")
        ));
    }
    if w.converge {
        // Every node that is up executes the same sequence to the end.
        sim.run_for(500)?;
        let applied: Vec<u64> = sim
            .nodes
            .iter()
            .filter_map(|n| sim.core(n).map(|c| sim.proto.applied(c)))
            .collect();
        if applied.iter().any(|a| *a != applied[0]) {
            return Err(format!(
                "nodes did not converge after healing: applied {applied:?}"
            ));
        }
    }
    Ok(())
}

/// The randomized safety test of a protocol: seeds `{knob}_SIM_SEED` (default 1) onwards,
/// `{knob}_SIM_RUNS` of them (default `runs`), each a [`random_run`] of `{knob}_SIM_MS`
/// (default `w.ms`) without planted bugs. Each must keep every property and get work done:
/// more than 500 writes acknowledged, 200 reads answered, 3 terms with a leader.
pub fn assert_safe_runs<P: Protocol>(
    knob: &str,
    package: &str,
    runs: u64,
    w: Workload,
    settings: impl Fn(u64) -> Settings<P>,
) where
    Msg<P>: Clone,
{
    let seed0 = env(&format!("{knob}_SIM_SEED"), 1);
    let runs = env(&format!("{knob}_SIM_RUNS"), runs);
    let w = Workload {
        ms: env(&format!("{knob}_SIM_MS"), w.ms),
        ..w
    };
    for seed in seed0..seed0 + runs {
        let r = random_run::<P>(seed, settings(seed), &[], &w, |_| {}).unwrap_or_else(|e| {
            panic!(
                "seed {seed}: {e}\nreproduce with: {knob}_SIM_SEED={seed} {knob}_SIM_RUNS=1 \
                 cargo test -p {package} randomized_runs"
            )
        });
        eprintln!(
            "seed {seed}: {} writes acked, {} reads, {} {}s led",
            r.acked_writes,
            r.ok_reads,
            r.leaderships,
            P::NAMES.term
        );
        assert!(
            r.acked_writes > 500,
            "seed {seed}: only {} writes acknowledged",
            r.acked_writes
        );
        assert!(
            r.ok_reads > 200,
            "seed {seed}: only {} reads answered",
            r.ok_reads
        );
        assert!(
            r.leaderships >= 3,
            "seed {seed}: only {} leaderships",
            r.leaderships
        );
    }
}

/// The first seed of `seeds` whose [`random_run`] with the planted `bug` fails, with the
/// failure (printed, for the table of catches).
pub fn first_catch<P: Protocol>(
    seeds: std::ops::RangeInclusive<u64>,
    bug: &str,
    w: &Workload,
    settings: impl Fn(u64) -> Settings<P>,
    setup: impl Fn(&mut Sim<P>),
) -> Option<(u64, String)>
where
    Msg<P>: Clone,
{
    let caught = seeds.into_iter().find_map(|seed| {
        random_run::<P>(seed, settings(seed), &[bug], w, &setup)
            .err()
            .map(|e| (seed, e))
    });
    if let Some((seed, e)) = &caught {
        eprintln!("{bug}, seed {seed}: {e}");
    }
    caught
}

/// For the table of catches (an ignored test with `--nocapture`): for each of `bugs`, the
/// first seed of `seeds` whose [`random_run`] with it fails, where (step, simulated ms) and
/// how; or that none did.
pub fn print_catches<P: Protocol>(
    bugs: &[&str],
    seeds: std::ops::RangeInclusive<u64>,
    w: &Workload,
    settings: impl Fn(u64) -> Settings<P>,
) where
    Msg<P>: Clone,
{
    for bug in bugs {
        if first_catch::<P>(seeds.clone(), bug, w, &settings, |_| {}).is_none() {
            eprintln!("{bug}: no seed of {seeds:?} caught it in {} ms runs", w.ms);
        }
    }
}
