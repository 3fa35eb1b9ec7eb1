//! A deterministic in-process simulation of a Multi-Paxos cluster: cores, an in-memory disk per
//! node, a network with seeded delay (reordering), loss and duplication, partitions, crashes
//! and restarts. After every step it checks the safety properties: no two different values are
//! ever chosen for one slot (by any node's knowledge), every node executes the same sequence
//! (the same state after the same slot), at most one leader per ballot, and reads never miss
//! an acknowledged write.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use faultline_protocol::{Op, Request, Response, Role};
use faultline_replica::{ClientToken, Command, Core, Input, KvState, Millis, Outbox};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::core::PaxosCore;
use crate::msg::{Msg, Persist, Value};
use crate::settings::Settings;
use crate::storage::MemDisk;

pub(crate) const TICK: Millis = 5;

/// What a client asked, for the read check.
#[derive(Debug, Clone)]
enum Asked {
    Write { key: String, value: i64 },
    Read { key: String, floor: u64 },
    Other,
}

pub(crate) struct Sim {
    pub rng: ChaCha8Rng,
    pub now: Millis,
    pub nodes: Vec<String>,
    pub settings: Settings,
    pub bugs: Vec<String>,
    pub cores: BTreeMap<String, Option<PaxosCore>>,
    pub disks: BTreeMap<String, MemDisk>,
    queue: BinaryHeap<Reverse<(Millis, u64)>>,
    in_flight: BTreeMap<u64, (String, String, Msg)>,
    seq: u64,
    pub loss: f64,
    pub dup: f64,
    pub max_delay: Millis,
    /// Directed links that drop everything.
    pub blocked: BTreeSet<(String, String)>,
    /// Nodes to restart, with their restart time.
    restarts: BTreeMap<String, Millis>,
    pub replies: BTreeMap<ClientToken, (String, Response)>,
    asked: BTreeMap<ClientToken, (Asked, Millis)>,
    next_token: u64,
    next_tick: Millis,
    // ---- invariant bookkeeping ----
    /// ballot (as a term) -> the node that led it.
    pub leaders: BTreeMap<u64, String>,
    /// slot -> the value some node knows chosen there.
    pub chosen: BTreeMap<u64, Value>,
    /// slot -> state machine after executing through it.
    states: HashMap<u64, KvState>,
    /// Written value -> slot (values are unique).
    value_index: HashMap<i64, u64>,
    /// key -> highest slot of an acknowledged write.
    acked_floor: HashMap<String, u64>,
    pending_acks: Vec<(String, i64)>,
    pub acked_writes: usize,
    pub ok_reads: usize,
    pub steps: u64,
}

impl Sim {
    pub fn new(seed: u64, n: usize, settings: Settings, bugs: &[&str]) -> Sim {
        let nodes: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let lazy = bugs.contains(&crate::BUG_ACK_BEFORE_PERSIST);
        let mut sim = Sim {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            nodes: nodes.clone(),
            settings,
            bugs: bugs.iter().map(|b| b.to_string()).collect(),
            cores: BTreeMap::new(),
            disks: nodes
                .iter()
                .map(|n| (n.clone(), MemDisk::new(lazy)))
                .collect(),
            queue: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            loss: 0.0,
            dup: 0.0,
            max_delay: 3,
            blocked: BTreeSet::new(),
            restarts: BTreeMap::new(),
            replies: BTreeMap::new(),
            asked: BTreeMap::new(),
            next_token: 0,
            next_tick: TICK,
            leaders: BTreeMap::new(),
            chosen: BTreeMap::new(),
            states: HashMap::new(),
            value_index: HashMap::new(),
            acked_floor: HashMap::new(),
            pending_acks: Vec::new(),
            acked_writes: 0,
            ok_reads: 0,
            steps: 0,
        };
        for id in nodes {
            sim.start(&id);
        }
        sim
    }

    pub fn start(&mut self, id: &str) {
        self.restarts.remove(id);
        let rec = self.disks[id].recovered.clone();
        let seed = self.rng.gen();
        let core = PaxosCore::new(
            id,
            self.nodes.clone(),
            self.settings.clone(),
            &self.bugs,
            rec,
            seed,
        );
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

    pub fn core(&self, id: &str) -> Option<&PaxosCore> {
        self.cores.get(id).and_then(|c| c.as_ref())
    }

    /// The live leader with the highest ballot.
    pub fn leader(&self) -> Option<String> {
        self.nodes
            .iter()
            .filter(|n| self.core(n).is_some_and(|c| c.is_leader()))
            .max_by_key(|n| self.core(n).map(|c| c.ballot()))
            .cloned()
    }

    pub fn isolate(&mut self, a: &str) {
        for n in self.nodes.clone() {
            if n != a {
                self.blocked.insert((a.to_owned(), n.clone()));
                self.blocked.insert((n, a.to_owned()));
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    fn enqueue(&mut self, from: String, to: String, msg: Msg) {
        let copies = if self.rng.gen_bool(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.rng.gen_range(0..=self.max_delay);
            self.seq += 1;
            self.queue.push(Reverse((at, self.seq)));
            self.in_flight
                .insert(self.seq, (from.clone(), to.clone(), msg.clone()));
        }
    }

    /// Feed one input to `id` (if it is up), perform its outputs, check every invariant.
    pub fn step(&mut self, id: &str, input: Input<Msg>) -> Result<(), String> {
        let now = self.now;
        let Some(Some(core)) = self.cores.get_mut(id) else {
            return Ok(());
        };
        let mut out: Outbox<Msg, Persist> = Outbox::default();
        core.step(now, input, &mut out);
        core.flush(now, &mut out);
        self.steps += 1;
        self.disks
            .get_mut(id)
            .expect("every node has a disk")
            .persist(now, &out.persist);
        self.check(id)?;
        for (to, msg) in out.messages {
            if self.blocked.contains(&(id.to_owned(), to.clone())) || self.rng.gen_bool(self.loss) {
                continue;
            }
            self.enqueue(id.to_owned(), to, msg);
        }
        for (token, resp) in out.replies {
            self.on_reply(token, id, resp)?;
        }
        Ok(())
    }

    /// Messages in flight, in the order they would be delivered: (from, to, message).
    pub fn in_flight(&self) -> Vec<(String, String, Msg)> {
        let mut q: Vec<_> = self.queue.iter().map(|Reverse(k)| *k).collect();
        q.sort_unstable();
        q.iter()
            .filter_map(|(_, seq)| self.in_flight.get(seq).cloned())
            .collect()
    }

    fn on_reply(&mut self, token: ClientToken, id: &str, resp: Response) -> Result<(), String> {
        if let (true, Some((asked, _))) = (resp.ok, self.asked.get(&token)) {
            match asked.clone() {
                Asked::Write { key, value } => {
                    self.acked_writes += 1;
                    self.pending_acks.push((key, value));
                    self.settle_acks();
                }
                Asked::Read { key, floor } => {
                    self.ok_reads += 1;
                    let got = resp.value.flatten();
                    let index = got.map_or(Some(0), |v| self.value_index.get(&v).copied());
                    if let Some(index) = index {
                        if index < floor {
                            return Err(format!(
                                "stale read: {id} answered {key}={got:?} (slot {index}) at {}ms, \
                                 but a write at slot {floor} was acknowledged before the read began",
                                self.now
                            ));
                        }
                    }
                }
                Asked::Other => {}
            }
        }
        self.replies.insert(token, (id.to_owned(), resp));
        Ok(())
    }

    /// Raise the per-key floor for acknowledged writes whose log index is known.
    fn settle_acks(&mut self) {
        let mut keep = Vec::new();
        for (key, value) in std::mem::take(&mut self.pending_acks) {
            match self.value_index.get(&value) {
                Some(&i) => {
                    let f = self.acked_floor.entry(key).or_insert(0);
                    *f = (*f).max(i);
                }
                None => keep.push((key, value)),
            }
        }
        self.pending_acks = keep;
    }

    /// The safety properties, checked after a step of `id`.
    fn check(&mut self, id: &str) -> Result<(), String> {
        let core = self.cores[id].as_ref().expect("checked right after a step");
        let c = core.inspect();
        let now = self.now;
        // One leader per ballot (ballots are owned by one node each: this cannot fail unless
        // a node leads a ballot it did not prepare).
        if c.role == Role::Leader {
            let first = self
                .leaders
                .entry(c.ballot.as_term())
                .or_insert_with(|| id.to_owned());
            if first != id {
                return Err(format!(
                    "leader safety: {first} and {id} both lead ballot {} ({now}ms)",
                    c.ballot
                ));
            }
        }
        // Agreement: no two different values are chosen in one slot.
        for (&slot, v) in &c.chosen {
            match self.chosen.get(&slot) {
                Some(known) if known != v => {
                    return Err(format!(
                        "agreement: {id} knows {v:?} chosen at slot {slot}, another node knows {known:?} ({now}ms)"
                    ));
                }
                Some(_) => {}
                None => {
                    self.chosen.insert(slot, v.clone());
                    if let Value::Cmd {
                        cmd: Command::Write { value, .. } | Command::Cas { to: value, .. },
                        ..
                    } = v
                    {
                        self.value_index.entry(*value).or_insert(slot);
                    }
                }
            }
        }
        // Every node executes the same sequence: the same state after the same slot.
        match self.states.get(&c.applied) {
            Some(s) if *s != c.kv => {
                return Err(format!(
                    "execution: {id}'s state after executing slot {} differs from another node's ({now}ms)",
                    c.applied
                ));
            }
            Some(_) => {}
            None => {
                self.states.insert(c.applied, c.kv.clone());
            }
        }
        if !self.pending_acks.is_empty() {
            self.settle_acks();
        }
        Ok(())
    }

    /// Submit a client request to `id` now.
    pub fn request(&mut self, id: &str, op: Op) -> Result<ClientToken, String> {
        self.next_token += 1;
        let token = ClientToken(self.next_token);
        let asked = match &op {
            Op::Write { key, value } => Asked::Write {
                key: key.clone(),
                value: *value,
            },
            Op::Read { key } => Asked::Read {
                key: key.clone(),
                floor: self.acked_floor.get(key).copied().unwrap_or(0),
            },
            _ => Asked::Other,
        };
        self.asked.insert(token, (asked, self.now));
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

    /// Advance virtual time to `until`, delivering messages and ticking every node.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ReadMode;
    use crate::{BUG_ACCEPT_LOWER_BALLOT, BUG_SKIP_PHASE1_RECOVERY, BUG_STALE_LOCAL_READS};
    use std::time::Duration;

    const KEYS: [&str; 3] = ["a", "b", "c"];

    fn settings_for(seed: u64) -> Settings {
        Settings {
            snapshot_threshold: 40 + seed % 5 * 20,
            max_batch: 1 + (seed % 4) as usize * 16,
            forward: seed % 4 == 3,
            read: if seed.is_multiple_of(2) {
                ReadMode::Log
            } else {
                ReadMode::Lease
            },
            ..Settings::default()
        }
    }

    /// What a randomized run does to the cluster.
    #[derive(Clone, Copy)]
    struct Faults {
        /// Isolate a node (both ways) instead of crashing it, with this probability.
        isolate: f64,
        /// Cut one link between two nodes both ways (a bridge: each still reaches the third).
        bridge: f64,
        /// Keep n1 and n2 from reaching each other for the whole run.
        fixed_bridge: bool,
    }

    const DEFAULT_FAULTS: Faults = Faults {
        isolate: 0.3,
        bridge: 0.15,
        fixed_bridge: false,
    };

    /// One randomized run with client traffic, message loss, duplication and reordering,
    /// partitions, crashes and restarts. Returns (acked writes, ok reads, leaderships).
    fn random_run(
        seed: u64,
        ms: Millis,
        settings: Settings,
        bugs: &[&str],
        faults: Faults,
    ) -> Result<(usize, usize, usize), String> {
        let n = if seed % 5 == 4 { 5 } else { 3 };
        let mut sim = Sim::new(seed, n, settings, bugs);
        sim.max_delay = 1 + seed % 8;
        sim.loss = [0.0, 0.01, 0.05][(seed % 3) as usize];
        sim.dup = [0.0, 0.02][(seed % 2) as usize];
        let bridge = [
            ("n1".to_owned(), "n2".to_owned()),
            ("n2".to_owned(), "n1".to_owned()),
        ];
        let mut down: BTreeMap<String, Millis> = BTreeMap::new();
        let mut healed_at: Option<Millis> = None;
        let mut next_fault: Millis = 1_000;
        let mut value = 0i64;
        while sim.now < ms {
            sim.run_for(2)?;
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
            if faults.fixed_bridge {
                sim.blocked.extend(bridge.iter().cloned());
            }
            // Faults: at most a minority down, at most one partition at a time.
            if sim.now >= next_fault {
                next_fault = sim.now + sim.rng.gen_range(200..1_500);
                let victim = if sim.rng.gen_bool(0.5) {
                    sim.leader()
                } else {
                    Some(sim.nodes[sim.rng.gen_range(0..n)].clone())
                };
                if let Some(v) = victim {
                    let roll: f64 = sim.rng.gen();
                    if roll < faults.bridge && healed_at.is_none() {
                        let other = sim.nodes.iter().find(|o| **o != v).cloned().unwrap();
                        sim.blocked.insert((v.clone(), other.clone()));
                        sim.blocked.insert((other, v));
                        healed_at = Some(sim.now + sim.rng.gen_range(300..1_500));
                    } else if roll < faults.bridge + faults.isolate && healed_at.is_none() {
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
                    Some(c) => {
                        let i = c.inspect();
                        format!(
                            "{n}: {:?} ballot {} promised {} acceptor {} commit {} applied {} accepted {:?}",
                            i.role,
                            i.ballot,
                            i.promised,
                            i.acceptor,
                            i.commit,
                            i.applied,
                            i.accepted.keys().collect::<Vec<_>>()
                        )
                    }
                    None => format!("{n}: down"),
                })
                .collect();
            return Err(format!(
                "write after healing (to {leader}) not acknowledged: {:?}\n{}",
                sim.reply(t),
                states.join("\n")
            ));
        }
        // Every node that is up executes the same sequence to the end.
        sim.run_for(500)?;
        let applied: Vec<u64> = sim
            .nodes
            .iter()
            .filter_map(|n| sim.core(n).map(|c| c.inspect().applied))
            .collect();
        if applied.iter().any(|a| *a != applied[0]) {
            return Err(format!(
                "nodes did not converge after healing: applied {applied:?}"
            ));
        }
        Ok((sim.acked_writes, sim.ok_reads, sim.leaders.len()))
    }

    fn env(name: &str, default: u64) -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    }

    #[test]
    fn randomized_runs_keep_paxos_safety_properties() {
        let seed0 = env("PAXOS_SIM_SEED", 1);
        let runs = env("PAXOS_SIM_RUNS", 10);
        let ms = env("PAXOS_SIM_MS", 10_000);
        for seed in seed0..seed0 + runs {
            let (acked, reads, leaders) = random_run(seed, ms, settings_for(seed), &[], DEFAULT_FAULTS).unwrap_or_else(|e| {
                panic!(
                    "seed {seed}: {e}\nreproduce with: PAXOS_SIM_SEED={seed} PAXOS_SIM_RUNS=1 cargo test -p faultline-paxos randomized_runs"
                )
            });
            eprintln!("seed {seed}: {acked} writes acked, {reads} reads, {leaders} ballots led");
            assert!(acked > 500, "seed {seed}: only {acked} writes acknowledged");
            assert!(reads > 200, "seed {seed}: only {reads} reads answered");
            assert!(leaders >= 3, "seed {seed}: only {leaders} leaderships");
        }
    }

    /// The checks can fail: each planted bug that breaks a checked property is caught by some
    /// seed, and the same seeds pass without it.
    #[test]
    fn randomized_runs_catch_planted_bugs() {
        for bug in [
            BUG_SKIP_PHASE1_RECOVERY,
            BUG_STALE_LOCAL_READS,
            BUG_ACCEPT_LOWER_BALLOT,
        ] {
            // A lower ballot reaches an acceptor only from a leader that still leads in its own
            // eyes after another took over: one that cannot hear the new leader (a bridge) and
            // was silent for between the minimum and the maximum takeover timeout.
            let (faults, settings): (Faults, fn(u64) -> Settings) =
                if bug == BUG_ACCEPT_LOWER_BALLOT {
                    let faults = Faults {
                        isolate: 0.9,
                        bridge: 0.0,
                        fixed_bridge: true,
                    };
                    (faults, |seed| Settings {
                        election_timeout: [Duration::from_millis(150), Duration::from_millis(600)],
                        ..settings_for(seed)
                    })
                } else {
                    (DEFAULT_FAULTS, settings_for)
                };
            let caught = (1..=12u64).find_map(|seed| {
                random_run(seed, 8_000, settings(seed), &[bug], faults)
                    .err()
                    .map(|e| (seed, e))
            });
            let (seed, e) = caught.unwrap_or_else(|| panic!("{bug}: no seed caught it"));
            eprintln!("{bug}, seed {seed}: {e}");
            if let Err(e) = random_run(seed, 8_000, settings(seed), &[], faults) {
                panic!("seed {seed} without {bug}: {e}");
            }
        }
    }
}
