//! Durable storage primitives: an append-only, checksummed record log with group commit, and
//! atomically replaced files for snapshots and small metadata.
//!
//! Log format: a sequence of records `[len: u32 LE][crc32(payload): u32 LE][payload]`. A crash
//! can leave a torn record at the tail (a short write) or garbage after the last good record;
//! [`Log::open`] keeps every record up to the first bad one and truncates the rest away, so the
//! file ends on a record boundary again before anything new is appended.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest record [`Log::open`] accepts; a length field above it is treated as corruption.
pub const MAX_RECORD: usize = 64 << 20;

const HEADER: usize = 8;

/// A storage failure, with the file it concerns. After a failed `fsync` a node cannot know
/// what reached the disk, so drivers treat every `StorageError` as fatal.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("record of {len} bytes is larger than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("corrupt {what} in {path}: {detail}")]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: crate::codec::CodecError,
    },
}

/// `value` encoded for a file ([`crate::codec`]); `what` names it in the error.
pub fn encode_record<T: serde::Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, StorageError> {
    crate::codec::encode(value).map_err(|source| StorageError::Encode { what, source })
}

/// A log record read back from the log at `path`: `Some` decoded; `None` undecodable though its
/// checksum held, logged, and the caller ignores the rest of the log as after a torn tail; an
/// error when the record was written by another format version, which no later record of this
/// log can fix.
pub fn decode_log_record<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
) -> Result<Option<T>, StorageError> {
    match crate::codec::decode(bytes) {
        Ok(value) => Ok(Some(value)),
        Err(e @ crate::codec::CodecError::Version { .. }) => Err(StorageError::Corrupt {
            what: "log",
            path: path.to_owned(),
            detail: e.to_string(),
        }),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "undecodable log record; ignoring the rest of the log");
            Ok(None)
        }
    }
}

/// A value read back from a file of `path`; a blob that does not decode is [`StorageError::Corrupt`].
pub fn decode_record<T: serde::de::DeserializeOwned>(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<T, StorageError> {
    crate::codec::decode(bytes).map_err(|e| StorageError::Corrupt {
        what,
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// An open append-only log file.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    file: File,
    len: u64,
}

impl Log {
    /// Open (creating if missing) the log at `path` and recover its records.
    ///
    /// Reads records until end of file or the first torn or corrupt record (short header,
    /// short payload, oversized length, or checksum mismatch); everything from there on is
    /// truncated away and the truncation is fsynced. Returns the log, positioned for appends,
    /// and the payloads of the good records in order.
    pub fn open(path: &Path) -> Result<(Log, Vec<Vec<u8>>), StorageError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err("open", path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err("read", path))?;
        let (records, good) = parse_records(&bytes);
        let good = good as u64;
        if good < bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                kept = records.len(),
                dropped_bytes = bytes.len() as u64 - good,
                "log has a torn or corrupt tail; truncating it"
            );
            file.set_len(good).map_err(io_err("truncate", path))?;
            file.sync_all().map_err(io_err("fsync", path))?;
        }
        file.seek(SeekFrom::Start(good))
            .map_err(io_err("seek", path))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok((
            Log {
                path: path.to_owned(),
                file,
                len: good,
            },
            records,
        ))
    }

    /// Append records and make them durable with one `fsync` (group commit): when this returns
    /// `Ok`, every record is on disk. An empty batch does nothing.
    pub fn append_batch(&mut self, records: &[Vec<u8>]) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        let total: usize = records.iter().map(|r| r.len() + HEADER).sum();
        let mut buf = Vec::with_capacity(total);
        for r in records {
            if r.len() > MAX_RECORD {
                return Err(StorageError::TooLarge {
                    len: r.len(),
                    max: MAX_RECORD,
                });
            }
            buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(r).to_le_bytes());
            buf.extend_from_slice(r);
        }
        self.file
            .write_all(&buf)
            .map_err(io_err("append to", &self.path))?;
        self.file.sync_data().map_err(io_err("fsync", &self.path))?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Drop every record (after the state they built was saved in a snapshot) and fsync.
    pub fn reset(&mut self) -> Result<(), StorageError> {
        self.truncate(0)
    }

    /// Cut the log to its first `len` bytes (a record boundary the caller knows) and fsync.
    pub fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        self.file
            .set_len(len)
            .map_err(io_err("truncate", &self.path))?;
        self.file
            .seek(SeekFrom::Start(len))
            .map_err(io_err("seek", &self.path))?;
        self.file.sync_all().map_err(io_err("fsync", &self.path))?;
        self.len = len;
        Ok(())
    }

    /// Keep only the first `n` of the `records` [`Log::open`] returned, when the caller found
    /// record `n` unusable (it does not decode, or is out of sequence) and ignores the rest:
    /// they are cut away and the cut is fsynced, so a record appended later is never hidden
    /// behind them at the next recovery.
    pub fn keep_first(&mut self, records: &[Vec<u8>], n: usize) -> Result<(), StorageError> {
        let keep: u64 = records[..n.min(records.len())]
            .iter()
            .map(|r| (HEADER + r.len()) as u64)
            .sum();
        if keep >= self.len {
            return Ok(());
        }
        tracing::warn!(
            path = %self.path.display(),
            kept = n,
            dropped_bytes = self.len - keep,
            "ignoring the log from an unusable record on; truncating it there"
        );
        self.truncate(keep)
    }

    /// Current size in bytes (always a record boundary).
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A [`Log`] that can carry the planted bug `ack-before-persist`: made with a flush interval,
/// it buffers appended records in this process's memory and writes them out (never fsynced)
/// at most once per interval, so a node acknowledges what a `kill -9` then loses. Without one
/// it is the plain log (every batch fsynced). A clean drop writes the buffer out: only a crash
/// loses it.
/// The planted bug that acknowledges log records before they are durable (see [`LazyLog`]).
pub const BUG_ACK_BEFORE_PERSIST: &str = "ack-before-persist";

/// How long the planted bug `ack-before-persist` keeps log records in user space before
/// writing them out, in ms.
pub const LAZY_FLUSH_MS: u64 = 1_000;

#[derive(Debug)]
pub struct LazyLog {
    log: Log,
    lazy: Option<Lazy>,
}

#[derive(Debug)]
struct Lazy {
    file: File,
    buf: Vec<u8>,
    every: std::time::Duration,
    last_flush: std::time::Instant,
}

impl LazyLog {
    /// Wrap `log`; `lazy_flush`: the bug's write-out interval (`None`: no bug).
    pub fn new(log: Log, lazy_flush: Option<std::time::Duration>) -> Result<Self, StorageError> {
        let lazy = match lazy_flush {
            None => None,
            Some(every) => Some(Lazy {
                file: OpenOptions::new()
                    .append(true)
                    .open(&log.path)
                    .map_err(io_err("open", &log.path))?,
                buf: Vec::new(),
                every,
                last_flush: std::time::Instant::now(),
            }),
        };
        Ok(LazyLog { log, lazy })
    }

    /// Append `records`: durable on return, or (with the bug) buffered.
    pub fn append_batch(&mut self, records: &[Vec<u8>]) -> Result<(), StorageError> {
        match &mut self.lazy {
            None => self.log.append_batch(records),
            Some(lazy) => {
                for r in records {
                    lazy.buf.extend_from_slice(&(r.len() as u32).to_le_bytes());
                    lazy.buf
                        .extend_from_slice(&crc32fast::hash(r).to_le_bytes());
                    lazy.buf.extend_from_slice(r);
                }
                Ok(())
            }
        }
    }

    /// Drop every record, buffered ones included, and fsync.
    pub fn reset(&mut self) -> Result<(), StorageError> {
        if let Some(lazy) = &mut self.lazy {
            lazy.buf.clear();
        }
        self.log.reset()
    }

    /// With the bug: write the buffer out if the interval passed (or `force`).
    pub fn flush_lazy(&mut self, force: bool) -> Result<(), StorageError> {
        let Some(lazy) = &mut self.lazy else {
            return Ok(());
        };
        if force || lazy.last_flush.elapsed() >= lazy.every {
            lazy.last_flush = std::time::Instant::now();
            let buf = std::mem::take(&mut lazy.buf);
            lazy.file
                .write_all(&buf)
                .map_err(io_err("append to", &self.log.path))?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        self.log.path()
    }
}

impl Drop for LazyLog {
    fn drop(&mut self) {
        let _ = self.flush_lazy(true);
    }
}

/// Split `bytes` into good records; returns them and the byte length they span.
fn parse_records(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= HEADER {
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let crc = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        if len > MAX_RECORD || bytes.len() - pos - HEADER < len {
            break;
        }
        let payload = &bytes[pos + HEADER..pos + HEADER + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        records.push(payload.to_vec());
        pos += HEADER + len;
    }
    (records, pos)
}

/// fsync a directory so that file creations and renames in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// A file replaced atomically as a whole: a snapshot of the state machine, or small metadata
/// such as the highest view or term seen. A reader sees either the old or the new contents,
/// never a mix, even across a crash; contents carry a checksum so a damaged file is reported
/// instead of being trusted.
#[derive(Debug, Clone)]
pub struct Snapshot {
    path: PathBuf,
}

impl Snapshot {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Snapshot { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Durably replace the contents: write `<path>.tmp`, fsync it, rename it over `path`,
    /// fsync the directory.
    pub fn write(&self, blob: &[u8]) -> Result<(), StorageError> {
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
            f.write_all(&crc32fast::hash(blob).to_le_bytes())
                .and_then(|()| f.write_all(blob))
                .map_err(io_err("write", &tmp))?;
            f.sync_all().map_err(io_err("fsync", &tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io_err("rename", &self.path))?;
        sync_dir(self.path.parent().unwrap_or(Path::new(".")))
    }

    /// The last contents written, or `None` if there never was a snapshot.
    pub fn read(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &self.path)(e)),
        };
        let corrupt = |detail: &str| StorageError::Corrupt {
            what: "snapshot",
            path: self.path.clone(),
            detail: detail.to_owned(),
        };
        if bytes.len() < 4 {
            return Err(corrupt("shorter than its checksum"));
        }
        let (crc, blob) = bytes.split_at(4);
        if crc32fast::hash(blob).to_le_bytes() != crc {
            return Err(corrupt("checksum mismatch"));
        }
        Ok(Some(blob.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("record-{i}").repeat(i + 1).into_bytes())
            .collect()
    }

    fn write_log(path: &Path, records: &[Vec<u8>]) -> u64 {
        let (mut log, got) = Log::open(path).unwrap();
        assert!(got.is_empty());
        log.append_batch(records).unwrap();
        log.len_bytes()
    }

    #[test]
    fn records_after_an_unusable_one_are_cut_so_later_appends_are_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let all = recs(5);
        write_log(&path, &all);
        let (mut log, got) = Log::open(&path).unwrap();
        assert_eq!(got, all);
        // The caller could not use record 2: records 2.. go, and a new append follows 0 and 1.
        log.keep_first(&got, 2).unwrap();
        log.append_batch(&[b"after".to_vec()]).unwrap();
        drop(log);
        let (mut log, got) = Log::open(&path).unwrap();
        assert_eq!(got, vec![all[0].clone(), all[1].clone(), b"after".to_vec()]);
        // Keeping everything changes nothing.
        let len = log.len_bytes();
        log.keep_first(&got, got.len()).unwrap();
        log.keep_first(&got, 99).unwrap();
        assert_eq!(log.len_bytes(), len);
    }

    #[test]
    fn records_round_trip_across_batches_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let all = recs(10);
        {
            let (mut log, got) = Log::open(&path).unwrap();
            assert!(got.is_empty());
            log.append_batch(&all[..3]).unwrap();
            log.append_batch(&[]).unwrap();
            log.append_batch(&all[3..]).unwrap();
        }
        let (mut log, got) = Log::open(&path).unwrap();
        assert_eq!(got, all);
        log.append_batch(&[b"more".to_vec()]).unwrap();
        drop(log);
        let (_, got) = Log::open(&path).unwrap();
        assert_eq!(got.len(), 11);
        assert_eq!(got[10], b"more");
    }

    #[test]
    fn torn_or_garbage_tail_drops_only_the_tail() {
        let all = recs(5);
        // Each case damages the file after 5 good records; all of them must survive.
        type Damage = fn(&Path, u64);
        let cases: [(&str, Damage); 4] = [
            ("cut mid-payload", |p, len| {
                let f = OpenOptions::new().write(true).open(p).unwrap();
                f.set_len(len - 3).unwrap();
            }),
            ("cut mid-header", |p, len| {
                let f = OpenOptions::new().write(true).open(p).unwrap();
                let last = recs(5)[4].len() as u64;
                f.set_len(len - last - 5).unwrap();
            }),
            ("garbage appended", |p, _| {
                let mut f = OpenOptions::new().append(true).open(p).unwrap();
                f.write_all(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9])
                    .unwrap();
            }),
            ("huge length appended", |p, _| {
                let mut f = OpenOptions::new().append(true).open(p).unwrap();
                f.write_all(&[0xff; 12]).unwrap();
            }),
        ];
        for (name, damage) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log");
            let len = write_log(&path, &all);
            damage(&path, len);
            let expect_kept = if name.starts_with("cut") { 4 } else { 5 };
            let (mut log, got) = Log::open(&path).unwrap();
            assert_eq!(got, all[..expect_kept].to_vec(), "{name}");
            // The tail is gone from the file, so new appends follow the last good record.
            log.append_batch(&[b"after".to_vec()]).unwrap();
            drop(log);
            let (_, got) = Log::open(&path).unwrap();
            assert_eq!(got.len(), expect_kept + 1, "{name}");
            assert_eq!(got.last().unwrap(), b"after", "{name}");
        }
    }

    #[test]
    fn corrupt_crc_in_the_middle_stops_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let all = recs(6);
        write_log(&path, &all);
        // Flip one payload byte of record 2.
        let offset: usize = all[..2].iter().map(|r| r.len() + HEADER).sum::<usize>() + HEADER + 1;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (log, got) = Log::open(&path).unwrap();
        assert_eq!(got, all[..2].to_vec());
        assert_eq!(log.len_bytes(), std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn reset_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut log, _) = Log::open(&path).unwrap();
        log.append_batch(&recs(3)).unwrap();
        log.reset().unwrap();
        log.append_batch(&[b"x".to_vec()]).unwrap();
        drop(log);
        let (_, got) = Log::open(&path).unwrap();
        assert_eq!(got, vec![b"x".to_vec()]);
    }

    #[test]
    fn snapshot_replaces_atomically_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let snap = Snapshot::new(dir.path().join("snap"));
        assert_eq!(snap.read().unwrap(), None);
        snap.write(b"one").unwrap();
        snap.write(b"two").unwrap();
        assert_eq!(snap.read().unwrap().as_deref(), Some(&b"two"[..]));
        assert!(!dir.path().join("snap.tmp").exists());
        let mut bytes = std::fs::read(snap.path()).unwrap();
        bytes[5] ^= 1;
        std::fs::write(snap.path(), bytes).unwrap();
        assert!(matches!(snap.read(), Err(StorageError::Corrupt { .. })));
    }
}
