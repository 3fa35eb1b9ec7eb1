//! The node's data directory: the acceptor's promise, the last snapshot, and the slots after it.
//!
//! Files: `meta` (atomic: [`Meta`]), `snapshot` (atomic: slot, state, and the records kept of
//! later slots), `log` (checksummed records, one [`Record`] each, replayed in order after the
//! snapshot's: an acceptance replaces the one before it in its slot, a `Chosen` marker fixes
//! the values accepted so far as chosen). The snapshot file is replaced before the log is
//! emptied: a crash in between leaves the new snapshot plus the old log, whose records replay
//! to the same state (those up to the snapshot's slot are skipped).
//!
//! With the planted bug `ack-before-persist` ([`FileStorage::open`] with `lazy: true`) log
//! records are buffered in this process's memory and written out (never fsynced) at most once
//! per [`LAZY_FLUSH_MS`]: the node acknowledges acceptances that a `kill -9` then loses.

use std::collections::BTreeMap;
use std::path::Path;

use faultline_replica::datadir::{DataDir, Files, Layout};
use faultline_replica::{KvState, StorageError};
use serde::{Deserialize, Serialize};

use crate::msg::{Ballot, Meta, Persist, Value};

pub use faultline_replica::log::LAZY_FLUSH_MS;

/// An in-memory image of the data directory with the same semantics, for simulations.
#[cfg(test)]
pub type MemDisk = faultline_replica::sim::Disk<Recovered>;

/// One log record on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Accept {
        slot: u64,
        ballot: Ballot,
        value: Value,
    },
    Learn {
        slot: u64,
        value: Value,
    },
    Chosen {
        through: u64,
    },
}

/// What a node recovered from its data directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    pub meta: Meta,
    /// Every slot through `snap_slot` is folded into `state` (0: no snapshot).
    pub snap_slot: u64,
    pub state: KvState,
    /// Accepted and not known chosen, after `snap_slot`.
    pub accepted: BTreeMap<u64, (Ballot, Value)>,
    /// Known chosen, after `snap_slot` (not necessarily contiguous).
    pub chosen: BTreeMap<u64, Value>,
    /// Replay's running chosen prefix (so each marker walks only the slots it adds: replay
    /// stays linear in the log's length).
    prefix: u64,
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (promised, acceptor) = (self.meta.promised, self.meta.acceptor);
        write!(
            f,
            "promised {promised} acceptor {acceptor}, snapshot at {}",
            self.snap_slot
        )?;
        let (chosen, accepted) = (self.chosen.len(), self.accepted.len());
        write!(
            f,
            ", {chosen} chosen and {accepted} accepted slots after it"
        )
    }
}

impl Recovered {
    /// The highest slot such that it and every slot before it are known chosen.
    pub fn chosen_prefix(&self) -> u64 {
        let mut c = self.prefix.max(self.snap_slot);
        while self.chosen.contains_key(&(c + 1)) {
            c += 1;
        }
        c
    }

    fn replay(&mut self, r: Record) {
        match r {
            Record::Accept {
                slot,
                ballot,
                value,
            } => {
                if slot > self.snap_slot && !self.chosen.contains_key(&slot) {
                    self.accepted.insert(slot, (ballot, value));
                }
            }
            Record::Learn { slot, value } => {
                if slot > self.snap_slot {
                    self.accepted.remove(&slot);
                    self.chosen.insert(slot, value);
                }
            }
            Record::Chosen { through } => {
                for slot in self.chosen_prefix() + 1..=through {
                    if self.chosen.contains_key(&slot) {
                        continue;
                    }
                    match self.accepted.remove(&slot) {
                        Some((_, v)) => {
                            self.chosen.insert(slot, v);
                        }
                        None => break,
                    }
                }
                self.prefix = self.chosen_prefix();
            }
        }
    }
}

/// The log record of a persist action (none for meta and snapshots).
fn record(p: &Persist) -> Option<Record> {
    Some(match p {
        Persist::Accept {
            slot,
            ballot,
            value,
        } => Record::Accept {
            slot: *slot,
            ballot: *ballot,
            value: value.clone(),
        },
        Persist::Learn { slot, value } => Record::Learn {
            slot: *slot,
            value: value.clone(),
        },
        Persist::Chosen { through } => Record::Chosen { through: *through },
        Persist::Meta(_) | Persist::Snapshot { .. } => return None,
    })
}

/// Recovery from persist actions, for the simulator's in-memory disk.
#[cfg(test)]
impl faultline_replica::sim::DiskImage for Recovered {
    type Persist = Persist;

    fn apply(&mut self, action: &Persist) {
        match action {
            Persist::Meta(m) => self.meta = *m,
            Persist::Snapshot { slot, state, tail } => {
                self.snap_slot = *slot;
                self.prefix = *slot;
                self.state = state.clone();
                self.accepted.clear();
                self.chosen.clear();
                for p in tail {
                    if let Some(r) = record(p) {
                        self.replay(r);
                    }
                }
            }
            other => {
                if let Some(r) = record(other) {
                    self.replay(r);
                }
            }
        }
    }

    /// Log records wait under `ack-before-persist`; the promise file is written at once.
    fn durability(action: &Persist) -> faultline_replica::sim::Durability {
        use faultline_replica::sim::Durability;
        match action {
            Persist::Meta(_) => Durability::Direct,
            Persist::Snapshot { .. } => Durability::Snapshot,
            _ => Durability::Log,
        }
    }
}

/// File-backed storage with group commit: the log records of one batch share one fsync.
pub type FileStorage = faultline_replica::datadir::FileStorage<Persist>;

impl Layout for Persist {
    type Recovered = Recovered;

    fn open(dir: &Path, lazy: bool) -> Result<(DataDir, Recovered), StorageError> {
        let recover = |f: Files<'_, Meta, (u64, KvState, Vec<Record>)>| {
            let mut rec = Recovered {
                meta: f.meta.unwrap_or_default(),
                ..Recovered::default()
            };
            if let Some((slot, state, tail)) = f.snapshot {
                rec.snap_slot = slot;
                rec.prefix = slot;
                rec.state = state;
                for r in tail {
                    rec.replay(r);
                }
            }
            Ok(rec)
        };
        let replay = |rec: &mut Recovered, r: Record| {
            rec.replay(r);
            true
        };
        DataDir::open(dir, ("meta", "meta"), lazy, recover, replay)
    }

    fn write(self, dir: &mut DataDir) -> Result<(), StorageError> {
        match self {
            // Acceptances before a promise in the same batch reach the disk first.
            Persist::Meta(m) => dir.write_meta(&m)?,
            Persist::Snapshot { slot, state, tail } => {
                let tail: Vec<Record> = tail.iter().filter_map(record).collect();
                dir.replace_log(&(slot, &state, &tail))?;
            }
            other => {
                if let Some(r) = record(&other) {
                    dir.append("log record", &r)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_replica::testkit::{assert_recovers_as_modelled, state_with};
    use faultline_replica::Command;
    use faultline_replica::{OpenStorage, Storage};

    fn v(i: i64) -> Value {
        Value::Cmd {
            cmd: Command::Write {
                key: format!("k{i}"),
                value: i,
            },
            tag: i as u64,
        }
    }

    fn b(round: u64, node: u32) -> Ballot {
        Ballot { round, node }
    }

    fn acc(slot: u64, ballot: Ballot, value: Value) -> Persist {
        Persist::Accept {
            slot,
            ballot,
            value,
        }
    }

    #[test]
    fn file_storage_recovers_what_the_mem_disk_models() {
        let batches = vec![
            vec![
                Persist::Meta(Meta {
                    promised: b(1, 1),
                    acceptor: true,
                }),
                acc(1, b(1, 1), v(1)),
                acc(2, b(1, 1), v(2)),
                acc(3, b(1, 1), v(3)),
            ],
            // A higher ballot re-proposes slot 3 with another value, then 1..2 are chosen.
            vec![acc(3, b(2, 2), v(30)), Persist::Chosen { through: 2 }],
            // Slot 4 learned out of order; 3 chosen as accepted in ballot 2.2.
            vec![
                Persist::Learn {
                    slot: 5,
                    value: v(50),
                },
                Persist::Chosen { through: 3 },
            ],
            vec![
                Persist::Snapshot {
                    slot: 2,
                    state: state_with("s", 1),
                    tail: vec![
                        Persist::Learn {
                            slot: 3,
                            value: v(30),
                        },
                        Persist::Learn {
                            slot: 5,
                            value: v(50),
                        },
                    ],
                },
                acc(4, b(2, 2), v(40)),
                // An acceptance for a slot known chosen changes nothing.
                acc(3, b(3, 1), v(31)),
            ],
        ];
        let rec = assert_recovers_as_modelled::<FileStorage>(batches);
        assert_eq!(rec.snap_slot, 2);
        assert_eq!(rec.meta.promised, b(1, 1));
        assert_eq!(rec.chosen.keys().copied().collect::<Vec<_>>(), vec![3, 5]);
        assert_eq!(rec.chosen[&3], v(30));
        assert_eq!(rec.accepted[&4], (b(2, 2), v(40)));
        assert_eq!(rec.chosen_prefix(), 3);
    }

    /// The slots kept after a snapshot are in the snapshot file: whatever happens to the log
    /// after it was replaced (here: it is lost entirely), they come back with it.
    #[test]
    fn kept_slots_survive_with_the_snapshot_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, _) = FileStorage::open(dir.path(), false).unwrap();
        st.persist(vec![
            acc(1, b(1, 1), v(1)),
            acc(2, b(1, 1), v(2)),
            Persist::Chosen { through: 1 },
            Persist::Snapshot {
                slot: 1,
                state: KvState::new(),
                tail: vec![acc(2, b(1, 1), v(2))],
            },
        ])
        .unwrap();
        drop(st);
        std::fs::write(dir.path().join("log"), b"").unwrap();
        let (_, rec) = FileStorage::open(dir.path(), false).unwrap();
        assert_eq!(rec.snap_slot, 1);
        assert_eq!(rec.accepted.get(&2), Some(&(b(1, 1), v(2))));
    }

    #[test]
    fn lazy_storage_loses_its_buffer_unless_dropped_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, _) = FileStorage::open(dir.path(), true).unwrap();
        st.persist(vec![acc(1, b(1, 1), v(1)), acc(2, b(1, 1), v(2))])
            .unwrap();
        // Simulate kill -9: the process's memory vanishes without Drop.
        std::mem::forget(st);
        let (_, rec) = FileStorage::open(dir.path(), true).unwrap();
        assert!(
            rec.accepted.is_empty(),
            "buffered acceptances survived a crash"
        );
        let (mut st, _) = FileStorage::open(dir.path(), true).unwrap();
        st.persist(vec![acc(1, b(1, 1), v(1))]).unwrap();
        drop(st);
        let (_, rec) = FileStorage::open(dir.path(), true).unwrap();
        assert_eq!(rec.accepted[&1], (b(1, 1), v(1)));
    }
}
