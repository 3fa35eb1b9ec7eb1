//! The node's data directory: highest view seen, last installed snapshot, and the log of
//! entries after it.
//!
//! Files: `view` (atomic, the highest view seen), `snapshot` (atomic, state + the index it
//! covers), `log` (checksummed [`Entry`] records after the snapshot). Installing a snapshot
//! first empties the log, then replaces the snapshot, so a crash in between leaves the older
//! snapshot with an empty log: an older but consistent state (a restarted node recovers
//! from its primary anyway).

use std::path::Path;

use faultline_replica::{KvState, Log, Snapshot, Storage, StorageError};

use crate::core::Recovered;
use crate::msg::{Entry, Persist};

/// File-backed storage with group commit: consecutive appends in one batch share an fsync.
#[derive(Debug)]
pub struct FileStorage {
    view: Snapshot,
    snapshot: Snapshot,
    log: Log,
}

fn corrupt(what: &'static str, path: &Path, e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        what,
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

impl FileStorage {
    /// Open (creating) the data directory and recover what it holds.
    pub fn open(dir: &Path) -> Result<(FileStorage, Recovered), StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
            op: "create",
            path: dir.to_owned(),
            source,
        })?;
        let view = Snapshot::new(dir.join("view"));
        let snapshot = Snapshot::new(dir.join("snapshot"));
        let seen_view = match view.read()? {
            Some(b) => {
                bincode::deserialize(&b).map_err(|e| corrupt("view file", view.path(), e))?
            }
            None => 0,
        };
        let (base, state): (u64, KvState) = match snapshot.read()? {
            Some(b) => {
                bincode::deserialize(&b).map_err(|e| corrupt("snapshot", snapshot.path(), e))?
            }
            None => (0, KvState::new()),
        };
        let (log, records) = Log::open(&dir.join("log"))?;
        let mut entries = Vec::new();
        for r in records {
            let Ok(e) = bincode::deserialize::<Entry>(&r) else {
                tracing::warn!(path = %log.path().display(), "undecodable log entry; ignoring the rest of the log");
                break;
            };
            if e.index <= base {
                continue;
            }
            if e.index != base + entries.len() as u64 + 1 {
                tracing::warn!(
                    index = e.index,
                    "log entry out of sequence; ignoring the rest of the log"
                );
                break;
            }
            entries.push(e.cmd);
        }
        let recovered = Recovered {
            seen_view,
            base,
            state,
            entries,
        };
        Ok((
            FileStorage {
                view,
                snapshot,
                log,
            },
            recovered,
        ))
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).unwrap_or_default()
}

impl Storage for FileStorage {
    type Persist = Persist;

    fn persist(&mut self, actions: Vec<Persist>) -> Result<(), StorageError> {
        let mut batch: Vec<Vec<u8>> = Vec::new();
        for action in actions {
            match action {
                Persist::Append(e) => batch.push(encode(&e)),
                Persist::View(v) => {
                    self.log.append_batch(&std::mem::take(&mut batch))?;
                    self.view.write(&encode(&v))?;
                }
                Persist::Install { index, state } => {
                    batch.clear();
                    self.log.reset()?;
                    self.snapshot.write(&encode(&(index, state)))?;
                }
                Persist::Compact { index, state, tail } => {
                    self.log.append_batch(&std::mem::take(&mut batch))?;
                    self.snapshot.write(&encode(&(index, state)))?;
                    self.log.reset()?;
                    batch.extend(tail.iter().map(encode));
                }
            }
        }
        self.log.append_batch(&batch)
    }
}

/// An in-memory image of the data directory with the same semantics, for simulations.
#[derive(Debug, Clone, Default)]
pub struct MemDisk {
    pub recovered: Recovered,
}

impl MemDisk {
    pub fn apply(&mut self, action: &Persist) {
        let r = &mut self.recovered;
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

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_replica::Command;

    fn w(i: i64) -> Command {
        Command::Write {
            key: format!("k{i}"),
            value: i,
        }
    }

    #[test]
    fn file_storage_recovers_view_snapshot_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, rec) = FileStorage::open(dir.path()).unwrap();
        assert_eq!(rec, Recovered::default());
        let mut mem = MemDisk::default();
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
            mem.apply(a);
        }
        st.persist(actions).unwrap();
        st.persist(compaction).unwrap();
        drop(st);
        let (_, rec) = FileStorage::open(dir.path()).unwrap();
        assert_eq!(rec, mem.recovered);
        assert_eq!(rec.seen_view, 4);
        assert_eq!(rec.base, 7);
        assert_eq!(rec.entries, vec![w(8), w(9), w(10)]);
        assert_eq!(rec.state.read("k1"), Some(1));
        assert_eq!(rec.state.read("k7"), Some(7));
    }
}
