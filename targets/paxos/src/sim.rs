//! Multi-Paxos in the deterministic simulator of `faultline_replica::sim`: how a node boots from
//! its in-memory disk, and the safety properties checked after every step: at most one leader
//! per ballot (by the simulator), no two different values ever chosen for one slot (by any
//! node's knowledge), every node executes the same sequence (the same state after the same
//! slot), and (by the simulator) reads never miss an acknowledged write. Below, the randomized
//! tests.

use faultline_replica::sim::{self, Carries, Committed, Names, Protocol, SameStates, Stepped};
use faultline_replica::{Command, Millis};

use crate::core::PaxosCore;
use crate::msg::Value;
use crate::settings::Settings;

/// A simulated Multi-Paxos cluster.
pub(crate) type Sim = sim::Sim<Paxos>;

/// Multi-Paxos's invariant bookkeeping in a [`Sim`].
#[derive(Default)]
pub(crate) struct Paxos {
    /// slot -> the value some node knows chosen there.
    chosen: Committed<Value>,
    states: SameStates,
}

impl Protocol for Paxos {
    type Core = PaxosCore;
    const NAMES: Names = Names::new("leader safety", "ballot", Some("slot"));

    fn check(&mut self, s: Stepped<'_, PaxosCore>) -> Result<(), String> {
        let c = s.core.inspect();
        // Agreement: no two different values are chosen in one slot.
        let chosen = c.chosen.iter().map(|(slot, v)| (*slot, v));
        if let Err((slot, v, known)) = self.chosen.commit_all(chosen, s.reads) {
            return Err(format!(
                "agreement: {} knows {v:?} chosen at slot {slot}, another node knows {known:?} ({}ms)",
                s.id, s.now
            ));
        }
        // Every node executes the same sequence: the same state after the same slot.
        self.states
            .check("execution", s.id, c.applied, &c.kv, s.now)?;
        Ok(())
    }

    fn applied(&self, core: &PaxosCore) -> u64 {
        core.inspect().applied
    }

    fn describe(&self, core: &PaxosCore) -> String {
        let i = core.inspect();
        format!(
            "{:?} ballot {} promised {} acceptor {} commit {} applied {} accepted {:?}",
            i.role,
            i.ballot,
            i.promised,
            i.acceptor,
            i.commit,
            i.applied,
            i.accepted.keys().collect::<Vec<_>>()
        )
    }
}

impl Carries for Value {
    fn command(&self) -> Option<&Command> {
        match self {
            Value::Cmd { cmd, .. } => Some(cmd),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ReadMode;
    use crate::{BUG_ACCEPT_LOWER_BALLOT, BUG_SKIP_PHASE1_RECOVERY, BUG_STALE_LOCAL_READS};
    use faultline_replica::sim::{
        assert_safe_runs, first_catch, print_catches, random_run, Workload,
    };
    use std::time::Duration;

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

    /// Crashes, isolated nodes and bridges (one link cut both ways); after healing, every node
    /// converges.
    fn workload(ms: Millis) -> Workload {
        Workload {
            bridge: 0.15,
            converge: true,
            ..Workload::new(ms)
        }
    }

    /// Randomized runs with client traffic, message loss, duplication and reordering,
    /// partitions, crashes and restarts keep every property (`PAXOS_SIM_SEED`,
    /// `PAXOS_SIM_RUNS`, `PAXOS_SIM_MS`).
    #[test]
    fn randomized_runs_keep_paxos_safety_properties() {
        assert_safe_runs::<Paxos>(
            "PAXOS",
            "faultline-paxos",
            10,
            workload(10_000),
            settings_for,
        );
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
            let (w, settings): (Workload, fn(u64) -> Settings) = if bug == BUG_ACCEPT_LOWER_BALLOT {
                let w = Workload {
                    isolate: 0.9,
                    bridge: 0.0,
                    fixed_bridge: true,
                    ..workload(8_000)
                };
                (w, |seed| Settings {
                    election_timeout: [Duration::from_millis(150), Duration::from_millis(600)],
                    ..settings_for(seed)
                })
            } else {
                (workload(8_000), settings_for)
            };
            let caught = first_catch::<Paxos>(1..=12, bug, &w, settings, |_| {});
            let (seed, _) = caught.unwrap_or_else(|| panic!("{bug}: no seed caught it"));
            if let Err(e) = random_run::<Paxos>(seed, settings(seed), &[], &w, |_| {}) {
                panic!("seed {seed} without {bug}: {e}");
            }
        }
    }

    /// Where the randomized workload (8 s runs, seeds 1..=12, no extra faults) first catches
    /// each planted bug, for the README's table:
    /// `cargo test -p faultline-paxos --release planted_bug_catches -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn planted_bug_catches() {
        let w = workload(8_000);
        print_catches::<Paxos>(crate::KNOWN_BUGS, 1..=12, &w, settings_for);
    }
}
