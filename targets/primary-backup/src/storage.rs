//! The node's data directory: highest view seen, last installed snapshot, and the log of
//! entries after it.
//!
//! Files: `view` (atomic, the highest view seen), `snapshot` (atomic: the index it covers, the
//! state, and the entries after the index kept by a compaction), `log` (checksummed [`Entry`]
//! records after those). Every file is encoded by `faultline_replica::codec` (a format-version
//! byte, then postcard).
//!
//! Installing a snapshot first empties the log, then replaces the snapshot, so a crash in
//! between leaves the older snapshot with an empty log: an older but consistent state (a
//! restarted node recovers from its primary anyway). A compaction writes the kept entries into
//! the snapshot file itself before the log is emptied, so no crash loses an entry that was
//! already durable (and perhaps acknowledged): a crash in between leaves the new snapshot and
//! the old log, whose entries up to the snapshot's last are skipped on recovery.

use std::path::Path;

use faultline_replica::datadir::{DataDir, Files, Layout};
use faultline_replica::{KvState, StorageError};

use crate::core::Recovered;
use crate::msg::{Entry, Persist};

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.len();
        write!(
            f,
            "view {}, base {}, {n} entries",
            self.seen_view, self.base
        )
    }
}

/// Recovery from persist actions, for the simulator's in-memory disk.
#[cfg(test)]
impl faultline_replica::sim::DiskImage for Recovered {
    type Persist = Persist;

    fn apply(&mut self, action: &Persist) {
        let r = self;
        match action {
            Persist::View(v) => r.seen_view = *v,
            Persist::Append(e) => {
                if e.index == r.base + r.entries.len() as u64 + 1 {
                    r.entries.push(e.cmd.clone());
                }
            }
            Persist::Install { index, state } => {
                r.base = *index;
                r.state = state.clone();
                r.entries.clear();
            }
            Persist::Compact { index, state, tail } => {
                r.base = *index;
                r.state = state.clone();
                r.entries = tail.iter().map(|e| e.cmd.clone()).collect();
            }
        }
    }
}

/// File-backed storage with group commit: the log records of one batch share one fsync.
pub type FileStorage = faultline_replica::datadir::FileStorage<Persist>;

fn corrupt(what: &'static str, path: &Path, e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        what,
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

impl Layout for Persist {
    type Recovered = Recovered;

    /// Primary-backup plants no storage bug: `lazy` is ignored.
    fn open(dir: &Path, _lazy: bool) -> Result<(DataDir, Recovered), StorageError> {
        let recover = |f: Files<'_, u64, (u64, KvState, Vec<Entry>)>| {
            let (base, state, tail) = f.snapshot.unwrap_or_default();
            let mut entries = Vec::new();
            for e in tail {
                if e.index != base + entries.len() as u64 + 1 {
                    let detail = format!("kept entry {} out of sequence", e.index);
                    return Err(corrupt("snapshot", f.snapshot_path, detail));
                }
                entries.push(e.cmd);
            }
            let seen_view = f.meta.unwrap_or(0);
            Ok(Recovered {
                seen_view,
                base,
                state,
                entries,
            })
        };
        // Entries the snapshot already holds: the log was not emptied after the last
        // compaction when the node stopped. The log only ever appends, so they are equal.
        let replay = |r: &mut Recovered, e: Entry| {
            let next = r.base + r.entries.len() as u64 + 1;
            if e.index == next {
                r.entries.push(e.cmd);
            }
            e.index <= next
        };
        DataDir::open(dir, ("view", "view file"), false, recover, replay)
    }

    fn write(self, dir: &mut DataDir) -> Result<(), StorageError> {
        match self {
            Persist::Append(e) => dir.append("log entry", &e)?,
            Persist::View(v) => dir.write_meta(&v)?,
            Persist::Install { index, state } => {
                dir.reset_log()?;
                let none: &[Entry] = &[];
                dir.write_snapshot(&(index, &state, none))?;
            }
            Persist::Compact { index, state, tail } => {
                dir.flush_log()?;
                dir.write_snapshot(&(index, &state, &tail))?;
                dir.reset_log()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_replica::{Command, Log, Snapshot};
    use faultline_replica::{OpenStorage, Storage};

    fn w(i: i64) -> Command {
        Command::Write {
            key: format!("k{i}"),
            value: i,
        }
    }

    #[test]
    fn file_storage_recovers_view_snapshot_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, rec) = FileStorage::open(dir.path(), false).unwrap();
        assert_eq!(rec, Recovered::default());
        let mut mem = faultline_replica::sim::Disk::<Recovered>::default();
        let mut state = KvState::new();
        state.apply(&w(1));
        let actions = vec![
            Persist::View(3),
            Persist::Append(Entry {
                index: 1,
                cmd: w(9),
            }),
            Persist::Install { index: 5, state },
            Persist::Append(Entry {
                index: 6,
                cmd: w(6),
            }),
            Persist::Append(Entry {
                index: 7,
                cmd: w(7),
            }),
            Persist::View(4),
            Persist::Append(Entry {
                index: 8,
                cmd: w(8),
            }),
        ];
        let mut folded = KvState::new();
        for i in [1, 6, 7] {
            folded.apply(&w(i));
        }
        let compaction = vec![
            Persist::Append(Entry {
                index: 9,
                cmd: w(9),
            }),
            Persist::Compact {
                index: 7,
                state: folded,
                tail: vec![
                    Entry {
                        index: 8,
                        cmd: w(8),
                    },
                    Entry {
                        index: 9,
                        cmd: w(9),
                    },
                ],
            },
            Persist::Append(Entry {
                index: 10,
                cmd: w(10),
            }),
        ];
        for a in actions.iter().chain(&compaction) {
            mem.persist(0, std::slice::from_ref(a));
        }
        st.persist(actions).unwrap();
        st.persist(compaction).unwrap();
        drop(st);
        let (_, rec) = FileStorage::open(dir.path(), false).unwrap();
        assert_eq!(rec, mem.recovered);
        assert_eq!(rec.seen_view, 4);
        assert_eq!(rec.base, 7);
        assert_eq!(rec.entries, vec![w(8), w(9), w(10)]);
        assert_eq!(rec.state.read("k1"), Some(1));
        assert_eq!(rec.state.read("k7"), Some(7));
    }

    fn e(index: u64) -> Entry {
        Entry {
            index,
            cmd: w(index as i64),
        }
    }

    /// A crash between writing a compaction's snapshot and emptying the log, and one just
    /// after the log was emptied: either way the kept entries (durable, perhaps acknowledged)
    /// come back, from the snapshot file itself.
    #[test]
    fn a_crash_inside_a_compaction_loses_no_entry() {
        for emptied in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (mut st, _) = FileStorage::open(dir.path(), false).unwrap();
            st.persist((1..=4).map(|i| Persist::Append(e(i))).collect())
                .unwrap();
            let log = dir.path().join("log");
            let before = std::fs::read(&log).unwrap();
            let mut folded = KvState::new();
            for i in 1..=2 {
                folded.apply(&w(i));
            }
            st.persist(vec![Persist::Compact {
                index: 2,
                state: folded,
                tail: vec![e(3), e(4)],
            }])
            .unwrap();
            drop(st);
            // The state the crash left: the old log back, or an empty one.
            std::fs::write(&log, if emptied { &[][..] } else { &before[..] }).unwrap();
            let (mut st, rec) = FileStorage::open(dir.path(), false).unwrap();
            assert_eq!(rec.base, 2, "emptied: {emptied}");
            assert_eq!(rec.entries, vec![w(3), w(4)], "emptied: {emptied}");
            assert_eq!(rec.state.read("k2"), Some(2));
            // And the log goes on from there.
            st.persist(vec![Persist::Append(e(5))]).unwrap();
            drop(st);
            let (_, rec) = FileStorage::open(dir.path(), false).unwrap();
            assert_eq!(rec.entries, vec![w(3), w(4), w(5)], "emptied: {emptied}");
        }
    }

    /// Files of another format version stop the node with an error naming the file, instead
    /// of being misread or silently skipped.
    #[test]
    fn files_of_another_format_version_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, _) = FileStorage::open(dir.path(), false).unwrap();
        st.persist(vec![Persist::View(3), Persist::Append(e(1))])
            .unwrap();
        drop(st);
        let mut other = faultline_replica::codec::encode(&e(2)).unwrap();
        other[0] = faultline_replica::FORMAT_VERSION + 1;
        let (mut log, _) = Log::open(&dir.path().join("log")).unwrap();
        log.append_batch(&[other]).unwrap();
        drop(log);
        let err = FileStorage::open(dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("log") && err.contains("format version"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let mut blob = faultline_replica::codec::encode(&3u64).unwrap();
        blob[0] = 0;
        Snapshot::new(dir.path().join("view")).write(&blob).unwrap();
        let err = FileStorage::open(dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("view") && err.contains("format version 0"),
            "{err}"
        );
    }
}
