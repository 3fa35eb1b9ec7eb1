//! The node's data directory: term/vote, the last snapshot, and the log after it.
//!
//! Files: `meta` (atomic: [`HardState`]), `snapshot` (atomic: index, term, state, and the
//! entries after the index that were kept), `log` (checksummed records, one [`DiskEntry`]
//! each, replayed after the snapshot's entries). A log record for index `i` replaces entry `i`
//! and everything after it, so a follower truncating a conflicting suffix only appends. The
//! snapshot file is replaced before the log is emptied: a crash in between leaves the new
//! snapshot plus the old log, whose records replay to the same entries (those up to the
//! snapshot index are skipped).
//!
//! With the planted bug `ack-before-persist` ([`FileStorage::open`] with `lazy: true`) log
//! records are buffered in this process's memory and written out (never fsynced) at most once
//! per [`LAZY_FLUSH_MS`]: the node acknowledges entries that a `kill -9` then loses.

use std::path::Path;

use faultline_replica::datadir::{DataDir, Files, Layout};
use faultline_replica::{KvState, StorageError};
use serde::{Deserialize, Serialize};

use crate::msg::{Entry, HardState, Persist};

pub use faultline_replica::log::LAZY_FLUSH_MS;

/// An in-memory image of the data directory with the same semantics, for simulations.
#[cfg(test)]
pub type MemDisk = faultline_replica::sim::Disk<Recovered>;

/// One log record on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskEntry {
    pub index: u64,
    pub entry: Entry,
}

/// What a node recovered from its data directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    pub hard: HardState,
    /// Index and term of the last entry folded into `state` (0, 0: no snapshot).
    pub snap_index: u64,
    pub snap_term: u64,
    pub state: KvState,
    /// Entries `snap_index + 1, ...`.
    pub entries: Vec<Entry>,
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.hard;
        write!(f, "term {} vote {:?} voter {}", h.term, h.vote, h.voter)?;
        write!(
            f,
            ", snapshot at {}, {} entries",
            self.snap_index,
            self.entries.len()
        )
    }
}

impl Recovered {
    /// Replay one log record (see the module docs).
    fn replay(&mut self, index: u64, entry: Entry) -> bool {
        if index <= self.snap_index {
            return true;
        }
        let next = self.snap_index + self.entries.len() as u64 + 1;
        if index > next {
            return false;
        }
        self.entries
            .truncate((index - self.snap_index - 1) as usize);
        self.entries.push(entry);
        true
    }
}

/// Recovery from persist actions, for the simulator's in-memory disk.
#[cfg(test)]
impl faultline_replica::sim::DiskImage for Recovered {
    type Persist = Persist;

    fn apply(&mut self, action: &Persist) {
        match action {
            Persist::Hard(h) => self.hard = h.clone(),
            Persist::Append { index, entry } => {
                self.replay(*index, entry.clone());
            }
            Persist::Snapshot {
                index,
                term,
                state,
                tail,
            } => {
                self.snap_index = *index;
                self.snap_term = *term;
                self.state = state.clone();
                self.entries = tail.clone();
            }
        }
    }

    /// Log records wait under `ack-before-persist`; a vote goes after them.
    fn durability(action: &Persist) -> faultline_replica::sim::Durability {
        use faultline_replica::sim::Durability;
        match action {
            Persist::Append { .. } => Durability::Log,
            Persist::Hard(_) => Durability::AfterLog,
            Persist::Snapshot { .. } => Durability::Snapshot,
        }
    }
}

/// File-backed storage with group commit: the log records of one batch share one fsync.
pub type FileStorage = faultline_replica::datadir::FileStorage<Persist>;

impl Layout for Persist {
    type Recovered = Recovered;

    fn open(dir: &Path, lazy: bool) -> Result<(DataDir, Recovered), StorageError> {
        type Snap = (u64, u64, KvState, Vec<Entry>);
        let recover = |f: Files<'_, HardState, Snap>| {
            let (snap_index, snap_term, state, entries) = f.snapshot.unwrap_or_default();
            let hard = f.meta.unwrap_or_default();
            Ok(Recovered {
                hard,
                snap_index,
                snap_term,
                state,
                entries,
            })
        };
        let replay = |rec: &mut Recovered, d: DiskEntry| rec.replay(d.index, d.entry);
        DataDir::open(dir, ("meta", "meta"), lazy, recover, replay)
    }

    fn write(self, dir: &mut DataDir) -> Result<(), StorageError> {
        match self {
            Persist::Append { index, entry } => {
                dir.append("log record", &DiskEntry { index, entry })?
            }
            Persist::Hard(h) => dir.write_meta(&h)?,
            Persist::Snapshot {
                index,
                term,
                state,
                tail,
            } => dir.replace_log(&(index, term, &state, &tail))?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::EntryOp;
    use faultline_replica::testkit::{assert_recovers_as_modelled, state_with};
    use faultline_replica::{encode_record, Command, Log};
    use faultline_replica::{OpenStorage, Storage};

    fn e(term: u64, i: i64) -> Entry {
        Entry {
            term,
            op: EntryOp::Cmd(Command::Write {
                key: format!("k{i}"),
                value: i,
            }),
        }
    }

    fn app(index: u64, entry: Entry) -> Persist {
        Persist::Append { index, entry }
    }

    #[test]
    fn file_storage_recovers_what_the_mem_disk_models() {
        let batches = vec![
            vec![
                Persist::Hard(HardState {
                    term: 1,
                    vote: Some("n1".into()),
                    voter: true,
                }),
                app(1, e(1, 1)),
                app(2, e(1, 2)),
                app(3, e(1, 3)),
            ],
            // A conflicting suffix from a newer leader replaces 3..
            vec![app(3, e(2, 30)), app(4, e(2, 40))],
            vec![
                Persist::Snapshot {
                    index: 3,
                    term: 2,
                    state: state_with("s", 1),
                    tail: vec![e(2, 40)],
                },
                app(5, e(2, 50)),
            ],
            vec![app(5, e(3, 51))],
        ];
        let rec = assert_recovers_as_modelled::<FileStorage>(batches);
        assert_eq!((rec.snap_index, rec.snap_term), (3, 2));
        assert_eq!(rec.entries, vec![e(2, 40), e(3, 51)]);
        assert_eq!(rec.hard.vote.as_deref(), Some("n1"));
    }

    /// The entries kept after a snapshot are in the snapshot file: whatever happens to the log
    /// after it was replaced (here: it is lost entirely), they come back with it.
    #[test]
    fn kept_entries_survive_with_the_snapshot_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, _) = FileStorage::open(dir.path(), false).unwrap();
        st.persist(vec![
            app(1, e(1, 1)),
            app(2, e(1, 2)),
            Persist::Snapshot {
                index: 1,
                term: 1,
                state: KvState::new(),
                tail: vec![e(1, 2)],
            },
        ])
        .unwrap();
        drop(st);
        std::fs::write(dir.path().join("log"), b"").unwrap();
        let (_, rec) = FileStorage::open(dir.path(), false).unwrap();
        assert_eq!((rec.snap_index, rec.snap_term), (1, 1));
        assert_eq!(rec.entries, vec![e(1, 2)]);
    }

    /// A record the recovery cannot use (here: out of sequence) is cut away with everything
    /// after it, so entries appended after the restart are not hidden behind it at the next.
    #[test]
    fn an_unusable_record_is_cut_away_so_later_appends_survive_the_next_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, _) = FileStorage::open(dir.path(), false).unwrap();
        st.persist(vec![app(1, e(1, 1)), app(2, e(1, 2))]).unwrap();
        drop(st);
        {
            let (mut log, _) = Log::open(&dir.path().join("log")).unwrap();
            let stray = DiskEntry {
                index: 9,
                entry: e(1, 9),
            };
            log.append_batch(&[encode_record("log record", &stray).unwrap()])
                .unwrap();
        }
        let (mut st, rec) = FileStorage::open(dir.path(), false).unwrap();
        assert_eq!(rec.entries, vec![e(1, 1), e(1, 2)]);
        st.persist(vec![app(3, e(1, 3))]).unwrap();
        drop(st);
        let (_, rec) = FileStorage::open(dir.path(), false).unwrap();
        assert_eq!(rec.entries, vec![e(1, 1), e(1, 2), e(1, 3)]);
    }

    #[test]
    fn lazy_storage_loses_its_buffer_unless_dropped_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, _) = FileStorage::open(dir.path(), true).unwrap();
        st.persist(vec![app(1, e(1, 1)), app(2, e(1, 2))]).unwrap();
        // Simulate kill -9: the process's memory vanishes without Drop.
        std::mem::forget(st);
        let (_, rec) = FileStorage::open(dir.path(), true).unwrap();
        assert!(rec.entries.is_empty(), "buffered entries survived a crash");
        let (mut st, _) = FileStorage::open(dir.path(), true).unwrap();
        st.persist(vec![app(1, e(1, 1))]).unwrap();
        drop(st);
        let (_, rec) = FileStorage::open(dir.path(), true).unwrap();
        assert_eq!(rec.entries, vec![e(1, 1)]);
    }
}
