//! The randomized workload every protocol's simulation tests share ([`random_run`]) and the
//! helpers around it: safety runs over many seeds, the first seed that catches a planted bug.

use std::collections::BTreeMap;

use faultline_protocol::Op;
use rand::Rng;

use super::{Msg, Protocol, Settings, Sim};
use crate::driver::Millis;

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
