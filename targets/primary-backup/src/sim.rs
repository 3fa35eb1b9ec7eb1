//! Primary-backup in the deterministic simulator of `faultline_replica::sim` (which checks
//! that at most one primary claims a view after every step): how a node boots from its
//! in-memory disk, and the few cluster views the tests need. Used by the core unit tests and
//! the randomized invariant tests below.

use std::ops::{Deref, DerefMut};

use faultline_protocol::{Op, Role};
use faultline_replica::sim::{self, Names, Protocol};
use faultline_replica::{ClientToken, Input, Millis};

use crate::core::PbCore;
use crate::msg::Msg;
use crate::settings::Settings;

/// Primary-backup in a [`Sim`]: no invariants besides the simulator's own.
#[derive(Default)]
pub(crate) struct Pb;

impl Protocol for Pb {
    type Core = PbCore;
    const NAMES: Names = Names::new("view safety", "view", None);
}

/// A simulated primary-backup cluster: the shared simulator, whose safety violations panic,
/// with delays up to 5 ms and no duplication.
pub(crate) struct Sim(sim::Sim<Pb>);

impl Deref for Sim {
    type Target = sim::Sim<Pb>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Sim {
    pub fn new(seed: u64, n: usize, settings: Settings) -> Sim {
        Sim::with_bugs(seed, n, settings, &[])
    }

    pub fn with_bugs(seed: u64, n: usize, settings: Settings, bugs: &[&str]) -> Sim {
        let mut sim = sim::Sim::new(seed, n, settings, bugs);
        sim.dup = None;
        sim.max_delay = 5;
        Sim(sim)
    }

    pub fn role(&self, id: &str) -> Option<Role> {
        self.core(id).map(|c| c.status().role)
    }

    pub fn view(&self, id: &str) -> u64 {
        self.core(id).map_or(0, |c| c.status().term)
    }

    /// The live serving primary with the highest view.
    pub fn primary(&self) -> Option<String> {
        self.nodes
            .iter()
            .filter(|n| self.core(n).is_some_and(|c| c.serving()))
            .max_by_key(|n| self.view(n))
            .cloned()
    }

    /// Deliver `msg` from `from` to `to` right now.
    pub fn deliver(&mut self, to: &str, from: &str, msg: Msg) {
        let from = from.to_owned();
        let r = self.0.step(to, Input::Peer { from, msg });
        r.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Submit a client request to `id` now; the answer lands in `replies` under the token.
    pub fn request(&mut self, id: &str, op: Op) -> ClientToken {
        self.0.request(id, op).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Advance virtual time to `until`, delivering messages and ticking every node.
    pub fn run_until(&mut self, until: Millis) {
        self.0.run_until(until).unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn run_for(&mut self, d: Millis) {
        self.run_until(self.now + d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Replication;
    use faultline_replica::sim::env;
    use rand::Rng;
    use std::collections::BTreeSet;

    fn settings(replication: Replication, lease: bool) -> Settings {
        Settings {
            replication,
            lease,
            ..Settings::default()
        }
    }

    /// Write `key = value` through `to`.
    fn write(sim: &mut Sim, to: &str, key: &str, value: i64) -> ClientToken {
        let key = key.to_owned();
        sim.request(to, Op::Write { key, value })
    }

    struct Acked {
        key: String,
        value: i64,
    }

    /// Crash-only faults (kill, restart, amnesia), delays and reordering; sync replication.
    /// Invariants: one primary per view; every acknowledged write is in the state of every
    /// primary that starts serving later; reads of acknowledged writes never miss them.
    fn crash_only_run(seed: u64, settings: Settings, bugs: &[&str]) -> Result<usize, String> {
        let mut sim = Sim::with_bugs(seed, 3, settings, bugs);
        // Odd seeds must see a log compacted (or replaced by a state transfer) by the end.
        let compacting = seed % 2 == 1;
        sim.max_delay = 10;
        let mut acked: Vec<Acked> = Vec::new();
        let mut writes: Vec<(ClientToken, String, i64)> = Vec::new();
        let mut reads: Vec<(ClientToken, usize)> = Vec::new();
        let mut checked_views = BTreeSet::new();
        let mut down: Option<(String, Millis)> = None;
        let mut next_fault = 1_500;
        let mut counter = 0i64;
        let end = 25_000;
        while sim.now < end {
            sim.run_for(2);
            // Faults: one node down at a time, only when every node is healthy.
            if let Some((id, at)) = down.clone() {
                if sim.now >= at {
                    if sim.rng.gen_bool(0.25) {
                        sim.wipe(&id);
                    }
                    sim.start(&id);
                    down = None;
                    next_fault = sim.now + sim.rng.gen_range(800..2_500);
                }
            } else if sim.now >= next_fault {
                let healthy = sim
                    .nodes
                    .iter()
                    .all(|n| matches!(sim.role(n), Some(Role::Leader) | Some(Role::Follower)));
                if healthy {
                    let victim = if sim.rng.gen_bool(0.5) {
                        sim.primary()
                    } else {
                        Some(format!("n{}", sim.rng.gen_range(1..=3)))
                    };
                    if let Some(v) = victim {
                        sim.crash(&v);
                        down = Some((v, sim.now + sim.rng.gen_range(50..900)));
                    }
                }
            }
            // Client traffic to the current primary.
            if let Some(p) = sim.primary() {
                counter += 1;
                let key = format!("w{counter}");
                let t = write(&mut sim, &p, &key, counter);
                writes.push((t, key, counter));
                if !acked.is_empty() {
                    let i = sim.rng.gen_range(0..acked.len());
                    let t = sim.request(
                        &p,
                        Op::Read {
                            key: acked[i].key.clone(),
                        },
                    );
                    reads.push((t, i));
                }
                if sim.rng.gen_bool(0.2) {
                    let from = sim.rng.gen_range(0..5);
                    sim.request(
                        &p,
                        Op::Cas {
                            key: "c".into(),
                            from: Some(from),
                            to: from + 1,
                        },
                    );
                }
            }
            writes.retain(|(t, key, value)| match sim.reply(*t) {
                None => true,
                Some(r) => {
                    if r.ok {
                        acked.push(Acked {
                            key: key.clone(),
                            value: *value,
                        });
                    }
                    false
                }
            });
            for (t, i) in std::mem::take(&mut reads) {
                match sim.reply(t) {
                    None => reads.push((t, i)),
                    Some(r) if r.ok && r.value != Some(Some(acked[i].value)) => {
                        return Err(sim.at(format!(
                            "seed {seed}: stale read of {}: {:?} at {}ms",
                            acked[i].key, r.value, sim.now
                        )));
                    }
                    Some(_) => {}
                }
            }
            // Every new serving primary holds every write acknowledged so far.
            for n in sim.nodes.clone() {
                let Some(core) = sim.core(&n) else { continue };
                let view = sim.view(&n);
                if core.serving() && checked_views.insert(view) {
                    let state = core.inspect().full_state;
                    if let Some(a) = acked.iter().find(|a| state.read(&a.key) != Some(a.value)) {
                        return Err(sim.at(format!(
                            "seed {seed}: acknowledged write {}={} lost by {n}, primary of view {view} at {}ms",
                            a.key, a.value, sim.now
                        )));
                    }
                }
            }
        }
        if compacting && sim.disks.values().all(|d| d.recovered.base == 0) {
            return Err(format!("seed {seed}: no log was ever compacted"));
        }
        if checked_views.len() < 3 {
            return Err(format!(
                "seed {seed}: too few failovers ({checked_views:?})"
            ));
        }
        Ok(acked.len())
    }

    #[test]
    fn crash_only_faults_keep_acknowledged_writes() {
        let seed0 = env("PB_SIM_SEED", 1);
        let runs = env("PB_SIM_RUNS", 6);
        for seed in seed0..seed0 + runs {
            let settings = settings(Replication::Sync, seed % 3 == 0);
            let acked = crash_only_run(seed, settings, &[])
                .unwrap_or_else(|e| panic!("{e}\nreproduce with PB_SIM_SEED={seed} PB_SIM_RUNS=1"));
            assert!(
                acked > 2_000,
                "seed {seed}: only {acked} writes acknowledged"
            );
        }
    }

    /// The invariant check is able to fail: acknowledging before replication loses writes
    /// when the primary crashes.
    #[test]
    fn crash_only_check_catches_ack_before_replicate() {
        let caught = (1..=6u64)
            .filter_map(|seed| {
                crash_only_run(
                    seed,
                    Settings::default(),
                    &[crate::core::BUG_ACK_BEFORE_REPLICATE],
                )
                .err()
            })
            .collect::<Vec<_>>();
        assert!(!caught.is_empty(), "the planted bug went unnoticed");
        eprintln!(
            "{}, first caught: {}",
            crate::core::BUG_ACK_BEFORE_REPLICATE,
            caught[0]
        );
        assert!(
            caught
                .iter()
                .any(|e| e.contains("lost") || e.contains("stale")),
            "{caught:?}"
        );
    }

    /// Pause the primary past the takeover timeout, write through its successor, resume it and
    /// read at once from the old primary. Returns (stale reads served, reads refused).
    fn pause_run(seed: u64, lease: bool) -> (usize, usize) {
        let mut sim = Sim::new(seed, 3, settings(Replication::Sync, lease));
        sim.max_delay = 5;
        sim.run_for(200);
        let (mut stale, mut refused) = (0, 0);
        let mut counter = 0;
        for _ in 0..8 {
            let Some(old) = sim.primary() else {
                sim.run_for(500);
                continue;
            };
            sim.pause(&old);
            let pause = sim.rng.gen_range(400..1_200);
            sim.run_for(pause);
            let Some(new) = sim.primary().filter(|p| *p != old) else {
                sim.resume(&old);
                sim.run_for(500);
                continue;
            };
            counter += 1;
            let key = format!("p{counter}");
            let w = write(&mut sim, &new, &key, counter);
            sim.run_for(30);
            let acked = sim.reply(w).is_some_and(|r| r.ok);
            sim.resume(&old);
            let r = sim.request(&old, Op::Read { key });
            match sim.reply(r) {
                Some(r) if r.ok && acked && r.value != Some(Some(counter)) => stale += 1,
                Some(r) if !r.ok => refused += 1,
                _ => {}
            }
            let settle = sim.rng.gen_range(500..1_000);
            sim.run_for(settle);
        }
        (stale, refused)
    }

    /// With a lease a resumed primary refuses reads; without one it serves stale ones.
    #[test]
    fn paused_primary_is_stale_without_lease_and_safe_with_it() {
        let (mut stale_lease, mut refused_lease, mut stale_plain) = (0, 0, 0);
        for seed in 1..=4u64 {
            let (s, r) = pause_run(seed, true);
            stale_lease += s;
            refused_lease += r;
            stale_plain += pause_run(seed, false).0;
        }
        assert_eq!(stale_lease, 0, "stale reads despite the lease");
        assert!(
            refused_lease > 0,
            "the scenario never reached the old primary"
        );
        assert!(
            stale_plain > 0,
            "no stale read without a lease: the scenario is too weak"
        );
    }

    /// Async replication acknowledges before backups have a write, so killing the primary
    /// loses acknowledged writes: the matrix cell "async x kill primary = lost writes".
    #[test]
    fn async_replication_loses_acknowledged_writes_on_primary_crash() {
        let settings = settings(Replication::Async, false);
        let lost = (1..=6u64)
            .filter_map(|seed| crash_only_run(seed, settings.clone(), &[]).err())
            .filter(|e| e.contains("lost"))
            .count();
        assert!(lost > 0, "async replication never lost a write");
    }

    /// Random loss and partitions on top of crashes: no consistency promise, but views stay
    /// unique (checked by every step of the simulator) and the cluster keeps making progress.
    #[test]
    fn lossy_network_never_has_two_primaries_in_a_view() {
        for seed in 100..104u64 {
            for replication in [Replication::Sync, Replication::Async] {
                let mut sim = Sim::new(seed, 3, settings(replication, false));
                sim.loss = 0.05;
                sim.max_delay = 30;
                let mut ok = 0;
                let mut tokens = Vec::new();
                let mut i = 0;
                while sim.now < 15_000 {
                    sim.run_for(5);
                    i += 1;
                    if i % 300 == 0 {
                        let n = format!("n{}", sim.rng.gen_range(1..=3));
                        match sim.rng.gen_range(0..3) {
                            0 => sim.isolate(&n),
                            1 => sim.crash(&n),
                            _ => sim.heal(),
                        }
                    }
                    if i % 300 == 150 {
                        sim.heal();
                        for n in sim.nodes.clone() {
                            if sim.core(&n).is_none() {
                                sim.start(&n);
                            }
                        }
                    }
                    for n in sim.nodes.clone() {
                        if sim.role(&n) == Some(Role::Leader) {
                            tokens.push(sim.request(
                                &n,
                                Op::Write {
                                    key: "k".into(),
                                    value: i,
                                },
                            ));
                        }
                    }
                    tokens.retain(|t| match sim.reply(*t) {
                        Some(r) => {
                            ok += usize::from(r.ok);
                            false
                        }
                        None => true,
                    });
                }
                assert!(
                    ok > 100,
                    "seed {seed} {replication:?}: only {ok} writes succeeded"
                );
                assert!(
                    sim.leaders.len() >= 2,
                    "seed {seed}: no view change happened"
                );
            }
        }
    }
}
