//! The data directory every reference node keeps: an atomic file of hard state (`meta`,
//! `view`), an atomic `snapshot` file and a checksummed `log`. [`DataDir::open`] recovers what
//! they hold; the write methods persist one batch of a core's actions in its order, the log
//! records of a batch sharing one fsync (group commit).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::log::{decode_log_record, decode_record, encode_record, LazyLog, Log, Snapshot};
use crate::log::{StorageError, LAZY_FLUSH_MS};

/// A node's data directory, open.
#[derive(Debug)]
pub struct DataDir {
    meta: Snapshot,
    /// What errors call the meta file.
    meta_what: &'static str,
    snapshot: Snapshot,
    log: LazyLog,
    /// Log records of the batch being persisted, not written yet.
    batch: Vec<Vec<u8>>,
}

/// What the meta and snapshot files held when a [`DataDir`] was opened (`None`: never
/// written), and the snapshot file's path for errors.
pub struct Files<'a, M, S> {
    pub meta: Option<M>,
    pub snapshot: Option<S>,
    pub snapshot_path: &'a Path,
}

impl DataDir {
    /// Open (creating) `dir` with its meta file `meta_file` (`meta_what` in errors): `recover`
    /// builds the recovered state from the meta and snapshot files, then `replay` applies each
    /// log record (`R`) in order. A record that cannot be used (torn at the end, or out of
    /// sequence: `replay` returns false) is cut away with everything after it, so records
    /// appended after this start are not hidden behind it at the next. `lazy`: the planted bug
    /// `ack-before-persist` (see [`LazyLog`]).
    pub fn open<M, S, R, T>(
        dir: &Path,
        (meta_file, meta_what): (&'static str, &'static str),
        lazy: bool,
        recover: impl FnOnce(Files<'_, M, S>) -> Result<T, StorageError>,
        mut replay: impl FnMut(&mut T, R) -> bool,
    ) -> Result<(DataDir, T), StorageError>
    where
        M: DeserializeOwned,
        S: DeserializeOwned,
        R: DeserializeOwned,
    {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
            op: "create",
            path: dir.to_owned(),
            source,
        })?;
        let meta = Snapshot::new(dir.join(meta_file));
        let snapshot = Snapshot::new(dir.join("snapshot"));
        let files = Files {
            meta: match meta.read()? {
                Some(b) => Some(decode_record(meta_what, meta.path(), &b)?),
                None => None,
            },
            snapshot: match snapshot.read()? {
                Some(b) => Some(decode_record("snapshot", snapshot.path(), &b)?),
                None => None,
            },
            snapshot_path: snapshot.path(),
        };
        let mut recovered = recover(files)?;
        let (mut log, records) = Log::open(&dir.join("log"))?;
        for (i, r) in records.iter().enumerate() {
            let Some(r) = decode_log_record::<R>(log.path(), r)? else {
                log.keep_first(&records, i)?;
                break;
            };
            if !replay(&mut recovered, r) {
                tracing::warn!(
                    record = i,
                    "log record out of sequence; ignoring the rest of the log"
                );
                log.keep_first(&records, i)?;
                break;
            }
        }
        let lazy = lazy.then(|| std::time::Duration::from_millis(LAZY_FLUSH_MS));
        let dir = DataDir {
            meta,
            meta_what,
            snapshot,
            log: LazyLog::new(log, lazy)?,
            batch: Vec::new(),
        };
        Ok((dir, recovered))
    }

    /// Add a log record to the batch.
    pub fn append(
        &mut self,
        what: &'static str,
        record: &impl Serialize,
    ) -> Result<(), StorageError> {
        self.batch.push(encode_record(what, record)?);
        Ok(())
    }

    /// Replace the meta file. The batch's log records before it reach the disk first: the
    /// order of the batch is the order of the core's decisions.
    pub fn write_meta(&mut self, value: &impl Serialize) -> Result<(), StorageError> {
        self.flush_log()?;
        self.meta.write(&encode_record(self.meta_what, value)?)
    }

    /// Write the batch's log records so far.
    pub fn flush_log(&mut self) -> Result<(), StorageError> {
        self.log.append_batch(&std::mem::take(&mut self.batch))
    }

    /// Replace the snapshot file.
    pub fn write_snapshot(&mut self, value: &impl Serialize) -> Result<(), StorageError> {
        self.snapshot.write(&encode_record("snapshot", value)?)
    }

    /// Empty the log, with the batch's records so far.
    pub fn reset_log(&mut self) -> Result<(), StorageError> {
        self.batch.clear();
        self.log.reset()
    }

    /// Replace the snapshot file with one that holds everything the log held (what is kept
    /// after its position goes into the snapshot file itself, so no crash can leave the new
    /// snapshot without it), then empty the log. The batch's records so far are folded in.
    pub fn replace_log(&mut self, snapshot: &impl Serialize) -> Result<(), StorageError> {
        self.batch.clear();
        self.write_snapshot(snapshot)?;
        self.log.reset()
    }

    /// End of a batch: write its log records (and, with `ack-before-persist`, the buffer when
    /// it is due).
    pub fn finish(&mut self) -> Result<(), StorageError> {
        self.flush_log()?;
        self.log.flush_lazy(false)
    }
}

/// A protocol's layout of its data directory: how its persist actions (`Self`) are written
/// and how what they wrote is recovered.
pub trait Layout: Sized + Send + 'static {
    /// What a node recovers (logged at start-up as it displays).
    type Recovered: std::fmt::Display + Send + 'static;

    /// Open (creating) `dir` and recover what it holds ([`DataDir::open`]). `lazy`: the
    /// planted bug `ack-before-persist` (layouts that implement it).
    fn open(dir: &Path, lazy: bool) -> Result<(DataDir, Self::Recovered), StorageError>;

    /// Write this action as part of the batch being persisted.
    fn write(self, dir: &mut DataDir) -> Result<(), StorageError>;
}

/// File-backed storage of the persist actions `P` with group commit: the log records of one
/// batch share one fsync.
#[derive(Debug)]
pub struct FileStorage<P>(DataDir, std::marker::PhantomData<fn(P)>);

impl<P: Layout> crate::node::OpenStorage for FileStorage<P> {
    type Recovered = P::Recovered;

    fn open(dir: &Path, lazy: bool) -> Result<(Self, P::Recovered), StorageError> {
        let (dir, recovered) = P::open(dir, lazy)?;
        Ok((FileStorage(dir, std::marker::PhantomData), recovered))
    }
}

impl<P: Layout> crate::driver::Storage for FileStorage<P> {
    type Persist = P;

    fn persist(&mut self, actions: Vec<P>) -> Result<(), StorageError> {
        for action in actions {
            action.write(&mut self.0)?;
        }
        self.0.finish()
    }
}
